import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn } from './helpers'

// A statement's AbortSignal or timeoutMs that fires while the statement still waits its turn on its
// connection (issued on a lease behind a slow statement: in pg's queue, or held behind an array
// check) takes it out of the queue and fails it, retryable (it never ran), without a cancel request
// and without closing the connection: the statement running there is not its to cancel (review r1
// items 4 and 7: the cancel hit the running statement, and the aborted one then ran and committed).
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => c.query('create table queued (id int primary key, note text, tags int[])'))
}, 120_000)

beforeEach(async () => {
  await admin(db.url, async (c) => c.query("delete from queued; insert into queued values (1, 'old', '{1}')"))
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

const SLOW_UPDATE = "update queued set note = 'slow' from pg_sleep(1) where id = 1"

async function rows(): Promise<unknown[]> {
  return admin(db.url, async (c) => (await c.query('select id, note from queued order by id')).rows)
}

function summary(err: unknown): unknown {
  return DatabaseError.is(err) ? { code: err.code, retryable: err.retryable, detail: err.detail } : err
}

function onePool(): DatabasePool<PostgresConnection> {
  return (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-stop' }, { cancelTimeoutMs: 2_000 }))
}

async function pid(p: DatabasePool<PostgresConnection>): Promise<number> {
  return (await p.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
}

it('an AbortSignal on a statement queued behind a running one: QUERY_CANCELLED, retryable, never run; the running one completes', async () => {
  const p = onePool()
  const before = await pid(p)
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 300)
  let rejectedAt = 0
  const started = Date.now()
  const [update, insert] = await p.withConnection((conn) =>
    Promise.all([
      conn.query(SLOW_UPDATE).then((r) => r.rowCount),
      conn.query("insert into queued (id, note) values (2, 'aborted by the caller')", [], { signal: ac.signal }).catch((err: unknown) => {
        rejectedAt = Date.now() - started
        return err
      }),
    ]),
  )
  expect(update).toBe(1)
  expect(summary(insert)).toEqual({ code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } })
  expect((insert as DatabaseError).message).toMatch(/never sent/)
  // at the abort, not once the update was done
  expect(rejectedAt).toBeLessThan(900)
  expect(await rows()).toEqual([{ id: 1, note: 'slow' }])
  // the connection was neither cancelled nor closed
  expect(await pid(p)).toBe(before)
  expect(p.stats().size).toBe(1)
}, 30_000)

it('a timeoutMs expiring while the statement is queued: QUERY_TIMEOUT, retryable, never run; the running one (no deadline) completes and the connection is kept', async () => {
  const p = onePool()
  const before = await pid(p)
  const [update, select] = await p.withConnection((conn) =>
    Promise.all([
      conn.query(SLOW_UPDATE).then((r) => r.rowCount),
      conn.query('select 1', [], { timeoutMs: 300 }).catch((err: unknown) => err),
    ]),
  )
  expect(update).toBe(1)
  expect(summary(select)).toEqual({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false, timeoutMs: 300 } })
  expect((select as DatabaseError).message).not.toMatch(/cancel request was sent/)
  expect(await rows()).toEqual([{ id: 1, note: 'slow' }])
  expect(await pid(p)).toBe(before)
  expect(p.stats().size).toBe(1)
}, 30_000)

it('statements queued behind the withdrawn one still run, in order', async () => {
  const p = onePool()
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 300)
  const out = await p.withConnection((conn) =>
    Promise.all([
      conn.query(SLOW_UPDATE).then((r) => r.rowCount),
      conn.query("insert into queued (id, note) values (2, 'aborted')", [], { signal: ac.signal }).catch((err: unknown) => summary(err)),
      conn.query("insert into queued (id, note) values (3, 'after it')", [], { timeoutMs: 5_000 }).then((r) => r.rowCount),
      conn.query("insert into queued (id, note) values (4, 'last')").then((r) => r.rowCount),
    ]),
  )
  expect(out).toEqual([1, { code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } }, 1, 1])
  expect(await rows()).toEqual([
    { id: 1, note: 'slow' },
    { id: 3, note: 'after it' },
    { id: 4, note: 'last' },
  ])
}, 30_000)

