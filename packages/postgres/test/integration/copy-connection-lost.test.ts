import type { Readable } from 'node:stream'
import type { Client } from 'pg'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { copyFrom, copyTo, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, sleep, within, type PgClientInternals } from './helpers'

// A COPY whose connection dies mid-way (pg_terminate_backend from another client, or the socket
// destroyed) fails with CONNECTION_LOST and gives its lease back, including in the window between
// the server's CommandComplete and ReadyForQuery (the window pg-cursor ignored, see
// stream-connection-lost.test.ts): pg-copy-streams' copyFrom settles only at ReadyForQuery. Every
// wait has a deadline, so a hang fails the test instead of stalling it.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => {
    await c.query('create table sink (n int, label text)')
    // 5 ms of server time per row: a COPY of 100 rows runs ~500 ms after all its data was sent
    await c.query("create function slow_row() returns trigger language plpgsql as 'begin perform pg_sleep(0.005); return new; end'")
    await c.query('create table slow (n int, label text)')
    await c.query('create trigger slow_row before insert on slow for each row execute function slow_row()')
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

/**
 * Swallows the ReadyForQuery that follows the next CommandComplete on `client` and destroys its
 * socket there: the connection is lost after the server reported the COPY complete, before it said
 * ReadyForQuery. Resolves when that happened.
 */
function loseAtCommandComplete(client: Client): Promise<void> {
  const connection = client.connection as unknown as NodeJS.EventEmitter & { stream: { destroy(): void } }
  const emit = connection.emit.bind(connection)
  return new Promise((resolve) => {
    let completed = false
    connection.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'commandComplete') completed = true
      if (event === 'readyForQuery' && completed) {
        connection.emit = emit
        connection.stream.destroy()
        resolve()
        return true
      }
      return emit(event, ...args)
    }
  })
}

/** Fails unless `work` rejects with CONNECTION_LOST within 5 s; then the lease is back and the pool answers. */
async function expectLostAndReleased(pool: DatabasePool<PostgresConnection>, work: Promise<unknown>): Promise<void> {
  const outcome = await within(work, 5_000)
  if (outcome === 'pending') throw new Error('the COPY was still pending 5 s after its connection died')
  if (!('error' in outcome)) throw new Error(`expected the COPY to fail, it gave ${JSON.stringify(outcome.value)}`)
  expect(DatabaseError.is(outcome.error) && outcome.error.code).toBe('CONNECTION_LOST')
  await eventually(() => pool.stats().used === 0, 5_000, 'the COPY to give its lease back')
  const answer = await within(pool.query<{ n: number }>('select 1 as n'), 5_000)
  expect(answer).toEqual({ value: expect.objectContaining({ rows: [{ n: 1 }] }) })
}

/** Rows, slowly: `started` resolves after the first, then one every 20 ms, for ever (until stopped). */
function slowRows(): { rows: AsyncIterable<unknown[]>; started: Promise<void> } {
  let onStart!: () => void
  const started = new Promise<void>((resolve) => (onStart = resolve))
  async function* rows(): AsyncGenerator<unknown[]> {
    for (let n = 1; ; n++) {
      yield [n, `row ${n}`]
      if (n === 1) onStart()
      await sleep(20)
    }
  }
  return { rows: rows(), started }
}

/** How a Readable ends: its error, or 'end' (consumed slowly: a pause after the first chunk, `pauseMs`). */
function consume(readable: Readable, onFirst: () => void, pauseMs: number): Promise<number> {
  return (async () => {
    let bytes = 0
    for await (const chunk of readable) {
      if (bytes === 0) {
        onFirst()
        await sleep(pauseMs)
      }
      bytes += (chunk as Buffer).length
    }
    return bytes
  })()
}

const BIG = "copy (select n, repeat('x', 200) from generate_series(1, 100000) n) to stdout"

