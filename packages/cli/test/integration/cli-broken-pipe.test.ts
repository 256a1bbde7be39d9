import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PoolFactory } from '@dbpool/core'
import { binPath, buildCli, cleanEnv, runCli, runCliClosingReader } from './cli-helpers'

// `dbpool ... | head -1`: the reader of the output goes away while the CLI still writes. Node
// ignores SIGPIPE, so the next write fails with EPIPE; the command must end as it would have
// (its exit code, its pools closed, promptly) without a stack trace. The child processes run the
// built CLI against SQLite files.
let cwd: string
let bare: string // a directory without any configuration
const dbFile = (): string => join(cwd, 'data', 'app.db')

beforeAll(async () => {
  await buildCli()
  cwd = mkdtempSync(join(tmpdir(), 'dbpool-cli-pipe-'))
  bare = mkdtempSync(join(tmpdir(), 'dbpool-cli-pipe-bare-'))
  writeFileSync(join(cwd, 'dbpool.toml'), '[pools.app]\nurl = "sqlite:./data/app.db"\nmax = 3\n\n[pools.app.backend]\nreaders = 1\n')
  mkdirSync(join(cwd, 'migrations'))
  // the first migration takes a while, so the reader is gone before the CLI reports it
  writeFileSync(
    join(cwd, 'migrations', '0001_numbers.sql'),
    '-- migrate:up\ncreate table numbers (n integer primary key, square integer not null);\n' +
      'with recursive s(n) as (select 1 union all select n + 1 from s where n < 300000) insert into numbers select n, n * n from s;\n' +
      '-- migrate:down\ndrop table numbers;\n',
  )
  writeFileSync(join(cwd, 'migrations', '0002_notes.up.sql'), 'create table notes (id integer primary key, body text);\n')
  writeFileSync(join(cwd, 'migrations', '0002_notes.down.sql'), 'drop table notes;\n')
}, 240_000)

afterAll(() => {
  rmSync(cwd, { recursive: true, force: true })
  rmSync(bare, { recursive: true, force: true })
})

/** What a stack trace or an unhandled stream error looks like on stderr. */
const CRASH = /EPIPE|Unhandled 'error' event|\n\s+at /

async function count(sql: string): Promise<number> {
  const pool = await PoolFactory.create(`sqlite:${dbFile()}`, { min: 0, max: 1, name: 'check' })
  try {
    const { rows } = await pool.query<{ n: number }>(sql)
    return Number(rows[0]?.n)
  } finally {
    await pool.close()
  }
}

