import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildCli, runCli } from './cli-helpers'

// `migrate up --json` that applied 0001 and 0002 and failed on 0003 printed nothing on stdout: a
// script reading the JSON could not tell two migrations were applied
let cwd: string

beforeAll(async () => {
  await buildCli()
  cwd = mkdtempSync(join(tmpdir(), 'dbpool-cli-migrate-json-'))
  mkdirSync(join(cwd, 'm'))
  writeFileSync(join(cwd, 'm', '0001_a.sql'), 'create table a (id integer primary key);\n')
  writeFileSync(join(cwd, 'm', '0002_b.sql'), 'create table b (id integer primary key);\n')
  writeFileSync(join(cwd, 'm', '0003_c.sql'), 'insert into nowhere values (1);\n')
}, 240_000)

afterAll(() => rmSync(cwd, { recursive: true, force: true }))

describe('migrate up --json failing halfway', () => {
  it('prints the migrations applied before the failure and the one that failed, exit 1', async () => {
    const res = await runCli(['--url', 'sqlite:./app.db', 'migrate', 'up', '--dir', 'm', '--json'], { cwd })
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout) as { direction: string; migrations: { version: number }[]; failed: unknown }
    expect(out.direction).toBe('up')
    expect(out.migrations.map((m) => m.version)).toEqual([1, 2])
    expect(out.failed).toEqual({ version: 3, name: 'c', code: 'MIGRATION_FAILED' })
    expect(res.stderr).toMatch(/^dbpool: MIGRATION_FAILED: migration 0003_c\.sql failed/)
  }, 60_000)

  // Node's mkdirSync({ recursive: true }) loops forever under /proc: migrate up never ended, spinning a core
  it('migrate up refuses a database directory that cannot be made (under /proc) with CONNECTION_FAILED naming it', async () => {
    if (!existsSync('/proc/self')) return
    const res = await runCli(['--url', 'sqlite:/proc/dbpool-cli-test/app.db', 'migrate', 'up', '--dir', 'm'], { cwd, timeoutMs: 20_000 })
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /^dbpool: CONNECTION_FAILED: cannot create the directory \/proc\/dbpool-cli-test of the SQLite database: ENOENT/,
    )
  }, 30_000)

  it('migrate up with a file or a symlink loop on the database directory path: CONNECTION_FAILED naming the directory, not a raw Node error', async () => {
    writeFileSync(join(cwd, 'afile'), '')
    symlinkSync('loop', join(cwd, 'loop'))
    for (const [name, why] of [
      ['afile', /a file is on the way \(.*afile\/sub: ENOTDIR\)/],
      ['loop', /a symlink loop is on the way \(.*loop\/sub: ELOOP\)/],
    ] as const) {
      const res = await runCli(['--url', `sqlite:./${name}/sub/app.db`, 'migrate', 'up', '--dir', 'm'], { cwd, timeoutMs: 20_000 })
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(
        new RegExp(`^dbpool: CONNECTION_FAILED: cannot create the directory \\S*${name}/sub of the SQLite database: `),
      )
      expect(res.stderr).toMatch(why)
    }
  }, 30_000)
})
