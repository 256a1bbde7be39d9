import { writeFileSync } from 'node:fs'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function failure(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

async function withAccounts(pool: DatabasePool<SqliteDatabase>): Promise<void> {
  await pool.query('create table accounts (id integer primary key, balance integer)')
  await pool.query('insert into accounts (balance) values (100), (200)')
}

function notADatabase(): string {
  const file = tmp.file(`not-a-db-${Math.random().toString(36).slice(2)}.txt`)
  writeFileSync(file, 'hello, this is a text file, not a database. '.repeat(50))
  return file
}

// review r2 item 1: a statement's error about another file (VACUUM INTO a missing directory, a read of
// an attached non-database) was taken as fatal for the connection; on :memory: the pool then
// discarded the database and silently opened an empty one in its place
describe('a statement failing on another file keeps the in-memory database', () => {
  it('VACUUM INTO a missing directory: QUERY_FAILED naming that file; the rows stay', async () => {
    const pool = createSqlitePool(':memory:', { name: 'mem-vacuum', min: 0 }, {})
    try {
      await withAccounts(pool)
      const target = tmp.file('no-such-dir/copy.db')
      const err = await failure(pool.query(`vacuum into '${target}'`))
      expect(err.code).toBe('QUERY_FAILED')
      expect(err.retryable).toBe(false)
      expect(err.detail).toEqual({ file: target })
      expect(err.message).not.toContain(':memory:')
      expect((await pool.query('select balance from accounts order by id')).rows).toEqual([{ balance: 100 }, { balance: 200 }])
    } finally {
      await pool.close()
    }
  })

  it('a read of an attached non-database file: CORRUPT for that statement; the rows stay', async () => {
    const pool = createSqlitePool(':memory:', { name: 'mem-notadb', min: 0 }, {})
    try {
      await withAccounts(pool)
      const file = notADatabase()
      // SQLite reads the file at the ATTACH or at the first read of it: either fails, for that statement
      const err = await failure(
        pool.withConnection(async (conn) => {
          await conn.query(`attach '${file}' as other`)
          try {
            await conn.query('select * from other.sqlite_schema')
          } finally {
            await conn.query('detach other')
          }
        }),
      )
      expect(err.code).toBe('CORRUPT')
      expect((await pool.query('select balance from accounts order by id')).rows).toEqual([{ balance: 100 }, { balance: 200 }])
      await pool.query('insert into accounts (balance) values (300)')
      expect((await pool.query('select count(*) as n from accounts')).rows).toEqual([{ n: 3 }])
    } finally {
      await pool.close()
    }
  })

  it('a discarded in-memory database is CONNECTION_LOST from then on, never an empty one', async () => {
    const pool = createSqlitePool(':memory:', { name: 'mem-closed', min: 0 }, {})
    try {
      await withAccounts(pool)
      // the only way its handle closes while the pool runs: application code
      await pool.withConnection(async (conn) => {
        conn.native.close()
      })
      for (let i = 0; i < 2; i++) {
        const err = await failure(pool.query('select * from accounts'))
        expect(err.code).toBe('CONNECTION_LOST')
        expect(err.retryable).toBe(false)
        expect(err.detail).toEqual({ reason: 'memory-lost' })
        expect(err.message).toMatch(/every row in it is gone/)
      }
      const write = await failure(pool.query('create table accounts (id integer primary key)'))
      expect(write.code).toBe('CONNECTION_LOST')
    } finally {
      await pool.close()
    }
  })
})

describe('a statement failing on another file keeps a file connection', () => {
  it.each([0, 2])(
    'VACUUM INTO and ATTACH of a path in a missing directory (readers: %i): QUERY_FAILED, the writer kept',
    async (readers) => {
      const path = tmp.file(`other-file-${readers}.db`)
      const pool = createSqlitePool(path, { name: `other-file-${readers}`, min: 0 }, { readers })
      const destroyed: string[] = []
      pool.on('destroy', (info) => destroyed.push(`${info.lane}: ${info.reason}`))
      try {
        await withAccounts(pool)
        const target = tmp.file('missing-dir/copy.db')
        const vacuum = await failure(pool.query(`vacuum into '${target}'`))
        expect(vacuum.code).toBe('QUERY_FAILED')
        expect(vacuum.detail).toEqual({ file: target })
        expect(vacuum.message).not.toContain(path)
        const attach = await failure(pool.withConnection((conn) => conn.query(`attach '${target}' as archive`)))
        expect(attach.code).toBe('QUERY_FAILED')
        expect(attach.detail).toEqual({ file: target })
        await pool.query('insert into accounts (balance) values (300)')
        expect((await pool.query('select count(*) as n from accounts')).rows).toEqual([{ n: 3 }])
        expect(destroyed).toEqual([])
      } finally {
        await pool.close()
      }
    },
  )
})
