import { DatabaseError, PoolFactory, sql, type DatabasePool, type Transaction } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// A statement a transaction's callback started and did not await (a forgotten await, forEach(async
// ...)) that reaches the handle once the callback has settled would run after the COMMIT or ROLLBACK,
// outside the transaction (autocommit), and be kept even when the transaction fails. It is refused;
// a statement issued before the callback returned still runs inside the transaction.
//
// The COMMIT fails: on Postgres a deferred constraint trigger sleeps, then raises (a COMMIT in flight
// for 0.5 s); on SQLite a deferred foreign key (SQLite's COMMIT is synchronous, the stray arrives a
// few microtasks after the callback returned).

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function microtasks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await null
}

function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (e: unknown) => e,
  )
}

describe.each<Backend>(['postgres', 'sqlite'])('a statement sent while the transaction ends, on %s', (backend) => {
  let pg: TestDatabase | undefined
  let file: TempSqlite | undefined
  let pool: DatabasePool<unknown>

  /** Where the stray statement comes from: during the COMMIT (Postgres: it takes 0.5 s), or right after the callback. */
  const later = (): Promise<void> => (backend === 'postgres' ? sleep(150) : microtasks(3))

  beforeAll(async () => {
    if (backend === 'postgres') pg = await createTestDatabase()
    else file = await createTempSqlite()
    pool = await PoolFactory.create((pg ?? file)!.url, { min: 0, max: 3, name: `tx-ending-${backend}` })
    if (backend === 'postgres') {
      await pool.query('create table parent (id integer primary key)')
      await pool.query('create table t (id integer primary key, v text)')
      await pool.query(
        "create function slow_fail() returns trigger language plpgsql as $$ begin perform pg_sleep(0.5); if new.v = 'fail' then raise exception 'refused at commit'; end if; return null; end $$",
      )
      await pool.query(
        'create constraint trigger slow_commit after insert on t deferrable initially deferred for each row execute function slow_fail()',
      )
    } else {
      await pool.query('create table parent (id integer primary key)')
      // v = 'fail' rows point at a parent that does not exist: the deferred check fails at COMMIT
      await pool.query(
        'create table t (id integer primary key, v text, parent integer references parent (id) deferrable initially deferred)',
      )
    }
  })

  afterAll(async () => {
    await pool?.close()
    await pg?.drop()
    await file?.remove()
  })

  beforeEach(() => pool.query('delete from t'))

  const insert = (tx: { query: Transaction['query'] }, id: number, v: string): Promise<unknown> =>
    backend === 'postgres'
      ? tx.query(sql`insert into t (id, v) values (${id}, ${v})`)
      : tx.query(sql`insert into t (id, v, parent) values (${id}, ${v}, ${v === 'fail' ? 999 : null})`)

  async function ids(): Promise<number[]> {
    const { rows } = await pool.query<{ id: unknown }>('select id from t order by id')
    return rows.map((r) => Number(r.id))
  }

  it('pool.transaction(): a statement that reaches tx after the callback settled is refused and not saved', async () => {
    let stray: Promise<unknown> | undefined
    const err = await settle(
      pool.transaction(async (tx) => {
        await insert(tx, 1, 'fail')
        stray = later().then(() => settle(insert(tx, 101, 'stray')))
      }),
    )
    expect(DatabaseError.is(err)).toBe(true)
    const strayError = await stray
    expect(DatabaseError.is(strayError, 'QUERY_FAILED')).toBe(true)
    expect((strayError as DatabaseError).message).toMatch(/transaction is ending/)
    expect(await ids()).toEqual([])
  })

  it('pool.transaction(): a stray stream, savepoint or native access is refused too', async () => {
    let strays: Promise<unknown[]> | undefined
    await settle(
      pool.transaction(async (tx) => {
        await insert(tx, 1, 'fail')
        strays = later().then(() =>
          Promise.all([
            settle(tx.transaction(() => insert(tx, 102, 'stray'))),
            settle(
              (async () => {
                for await (const row of tx.stream('select 1 as one')) void row
              })(),
            ),
            settle((async () => tx.native)()),
          ]),
        )
      }),
    )
    for (const e of await strays!) expect(DatabaseError.is(e, 'QUERY_FAILED')).toBe(true)
    expect(await ids()).toEqual([])
  })

  it('a statement issued before the callback returned, not awaited, runs inside the transaction and is rolled back with it', async () => {
    let early: Promise<unknown> | undefined
    const err = await settle(
      pool.transaction(async (tx) => {
        await insert(tx, 1, 'fail')
        early = settle(insert(tx, 2, 'early'))
      }),
    )
    expect(DatabaseError.is(err)).toBe(true)
    expect(await early).toBe('resolved')
    expect(await ids()).toEqual([])
  })

  it('a committed transaction keeps the statement issued before the callback returned and refuses the stray', async () => {
    let early: Promise<unknown> | undefined
    let stray: Promise<unknown> | undefined
    await pool.transaction(async (tx) => {
      await insert(tx, 1, 'ok')
      early = settle(insert(tx, 2, 'early'))
      stray = microtasks(3).then(() => settle(insert(tx, 103, 'stray')))
    })
    expect(await early).toBe('resolved')
    expect(DatabaseError.is(await stray, 'QUERY_FAILED')).toBe(true)
    expect(await ids()).toEqual([1, 2])
  })

  it('conn.transaction() on a withConnection handle: the stray is refused, the handle serves its callback again after', async () => {
    let stray: Promise<unknown> | undefined
    const after = await pool.withConnection(async (conn) => {
      const err = await settle(
        conn.transaction(async (tx) => {
          await insert(tx, 1, 'fail')
          stray = later().then(() => settle(insert(tx, 104, 'stray')))
        }),
      )
      expect(DatabaseError.is(err)).toBe(true)
      await stray
      return (await conn.query<{ one: unknown }>('select 1 as one')).rows[0]?.one
    })
    expect(Number(after)).toBe(1)
    expect(DatabaseError.is(await stray, 'QUERY_FAILED')).toBe(true)
    expect(await ids()).toEqual([])
  })

  it('tx.transaction(): a statement that reaches tx after the savepoint callback settled is refused while its RELEASE is in flight', async () => {
    let stray: Promise<unknown> | undefined
    await pool.transaction(async (tx) => {
      await tx.transaction(async (sp) => {
        await insert(sp, 1, 'ok')
        stray = microtasks(1).then(() => settle(insert(sp, 105, 'stray')))
      })
      const strayError = await stray
      expect(DatabaseError.is(strayError, 'QUERY_FAILED')).toBe(true)
      expect((strayError as DatabaseError).message).toMatch(/savepoint is ending/)
      // the transaction goes on after the savepoint
      await insert(tx, 2, 'ok')
    })
    expect(await ids()).toEqual([1, 2])
  })
})
