import { DatabaseError, OUTCOME_COMMITTED, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// SQLite's FAIL conflict resolution (`INSERT OR FAIL`, `UPDATE OR FAIL`, `ON CONFLICT FAIL` in the
// schema, a trigger's RAISE(FAIL)) ends the statement at the failing row and keeps the rows it changed
// before it; outside a transaction they are committed. The error used to be a plain UNIQUE_VIOLATION
// (and `RETURNING *`, run in a savepoint for its column check, rolled them back instead): it now says
// `detail.outcome: 'committed'` with `detail.changes`, not retryable (found by review).
const tmp = tempDir()
let pool: DatabasePool<SqliteDatabase>

beforeAll(async () => {
  pool = createSqlitePool(tmp.file('or-fail.db'), { name: 'or-fail' })
  await pool.query('create table t (id integer primary key, x text, n integer unique, y integer unique on conflict fail)')
  await pool.query(
    "create table g (id integer primary key); create trigger g_fail before insert on g when new.id = 3 begin select raise(fail, 'no 3'); end",
  )
})

afterAll(async () => {
  await pool.close()
  tmp.cleanup()
})

async function reset(): Promise<void> {
  await pool.query('delete from t')
  await pool.query("insert into t (id, x, n) values (3, 'old', 3)")
}

async function ids(table = 't'): Promise<number[]> {
  return (await pool.query<{ id: number }>(`select id from ${table} order by id`)).rows.map((r) => r.id)
}

async function failure(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

function expectKept(err: DatabaseError, changes: number): void {
  expect(err.code).toBe('UNIQUE_VIOLATION')
  expect(err.retryable).toBe(false)
  expect(err.detail?.outcome).toBe(OUTCOME_COMMITTED)
  expect(err.detail?.changes).toBe(changes)
  expect(err.message).toMatch(/kept and committed/)
}

describe('FAIL conflict resolution outside a transaction', () => {
  it.each(['', ' returning id', ' returning *'])('INSERT OR FAIL ...%s: committed, the earlier rows kept', async (returning) => {
    await reset()
    expectKept(await failure(pool.query(`insert or fail into t (id, x) values (1, 'a'), (2, 'b'), (3, 'c')${returning}`)), 2)
    expect(await ids()).toEqual([1, 2, 3])
  })

  it('UPDATE OR FAIL: committed, the rows updated before the failing one kept (plain UPDATE: none)', async () => {
    await reset()
    await pool.query('update t set n = 32 where id = 3')
    await pool.query("insert into t (id, x, n) values (1, 'a', 1), (2, 'b', 2)")
    const n = async (): Promise<number[]> => (await pool.query<{ n: number }>('select n from t order by id')).rows.map((r) => r.n)
    // rowid order: id 1 becomes 31, then id 2 collides with id 3's 32
    const plain = await failure(pool.query('update t set n = 30 + id where id < 3'))
    expect(plain.code).toBe('UNIQUE_VIOLATION')
    expect(plain.detail?.outcome).toBeUndefined()
    expect(await n()).toEqual([1, 2, 32])
    expectKept(await failure(pool.query('update or fail t set n = 30 + id where id < 3')), 1)
    expect(await n()).toEqual([31, 2, 32])
  })

  it('a column declared ON CONFLICT FAIL, a trigger RAISE(FAIL), and a stream: committed', async () => {
    await reset()
    await pool.query('update t set y = 9 where id = 3')
    expectKept(await failure(pool.query('insert into t (id, y) values (1, 1), (2, 2), (4, 9)')), 2)
    expect(await ids()).toEqual([1, 2, 3])
    const raised = await failure(pool.query('insert into g values (1), (2), (3), (4)'))
    expect(raised.retryable).toBe(false)
    expect(raised.detail?.outcome).toBe(OUTCOME_COMMITTED)
    expect(raised.detail?.changes).toBe(2)
    expect(await ids('g')).toEqual([1, 2])
    await reset()
    const streamed = await failure(
      (async () => {
        for await (const row of pool.stream("insert or fail into t (id, x) values (1, 'a'), (2, 'b'), (3, 'c') returning id")) void row
      })(),
    )
    expectKept(streamed, 2)
    expect(await ids()).toEqual([1, 2, 3])
  })

  it('no outcome when nothing was kept (ABORT, the default), inside a transaction, or for a schema statement', async () => {
    await reset()
    await pool.query("insert into t (id, x) values (10, 'a'), (11, 'b')")
    const aborted = await failure(pool.query("insert into t (id, x) values (1, 'a'), (2, 'b'), (3, 'c')"))
    expect(aborted.code).toBe('UNIQUE_VIOLATION')
    expect(aborted.detail?.outcome).toBeUndefined()
    expect(await ids()).toEqual([3, 10, 11])
    await pool.query("insert into t (id, x) values (12, 'dup'), (13, 'dup')")
    const index = await failure(pool.query('create unique index t_x on t (x)'))
    expect(index.code).toBe('UNIQUE_VIOLATION')
    expect(index.detail?.outcome).toBeUndefined()
    const inTx = await failure(
      pool.transaction(async (tx) => {
        await tx.query("insert or fail into t (id, x) values (1, 'a'), (2, 'b'), (3, 'c')")
      }),
    )
    expect(inTx.code).toBe('UNIQUE_VIOLATION')
    expect(inTx.detail?.outcome).toBeUndefined()
    expect(await ids()).toEqual([3, 10, 11, 12, 13])
  })

  it('reads a statement head after 1 MB of blanks and comments in linear time (\\s+ inside * was exponential)', async () => {
    await reset()
    await pool.query("insert into t (id, x) values (20, 'dup'), (21, 'dup')")
    const lead = `${' '.repeat(1 << 19)}${'/**/ -- c\n'.repeat(50_000)}`
    // a schema statement after the run: the head is read (and is no DML), nothing kept
    const index = await failure(pool.query(`${lead}create unique index t_x2 on t (x)`))
    expect(index.code).toBe('UNIQUE_VIOLATION')
    expect(index.detail?.outcome).toBeUndefined()
    // a DML statement after the run is still recognised
    await pool.query("insert into t (id, x, n) values (1, 'a', 1)")
    expectKept(await failure(pool.query(`${lead}insert or fail into t (id, x, n) values (2, 'b', 2), (4, 'c', 3)`)), 1)
  })
})
