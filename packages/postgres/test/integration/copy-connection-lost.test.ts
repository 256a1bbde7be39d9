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
  await admin(db.url, async (c) => c.query('create table sink (n int, label text)'))
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
