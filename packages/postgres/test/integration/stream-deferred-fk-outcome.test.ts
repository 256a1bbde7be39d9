import { type DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection } from './helpers'

// pool.stream() of a write outside a transaction whose implicit COMMIT fails on a DEFERRABLE INITIALLY
// DEFERRED foreign key (found by review): the server answers the Sync with an ErrorResponse and then
// ReadyForQuery `I`, as for a commit. Ended early by its signal, the stream said outcome 'committed'
// (nothing was: the caller would not retry, data lost); read to its end, it never settled (pg-cursor,
// already done, ignores the error and pg clears its active query, so the read's callback never ran).
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => {
    await c.query('create table p (id int primary key)')
    await c.query('create table c (id int primary key, pid int references p(id) deferrable initially deferred)')
  })
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

async function count(): Promise<number> {
  return admin(db.url, async (c) => (await c.query<{ n: number }>('select count(*)::int as n from c')).rows[0]!.n)
}

async function settled(promise: Promise<unknown>): Promise<DatabaseError | 'hang'> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), 5_000)
  })
  try {
    return await Promise.race([rejection(promise), hang])
  } finally {
    clearTimeout(timer)
  }
}

async function drain(iterable: AsyncIterable<unknown>): Promise<void> {
  for await (const row of iterable) void row
}

describe('pool.stream() of a write whose deferred foreign key fails at the implicit COMMIT', () => {
  it('ended early by its signal: no outcome committed (everything rolled back)', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const ac = new AbortController()
    const run = (async () => {
      for await (const row of pool!.stream('insert into c select g, 999 from generate_series(1, 50) g returning *', [], {
        batchSize: 1,
        signal: ac.signal,
      })) {
        void row
        ac.abort()
      }
    })()
    const error = await rejection(run)
    expect(error.code).toBe('QUERY_CANCELLED')
    expect(error.detail?.outcome).toBeUndefined()
    expect(error.message).not.toMatch(/committed/)
    expect(await count()).toBe(0)
    // the connection is usable
    expect((await pool.query<{ n: number }>('select 1 as n')).rows[0]!.n).toBe(1)
  })

  it.each([1, 10])(
    'read to its end (batchSize %i): rejects with FOREIGN_KEY_VIOLATION, no outcome, connection usable',
    async (batchSize) => {
      pool = poolOn(db.url, { max: 1, min: 0 })
      const error = await settled(drain(pool.stream('insert into c values (900, 999) returning *', [], { batchSize })))
      expect(error).not.toBe('hang')
      expect((error as DatabaseError).code).toBe('FOREIGN_KEY_VIOLATION')
      expect((error as DatabaseError).detail?.outcome).toBeUndefined()
      expect(await count()).toBe(0)
      expect((await pool.query<{ n: number }>('select 1 as n')).rows[0]!.n).toBe(1)
    },
  )

  it('control: a stream ended early whose COMMIT succeeds still says committed', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const ac = new AbortController()
    const run = (async () => {
      for await (const row of pool!.stream('insert into c select g, null from generate_series(101, 150) g returning *', [], {
        batchSize: 1,
        signal: ac.signal,
      })) {
        void row
        ac.abort()
      }
    })()
    const error = await rejection(run)
    expect(error.detail?.outcome).toBe('committed')
    expect(await count()).toBe(50)
  })
})
