import { existsSync, renameSync, rmSync } from 'node:fs'
import Database from 'better-sqlite3'
import { DatabaseError, HealthChecker, sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

let seq = 0

/** A pool on a fresh file holding table t with one row (id 1). */
async function openPool(readers: number): Promise<{ pool: DatabasePool<SqliteDatabase>; path: string }> {
  const path = tmp.file(`identity-${++seq}.db`)
  // no validation ping on acquire during a test (it would notice the file first)
  const pool = createSqlitePool(path, { name: `identity-${seq}`, validateAfterIdleMs: 60_000 }, { readers })
  await pool.query('create table t (id integer primary key, note text)')
  await pool.query(sql`insert into t (id, note) values (${1}, ${'before'})`)
  return { pool, path }
}

function deleteFiles(path: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true })
}

/** Another database at `path`: a file with table t holding the row (id 100, 'other'), renamed over the path. */
function replaceWithAnother(path: string): void {
  const other = `${path}.other`
  const db = new Database(other)
  db.exec("create table t (id integer primary key, note text); insert into t values (100, 'other')")
  db.close()
  renameSync(other, path)
}

async function failure(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

function expectFileGone(err: DatabaseError, path: string, reason: 'deleted' | 'replaced'): void {
  expect(err.code).toBe('CONNECTION_LOST')
  expect(err.retryable).toBe(false)
  expect(err.detail).toEqual({ path, reason })
  expect(err.message).toContain(path)
  expect(err.message).toMatch(reason === 'deleted' ? /deleted or moved/ : /replaced/)
}

// SQLite keeps writing to the inode it opened: once the path names another file (or none), every
// write would succeed, be acknowledged, and be lost. The pool refuses them instead.
describe.each([0, 2])('a database file deleted, moved or replaced under an open pool (readers: %i)', (readers) => {
  it('deleted: an auto-commit write is refused without running', async () => {
    const { pool, path } = await openPool(readers)
    try {
      deleteFiles(path)
      const err = await failure(pool.query(sql`insert into t (note) values (${'lost'})`))
      expectFileGone(err, path, 'deleted')
      // the writer was discarded; a new one cannot open the missing file (never recreated empty)
      const next = await failure(pool.query(sql`insert into t (note) values (${'lost too'})`))
      expect(next.code).toBe('CONNECTION_FAILED')
      expect(existsSync(path)).toBe(false)
    } finally {
      await pool.close()
    }
  })

  it('deleted: the backend check and the health check (its ping) say unhealthy, naming the file', async () => {
    const { pool, path } = await openPool(readers)
    try {
      const before = await new HealthChecker().check(pool)
      expect(before.status).toBe('healthy')
      expect(before.checks.find((c) => c.name === 'file')).toMatchObject({ status: 'healthy' })
      deleteFiles(path)

      const file = (await pool.backendChecks()).find((c) => c.name === 'file')
      expect(file).toMatchObject({ status: 'unhealthy', data: { path, reason: 'deleted' } })
      expect(file?.message).toContain(path)
      const report = await new HealthChecker().check(pool)
      expect(report.status).toBe('unhealthy')
      expect(report.checks[0]).toMatchObject({ name: 'ping', status: 'unhealthy', data: { code: 'CONNECTION_LOST' } })
      expect(report.checks[0]?.message).toContain(path)
      // the ping discarded the writer: the next connection cannot open the missing file
      expect((await failure(pool.query(sql`insert into t (note) values (${'lost'})`))).code).toBe('CONNECTION_FAILED')
      expect(existsSync(path)).toBe(false)
    } finally {
      await pool.close()
    }
  })

  it('deleted during a transaction: COMMIT becomes ROLLBACK and transaction() rejects', async () => {
    const { pool, path } = await openPool(readers)
    try {
      let ranInside = 0
      const err = await failure(
        pool.transaction(async (tx) => {
          await tx.query(sql`insert into t (note) values (${'tx 1'})`)
          deleteFiles(path)
          // statements inside the transaction are not checked (one check, at COMMIT)
          await tx.query(sql`insert into t (note) values (${'tx 2'})`)
          ranInside = (await tx.query<{ n: number }>('select count(*) as n from t')).rows[0]?.n ?? -1
        }),
      )
      expect(ranInside).toBe(3)
      expectFileGone(err, path, 'deleted')
      expect(err.message).toMatch(/rolled back/)
      expect(existsSync(path)).toBe(false)
    } finally {
      await pool.close()
    }
  })

  // review r2 item 2: a script's writes did not mark the transaction, so its COMMIT skipped the check
  it('deleted during a transaction whose writes came from a script: COMMIT is refused (every way to run it)', async () => {
    const script = "insert into t (note) values ('s1'); insert into t (note) values ('s2')"
    const variants: Record<string, (pool: DatabasePool<SqliteDatabase>, path: string) => Promise<unknown>> = {
      'transaction()': (pool, path) =>
        pool.transaction(async (tx) => {
          await tx.query(script)
          renameSync(path, `${path}.moved`)
        }),
      'withConnection: BEGIN, script, COMMIT': (pool, path) =>
        pool.withConnection(async (conn) => {
          await conn.query('begin immediate')
          await conn.query(script)
          renameSync(path, `${path}.moved`)
          await conn.query('commit')
        }),
      'withConnection: a script that begins, then COMMIT': (pool, path) =>
        pool.withConnection(async (conn) => {
          await conn.query(`begin immediate; ${script}`)
          renameSync(path, `${path}.moved`)
          await conn.query('commit')
        }),
    }
    for (const [name, run] of Object.entries(variants)) {
      const { pool, path } = await openPool(readers)
      try {
        const err = await failure(run(pool, path))
        expectFileGone(err, path, 'deleted')
        // nothing of the script reached the moved file either: it was rolled back
        const check = new Database(`${path}.moved`, { readonly: true })
        try {
          expect([name, check.prepare('select count(*) as n from t').get()]).toEqual([name, { n: 1 }])
        } finally {
          check.close()
        }
      } finally {
        await pool.close()
      }
    }
  })

  it('deleted: a write on a lease and a multi-statement script are refused too', async () => {
    const { pool, path } = await openPool(readers)
    try {
      deleteFiles(path)
      await pool.withConnection(async (conn) => {
        // reads are not checked: the open file still answers them
        expect((await conn.query('select count(*) as n from t')).rows).toEqual([{ n: 1 }])
        expectFileGone(await failure(conn.query(sql`insert into t (note) values (${'lease'})`)), path, 'deleted')
        expectFileGone(await failure(conn.query("insert into t (note) values ('a'); insert into t (note) values ('b');")), path, 'deleted')
        // the statement did not run: the open (unlinked) file still holds one row
        expect((await conn.query('select count(*) as n from t')).rows).toEqual([{ n: 1 }])
      })
    } finally {
      await pool.close()
    }
  })

  it('moved away: writes are refused (nothing is at the path any more)', async () => {
    const { pool, path } = await openPool(readers)
    try {
      renameSync(path, `${path}.moved`)
      expectFileGone(await failure(pool.query(sql`insert into t (note) values (${'moved'})`)), path, 'deleted')
    } finally {
      await pool.close()
    }
  })

  it('replaced by a rename: the write is refused, then a new connection opens the new file', async () => {
    const { pool, path } = await openPool(readers)
    try {
      replaceWithAnother(path)
      expect((await pool.backendChecks()).find((c) => c.name === 'file')).toMatchObject({
        status: 'unhealthy',
        data: { reason: 'replaced' },
      })
      expectFileGone(await failure(pool.query(sql`insert into t (note) values (${'to the old file'})`)), path, 'replaced')
      // every connection was discarded (readers too): their replacements open what the path names now
      await pool.query(sql`insert into t (id, note) values (${101}, ${'new file'})`)
      expect((await pool.query('select id from t order by id')).rows).toEqual([{ id: 100 }, { id: 101 }])
      const check = new Database(path, { readonly: true })
      try {
        expect(check.prepare('select id, note from t order by id').all()).toEqual([
          { id: 100, note: 'other' },
          { id: 101, note: 'new file' },
        ])
      } finally {
        check.close()
      }
    } finally {
      await pool.close()
    }
  })

  it('replaced during a transaction: COMMIT is refused and nothing reaches either file', async () => {
    const { pool, path } = await openPool(readers)
    try {
      const err = await failure(
        pool.transaction(async (tx) => {
          await tx.query(sql`insert into t (note) values (${'tx'})`)
          replaceWithAnother(path)
        }),
      )
      expectFileGone(err, path, 'replaced')
      const check = new Database(path, { readonly: true })
      try {
        expect(check.prepare('select id from t').all()).toEqual([{ id: 100 }])
      } finally {
        check.close()
      }
    } finally {
      await pool.close()
    }
  })
})

describe('a replaced file and the health check', () => {
  it('the ping fails with CONNECTION_LOST, and the pool then opens the new file', async () => {
    const { pool, path } = await openPool(2)
    try {
      replaceWithAnother(path)
      const report = await new HealthChecker().check(pool)
      expect(report.checks[0]).toMatchObject({ name: 'ping', status: 'unhealthy', data: { code: 'CONNECTION_LOST' } })
      expect(report.checks[0]?.message).toMatch(/replaced/)
      expect((await new HealthChecker().check(pool)).status).toBe('healthy')
      expect((await pool.query('select id from t')).rows).toEqual([{ id: 100 }])
    } finally {
      await pool.close()
    }
  })
})

// review r2 item 4: a connection opened on a replaced file beside older ones still on the old file
describe('a file replaced while only readers are open', () => {
  function make(path: string, tag: string): void {
    const db = new Database(path)
    db.pragma('journal_mode = WAL')
    db.exec(`create table t (id integer primary key, v text); create table u (id integer primary key, v text);
      insert into t (v) values ('t-${tag}'); insert into u (v) values ('u-${tag}')`)
    db.close()
  }
  const both = 'select (select group_concat(v) from t) as t, (select group_concat(v) from u) as u'

  it('the new writer condemns the readers on the old file: no read mixes the two files', async () => {
    const path = tmp.file(`readers-only-${++seq}.db`)
    make(path, 'old')
    const pool = createSqlitePool(path, { name: `readers-only-${seq}`, min: 0, validateAfterIdleMs: 60_000 }, { readers: 1 })
    try {
      expect((await pool.query(both)).rows).toEqual([{ t: 't-old', u: 'u-old' }])
      make(`${path}.new`, 'new')
      renameSync(`${path}.new`, path)
      await pool.query("insert into t (v) values ('t-written')")
      for (let i = 0; i < 3; i++) expect((await pool.query(both)).rows).toEqual([{ t: 't-new,t-written', u: 'u-new' }])
      expect((await pool.backendChecks()).find((c) => c.name === 'file')).toMatchObject({ status: 'healthy' })
    } finally {
      await pool.close()
    }
  })
})

describe('file identity on an unchanged file', () => {
  it('writes, transactions and read-only transactions run as usual', async () => {
    const { pool } = await openPool(2)
    try {
      await pool.transaction(async (tx) => {
        await tx.query(sql`insert into t (note) values (${'a'})`)
        await tx.transaction((inner) => inner.query(sql`insert into t (note) values (${'b'})`))
      })
      await pool.transaction((tx) => tx.query('select count(*) from t'), { readOnly: true })
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 3 }])
      const report = await new HealthChecker().check(pool)
      expect(report.checks.find((c) => c.name === 'file')).toMatchObject({ status: 'healthy' })
    } finally {
      await pool.close()
    }
  })
})
