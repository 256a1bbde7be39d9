import { execFile } from 'node:child_process'
import { existsSync, statSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import parsePrometheus from 'parse-prometheus-text-format'
import type { BenchReport } from '@dbpool/cli'
import { PoolFactory, type ManagerHealthReport, type MigrationRunResult, type MigrationStatus } from '@dbpool/core'
import { buildCli, runCli, spawnCli } from './cli-helpers'

// The built CLI (node packages/cli/dist/bin.js) run as a child process against SQLite files.
let cwd: string

beforeAll(async () => {
  await buildCli()
  cwd = mkdtempSync(join(tmpdir(), 'dbpool-cli-sqlite-'))
  mkdirSync(join(cwd, 'migrations'))
  writeFileSync(
    join(cwd, 'migrations', '0001_notes.sql'),
    '-- migrate:up\ncreate table notes (id integer primary key, body text not null);\n-- migrate:down\ndrop table notes;\n',
  )
  writeFileSync(
    join(cwd, 'migrations', '0002_tags.up.sql'),
    "create table tags (note_id integer references notes (id), tag text);\ninsert into notes (body) values ('first');\n",
  )
  writeFileSync(join(cwd, 'migrations', '0002_tags.down.sql'), 'drop table tags;\ndelete from notes;\n')
}, 240_000)

afterAll(() => rmSync(cwd, { recursive: true, force: true }))

const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(args, { cwd })

async function count(url: string, sql: string): Promise<number> {
  const pool = await PoolFactory.create(url, { min: 0, max: 1, name: 'check' })
  try {
    const { rows } = await pool.query<{ n: number }>(sql)
    return Number(rows[0]?.n)
  } finally {
    await pool.close()
  }
}

describe('dbpool on SQLite (child process)', () => {
  it('prints help and version, and exits 64 on a usage error', async () => {
    const help = await cli('--help')
    expect(help.code).toBe(0)
    for (const command of ['health', 'stats', 'check', 'migrate', 'backup', 'restore', 'serve', 'bench'])
      expect(help.stdout).toContain(command)
    expect((await cli('--version')).stdout.trim()).toBe('0.1.0')
    // the installed command is a committed, executable shim that loads dist/bin.js
    const shim = join(__dirname, '..', '..', 'bin', 'dbpool.js')
    expect(statSync(shim).mode & 0o111).not.toBe(0)
    const viaShim = await new Promise<string>((resolve, reject) =>
      execFile(shim, ['--version'], { cwd }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    )
    expect(viaShim.trim()).toBe('0.1.0')
    const bad = await cli('health', '--timeout', 'soon')
    expect(bad.code).toBe(64)
    expect(bad.stderr).toContain("option '--timeout <ms>' argument 'soon' is invalid")
    // a port above 65535 and a deadline a timer cannot take are usage errors, not a crash or an instant timeout
    const port = await cli('serve', '--port', '99999', '--url', 'sqlite:x.db')
    expect(port.code).toBe(64)
    expect(port.stderr).toContain("option '--port <port>' argument '99999' is invalid")
    expect((await cli('health', '--timeout', '3000000000', '--url', 'sqlite:x.db')).code).toBe(64)
    expect((await cli('launch')).code).toBe(64)
    expect((await cli('migrate', 'down', '--steps', '2', '--all', '--url', 'sqlite:x.db')).code).toBe(64)
  }, 60_000)

  it('explains in one line what to do when no database is configured', async () => {
    const stats = await cli('stats')
    expect(stats.code).toBe(1)
    expect(stats.stderr.trim().split('\n')).toEqual([
      'dbpool: CONFIGURATION: no database configured (no dbpool.toml or dbpool.json here): pass --url, set DATABASE_URL, or write a dbpool.toml with a [pools.<name>] table (check --url, DATABASE_URL and dbpool.toml)',
    ])
    // health cannot even check: unhealthy
    expect((await cli('health')).code).toBe(2)
  }, 60_000)

  it('migrates up, reports status, reverts and re-applies with a config file', async () => {
    writeFileSync(join(cwd, 'dbpool.toml'), '[pools.app]\nurl = "sqlite:./data/app.db"\nmax = 4\n\n[pools.app.backend]\nreaders = 1\n')
    // only migrate up creates a database: status on a missing file fails
    const missing = await cli('migrate', 'status')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/CONNECTION_FAILED: cannot open SQLite database .*app\.db: .*does not exist/)
    expect(existsSync(join(cwd, 'data', 'app.db'))).toBe(false)
    await count(`sqlite:${join(cwd, 'data', 'app.db')}`, 'select 0 as n')
    const before = await cli('migrate', 'status')
    expect(before.code).toBe(0)
    expect(before.stdout).toMatch(
      /^app \(sqlite:.*app\.db\)\n {2}version {2}state {5}name {3}applied at\n {2}1 {8}pending {3}notes {2}-\n {2}2 {8}pending {3}tags {3}-\n {2}2 pending\n$/,
    )
    const up = await cli('migrate', 'up')
    expect(up.code).toBe(0)
    expect(up.stdout).toMatch(
      /^migrating app \(sqlite:.*\) with .*migrations\n {2}applied 1 notes \(\d+ ms\)\n {2}applied 2 tags \(\d+ ms\)\napplied 2 migrations: at version 2\n$/,
    )
    expect(existsSync(join(cwd, 'data', 'app.db'))).toBe(true)
    const status = JSON.parse((await cli('migrate', 'status', '--json')).stdout) as MigrationStatus[]
    expect(status.map((s) => [s.version, s.state])).toEqual([
      [1, 'applied'],
      [2, 'applied'],
    ])
    expect((await cli('migrate', 'up')).stdout).toMatch(/nothing to apply: at version 2/)
    const down = await cli('migrate', 'down')
    expect(down.code).toBe(0)
    expect(down.stdout).toMatch(/reverted 2 tags .*\nreverted 1 migration: at version 1\n$/)
    const again = JSON.parse((await cli('migrate', 'up', '--json')).stdout) as MigrationRunResult
    expect(again.migrations.map((m) => m.version)).toEqual([2])
  }, 60_000)

  it('migrate status exits 1 when a migration is changed or missing, and counts both', async () => {
    const dir = join(cwd, 'drift-migrations')
    mkdirSync(dir)
    writeFileSync(join(dir, '0001_a.sql'), 'create table drift_a (id integer);')
    writeFileSync(join(dir, '0002_b.sql'), 'create table drift_b (id integer);')
    const url = `sqlite:${join(cwd, 'drift.db')}`
    expect((await cli('--url', url, 'migrate', 'up', '--dir', dir)).code).toBe(0)
    const clean = await cli('--url', url, 'migrate', 'status', '--dir', dir)
    expect(clean.code).toBe(0)
    expect(clean.stdout).toMatch(/ {2}0 pending\n$/)
    writeFileSync(join(dir, '0001_a.sql'), 'create table drift_a (id integer, edited integer);')
    rmSync(join(dir, '0002_b.sql'))
    const drift = await cli('--url', url, 'migrate', 'status', '--dir', dir)
    expect(drift.code).toBe(1)
    expect(drift.stdout).toMatch(/0 pending, 1 changed since applied \(refused until restored\), 1 missing \(applied, not among the files/)
    expect((await cli('--url', url, 'migrate', 'status', '--dir', dir, '--json')).code).toBe(1)
  }, 60_000)

  it('refuses migrate up and down on sqlite::memory: (nothing would persist); status still runs', async () => {
    for (const action of ['up', 'down']) {
      const res = await cli('--url', 'sqlite::memory:', 'migrate', action)
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(
        /^dbpool: CONFIGURATION: migrate (up|down) on sqlite::memory: would change a database that disappears when this command exits \(nothing persists\)/,
      )
    }
    expect((await cli('--url', 'sqlite::memory:', 'migrate', 'status')).code).toBe(0)
  }, 60_000)

  it('reports a failing migration in one line, the stack only with --verbose, and leaves nothing behind', async () => {
    const dir = join(cwd, 'broken-migrations')
    mkdirSync(dir)
    writeFileSync(join(dir, '0001_ok.sql'), 'create table ok (id integer);')
    writeFileSync(join(dir, '0002_broken.sql'), 'create table half (id integer);\ninsert into nowhere values (1);\n')
    const url = `sqlite:${join(cwd, 'broken.db')}`
    const res = await cli('--url', url, 'migrate', 'up', '--dir', dir)
    expect(res.code).toBe(1)
    expect(res.stdout).toContain('applied 1 ok')
    const lines = res.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^dbpool: MIGRATION_FAILED: migration 0002_broken.sql failed at statement 2 \(line 2\): insert into nowhere values \(1\): .*no such table: nowhere.* \(fix the migration or the database, then run dbpool migrate again\)$/,
    )
    expect(await count(url, "select count(*) as n from sqlite_master where name = 'half'")).toBe(0)
    const verbose = await cli('--url', url, 'migrate', 'up', '--dir', dir, '--verbose')
    expect(verbose.code).toBe(1)
    expect(verbose.stderr).toMatch(/\n {4}at /)
    expect(verbose.stderr).toContain('caused by: ')
  }, 60_000)

  it('health: exit 0 and a readable report, or JSON', async () => {
    const human = await cli('health')
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(
      /^app: healthy {2}sqlite:.*app\.db {2}\(sqlite, checked in \d+(\.\d{1,2})? ms, 0\/2 connections in use\)\n {2}ping {9}healthy {3}\d+(\.\d{1,2})? ms\n/,
    )
    // not deep: no integrity scan (see sqliteHealthChecks); --deep runs integrity_check
    expect(human.stdout).toMatch(/\n {2}pages {8}healthy/)
    expect(human.stdout).not.toMatch(/integrity/)
    expect(human.stdout.trim().split('\n').pop()).toBe('overall: healthy')
    const json = JSON.parse((await cli('health', '--json', '--deep')).stdout) as ManagerHealthReport
    expect(json.status).toBe('healthy')
    expect(json.pools.app?.checks.find((c) => c.name === 'integrity')?.data).toMatchObject({ mode: 'integrity_check', ok: true })
  }, 60_000)

  it('stats and check', async () => {
    const stats = await cli('stats')
    expect(stats.code).toBe(0)
    expect(stats.stdout).toMatch(/^app: sqlite:.*app\.db \(sqlite\)\n {2}pool {6}size 1, idle 1, used 0, pending 0, min 0, max 2\n/)
    expect(stats.stdout).toMatch(
      /database {2}path .*app\.db, journal_mode wal, page_size 4096, page_count \d+, freelist_count \d+, size_bytes \d+, wal_bytes \d+/,
    )
    const json = JSON.parse((await cli('stats', '--json')).stdout) as {
      pools: Record<string, { settings: { max: number }; database: { page_count: number } }>
    }
    expect(json.pools.app?.settings.max).toBe(4)
    expect(json.pools.app?.database.page_count).toBeGreaterThan(1)
    const check = await cli('check')
    expect(check.code).toBe(0)
    expect(check.stdout).toMatch(/^app: ok {2}sqlite:.*\n {2}connect {10}ok\n {2}integrity {8}ok\n/)
    expect(check.stdout).toMatch(/sqlite_version {3}3\.\d+/)
  }, 60_000)

  it('bench: statements through the pool for a while, errors counted by code, bad options refused', async () => {
    const url = `sqlite:${join(cwd, 'bench.db')}`
    await count(url, 'select 0 as n')
    const ok = await cli('--url', url, 'bench', '--duration', '0.5', '--concurrency', '4', '--query', 'select 40 + 2 as n', '--json')
    expect(ok.code).toBe(0)
    const report = JSON.parse(ok.stdout) as BenchReport
    expect(report).toMatchObject({ backend: 'sqlite', query: 'select 40 + 2 as n', concurrency: 4, errors: {} })
    expect(report.operations).toBeGreaterThan(1_000)
    expect(report.durationMs).toBeGreaterThanOrEqual(500)
    // JSON keeps the measured values unrounded
    expect(report.opsPerSec).toBeCloseTo(report.operations / (report.durationMs / 1000), 9)
    // people get at most 2 decimals on every time, rate and percentile
    const human = await cli('--url', url, 'bench', '--duration', '0.3', '--concurrency', '2')
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(
      /^default: sqlite:.*bench\.db \(sqlite\)\n {2}"select 1" from 2 callers for \d+(\.\d{1,2})? s: \d+ statements, \d+(\.\d{1,2})?\/s\n {2}latency {3}p50 \d+(\.\d{1,2})? ms, p95 \d+(\.\d{1,2})? ms, p99 \d+(\.\d{1,2})? ms, max \d+(\.\d{1,2})? ms\n/,
    )
    // a statement that starts failing once the run is under way (abs() of the smallest integer
    // overflows from the 51st row on; a failing insert is rolled back, so every later one fails too):
    // the failures are counted by code, the first message kept, exit 1. Counted in rows, not time: a
    // child slow to start on a loaded machine would otherwise fail in the warm-up (no report at all).
    await count(url, 'create table hits (id integer primary key) strict')
    const flaky = 'insert into hits default values returning case when id > 50 then abs(-9223372036854775807 - 1) else 1 end as n'
    const partly = await cli('--url', url, 'bench', '--duration', '3', '--concurrency', '2', '--query', flaky, '--json')
    expect(partly.code).toBe(1)
    const failed = JSON.parse(partly.stdout) as BenchReport
    expect(failed.operations).toBeGreaterThan(0)
    expect(Object.values(failed.errors).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(failed.firstError).toMatch(/integer overflow/)
    // a statement that cannot run at all fails in the warm-up: one line, exit 1
    const broken = await cli('--url', url, 'bench', '--duration', '0.5', '--query', 'select * from no_such_table')
    expect(broken.code).toBe(1)
    expect(broken.stderr).toMatch(/^dbpool: SYNTAX_ERROR: no such table: no_such_table/)
    for (const bad of [
      ['--duration', '0'],
      ['--duration', 'soon'],
      ['--concurrency', '0'],
      // a million callers took 1.7 GB and 14 s before failing POOL_EXHAUSTED; ten million aborted out of memory
      ['--concurrency', '10000000'],
    ]) {
      const res = await cli('--url', url, 'bench', ...bad)
      expect(res.code).toBe(64)
      expect(res.stderr).toMatch(new RegExp(`option '${bad[0]} <`))
    }
    // more callers than can wait for a connection on a cold pool (maxWaitingClients 10000): refused
    // before any is built, from the first one over (10001 used to pass the check, then fail POOL_EXHAUSTED)
    for (const n of ['10001', '10011']) {
      const over = await cli('--url', url, 'bench', '--duration', '5', '--concurrency', n)
      expect(over.code).toBe(64)
      expect(over.stderr).toMatch(
        new RegExp(`--concurrency ${n} is more callers than pool "default" lets wait for a connection \\(maxWaitingClients 10000\\)`),
      )
    }
  }, 180_000)

  it('backs up with plain progress lines, then restores the backup', async () => {
    const url = `sqlite:${join(cwd, 'data', 'app.db')}`
    const backup = await cli('backup', '--out', 'backups')
    expect(backup.code).toBe(0)
    expect(backup.stdout).toMatch(
      /^backup written: .*backups\/app-.*\.db\n {2}\d+ pages, \d+ bytes, verified with integrity_check, \d+(\.\d{1,2})? ms\n$/,
    )
    // not a terminal: plain lines, no carriage returns
    expect(backup.stderr).not.toContain('\r')
    expect(backup.stderr).toMatch(/^backup: 100% \((\d+)\/\1 pages\)\nbackup: verifying \(integrity_check\)\n$/m)
    const file = join(cwd, 'backups', readdirSync(join(cwd, 'backups'))[0] as string)
    const gz = JSON.parse((await cli('backup', '--out', 'backups', '--gzip', '--json')).stdout) as { file: string; gzip: boolean }
    expect(gz.gzip).toBe(true)
    expect(gz.file.endsWith('.db.gz')).toBe(true)

    const writer = await PoolFactory.create(url, { min: 0, max: 1 })
    await writer.query("insert into notes (body) values ('after the backup')")
    await writer.close()
    expect(await count(url, 'select count(*) as n from notes')).toBe(2)
    const restore = await cli('restore', file)
    expect(restore.code).toBe(0)
    expect(restore.stdout).toMatch(/^restored .*backups\/app-.*\.db into sqlite:.*app\.db \(\d+ pages, verified\)\n$/)
    expect(await count(url, 'select count(*) as n from notes')).toBe(1)
    const fromGz = await cli('restore', gz.file)
    expect(fromGz.code).toBe(0)
  }, 60_000)

  it('refuses to restore a file that is not a valid database, leaving the database as it was', async () => {
    const bogus = join(cwd, 'bogus.db')
    writeFileSync(bogus, 'not a database at all'.repeat(100))
    const res = await cli('restore', bogus)
    expect(res.code).toBe(1)
    // progress notes, then exactly one error line
    const lines = res.stderr.trim().split('\n')
    expect(lines.filter((l) => l.startsWith('dbpool:'))).toHaveLength(1)
    expect(lines[lines.length - 1]).toMatch(
      /^dbpool: BACKUP_FAILED: .*bogus.db is not a SQLite database \(2100 bytes without the "SQLite format 3" header\) \(check the file/,
    )
    expect(await count(`sqlite:${join(cwd, 'data', 'app.db')}`, 'select count(*) as n from notes')).toBe(1)
  }, 60_000)

  it('health and check exit 2 on a corrupted database', async () => {
    const path = join(cwd, 'corrupt.db')
    const url = `sqlite:${path}`
    const pool = await PoolFactory.create(url, { min: 0, max: 1 }, { backend: { journalMode: 'delete' } })
    await pool.query('create table big (id integer primary key, body text)')
    await pool.transaction(async (tx) => {
      for (let i = 0; i < 400; i++) await tx.query('insert into big (body) values (?)', [`row ${i} `.repeat(20)])
    })
    await pool.close()
    // scribble over a few pages in the middle of the file
    const fd = openSync(path, 'r+')
    writeSync(fd, Buffer.alloc(4096 * 3, 0x5a), 0, 4096 * 3, 4096 * 4)
    closeSync(fd)
    const check = await cli('--url', url, 'check')
    expect(check.code).toBe(2)
    expect(check.stdout).toMatch(/^default: FAILED/)
    const health = await cli('--url', url, 'health', '--deep')
    expect(health.code).toBe(2)
    expect(health.stdout).toContain('overall: unhealthy')
  }, 60_000)

  it('backup and restore refuse a Postgres URL with a clear line', async () => {
    const res = await cli('--url', 'postgres://app:pw-never-shown@127.0.0.1:1/db', 'backup', '--out', 'x')
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /^dbpool: CONFIGURATION: invalid backup target "postgres:\/\/app@127.0.0.1:1\/db": dbpool backup works on SQLite databases; use pg_dump/,
    )
    expect(res.stderr + res.stdout).not.toContain('pw-never-shown')
  }, 60_000)

  // PGSSLCERT (set for psql) made every command fail, a SQLite-only one too: resolveConfig evaluated the
  // libpq environment for every Postgres pool of the file, opened or not
  it('the libpq environment concerns only a Postgres pool that is opened: PGSSLCERT never blocks a SQLite pool', async () => {
    writeFileSync(
      join(cwd, 'mixed.toml'),
      '[pools.pg]\nurl = "postgres://app:pw@127.0.0.1:1/db"\n[pools.lite]\nurl = "sqlite:./mixed.db"\n',
    )
    const env = { PGSSLCERT: '/home/me/.postgresql/client.crt', PGCHANNELBINDING: 'require' }
    const run = (...args: string[]): ReturnType<typeof runCli> => runCli(['--config', 'mixed.toml', ...args], { cwd, env })
    expect((await run('--pool', 'lite', 'migrate', 'up', '--dir', 'migrations')).code).toBe(0)
    const backup = await run('--pool', 'lite', 'backup', '--out', 'mixed-backups')
    expect(backup.stderr).not.toContain('CONFIGURATION')
    expect(backup.code).toBe(0)
    expect((await run('--pool', 'lite', 'stats')).code).toBe(0)
    // a command that opens the Postgres pool is refused, naming the variable
    const pg = await run('--pool', 'pg', 'stats')
    expect(pg.code).toBe(1)
    // (the non-TLS variables are checked first since 9b69440: PGCHANNELBINDING is named)
    expect(pg.stderr).toMatch(/^dbpool: CONFIGURATION: invalid (PGSSLCERT|PGCHANNELBINDING)/)
    const every = await run('stats')
    expect(every.stderr).toMatch(/CONFIGURATION: invalid (PGSSLCERT|PGCHANNELBINDING)/)
  }, 60_000)

  it('lets DATABASE_URL override the config file and names a bad environment variable', async () => {
    writeFileSync(join(cwd, 'env.toml'), '[pools.app]\nurl = "sqlite:./nowhere/missing.db"\nbackend = { createIfMissing = false }\n')
    const fromFile = await runCli(['--config', 'env.toml', 'health'], { cwd })
    expect(fromFile.code).toBe(2)
    const overridden = await runCli(['--config', 'env.toml', 'health'], {
      cwd,
      env: { DATABASE_URL: `sqlite:${join(cwd, 'data', 'app.db')}` },
    })
    expect(overridden.code).toBe(0)
    const bad = await runCli(['--config', 'env.toml', 'stats'], { cwd, env: { DBPOOL_APP_MAX: 'many' } })
    expect(bad.code).toBe(1)
    expect(bad.stderr).toBe(
      'dbpool: CONFIGURATION: invalid DBPOOL_APP_MAX "many": must be an integer (check the environment variable DBPOOL_APP_MAX)\n',
    )
  }, 60_000)

  it('serve: /health, /ready and /metrics for the configured pools until SIGTERM', async () => {
    const child = spawnCli(['serve', '--port', '0', '--host', '127.0.0.1'], { cwd })
    let stdout = ''
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      const deadline = Date.now() + 30_000
      while (!/listening on (http:\/\/\S+)/.test(stdout)) {
        if (Date.now() > deadline) throw new Error(`serve did not start: ${stdout} ${stderr}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      const base = (/listening on (http:\/\/\S+)/.exec(stdout) as RegExpExecArray)[1] as string
      expect(stdout).toMatch(/\(\/health, \/ready, \/metrics; statuses only\) for app\n/)
      expect((await fetch(`${base}/health`)).status).toBe(200)
      const ready = await fetch(`${base}/ready`)
      expect(ready.status).toBe(200)
      expect(((await ready.json()) as { pools: Record<string, unknown> }).pools.app).toBeDefined()
      const text = await (await fetch(`${base}/metrics`)).text()
      const names = parsePrometheus(text).map((f) => f.name)
      expect(names).toEqual(
        expect.arrayContaining([
          'db_client_connection_count',
          'db_client_connection_max',
          'db_client_connection_wait_time',
          'db_client_connection_create_time',
        ]),
      )
      expect(text).toContain('db_client_connection_pool_name="app"')
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(stdout).toContain('dbpool serve: stopping')
    } finally {
      child.kill('SIGKILL')
    }
  }, 60_000)

  it('serve: a SIGTERM as soon as the listening line appears stops it cleanly (exit 0, "stopping")', async () => {
    // the signal handlers must be in place before the line is written: a supervisor may act on it at once
    for (let round = 0; round < 3; round++) {
      const child = spawnCli(['serve', '--port', '0', '--host', '127.0.0.1'], { cwd })
      let stdout = ''
      let stderr = ''
      let signalled = false
      child.stdout?.setEncoding('utf8').on('data', (s: string) => {
        stdout += s
        if (!signalled && stdout.includes('listening on')) signalled = child.kill('SIGTERM')
      })
      child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.once('close', (c, s) => resolve([c, s])),
      )
      expect({ round, code, signal, stderr }).toEqual({ round, code: 0, signal: null, stderr: '' })
      expect(stdout).toContain('dbpool serve: stopping')
    }
  }, 60_000)
})
