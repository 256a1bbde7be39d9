import { DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A multi-statement text runs as a script (better-sqlite3's exec()), which binds nothing: each
// placeholder in it ran as NULL, and the rows were stored with NULLs. Postgres refuses the same text
// (42P02 "there is no parameter $1"). Now INVALID_PARAMETER, before anything runs, on every path (Kysely's sql.raw: packages/kysely, script-placeholders.test.ts).
const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function failure(work: Promise<unknown>): Promise<DatabaseError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

const PLACEHOLDERS = ['?', '?5', ':x', '$x', '@x']

describe('a multi-statement script holding a placeholder', () => {
  const pool = createSqlitePool(tmp.file('script-placeholders.db'), { name: 'script-placeholders' })
  beforeAll(() => pool.query('create table t (id integer primary key, v text)'))
  afterAll(() => pool.close())

  it.each(PLACEHOLDERS)('%s: INVALID_PARAMETER through pool.query (with [] too), nothing runs', async (placeholder) => {
    const script = `insert into t values (1, 'first'); insert into t values (2, ${placeholder}); insert into t values (3, 'last')`
    const err = await failure(pool.query(script))
    expect(err).toMatchObject({ code: 'INVALID_PARAMETER', retryable: false, detail: { placeholder } })
    expect(err.message).toContain(placeholder)
    expect((await failure(pool.query(script, []))).code).toBe('INVALID_PARAMETER')
    expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
  })

  it('through tx.query (aborting the transaction, as Postgres does) and conn.query: nothing kept', async () => {
    const err = await failure(
      pool.transaction(async (tx) => {
        await tx.query("insert into t values (10, 'before')")
        await tx.query("insert into t values (11, $x); insert into t values (12, 'ok')")
      }),
    )
    expect(err.code).toBe('INVALID_PARAMETER')
    let caught: unknown
    const rolledBack = await failure(
      pool.transaction(async (tx) => {
        caught = await tx.query("insert into t values (13, :x); insert into t values (14, 'ok')").catch((e: unknown) => e)
      }),
    )
    expect(rolledBack.code).toBe('TRANSACTION_ROLLED_BACK')
    expect((caught as DatabaseError).code).toBe('INVALID_PARAMETER')
    await pool.withConnection(async (conn) => {
      expect((await failure(conn.query("insert into t values (20, @v); insert into t values (21, 'ok')"))).code).toBe('INVALID_PARAMETER')
    })
    expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
  })

  it('placeholders inside strings, quoted names and comments are not placeholders: the script runs', async () => {
    await pool.query(
      `insert into t values (40, '? :x $x @x'); -- a ? here\n insert into "t" values (41, /* :y */ 'b'); insert into [t] values (42, 'c'); create table "q?:x" (a); drop table [q?:x]`,
    )
    expect((await pool.query('select id, v from t where id >= 40 order by id')).rows).toEqual([
      { id: 40, v: '? :x $x @x' },
      { id: 41, v: 'b' },
      { id: 42, v: 'c' },
    ])
    await pool.query('delete from t')
  })

  it('with parameters: SYNTAX_ERROR as before (Postgres 42601), nothing runs', async () => {
    const err = await failure(pool.query("insert into t values (50, ?); insert into t values (51, 'ok')", ['x']))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
  })
})
