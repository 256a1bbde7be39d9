import { type DatabaseError, isOutcomeUnknown, OUTCOME_COMMITTED, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection, sleep } from './helpers'

// pool.stream() of a write outside a transaction (`INSERT ... RETURNING`) ended after its first batch
// by its timeoutMs, its signal or close()'s deadline (found by review). Postgres runs the whole INSERT
// at the first Execute; its implicit transaction commits at the Sync pg-cursor sends at CommandComplete
// (every row in the first batch) or with the Close when the stream's cursor is closed early. The
// error must then say so (`detail.outcome: 'committed'`, not retryable), where it used to be a bare
// QUERY_TIMEOUT / QUERY_CANCELLED / POOL_CLOSED that invited a retry (rows inserted twice). A
// connection closed before that Sync (close()'s deadline mid-stream) rolls the INSERT back: no outcome.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, (c) => c.query('create table t (tag text, n int)'))
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

async function count(tag: string): Promise<number> {
  return admin(db.url, async (c) => (await c.query<{ n: number }>('select count(*)::int as n from t where tag = $1', [tag])).rows[0]!.n)
}

function insert(tag: string, rows: number): string {
  return `insert into t select '${tag}', g from generate_series(1, ${rows}) g returning n`
}

function expectCommitted(error: DatabaseError, code: string): void {
  expect(error.code).toBe(code)
  expect(error.retryable).toBe(false)
  expect(error.detail?.outcome).toBe(OUTCOME_COMMITTED)
  expect(isOutcomeUnknown(error)).toBe(false)
  expect(error.message).toMatch(/committed/)
}

describe('pool.stream() of a write ended after its first batch', () => {
  it('timeoutMs, every row in the first batch (committed at its Sync): QUERY_TIMEOUT, outcome committed', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const it = pool.stream(insert('small-timeout', 5), [], { batchSize: 100, timeoutMs: 300 })[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    await sleep(600)
    expectCommitted(await rejection(it.next()), 'QUERY_TIMEOUT')
    expect(await count('small-timeout')).toBe(5)
  })

  it('signal between batches (the early Close and Sync commit the whole INSERT): QUERY_CANCELLED, outcome committed', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const ac = new AbortController()
    const it = pool.stream(insert('big-signal', 500), [], { batchSize: 10, signal: ac.signal })[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    ac.abort()
    expectCommitted(await rejection(it.next()), 'QUERY_CANCELLED')
    expect(await count('big-signal')).toBe(500)
    // the connection is clean and back in the pool
    expect((await pool.query<{ n: number }>('select 1 as n')).rows[0]!.n).toBe(1)
  })

  it("close()'s deadline: POOL_CLOSED committed when the first batch held every row; none when the INSERT was rolled back", async () => {
    pool = poolOn(db.url, { max: 2, min: 0 })
    const small = pool.stream(insert('small-close', 5), [], { batchSize: 100 })[Symbol.asyncIterator]()
    const big = pool.stream(insert('big-close', 500), [], { batchSize: 10 })[Symbol.asyncIterator]()
    expect((await small.next()).done).toBe(false)
    expect((await big.next()).done).toBe(false)
    const report = await pool.close({ timeoutMs: 100 })
    expect(report.outstandingLeases).toHaveLength(2)
    expectCommitted(await rejection(small.next()), 'POOL_CLOSED')
    const rolledBack = await rejection(big.next())
    expect(rolledBack.code).toBe('POOL_CLOSED')
    expect(rolledBack.detail?.outcome).toBeUndefined()
    expect(await count('small-close')).toBe(5)
    expect(await count('big-close')).toBe(0)
  })

  it('a read-only stream, and a write inside a transaction, carry no outcome', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const read = pool.stream('select g from generate_series(1, 50) g', [], { batchSize: 10, timeoutMs: 300 })[Symbol.asyncIterator]()
    expect((await read.next()).done).toBe(false)
    await sleep(600)
    const readError = await rejection(read.next())
    expect(readError.code).toBe('QUERY_TIMEOUT')
    expect(readError.detail?.outcome).toBeUndefined()
    const inTx = await rejection(
      pool.transaction(async (tx) => {
        const ac = new AbortController()
        const it = tx.stream(insert('in-tx', 5), [], { batchSize: 100, signal: ac.signal })[Symbol.asyncIterator]()
        await it.next()
        ac.abort()
        await it.next()
      }),
    )
    expect(inTx.code).toBe('QUERY_CANCELLED')
    expect(inTx.detail?.outcome).toBeUndefined()
    expect(await count('in-tx')).toBe(0)
  })
})