describe('copyFrom() whose connection dies mid-COPY', () => {
  it('fails with CONNECTION_LOST when its backend is terminated while the source is slow, and releases its lease', async () => {
    const { pool, client } = await onePool()
    const { rows, started } = slowRows()
    const copying = copyFrom(pool, 'copy sink (n, label) from stdin', rows)
    copying.catch(() => undefined)
    expect(await within(started, 5_000)).toEqual({ value: undefined })
    await sleep(100)
    await terminateBackend(client)
    await expectLostAndReleased(pool, copying)
  }, 30_000)

  it('fails with CONNECTION_LOST when the socket is destroyed while the source is slow, and releases its lease', async () => {
    const { pool, client } = await onePool()
    const { rows, started } = slowRows()
    const copying = copyFrom(pool, 'copy sink (n, label) from stdin', rows)
    copying.catch(() => undefined)
    expect(await within(started, 5_000)).toEqual({ value: undefined })
    await sleep(100)
    client.connection.stream.destroy()
    await expectLostAndReleased(pool, copying)
  }, 30_000)

  it('resolves with the row count when the connection is lost between CommandComplete and ReadyForQuery (the rows are committed: a failure would make a retry load them twice), and releases its lease', async () => {
    const { pool, client } = await onePool()
    const before = await pool.query<{ n: number }>('select count(*)::int as n from sink')
    const lost = loseAtCommandComplete(client)
    const copying = copyFrom(pool, 'copy sink (n, label) from stdin', [
      [1, 'a'],
      [2, 'b'],
    ])
    copying.catch(() => undefined)
    expect(await within(lost, 5_000)).toEqual({ value: undefined })
    expect(await within(copying, 5_000)).toEqual({ value: 2 })
    await eventually(() => pool.stats().used === 0, 5_000, 'the COPY to give its lease back')
    // the committed rows are there, read on a new connection (the lost one is never reused)
    const after = await within(pool.query<{ n: number }>('select count(*)::int as n from sink'), 5_000)
    expect(after).toEqual({ value: expect.objectContaining({ rows: [{ n: before.rows[0]!.n + 2 }] }) })
  }, 30_000)
})

describe('copyTo() whose connection dies mid-COPY', () => {
  it('fails with CONNECTION_LOST when its backend is terminated while the consumer is slow, and releases its lease', async () => {
    const { pool, client } = await onePool()
    let terminated: Promise<unknown> | undefined
    const reading = consume(copyTo(pool, BIG), () => (terminated = terminateBackend(client)), 500)
    reading.catch(() => undefined)
    await expectLostAndReleased(pool, reading)
    expect(await within(terminated ?? Promise.reject(new Error('no first chunk')), 5_000)).toHaveProperty('value')
  }, 30_000)

  it('fails with CONNECTION_LOST when the socket is destroyed while the consumer is slow, and releases its lease', async () => {
    const { pool, client } = await onePool()
    const reading = consume(copyTo(pool, BIG), () => client.connection.stream.destroy(), 200)
    reading.catch(() => undefined)
    await expectLostAndReleased(pool, reading)
  }, 30_000)

  it('settles and releases its lease when the connection is lost between CommandComplete and ReadyForQuery', async () => {
    const { pool, client } = await onePool()
    const lost = loseAtCommandComplete(client)
    const reading = consume(copyTo(pool, 'copy (select generate_series(1, 3)) to stdout'), () => undefined, 0)
    reading.catch(() => undefined)
    expect(await within(lost, 5_000)).toEqual({ value: undefined })
    // every byte arrived before the loss (CopyDone, CommandComplete): the data may end normally or fail; it must not hang
    const outcome = await within(reading, 5_000)
    expect(outcome).not.toBe('pending')
    await eventually(() => pool.stats().used === 0, 5_000, 'the COPY to give its lease back')
    expect(await within(pool.query<{ n: number }>('select 1 as n'), 5_000)).toEqual({
      value: expect.objectContaining({ rows: [{ n: 1 }] }),
    })
  }, 30_000)
})

/** 100 rows for `slow`: all sent at once (a few bytes), then ~500 ms of server work before CommandComplete. */
const SLOW_ROWS = Array.from({ length: 100 }, (_, i) => [i, 'x'])

