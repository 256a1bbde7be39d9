import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run, type CliIo } from '@dbpool/cli'
import { PoolFactory } from '@dbpool/core'
import { testPostgresUrl } from '@dbpool/testing'

// A mistyped SQLite path given to a command that only reads or checks a database must fail, not
// create an empty database (and its directory) and report it healthy or verified.
let dir: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dbpool-cli-missing-'))
  mkdirSync(join(dir, 'migrations'))
  writeFileSync(join(dir, 'migrations', '0001_t.sql'), '-- migrate:up\ncreate table t (x integer);\n-- migrate:down\ndrop table t;\n')
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: dir }
  const code = await run(argv, io)
  return { code, out: out.join(''), err: err.join('') }
}

describe('one-shot commands on a SQLite file that does not exist', () => {
  it.each([
    [['health'], 2],
    [['health', '--json'], 2],
    [['check'], 2],
    [['stats'], 1],
    [['backup', '--out', 'backups', '--keep-last', '1'], 1],
    [['migrate', 'status', '--dir', 'migrations'], 1],
    [['migrate', 'down', '--dir', 'migrations'], 1],
    [['bench', '--duration', '1', '--concurrency', '1'], 1],
  ])('dbpool %j fails with exit %i and creates nothing', async (args, exitCode) => {
    for (const missing of [join(dir, 'typo.db'), join(dir, 'no-such-dir', 'app.db')]) {
      const result = await cli('--url', `sqlite:${missing}`, ...args)
      expect(result.code).toBe(exitCode)
      expect(result.out + result.err).toMatch(/does not exist/)
      if (result.err !== '') expect(result.err).toContain('(check the path: only dbpool migrate up creates a database)')
      expect(existsSync(missing)).toBe(false)
      expect(existsSync(join(dir, 'no-such-dir'))).toBe(false)
    }
  })

  it('serve reports a missing database unready and does not create it', async () => {
    const missing = join(dir, 'serve-typo.db')
    const out: string[] = []
    const io: CliIo = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => out.push(s) }, env: {}, cwd: dir }
    const stop = new AbortController()
    const done = run(['--url', `sqlite:${missing}`, 'serve', '--port', '0', '--host', '127.0.0.1'], io, { signal: stop.signal })
    try {
      let base: RegExpExecArray | null = null
      while (!(base = /listening on (http:\/\/\S+)/.exec(out.join('')))) await new Promise((r) => setTimeout(r, 20))
      const ready = await fetch(`${base[1] as string}/ready`)
      expect(ready.status).toBe(503)
      await ready.text()
    } finally {
      stop.abort()
      await done
    }
    expect(existsSync(missing)).toBe(false)
  })

  it('restore refuses a target that does not exist unless --create; migrate up still creates a database', async () => {
    const real = join(dir, 'real.db')
    expect((await cli('--url', `sqlite:${real}`, 'migrate', 'up', '--dir', 'migrations')).code).toBe(0)
    expect(existsSync(real)).toBe(true)
    expect((await cli('--url', `sqlite:${real}`, 'backup', '--out', 'bk')).code).toBe(0)
    const backup = join(dir, 'bk', readdirSync(join(dir, 'bk'))[0] as string)
    const typo = join(dir, 'raal.db')
    const refused = await cli('--url', `sqlite:${typo}`, 'restore', backup)
    expect(refused.code).toBe(1)
    expect(refused.err).toContain('CONNECTION_FAILED: cannot restore into SQLite database')
    expect(refused.err).toContain('--create')
    expect(existsSync(typo)).toBe(false)
    const created = await cli('--url', `sqlite:${typo}`, 'restore', '--create', backup)
    expect(created.code).toBe(0)
    expect(existsSync(typo)).toBe(true)
    // an existing database is checked as before
    expect((await cli('--url', `sqlite:${real}`, 'health')).code).toBe(0)
  })
})

describe('dbpool backup --keep-last with two databases of the same name in one directory', () => {
  it('deletes only backups of the database it backs up', async () => {
    const a = join(dir, 'two', 'a', 'app.db')
    const b = join(dir, 'two', 'b', 'app.db')
    for (const db of [a, b]) expect((await cli('--url', `sqlite:${db}`, 'migrate', 'up', '--dir', 'migrations')).code).toBe(0)
    const shared = join(dir, 'two', 'bk')
    const backup = async (db: string): Promise<{ file: string; deleted: string[]; err: string }> => {
      const res = await cli('--url', `sqlite:${db}`, 'backup', '--out', shared, '--keep-last', '1', '--json')
      expect(res.code).toBe(0)
      return { ...(JSON.parse(res.out) as { file: string; deleted: string[] }), err: res.err }
    }
    const a1 = await backup(a)
    const b1 = await backup(b)
    expect(b1.deleted).toEqual([])
    expect(b1.err).toContain('1 other backup(s)')
    const a2 = await backup(a)
    expect(a2.deleted).toEqual([a1.file])
    const b2 = await backup(b)
    expect(b2.deleted).toEqual([b1.file])
    for (const file of [a2.file, b2.file]) expect(existsSync(file)).toBe(true)
    expect(readdirSync(shared).filter((f) => f.endsWith('.db'))).toHaveLength(2)
  })
})

describe('a Postgres URL without the password the server asks for', () => {
  it('is AUTHENTICATION_FAILED with the password hint, not CONNECTION_FAILED "check that the database is running"', async () => {
    const url = new URL(await testPostgresUrl())
    url.password = ''
    const saved = process.env.PGPASSWORD
    delete process.env.PGPASSWORD
    try {
      for (const command of ['check', 'stats']) {
        const result = await cli('--url', url.toString(), command)
        expect(result.code).toBe(command === 'check' ? 2 : 1)
        expect(result.out + result.err).toContain('AUTHENTICATION_FAILED')
        expect(result.out + result.err).not.toContain('CONNECTION_FAILED')
      }
      const stats = await cli('--url', url.toString(), 'stats')
      expect(stats.err).toContain('(check the user name and password (in the URL or PGPASSWORD))')
    } finally {
      if (saved !== undefined) process.env.PGPASSWORD = saved
    }
  }, 60_000)
})

describe('dbpool restore while the database is open elsewhere', () => {
  it('is refused (exit 1, database untouched) unless --force', async () => {
    const db = join(dir, 'busy.db')
    expect((await cli('--url', `sqlite:${db}`, 'migrate', 'up', '--dir', 'migrations')).code).toBe(0)
    const taken = await cli('--url', `sqlite:${db}`, 'backup', '--out', 'busy-bk', '--json')
    const backup = (JSON.parse(taken.out) as { file: string }).file
    // an application with its pool open (its connections hold SQLite's shared lock on the WAL file)
    const app = await PoolFactory.create(`sqlite:${db}`, { name: 'app' })
    try {
      await app.query('insert into t (x) values (1)')
      const refused = await cli('--url', `sqlite:${db}`, 'restore', backup)
      expect(refused.code).toBe(1)
      expect(refused.err).toContain('BACKUP_FAILED: cannot restore')
      expect(refused.err).toContain('has the database open')
      expect(refused.err).toContain('(stop the processes that have the database open, or pass --force)')
      expect((await app.query<{ n: number }>('select count(*) as n from t')).rows[0]?.n).toBe(1)
      const forced = await cli('--url', `sqlite:${db}`, 'restore', '--force', backup)
      expect(forced.code).toBe(0)
    } finally {
      await app.close()
    }
    expect((await cli('--url', `sqlite:${db}`, 'restore', backup)).code).toBe(0)
  }, 60_000)
})