describe('dbpool when the reader of its output goes away', () => {
  it('--help into a reader that closes after the first line: exit 0, no stack trace', async () => {
    const res = await runCliClosingReader(['--help'], { cwd, when: 'first-chunk' })
    expect(res.stdout).toMatch(/^Usage: dbpool/)
    expect(res.stderr).not.toMatch(CRASH)
    expect(res.stderr).toBe('')
    expect(res.signal).toBeNull()
    expect(res.code).toBe(0)
    // and into a reader that is gone before the first line (`| true`): every write fails
    for (const args of [['--help'], ['--version'], ['migrate', '--help']]) {
      const gone = await runCliClosingReader(args, { cwd })
      expect({ args, code: gone.code, stderr: gone.stderr }).toEqual({ args, code: 0, stderr: '' })
    }
  }, 60_000)

  it('migrate up into a reader that closes after the first line: every migration applied, exit 0, pools closed', async () => {
    const res = await runCliClosingReader(['migrate', 'up'], { cwd, when: 'first-chunk' })
    expect(res.stdout).toMatch(/^migrating app /)
    expect(res.stdout).not.toContain('applied')
    expect(res.stderr).not.toMatch(CRASH)
    expect(res.code).toBe(0)
    // the broken pipe did not stop the migration halfway
    expect(await count('select count(*) as n from dbpool_migrations')).toBe(2)
    expect(await count('select count(*) as n from numbers')).toBe(300_000)
    // SQLite removes the -wal file when the last connection (here the writer) closes: the pools were closed
    expect(existsSync(`${dbFile()}-wal`)).toBe(false)
  }, 60_000)

  // every command's output path, with the reader gone before its first write: the exit code it
  // would have had (the command ran to its end, closing its pools), nothing on stderr but progress lines
  it.each([
    [['health', '--deep']],
    [['stats']],
    [['check']],
    [['migrate', 'status']],
    [['migrate', 'status', '--json']],
    [['bench', '--duration', '0.3', '--concurrency', '2']],
    [['bench', '--duration', '0.3', '--concurrency', '2', '--json']],
    [['backup', '--out', 'backups']],
  ])(
    '%j with stdout closed: exit 0, no stack trace',
    async (args) => {
      const res = await runCliClosingReader(args, { cwd })
      expect(res.stderr).not.toMatch(CRASH)
      expect(res.code).toBe(0)
    },
    60_000,
  )

  it('restore with stdout closed: the database is replaced, exit 0', async () => {
    const backup = readdirSync(join(cwd, 'backups')).find((f) => f.endsWith('.db'))
    expect(backup).toBeDefined()
    const pool = await PoolFactory.create(`sqlite:${dbFile()}`, { min: 0, max: 1 })
    await pool.query('create table after_the_backup (id integer primary key)')
    await pool.close()
    const res = await runCliClosingReader(['restore', join('backups', backup as string)], { cwd })
    expect(res.stderr).not.toMatch(CRASH)
    expect(res.code).toBe(0)
    expect(await count("select count(*) as n from sqlite_master where name = 'after_the_backup'")).toBe(0)
  }, 60_000)

  it('serve with stdout closed after its first line: still serves, and exits 0 on SIGTERM', async () => {
    let health: number | undefined
    const res = await runCliClosingReader(['serve', '--port', '0', '--host', '127.0.0.1'], {
      cwd,
      when: 'first-chunk',
      onClosed: async (child, received) => {
        const base = (/listening on (http:\/\/\S+)/.exec(received) as RegExpExecArray)[1] as string
        health = (await fetch(`${base}/health`)).status
        // the "stopping" line then fails with EPIPE
        child.kill('SIGTERM')
      },
    })
    expect(res.stdout).toMatch(/^dbpool serve: listening on http:\/\/127\.0\.0\.1:\d+ /)
    expect(health).toBe(200)
    expect(res.stderr).not.toMatch(CRASH)
    expect(res.signal).toBeNull()
    expect(res.code).toBe(0)
  }, 60_000)

  it('errors on a closed stderr: the command exit code, not a crash', async () => {
    // no database configured: health cannot check (exit 2, its one line goes to the closed stderr)
    const health = await runCliClosingReader(['health'], { cwd: bare, close: 'stderr' })
    expect(health.code).toBe(2)
    expect(health.stdout).toBe('')
    // a usage error (commander writes it to stderr): 64
    expect((await runCliClosingReader(['launch'], { cwd: bare, close: 'stderr' })).code).toBe(64)
    // both closed: check's failure line is lost, its exit code is not
    expect((await runCliClosingReader(['check'], { cwd: bare, close: 'both' })).code).toBe(2)
    // progress lines of a backup go to stderr: the backup is still written
    const backups = (): string[] => readdirSync(join(cwd, 'backups')).filter((f) => /\.db(\.gz)?$/.test(f))
    const before = backups().length
    const backup = await runCliClosingReader(['backup', '--out', 'backups'], { cwd, close: 'stderr' })
    expect(backup.code).toBe(0)
    expect(backup.stdout).toMatch(/^backup written: /)
    expect(backups()).toHaveLength(before + 1)
  }, 60_000)

  // a write that fails for another reason than a closed reader loses output: say so, never exit 0
  ;(existsSync('/dev/full') ? it : it.skip)(
    'stdout on a full disk (/dev/full): one line on stderr, exit 1',
    async () => {
      const full = openSync('/dev/full', 'w')
      try {
        const res = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
          const child = spawn(process.execPath, [binPath, 'stats'], { cwd, env: cleanEnv(), stdio: ['ignore', full, 'pipe'] })
          let stderr = ''
          child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
          child.on('error', reject)
          child.on('close', (code) => resolve({ code, stderr }))
        })
        expect(res.stderr).not.toMatch(/Unhandled 'error' event|\n\s+at /)
        expect(res.stderr).toBe(
          'dbpool: error: could not write to stdout: ENOSPC: no space left on device, write (check where stdout goes: the file, free disk space)\n',
        )
        expect(res.code).toBe(1)
      } finally {
        closeSync(full)
      }
    },
    60_000,
  )
})

describe('dbpool into a slow reader', () => {
  // `dbpool ... --json | slow-reader`: Node writes to a pipe asynchronously, and what the pipe
  // buffer (64 KiB) has not taken when the process exits is lost. The CLI waits for its output to be
  // taken before it exits: the reader here only starts once the CLI has exited (or after 3 s).
  it('migrate status --json of 1500 migrations (over 64 KiB): the reader gets the whole document', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-cli-slow-reader-'))
    try {
      mkdirSync(join(dir, 'migrations'))
      for (let i = 1; i <= 1500; i++) {
        const v = String(i).padStart(4, '0')
        writeFileSync(
          join(dir, 'migrations', `${v}_a_table_with_a_long_descriptive_name.sql`),
          `create table t_${v} (id integer primary key);\n`,
        )
      }
      const up = await runCli(['--url', 'sqlite:./app.db', 'migrate', 'up'], { cwd: dir, env: cleanEnv(), timeoutMs: 120_000 })
      expect(up.code).toBe(0)
      const cli = `node ${JSON.stringify(binPath)} --url sqlite:./app.db migrate status --json; echo $? > rc`
      const wait = 'i=0; while [ ! -f rc ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done'
      await new Promise<void>((resolve, reject) => {
        const sh = spawn('sh', ['-c', `(${cli}) | (${wait}; cat > out.json)`], { cwd: dir, env: cleanEnv(), stdio: 'ignore' })
        sh.on('error', reject)
        sh.on('close', () => resolve())
      })
      expect(readFileSync(join(dir, 'rc'), 'utf8').trim()).toBe('0')
      const text = readFileSync(join(dir, 'out.json'), 'utf8')
      expect(text.length).toBeGreaterThan(65_536)
      let complete: boolean
      try {
        complete = JSON.stringify(JSON.parse(text)).includes('"version":1500')
      } catch {
        complete = false
      }
      expect({ bytes: text.length, complete }).toEqual({ bytes: text.length, complete: true })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
