import { DatabaseError, PoolFactory, type DatabasePool, type Transaction } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'
import { Readable } from 'node:stream'

// A COMMIT or ROLLBACK run through tx.native ends the transaction behind transaction()'s back: a later
// tx.query() ran in autocommit, resolved, and was kept although transaction() then rejected (with
// the app's error, or QUERY_FAILED claiming later statements "are refused"). Every statement of the
// handle (query, stream, savepoint, native, copyFrom) now checks the transaction is still open and is
// refused without running; transaction() rejects saying what was and was not kept.

jest.setTimeout(60_000)

type Backend = 'postgres' | 'sqlite'

function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (e: unknown) => e,
  )
}

function expectEndedOutside(err: unknown): DatabaseError {
  expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
  const e = err as DatabaseError
  expect(e.detail).toMatchObject({ reason: 'ended-outside', outcome: 'unknown' })
  expect(e.message).toMatch(/ended outside transaction\(\) \(a COMMIT or ROLLBACK run through tx\.native\)/)
  expect(e.message).toMatch(/refused and not run/)
  expect(e.retryable).toBe(false)
  return e
}

describe.each<Backend>(['postgres', 'sqlite'])('a transaction ended through tx.native, on %s', (backend) => {
  let pg: TestDatabase | undefined
  let file: TempSqlite | undefined
  let pool: DatabasePool<unknown>

  beforeAll(async () => {
    if (backend === 'postgres') pg = await createTestDatabase()
    else file = await createTempSqlite()
    pool = await PoolFactory.create((pg ?? file)!.url, { min: 0, max: 2, name: `tx-native-end-${backend}` })
    await pool.query('create table t (id integer primary key)')
  })

  afterAll(async () => {
    await pool?.close()
    await pg?.drop()
    await file?.remove()
  })

  beforeEach(() => pool.query('delete from t'))

  /** COMMIT or ROLLBACK on the transaction's own native connection. */
  async function endNatively(tx: Transaction, statement: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    const native = tx.native as { exec?: (sql: string) => unknown; client?: { query(sql: string): Promise<unknown> } }
    if (backend === 'sqlite') native.exec!(statement)
    else await native.client!.query(statement)
  }

  async function ids(): Promise<number[]> {
    const { rows } = await pool.query<{ id: unknown }>('select id from t order by id')
    return rows.map((r) => Number(r.id))
  }

  it('a statement after a COMMIT through tx.native is refused and not run; transaction() rejects saying so', async () => {
    let after: unknown
    const err = await settle(
      pool.transaction(async (tx) => {
        await tx.query('insert into t values (1)')
        await endNatively(tx, 'COMMIT')
        after = await settle(tx.query('insert into t values (2)'))
      }),
    )
    expectEndedOutside(after)
    expect(err).toBe(after)
    // the native COMMIT kept what ran before it; nothing after it ran
    expect(await ids()).toEqual([1])
  })

  it("the callback's own error after it does not hide what happened (it is the cause)", async () => {
    const appError = new Error('app rolls back')
    const err = await settle(
      pool.transaction(async (tx) => {
        await endNatively(tx, 'COMMIT')
        await settle(tx.query('insert into t values (8)'))
        throw appError
      }),
    )
    const e = expectEndedOutside(err)
    expect(e.cause).toBe(appError)
    expect(e.message).toMatch(/the callback then failed with app rolls back/)
    expect(await ids()).toEqual([])
  })

  it('a ROLLBACK through tx.native and a callback that returns: transaction() rejects, never resolves', async () => {
    const err = await settle(
      pool.transaction(async (tx) => {
        await tx.query('insert into t values (3)')
        await endNatively(tx, 'ROLLBACK')
      }),
    )
    expectEndedOutside(err)
    expect(await ids()).toEqual([])
  })

  it('a stream, a savepoint, tx.native (so copyFrom) after it are refused too', async () => {
    const refusals: unknown[] = []
    await settle(
      pool.transaction(async (tx) => {
        await endNatively(tx, 'COMMIT')
        refusals.push(
          await settle(
            (async () => {
              for await (const row of tx.stream('insert into t values (4) returning id')) void row
            })(),
          ),
        )
        refusals.push(await settle(tx.transaction((sp) => sp.query('insert into t values (5)'))))
        refusals.push(await settle((async () => tx.native)()))
        if (backend === 'postgres') {
          const { copyFrom } = await import('@dbpool/postgres')
          refusals.push(await settle(copyFrom(tx, 'copy t (id) from stdin', Readable.from(['6\n']))))
        }
      }),
    )
    expect(refusals.length).toBe(backend === 'postgres' ? 4 : 3)
    for (const e of refusals) expectEndedOutside(e)
    expect(await ids()).toEqual([])
  })

  it('conn.transaction() on a withConnection handle: refused the same way, the handle serves its callback again after', async () => {
    const after = await pool.withConnection(async (conn) => {
      const err = await settle(
        conn.transaction(async (tx) => {
          await endNatively(tx, 'COMMIT')
          await tx.query('insert into t values (7)')
        }),
      )
      expectEndedOutside(err)
      return (await conn.query<{ one: unknown }>('select 1 as one')).rows[0]?.one
    })
    expect(Number(after)).toBe(1)
    expect(await ids()).toEqual([])
  })

  it('a native connection taken before conn.transaction() (conn.native kept) is seen too', async () => {
    await pool.withConnection(async (conn) => {
      const native = conn.native as { exec?: (sql: string) => unknown; client?: { query(sql: string): Promise<unknown> } }
      const err = await settle(
        conn.transaction(async (tx) => {
          if (backend === 'sqlite') native.exec!('COMMIT')
          else await native.client!.query('COMMIT')
          await tx.query('insert into t values (11)')
        }),
      )
      expectEndedOutside(err)
    })
    expect(await ids()).toEqual([])
  })

  it('a transaction left alone by tx.native commits as before', async () => {
    await pool.transaction(async (tx) => {
      void tx.native
      await tx.query('insert into t values (9)')
      await tx.transaction((sp) => sp.query('insert into t values (10)'))
    })
    expect(await ids()).toEqual([9, 10])
  })
})
