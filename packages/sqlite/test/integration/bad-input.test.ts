import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseError, HealthChecker, PoolFactory, sql } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { exited, lines, spawnFixture, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function codeOf(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

async function makeDatabase(path: string, rows: number): Promise<void> {
  const pool = createSqlitePool(path)
  await pool.query('create table t (id integer primary key, x integer, body text)')
  await pool.query('create index t_x on t (x)')
  await pool.transaction(async (tx) => {
    for (let i = 0; i < rows; i++) await tx.query(sql`insert into t (x, body) values (${i % 97}, ${`row ${i} `.repeat(20)})`)
  })
  await pool.close()
}

describe('bad input', () => {
  // the same typo on Postgres was CONFIGURATION; on SQLite it was accepted and the logger silently unused
  it('an unknown pool option (a misspelt loger) or a non-object is CONFIGURATION naming it; no file is created', async () => {
    const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} }
    const path = join(tmp.dir, 'pool-options.db')
    expect(() => createSqlitePool(path, {}, {}, { loger: logger } as never)).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION', detail: expect.objectContaining({ option: 'pool.loger' }) }),
    )
    expect(() => createSqlitePool(path, {}, {}, 42 as never)).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }))
    await expect(PoolFactory.create(`sqlite:${path}`, { min: 0 }, { pool: { loger: logger } as never })).rejects.toMatchObject({
      code: 'CONFIGURATION',
      detail: expect.objectContaining({ option: 'pool.loger' }),
    })
    expect(existsSync(path)).toBe(false)
  })

  it('a corrupted file makes HealthChecker report unhealthy with the integrity detail', async () => {
    const path = tmp.file('corrupt.db')
    await makeDatabase(path, 3_000)
    const pageSize = 4096
    const pages = statSync(path).size / pageSize
    expect(pages).toBeGreaterThan(20)
    // scribble over pages in the middle (page 1, the header, stays intact so connections still open)
    const fd = openSync(path, 'r+')
    const junk = Buffer.alloc(pageSize, 0x5a)
    for (let page = 3; page < pages - 1; page += 4) writeSync(fd, junk, 0, pageSize, page * pageSize)
    closeSync(fd)

    const pool = createSqlitePool(path, { name: 'corrupt' })
    try {
      // a deep check scans the file (in a worker thread); the default one scans nothing (see sqliteHealthChecks)
      const report = await new HealthChecker({ deep: true }).check(pool)
      expect(report.status).toBe('unhealthy')
      const integrity = report.checks.find((c) => c.name === 'integrity')
      expect(integrity).toMatchObject({ status: 'unhealthy', data: { mode: 'integrity_check', ok: false } })
      expect(String(integrity?.message)).toMatch(/integrity_check/)
      expect((integrity?.data?.errors as unknown[]).length).toBeGreaterThan(0)
    } finally {
      await pool.close()
    }
  })

  it('a statement behind a long run of comments runs (its classification is linear; it backtracked exponentially)', async () => {
    const pool = createSqlitePool(tmp.file('comments.db'))
    try {
      // 40 comments: 2^40 ways for the old leading-comment expressions to split them before failing
      expect((await pool.query(`${'/**/'.repeat(40)}select 1 as n`)).rows).toEqual([{ n: 1 }])
      expect((await pool.query(`${'/* c */ -- d\n'.repeat(50_000)}select 2 as n`)).rows).toEqual([{ n: 2 }])
      await pool.transaction(async (tx) => {
        await tx.query('create table c (x integer)')
        await tx.query(`${'/**/'.repeat(40)}insert into c values (1)`)
      })
      expect((await pool.query('select count(*) as n from c')).rows).toEqual([{ n: 1 }])
    } finally {
      await pool.close()
    }
  })

  it('a read-only pool answers a write with READ_ONLY', async () => {
    const path = tmp.file('ro-option.db')
    await makeDatabase(path, 5)
    const pool = createSqlitePool(path, {}, { readonly: true })
    try {
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 5 }])
      const err = await codeOf(pool.query(sql`insert into t (x) values (${1})`))
      expect(err.code).toBe('READ_ONLY')
      expect(err.sqliteCode).toMatch(/^SQLITE_READONLY/)
      expect(err.retryable).toBe(false)
      expect((await codeOf(pool.transaction((tx) => tx.query('delete from t')))).code).toBe('READ_ONLY')
    } finally {
      await pool.close()
    }
  })

  it('a file without write permission answers a write with READ_ONLY', async () => {
    const dir = tmp.file('ro-file')
    mkdirSync(dir)
    const path = join(dir, 'ro.db')
    await makeDatabase(path, 3)
    chmodSync(path, 0o444)
    chmodSync(tmp.dir, 0o755)
    chmodSync(dir, 0o777) // the -shm file may still be created beside it
    if (process.getuid?.() === 0) {
      // root ignores file modes: run the pool as an unprivileged user in a child process
      const child = spawnFixture('readonly-write-child.ts', [path], { uid: 65534, gid: 65534 })
      const out = lines(child)
      const line = await out.waitFor(/^(error|write succeeded)/, 60_000)
      await exited(child)
      expect(out.all).toContain('read [{"n":3}]')
      expect(line).toBe('error READ_ONLY')
    } else {
      const pool = createSqlitePool(path)
      try {
        expect((await codeOf(pool.query(sql`insert into t (x) values (${1})`))).code).toBe('READ_ONLY')
      } finally {
        await pool.close()
      }
    }
  }, 90_000)

  it('readonly on a missing file or directory says a read-only pool never creates it (not createIfMissing, never set)', async () => {
    for (const path of [tmp.file('ro-missing.db'), tmp.file('ro-missing-dir/app.db')]) {
      const pool = createSqlitePool(path, { acquireTimeoutMs: 2_000 }, { readonly: true })
      try {
        const err = await codeOf(pool.query('select 1'))
        expect(err.code).toBe('CONNECTION_FAILED')
        expect(err.message).toContain(path)
        expect(err.message).toMatch(/does not exist, and a read-only pool never creates it$/)
        expect(err.message).not.toContain('createIfMissing')
      } finally {
        await pool.close()
      }
      expect(existsSync(path)).toBe(false)
    }
    // createIfMissing false (set) is still named
    const strict = createSqlitePool(tmp.file('strict-missing.db'), { acquireTimeoutMs: 2_000 }, { createIfMissing: false })
    try {
      expect((await codeOf(strict.query('select 1'))).message).toMatch(/the file does not exist, and createIfMissing is false$/)
    } finally {
      await strict.close()
    }
  })

  it('a missing directory with createIfMissing false is CONNECTION_FAILED naming the path', async () => {
    const path = tmp.file('no/such/dir/app.db')
    const pool = createSqlitePool(path, { acquireTimeoutMs: 2_000 }, { createIfMissing: false })
    try {
      const err = await codeOf(pool.query('select 1'))
      expect(err.code).toBe('CONNECTION_FAILED')
      expect(err.message).toContain(path)
      expect(err.detail).toMatchObject({ path })
    } finally {
      await pool.close()
    }
  })

  it('a missing file with createIfMissing false is CONNECTION_FAILED; createIfMissing true creates the directories', async () => {
    const missing = tmp.file('nofile.db')
    const strict = createSqlitePool(missing, { acquireTimeoutMs: 2_000 }, { createIfMissing: false })
    try {
      const err = await codeOf(strict.query('select 1'))
      expect(err.code).toBe('CONNECTION_FAILED')
      expect(err.message).toContain(missing)
    } finally {
      await strict.close()
    }
    const nested = tmp.file('made/for/you/app.db')
    const lenient = createSqlitePool(nested)
    try {
      await lenient.query('create table t (x)')
      expect(statSync(nested).isFile()).toBe(true)
    } finally {
      await lenient.close()
    }
  })

  it('invalid option values are CONFIGURATION errors naming the option', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ journalMode: 'WAL2' }, 'sqlite.journalMode'],
      [{ synchronous: 4 }, 'sqlite.synchronous'],
      [{ readers: -1 }, 'sqlite.readers'],
      [{ busyTimeoutMs: 'soon' }, 'sqlite.busyTimeoutMs'],
      [{ cacheSizeKiB: 1.5 }, 'sqlite.cacheSizeKiB'],
      [{ walCheckpointThresholdBytes: -1 }, 'sqlite.walCheckpointThresholdBytes'],
      [{ bogus: true }, 'sqlite.bogus'],
      [{ path: '/elsewhere.db' }, 'sqlite.path'],
    ]
    for (const [options, option] of cases) {
      let caught: unknown
      try {
        createSqlitePool(tmp.file('never.db'), {}, options)
      } catch (err) {
        caught = err
      }
      expect(DatabaseError.is(caught, 'CONFIGURATION')).toBe(true)
      expect((caught as Error).message).toContain(option)
    }
    expect(() => createSqlitePool(tmp.file('never.db'), { max: 0 })).toThrow(/pool\.max/)
    const viaFactory = await codeOf(PoolFactory.create(`sqlite:${tmp.file('never.db')}`, {}, { backend: { tempStore: 'RAM' } }))
    expect(viaFactory.code).toBe('CONFIGURATION')
    expect(viaFactory.message).toContain('sqlite.tempStore')
    expect(viaFactory.message).toContain('"RAM"')
  })

  it('a pragma SQLite refuses is an error at connect (WAL asked of a read-only non-WAL file)', async () => {
    const path = tmp.file('delete-mode.db')
    const setup = createSqlitePool(path, {}, { journalMode: 'DELETE' })
    await setup.query('create table t (x)')
    await setup.close()
    const pool = createSqlitePool(path, { acquireTimeoutMs: 2_000 }, { readonly: true, journalMode: 'WAL', readers: 0 })
    try {
      const err = await codeOf(pool.query('select 1'))
      expect(err.code).toBe('CONFIGURATION')
      expect(err.message).toContain('journal_mode')
      expect(err.detail).toMatchObject({ pragma: 'journal_mode', expected: 'wal', actual: 'delete' })
    } finally {
      await pool.close()
    }
  })
})

describe('a database file deleted while the pool runs', () => {
  it('is not recreated empty: the next connection fails with CONNECTION_FAILED', async () => {
    const fs = await import('node:fs')
    const os = await import('node:os')
    const path = await import('node:path')
    const { createSqlitePool } = await import('@dbpool/sqlite')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbpool-deleted-'))
    const file = path.join(dir, 'gone.db')
    // connections retire after 50 ms, so the pool must open a new one after the file is gone
    const pool = createSqlitePool(file, { min: 0, max: 1, maxLifetimeMs: 50, maxLifetimeJitter: 0 }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key)')
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true })
      await new Promise((resolve) => setTimeout(resolve, 80))
      await expect(pool.transaction(async (tx) => tx.query('select count(*) from t'))).rejects.toMatchObject({ code: 'CONNECTION_FAILED' })
      expect(fs.existsSync(file)).toBe(false)
    } finally {
      await pool.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
