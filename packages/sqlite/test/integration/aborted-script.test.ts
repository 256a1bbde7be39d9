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

async function values(pool: DatabasePool<SqliteDatabase>): Promise<string[]> {
  return (await pool.query<{ v: string }>('select v from t order by id')).rows.map((r) => r.v)
}

// review r2 item 3: the canned answer to the first statement (COMMIT answers ROLLBACK; ROLLBACK after
// SQLite ended the transaction is a no-op) stood for the whole text, and the rest was dropped unseen
describe('a text of several statements sent while the transaction is aborted', () => {
  const cases: [string, string, string][] = [
    ['aborted by a unique violation, then "commit; insert"', "insert into t (v) values ('dup')", 'commit'],
    ['aborted by a unique violation, then "end; insert"', "insert into t (v) values ('dup')", 'end'],
    ['ended by SQLite (OR ROLLBACK), then "rollback; insert"', "insert or rollback into t (v) values ('dup')", 'rollback'],
    ['ended by SQLite (OR ROLLBACK), then "commit; insert"', "insert or rollback into t (v) values ('dup')", 'commit'],
  ]
  it.each(cases)('%s: refused whole, nothing run; the lone statement then ends it', async (_name, failing, ending) => {
    const path = tmp.file(`aborted-${Math.random().toString(36).slice(2)}.db`)
    const pool = createSqlitePool(path, { name: 'aborted-script', min: 0 }, { readers: 1 })
    try {
      await pool.query('create table t (id integer primary key, v text unique)')
      await pool.query("insert into t (v) values ('dup')")
      await pool.withConnection(async (conn) => {
        await conn.query('begin')
        await conn.query("insert into t (v) values ('x')")
        await failure(conn.query(failing))
        const err = await failure(conn.query(`${ending}; insert into t (v) values ('after')`))
        expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
        expect(err.retryable).toBe(false)
        expect(err.detail).toEqual({ severalStatements: true })
        expect(err.message).toMatch(/refused whole and nothing of it ran/)
        // the transaction is as it was: its lone end is answered as before
        const ended = await conn.query(ending)
        if (ending !== 'rollback') expect(ended.command).toBe('ROLLBACK')
        await conn.query("insert into t (v) values ('after')")
      })
      expect(await values(pool)).toEqual(['dup', 'after'])
    } finally {
      await pool.close()
    }
  })

  it('a lone COMMIT is still answered ROLLBACK, and "rollback; insert" still runs as written', async () => {
    const pool = createSqlitePool(tmp.file('aborted-plain.db'), { name: 'aborted-plain', min: 0 }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, v text unique)')
      await pool.query("insert into t (v) values ('dup')")
      await pool.withConnection(async (conn) => {
        await conn.query('begin')
        await failure(conn.query("insert into t (v) values ('dup')"))
        expect((await conn.query('commit')).command).toBe('ROLLBACK')
        await conn.query('begin')
        await failure(conn.query("insert into t (v) values ('dup')"))
        await conn.query("rollback; insert into t (v) values ('after')")
      })
      expect(await values(pool)).toEqual(['dup', 'after'])
    } finally {
      await pool.close()
    }
  })
})
