import { existsSync, renameSync, rmSync } from 'node:fs'
import Database from 'better-sqlite3'
import { DatabaseError, HealthChecker, sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// What better-sqlite3 and the file system would change silently: integral numbers bound as REAL, a
// write-ahead log deleted or moved under an open pool.
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

describe('an integral number is bound as an INTEGER (README parameter table), as Postgres stores it', () => {
  let pool: DatabasePool<SqliteDatabase>
  beforeAll(async () => {
    pool = createSqlitePool(tmp.file('numbers.db'), { name: 'numbers' })
    await pool.query('create table n (id integer primary key, t text, any_type)')
  })
  afterAll(() => pool.close())

  it('typeof, a TEXT column, concatenation and json_array see 5, not 5.0; -0 is 0', async () => {
    await pool.query(sql`insert into n (id, t, any_type) values (${1}, ${5}, ${-0})`)
    const { rows } = await pool.query(
      sql`select typeof(${5}) as kind, t, ${5} || 'x' as cat, json_array(${5}) as j, any_type from n where id = ${1}`,
    )
    // better-sqlite3 binds every JS number with sqlite3_bind_double: today 'real', '5.0', '5.0x', '[5.0]', -0
    expect(rows).toEqual([{ kind: 'integer', t: '5', cat: '5x', j: '[5]', any_type: 0 }])
    expect(Object.is((rows[0] as { any_type: number }).any_type, -0)).toBe(false)
  })
})

describe('the -wal file deleted or moved away under an open pool', () => {
  it.each(['deleted', 'moved'])(
    '%s: a write is not acknowledged (it would not survive a crash), the acknowledged rows survive',
    async (how) => {
      const path = tmp.file(`wal-${how}.db`)
      const pool = createSqlitePool(path, { name: `wal-${how}`, validateAfterIdleMs: 60_000 }, { readers: 1 })
      try {
        await pool.query('create table t (id integer primary key)')
        await pool.query(sql`insert into t (id) values (${1})`)
        expect(existsSync(`${path}-wal`)).toBe(true)
        if (how === 'deleted') rmSync(`${path}-wal`)
        else renameSync(`${path}-wal`, `${path}-wal.moved`)
        // a write looks at the log at most every WAL_IDENTITY_INTERVAL_MS (250 ms)
        await new Promise((resolve) => setTimeout(resolve, 300))
        // before: acknowledged, while another connection (or the process after a crash) saw no table at all
        const err = await failure(pool.query(sql`insert into t (id) values (${2})`))
        expect(err.code).toBe('CONNECTION_LOST')
        expect(err.message).toMatch(/write-ahead log .*-wal was (deleted|moved|replaced)/)
        await pool.close()
        // the refused write is nowhere; what was acknowledged before is readable after the pool closed
        const after = new Database(path, { readonly: true, fileMustExist: true })
        try {
          expect(after.prepare('select id from t order by id').all()).toEqual([{ id: 1 }])
        } finally {
          after.close()
        }
      } finally {
        await pool.close()
      }
    },
  )

  it('the health check notices at once (its ping checks the files)', async () => {
    const path = tmp.file('wal-health.db')
    const pool = createSqlitePool(path, { name: 'wal-health', validateAfterIdleMs: 60_000 }, { readers: 1 })
    try {
      await pool.query('create table t (id integer primary key)')
      await pool.query(sql`insert into t (id) values (${1})`)
      rmSync(`${path}-wal`)
      const report = await new HealthChecker().check(pool)
      expect(report.status).toBe('unhealthy')
      expect(JSON.stringify(report)).toMatch(/write-ahead log/)
    } finally {
      await pool.close()
    }
  })
})