it('an AbortSignal and a deadline on statements held behind an array check (the first use of an array-parameter text): never run', async () => {
  const p = onePool()
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 300)
  const out = await p.withConnection((conn) =>
    Promise.all([
      conn.query(SLOW_UPDATE).then((r) => r.rowCount),
      // its array check is queued behind the update: what follows is held behind it
      conn.query('select count(*)::int as n from queued where tags && $1', [[1, 2]]).then((r) => r.rows[0]),
      conn.query("insert into queued (id, note) values (2, 'aborted')", [], { signal: ac.signal }).catch((err: unknown) => summary(err)),
      conn.query("insert into queued (id, note) values (3, 'timed out')", [], { timeoutMs: 300 }).catch((err: unknown) => summary(err)),
      conn.query("insert into queued (id, note) values (4, 'kept')").then((r) => r.rowCount),
    ]),
  )
  expect(out).toEqual([
    1,
    { n: 1 },
    { code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } },
    { code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false, timeoutMs: 300 } },
    1,
  ])
  expect(await rows()).toEqual([
    { id: 1, note: 'slow' },
    { id: 4, note: 'kept' },
  ])
}, 30_000)

it('the array-parameter statement itself, aborted while its array check waits behind a running statement: never run', async () => {
  const p = onePool()
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 300)
  const out = await p.withConnection((conn) =>
    Promise.all([
      conn.query(SLOW_UPDATE).then((r) => r.rowCount),
      conn
        .query("insert into queued (id, note, tags) select 2, 'aborted', $1::int[]", [[7]], { signal: ac.signal })
        .catch((err: unknown) => summary(err)),
      conn.query("insert into queued (id, note) values (3, 'kept')").then((r) => r.rowCount),
    ]),
  )
  expect(out).toEqual([1, { code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } }, 1])
  expect(await rows()).toEqual([
    { id: 1, note: 'slow' },
    { id: 3, note: 'kept' },
  ])
}, 30_000)

it.each(['signal', 'timeoutMs'] as const)(
  'the array-parameter statement withdrawn (%s) while its check waits, the last one issued: the lease is released when the running one answers, not cancelTimeoutMs later (re-review r9 item 2)',
  async (how) => {
    // pg refused the withdrawn statement before writing it: no ReadyForQuery followed, and the release
    // waited the whole cancelTimeoutMs (5 s here) for one
    const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-stop' }, { cancelTimeoutMs: 5_000 }))
    const ac = new AbortController()
    if (how === 'signal') setTimeout(() => ac.abort(), 300)
    const started = Date.now()
    const out = await p.withConnection((conn) =>
      Promise.all([
        conn.query(SLOW_UPDATE).then((r) => r.rowCount),
        conn
          .query(
            "insert into queued (id, note, tags) select 2, 'withdrawn', $1::int[] /* r9 */",
            [[7]],
            how === 'signal' ? { signal: ac.signal } : { timeoutMs: 300 },
          )
          .catch((err: unknown) => summary(err)),
      ]),
    )
    const elapsed = Date.now() - started
    expect(out).toMatchObject([
      1,
      { code: how === 'signal' ? 'QUERY_CANCELLED' : 'QUERY_TIMEOUT', retryable: true, detail: { started: false } },
    ])
    // the slow update takes 1 s; the stall took it past 5 s
    expect(elapsed).toBeLessThan(3_500)
    expect(await rows()).toEqual([{ id: 1, note: 'slow' }])
    // the connection serves the next caller at once
    expect((await p.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  },
  30_000,
)

it('the running statement itself is still cancelled by its own signal (a cancel request), and its deadline still closes the connection', async () => {
  const p = onePool()
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 300)
  const cancelled = await p.withConnection((conn) => conn.query(SLOW_UPDATE, [], { signal: ac.signal }).catch((err: unknown) => err))
  expect(summary(cancelled)).toMatchObject({ code: 'QUERY_CANCELLED', retryable: false })
  const before = await pid(p)
  const timedOut = await p.withConnection((conn) => conn.query(SLOW_UPDATE, [], { timeoutMs: 300 }).catch((err: unknown) => err))
  expect(summary(timedOut)).toMatchObject({ code: 'QUERY_TIMEOUT' })
  expect((timedOut as DatabaseError).message).toMatch(/cancel request was sent and the connection closed/)
  expect(await pid(p)).not.toBe(before)
  expect(await rows()).toEqual([{ id: 1, note: 'old' }])
}, 30_000)
