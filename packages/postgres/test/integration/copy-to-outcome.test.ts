import type { Readable } from 'node:stream'
import type { Client } from 'pg'
import { DatabaseError, isOutcomeUnknown, type DatabasePool } from '@dbpool/core'
import { copyTo, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, sleep, within, type PgClientInternals } from './helpers'

// copyTo() of a query that writes (`COPY (INSERT ... RETURNING ...) TO STDOUT`) runs in auto-commit:
// the server commits it after its last data (CopyDone) and before CommandComplete. A session that
// ends before CommandComplete (socket lost, backend terminated while it blocked on a slow consumer,
// connection closed at the deadline) may have committed: the Readable fails with `retryable: false`
// and `detail.outcome: 'unknown'`, never as a retryable CONNECTION_LOST that would make a retry
// write twice. A read keeps its code's retryability; an ErrorResponse before CommandComplete is a
// definite failure. Every wait has a deadline, so a hang fails the test instead of stalling it.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => {
    await c.query('create table sink (n int, label text)')
    // a commit that takes 1.5 s (a deferred constraint trigger runs at commit, after the COPY's last data)
    await c.query("create function slow_commit() returns trigger language plpgsql as 'begin perform pg_sleep(1.5); return null; end'")
    await c.query('create table slow_commit (n int)')
    await c.query(
      'create constraint trigger slow_commit after insert on slow_commit deferrable initially deferred for each row execute function slow_commit()',
    )
    // a commit refused 300 ms after the COPY's last data
    await c.query(
      "create function refuse_commit() returns trigger language plpgsql as 'begin perform pg_sleep(0.3); raise exception ''refused at commit''; end'",
    )
    await c.query('create table refused (n int)')
    await c.query(
      'create constraint trigger refuse_commit after insert on refused deferrable initially deferred for each row execute function refuse_commit()',
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

/** A one-connection pool and the pg client of its connection. */
async function onePool(): Promise<{ pool: DatabasePool<PostgresConnection>; client: Client }> {
  const created = poolOn(db.url, { max: 1, min: 0, acquireTimeoutMs: 5_000 })
  created.on('error', () => undefined)
  pool = created
  const client = await created.withConnection(async (conn) => conn.native.client)
  return { pool: created, client }
}

function terminateBackend(client: Client): Promise<unknown> {
  const pid = (client as unknown as PgClientInternals).processID
  return admin(db.url, async (c) => c.query('select pg_terminate_backend($1)', [pid]))
}

/** Waits until the backend of `client` waits on `waitEvent` (pg_stat_activity). */
async function waitFor(client: Client, waitEvent: string): Promise<void> {
  const pid = (client as unknown as PgClientInternals).processID
  await eventually(
    () =>
      admin(
        db.url,
        async (c) => (await c.query('select 1 from pg_stat_activity where pid = $1 and wait_event = $2', [pid, waitEvent])).rowCount === 1,
      ),
    5_000,
    `the backend to wait on ${waitEvent}`,
  )
}

/** Reads `readable` to its end (resolves with the bytes read); after the first chunk `onFirst()`, then a pause of `pauseMs`. */
function consume(readable: Readable, onFirst: () => unknown, pauseMs: number): Promise<number> {
  const reading = (async () => {
    let bytes = 0
    for await (const chunk of readable) {
      if (bytes === 0) {
        await onFirst()
        await sleep(pauseMs)
      }
      bytes += (chunk as Buffer).length
    }
    return bytes
  })()
  reading.catch(() => undefined)
  return reading
}

/** The DatabaseError `reading` fails with within 10 s; then the lease is back and the pool answers. */
async function failure(reading: Promise<unknown>): Promise<DatabaseError> {
  const outcome = await within(reading, 10_000)
  if (outcome === 'pending' || !('error' in outcome) || !DatabaseError.is(outcome.error))
    throw new Error(`expected the COPY to fail with a DatabaseError, got ${outcome === 'pending' ? 'pending' : JSON.stringify(outcome)}`)
  const used = pool!
  await eventually(() => used.stats().used === 0, 5_000, 'the COPY to give its lease back')
  expect(await within(used.query<{ n: number }>('select 1 as n'), 5_000)).toEqual({ value: expect.objectContaining({ rows: [{ n: 1 }] }) })
  return outcome.error
}

async function count(table: string): Promise<number> {
  return admin(db.url, async (c) => (await c.query<{ n: number }>(`select count(*)::int as n from ${table}`)).rows[0]!.n)
}

/** Many rows of 200 bytes: far more than the socket buffers hold, so the server blocks on a slow consumer. */
const WRITE_BIG = "copy (insert into sink select n, repeat('x', 200) from generate_series(1, 100000) n returning *) to stdout"
const READ_BIG = "copy (select n, repeat('x', 200) from generate_series(1, 100000) n) to stdout"

describe('copyTo() of a writing query whose session ends mid-COPY', () => {
  it('socket destroyed after the first chunk: CONNECTION_LOST, not retryable, outcome unknown', async () => {
    const { client } = await onePool()
    const error = await failure(consume(copyTo(pool!, WRITE_BIG), () => client.connection.stream.destroy(), 200))
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
    expect(error.message).toContain('may have committed')
  }, 30_000)

  it('backend terminated while it blocks on a slow consumer (it dies without an ErrorResponse): not retryable, outcome unknown', async () => {
    const { client } = await onePool()
    const blockedThenTerminated = async (): Promise<void> => {
      // blocked on the socket (the consumer does not read): the server ends the session without a word
      await waitFor(client, 'ClientWrite')
      await terminateBackend(client)
    }
    const error = await failure(consume(copyTo(pool!, WRITE_BIG), blockedThenTerminated, 500))
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.sqlState).toBeUndefined()
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
  }, 30_000)

  it('a WITH ... DELETE ... RETURNING query, socket destroyed: outcome unknown', async () => {
    const { client } = await onePool()
    const text =
      "copy (with d as (delete from sink where n < 0 returning *) select n, repeat('x', 200) from generate_series(1, 100000) n) to stdout"
    const error = await failure(consume(copyTo(pool!, text), () => client.connection.stream.destroy(), 200))
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
  }, 30_000)

  it('timeoutMs passing mid-COPY (a slow consumer): QUERY_TIMEOUT with outcome unknown', async () => {
    await onePool()
    const error = await failure(consume(copyTo(pool!, WRITE_BIG, { timeoutMs: 300 }), () => undefined, 1_000))
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
    expect(error.message).toContain('copyTo.timeoutMs')
  }, 30_000)

  it('signal aborted mid-COPY (a slow consumer): QUERY_CANCELLED with outcome unknown', async () => {
    await onePool()
    const controller = new AbortController()
    const error = await failure(consume(copyTo(pool!, WRITE_BIG, { signal: controller.signal }), () => controller.abort('stop'), 500))
    expect(error.code).toBe('QUERY_CANCELLED')
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
  }, 30_000)

  it('close() revoking the lease mid-COPY: POOL_CLOSED, not retryable, outcome unknown', async () => {
    const { pool: closing } = await onePool()
    const reading = consume(copyTo(closing, WRITE_BIG), () => closing.close({ timeoutMs: 50 }), 500)
    const outcome = await within(reading, 10_000)
    if (outcome === 'pending' || !('error' in outcome) || !DatabaseError.is(outcome.error))
      throw new Error(`expected the COPY to fail with a DatabaseError, got ${JSON.stringify(outcome)}`)
    expect(outcome.error.code).toBe('POOL_CLOSED')
    expect(outcome.error.retryable).toBe(false)
    expect(isOutcomeUnknown(outcome.error)).toBe(true)
  }, 30_000)

  it('connection lost while the server holds the commit (a deferred trigger): outcome unknown; the orphaned COPY commits', async () => {
    const { client } = await onePool()
    const before = await count('slow_commit')
    const reading = consume(copyTo(pool!, 'copy (insert into slow_commit values (1) returning *) to stdout'), () => undefined, 0)
    // the query ran; the deferred trigger holds the commit for 1.5 s (the server flushes the data, CopyDone
    // and CommandComplete after it)
    await waitFor(client, 'PgSleep')
    client.connection.stream.destroy()
    const error = await failure(reading)
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.retryable).toBe(false)
    expect(isOutcomeUnknown(error)).toBe(true)
    // the backend ran on without its client and committed, as the outcome 'unknown' warned
    await eventually(async () => (await count('slow_commit')) === before + 1, 5_000, 'the orphaned COPY to commit')
  }, 30_000)

  it('a commit refused after the last row: the Readable fails with the server error (a definite failure), nothing committed', async () => {
    await onePool()
    const error = await failure(consume(copyTo(pool!, 'copy (insert into refused values (1) returning *) to stdout'), () => undefined, 0))
    expect(error.code).toBe('QUERY_FAILED')
    expect(error.sqlState).toBe('P0001')
    expect(isOutcomeUnknown(error)).toBe(false)
    expect(await count('refused')).toBe(0)
  }, 30_000)

  it('an ErrorResponse before it completed (57P01 while the query runs, before any data): a definite failure, retryable, nothing written', async () => {
    const { client } = await onePool()
    const before = await count('sink')
    const text = "copy (with s as (select pg_sleep(5)) insert into sink select -1, 'x' from s returning *) to stdout"
    const reading = consume(copyTo(pool!, text), () => undefined, 0)
    await waitFor(client, 'PgSleep')
    await terminateBackend(client)
    const error = await failure(reading)
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.sqlState).toBe('57P01')
    expect(error.retryable).toBe(true)
    expect(isOutcomeUnknown(error)).toBe(false)
    expect(await count('sink')).toBe(before)
  }, 30_000)
})

describe('copyTo() of a read whose session ends mid-COPY', () => {
  it('socket destroyed after the first chunk: CONNECTION_LOST stays retryable, no outcome', async () => {
    const { client } = await onePool()
    const error = await failure(consume(copyTo(pool!, READ_BIG), () => client.connection.stream.destroy(), 200))
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.retryable).toBe(true)
    expect(isOutcomeUnknown(error)).toBe(false)
  }, 30_000)

  it('a COPY of a table, socket destroyed: retryable, no outcome', async () => {
    const { client } = await onePool()
    await admin(db.url, async (c) => c.query("insert into sink select n, repeat('x', 200) from generate_series(1, 100000) n"))
    const error = await failure(consume(copyTo(pool!, 'copy sink (n, label) to stdout'), () => client.connection.stream.destroy(), 200))
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.retryable).toBe(true)
    expect(isOutcomeUnknown(error)).toBe(false)
  }, 30_000)

  it('timeoutMs passing mid-COPY: QUERY_TIMEOUT without an outcome', async () => {
    await onePool()
    const error = await failure(consume(copyTo(pool!, READ_BIG, { timeoutMs: 300 }), () => undefined, 1_000))
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect(isOutcomeUnknown(error)).toBe(false)
  }, 30_000)
})
