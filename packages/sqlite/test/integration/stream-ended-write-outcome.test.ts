import { DatabaseError, isOutcomeUnknown, OUTCOME_COMMITTED, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

// pool.stream() of a write outside a transaction (`INSERT ... RETURNING`) ended after its first batch
// by its timeoutMs, its signal or close()'s deadline (found by review). SQLite makes every change at
// the statement's first step and the auto-commit statement commits them when reset (the cursor's
// close): the error must say so (`detail.outcome: 'committed'`, not retryable), where it used to be a
// bare QUERY_TIMEOUT / QUERY_CANCELLED / POOL_CLOSED that invited a retry (rows inserted twice).
const tmp = tempDir()
let pool: DatabasePool<SqliteDatabase> | undefined

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(() => tmp.cleanup())

async function open(name: string): Promise<DatabasePool<SqliteDatabase>> {
  pool = createSqlitePool(tmp.file(`${name}.db`), { name })
  await pool.query('create table t (id integer primary key, x)')
  return pool
}

async function xs(p: DatabasePool<SqliteDatabase>): Promise<unknown[]> {
  return (await p.query<{ x: unknown }>('select x from t order by id')).rows.map((r) => r.x)
}

const INSERT = "insert into t (x) select value from json_each('[1,2,3,4,5]') returning id"
const INSERT_STAR = "insert into t (x) select value from json_each('[1,2,3,4,5]') returning *"

function expectCommitted(error: DatabaseError, code: string): void {
  expect(error.code).toBe(code)
  expect(error.retryable).toBe(false)
  expect(error.detail?.outcome).toBe(OUTCOME_COMMITTED)
  expect(isOutcomeUnknown(error)).toBe(false)
  expect(error.message).toMatch(/committed/)
}

async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

describe('pool.stream() of a write ended after its first batch', () => {
  it('timeoutMs: QUERY_TIMEOUT with outcome committed, every row kept', async () => {
    const p = await open('timeout')
    const it = p.stream(INSERT, [], { batchSize: 2, timeoutMs: 200 })[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    await sleep(400)
    expectCommitted(await rejection(it.next()), 'QUERY_TIMEOUT')
    expect(await xs(p)).toEqual([1, 2, 3, 4, 5])
  })

  it('signal (a RETURNING * write, run whole): QUERY_CANCELLED with outcome committed', async () => {
    const p = await open('signal')
    const ac = new AbortController()
    const it = p.stream(INSERT_STAR, [], { batchSize: 2, signal: ac.signal })[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    ac.abort()
    expectCommitted(await rejection(it.next()), 'QUERY_CANCELLED')
    expect(await xs(p)).toEqual([1, 2, 3, 4, 5])
  })

  it("close()'s deadline: POOL_CLOSED with outcome committed", async () => {
    const p = await open('close')
    const it = p.stream(INSERT, [], { batchSize: 2 })[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    const report = await p.close({ timeoutMs: 100 })
    expect(report.outstandingLeases).toHaveLength(1)
    expectCommitted(await rejection(it.next()), 'POOL_CLOSED')
    pool = createSqlitePool(tmp.file('close.db'), { name: 'close-again' })
    expect(await xs(pool)).toEqual([1, 2, 3, 4, 5])
  })

  it('a read, and a write inside a transaction, carry no outcome', async () => {
    const p = await open('none')
    await p.query("insert into t (x) select value from json_each('[1,2,3,4,5]')")
    const ac = new AbortController()
    const read = p.stream('select x from t', [], { batchSize: 2, signal: ac.signal })[Symbol.asyncIterator]()
    expect((await read.next()).done).toBe(false)
    ac.abort()
    const readError = await rejection(read.next())
    expect(readError.code).toBe('QUERY_CANCELLED')
    expect(readError.detail?.outcome).toBeUndefined()
    const inTx = await rejection(
      p.transaction(async (tx) => {
        const ac2 = new AbortController()
        const it = tx.stream(INSERT, [], { batchSize: 2, signal: ac2.signal })[Symbol.asyncIterator]()
        await it.next()
        ac2.abort()
        await it.next()
      }),
    )
    expect(inTx.code).toBe('QUERY_CANCELLED')
    expect(inTx.detail?.outcome).toBeUndefined()
    expect(await xs(p)).toEqual([1, 2, 3, 4, 5])
  })
})
