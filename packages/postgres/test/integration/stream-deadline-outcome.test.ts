import { DatabaseError, isOutcomeUnknown, sql, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, within } from './helpers'

// pool.stream() of a write outside a transaction (`INSERT ... RETURNING`): its implicit transaction
// commits at the Sync pg-cursor sends after the portal's CommandComplete, and the read waits for the
// ReadyForQuery that follows. A deadline (or abort) that closes the connection in that window leaves
// the commit in flight: QUERY_TIMEOUT with `detail.outcome: 'unknown'`, as pool.query() reports it.
// Before the Sync (the statement still running) the server rolls the portal back with the session.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => {
    // a commit that takes 1.5 s (a deferred constraint trigger runs at commit)
    await c.query("create function slow_commit() returns trigger language plpgsql as 'begin perform pg_sleep(1.5); return null; end'")
    await c.query('create table slow_commit (n int)')
    await c.query(
      'create constraint trigger slow_commit after insert on slow_commit deferrable initially deferred for each row execute function slow_commit()',
    )
  })
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

async function count(n: number): Promise<number> {
  return admin(
    db.url,
    async (c) => (await c.query<{ n: number }>('select count(*)::int as n from slow_commit where n = $1', [n])).rows[0]!.n,
  )
}

/** The error the stream's first read fails with (within 10 s); then the lease is back. */
async function firstReadError(stream: AsyncIterable<unknown>): Promise<DatabaseError> {
  const first = stream[Symbol.asyncIterator]().next()
  const outcome = await within(first, 10_000)
  if (outcome === 'pending' || !('error' in outcome) || !DatabaseError.is(outcome.error))
    throw new Error(`expected the read to fail with a DatabaseError, got ${outcome === 'pending' ? 'pending' : JSON.stringify(outcome)}`)
  const used = pool!
  await eventually(() => used.stats().used === 0, 5_000, 'the stream to give its lease back')
  return outcome.error
}

describe('pool.stream() whose deadline passes', () => {
  it('while the write commits (the cursor sent Sync): QUERY_TIMEOUT, not retryable, outcome unknown', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    pool.on('error', () => undefined)
    const error = await firstReadError(pool.stream(sql`insert into slow_commit values (${1}) returning *`, undefined, { timeoutMs: 500 }))
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
    // the cancel request sent with the close reached the commit here (the deferred trigger is cancelled):
    // whether it does depends on where the server is, which is why the outcome is unknown
  }, 30_000)

  it('while the write still runs (no Sync sent): QUERY_TIMEOUT without an outcome, nothing committed', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    pool.on('error', () => undefined)
    const text = sql`insert into slow_commit select ${2} from pg_sleep(1.5) returning *`
    const error = await firstReadError(pool.stream(text, undefined, { timeoutMs: 300 }))
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect(isOutcomeUnknown(error)).toBe(false)
    await new Promise((resolve) => setTimeout(resolve, 1_800))
    expect(await count(2)).toBe(0)
  }, 30_000)

  it('a read: QUERY_TIMEOUT without an outcome', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    pool.on('error', () => undefined)
    const error = await firstReadError(pool.stream('select pg_sleep(2) as n', undefined, { timeoutMs: 300 }))
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect(isOutcomeUnknown(error)).toBe(false)
  }, 30_000)
})