async function slowCount(): Promise<number> {
  return admin(db.url, async (c) => (await c.query<{ n: number }>('select count(*)::int as n from slow')).rows[0]!.n)
}

/** Waits until the server runs the COPY (its data all sent), then `lose()`; the COPY's error. */
async function loseWhileServerRuns(
  pool: DatabasePool<PostgresConnection>,
  copying: Promise<unknown>,
  lose: () => unknown,
): Promise<DatabaseError> {
  copying.catch(() => undefined)
  await eventually(
    async () =>
      admin(db.url, async (c) => {
        const r = await c.query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where query ilike 'copy slow%' and state = 'active'",
        )
        return r.rows[0]!.n > 0
      }),
    5_000,
    'the server to run the COPY',
  )
  await sleep(100)
  await lose()
  const outcome = await within(copying, 5_000)
  if (outcome === 'pending' || !('error' in outcome)) throw new Error(`expected the COPY to fail, got ${JSON.stringify(outcome)}`)
  expect(DatabaseError.is(outcome.error)).toBe(true)
  await eventually(() => pool.stats().used === 0 || !pool.isOpen, 5_000, 'the COPY to give its lease back')
  return outcome.error as DatabaseError
}

describe('copyFrom() whose connection is lost after all its data was sent, before the server reported it complete', () => {
  beforeEach(async () => {
    await admin(db.url, async (c) => c.query('truncate slow'))
  })

  it('socket destroyed: CONNECTION_LOST, not retryable, outcome unknown (the server runs on and commits the rows)', async () => {
    const { pool, client } = await onePool()
    const error = await loseWhileServerRuns(pool, copyFrom(pool, 'copy slow (n, label) from stdin', SLOW_ROWS), () =>
      client.connection.stream.destroy(),
    )
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.retryable).toBe(false)
    expect(error.detail?.outcome).toBe('unknown')
    // the backend ran on without its client: the rows are there, as the outcome 'unknown' warned
    await eventually(async () => (await slowCount()) === 100, 5_000, 'the orphaned COPY to commit')
  }, 30_000)

  it('close() revoking the lease: POOL_CLOSED, not retryable, outcome unknown', async () => {
    const { pool } = await onePool()
    const error = await loseWhileServerRuns(pool, copyFrom(pool, 'copy slow (n, label) from stdin', SLOW_ROWS), () =>
      pool.close({ timeoutMs: 50 }),
    )
    expect(error.code).toBe('POOL_CLOSED')
    expect(error.retryable).toBe(false)
    expect(error.detail?.outcome).toBe('unknown')
  }, 30_000)

  it('close() revoking the lease while the data is still being sent: POOL_CLOSED without an outcome (nothing can commit), nothing loaded', async () => {
    const { pool } = await onePool()
    const { rows, started } = slowRows()
    const copying = copyFrom(pool, 'copy sink (n, label) from stdin', rows)
    copying.catch(() => undefined)
    expect(await within(started, 5_000)).toEqual({ value: undefined })
    await pool.close({ timeoutMs: 50 })
    const outcome = await within(copying, 5_000)
    if (outcome === 'pending' || !('error' in outcome)) throw new Error(`expected the COPY to fail, got ${JSON.stringify(outcome)}`)
    const error = outcome.error as DatabaseError
    expect(error.code).toBe('POOL_CLOSED')
    expect(error.detail?.outcome).toBeUndefined()
  }, 30_000)

  it('inside a transaction: CONNECTION_LOST stays retryable with no outcome (the dead session rolled back), nothing committed', async () => {
    const { pool, client } = await onePool()
    const error = await loseWhileServerRuns(
      pool,
      pool.transaction(async (tx) => copyFrom(tx, 'copy slow (n, label) from stdin', SLOW_ROWS)),
      () => client.connection.stream.destroy(),
    )
    expect(error.code).toBe('CONNECTION_LOST')
    expect(error.retryable).toBe(true)
    expect(error.detail?.outcome).toBeUndefined()
    await sleep(800)
    expect(await slowCount()).toBe(0)
  }, 30_000)
})
