import type { Client } from 'pg'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, corkAtCursorCommandComplete, eventually, poolOn, within, type PgClientInternals } from './helpers'

// A stream whose connection dies while its read is in flight fails with CONNECTION_LOST and gives its
// lease back (review 12: after a replica's immediate stop, a read-lane stream waited on its first
// next() forever, holding its connection). The window that hung: pg-cursor marks itself done at
// CommandComplete and sends Close and Sync; the rows are handed over only at the ReadyForQuery that
// answers them, and a connection lost in between was never reported to the read. The tests open that
// window on purpose (the socket's writes held at CommandComplete, so the Sync never leaves) and kill
// the session there. Every wait has a deadline: on the old code the read never settles.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
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

async function expectLostAndReleased(pool: DatabasePool<PostgresConnection>, first: Promise<unknown>): Promise<void> {
  const outcome = await within(first, 5_000)
  if (outcome === 'pending') throw new Error('the stream read was still pending 5 s after its connection died')
  if (!('error' in outcome)) throw new Error(`expected the read to fail, it gave ${JSON.stringify(outcome.value)}`)
  expect(DatabaseError.is(outcome.error) && outcome.error.code).toBe('CONNECTION_LOST')
  await eventually(() => pool.stats().used === 0, 5_000, 'the stream to give its lease back')
  expect((await pool.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }])
}

describe('pool.stream() on a connection that dies between CommandComplete and ReadyForQuery', () => {
  it('fails with CONNECTION_LOST when the server terminates the backend (pg_terminate_backend), and releases its lease', async () => {
    const { pool, client } = await onePool()
    const pid = (client as unknown as PgClientInternals).processID
    const corked = corkAtCursorCommandComplete(client)
    const it = pool.stream<{ n: number }>('select generate_series(1, 50) as n', [], { batchSize: 100 })[Symbol.asyncIterator]()
    const first = it.next()
    first.catch(() => undefined)
    expect(await within(corked, 5_000)).toEqual({ value: undefined })
    await admin(db.url, async (c) => c.query('select pg_terminate_backend($1)', [pid]))
    await expectLostAndReleased(pool, first)
  }, 30_000)

  it('fails with CONNECTION_LOST when the socket dies without an error message, and releases its lease', async () => {
    const { pool, client } = await onePool()
    const corked = corkAtCursorCommandComplete(client)
    const it = pool
      .stream<{ n: number }>('select generate_series(1, 50) as n', [], { lane: 'write', batchSize: 100 })
      [Symbol.asyncIterator]()
    const first = it.next()
    first.catch(() => undefined)
    expect(await within(corked, 5_000)).toEqual({ value: undefined })
    client.connection.stream.destroy()
    await expectLostAndReleased(pool, first)
  }, 30_000)
})
