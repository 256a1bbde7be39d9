import { Readable, Writable } from 'node:stream'
import { DatabaseError, PoolFactory, type DatabasePool, type Lane } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// A stream whose consumer stops calling next() (a Readable piped to a client that stopped reading)
// must not keep its connection past its timeoutMs or its signal's abort (found by review): the cursor
// is closed and the lease given back then, not at the next next(), which rejects with the deadline's
// or the abort's error. Both backends; pool.stream on each lane, conn.stream and tx.stream.

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'
const BACKENDS: Backend[] = ['sqlite', 'postgres']

let pgDb: TestDatabase
let file: TempSqlite
const pools: Partial<Record<Backend, DatabasePool>> = {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until `test()` holds, or `boundMs` passed (then false): a bound for a hang, not a speed check. */
async function eventually(test: () => boolean | Promise<boolean>, boundMs = 10_000): Promise<boolean> {
  const until = Date.now() + boundMs
  for (;;) {
    if (await test()) return true
    if (Date.now() > until) return false
    await sleep(20)
  }
}

async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(DatabaseError)
    return err as DatabaseError
  }
  throw new Error('expected a rejection')
}

beforeAll(async () => {
  pgDb = await createTestDatabase()
  file = await createTempSqlite()
  pools.postgres = await PoolFactory.create(pgDb.url, { min: 0, max: 2, name: 'stalled-pg', acquireTimeoutMs: 30_000 })
  pools.sqlite = await PoolFactory.create(file.url, { min: 0, max: 2, name: 'stalled-sqlite', acquireTimeoutMs: 30_000 })
  for (const pool of Object.values(pools)) {
    await pool.query('create table t (id integer primary key, v text)')
    await pool.transaction(async (tx) => {
      for (let i = 1; i <= 200; i++) await tx.query(`insert into t (id, v) values (${i}, 'row ${i}')`)
    })
  }
}, 120_000)

afterAll(async () => {
  for (const pool of Object.values(pools)) await pool.close({ timeoutMs: 5_000 })
  await pgDb?.drop()
  await file?.remove()
})

describe.each(BACKENDS)('%s: a stalled consumer', (backend) => {
  const pool = (): DatabasePool => pools[backend]!
  const idle = (): boolean => pool().stats().used === 0

  it.each<[string, Lane]>([
    ['read', 'read'],
    ['write', 'write'],
  ])(
    'pool.stream on the %s lane: the lease is given back at timeoutMs without another next(), which then rejects QUERY_TIMEOUT',
    async (_, lane) => {
      const it = pool().stream('select id from t order by id', [], { batchSize: 10, timeoutMs: 200, lane })[Symbol.asyncIterator]()
      expect((await it.next()).value).toEqual({ id: 1 })
      expect(pool().stats().used).toBe(1)
      // the consumer stops here: no next() until the connection is back
      expect(await eventually(idle)).toBe(true)
      // the connection is clean: the lane serves others (the SQLite writer too)
      if (lane === 'write') await pool().query("update t set v = 'again' where id = 1")
      expect((await pool().query('select count(*) as n from t', [], { lane })).rows[0]).toEqual({ n: backend === 'postgres' ? 200n : 200 })
      const error = await rejection(it.next())
      expect(error.code).toBe('QUERY_TIMEOUT')
      expect(error.detail?.outcome).toBeUndefined()
      // later calls keep saying why, and give nothing back twice
      expect((await rejection(it.next())).code).toBe('QUERY_TIMEOUT')
      expect(await it.return!()).toEqual({ value: undefined, done: true })
      expect(pool().stats().used).toBe(0)
    },
  )

  it('pool.stream: an abort between two next() calls gives the lease back; the next next() rejects QUERY_CANCELLED', async () => {
    const controller = new AbortController()
    const it = pool().stream('select id from t order by id', [], { batchSize: 10, signal: controller.signal })[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    controller.abort()
    expect(await eventually(idle)).toBe(true)
    expect((await rejection(it.next())).code).toBe('QUERY_CANCELLED')
    expect(pool().stats().used).toBe(0)
  })

  it('Readable.from(pool.stream()) piped to a writer that never reads: the lease is given back at timeoutMs', async () => {
    let written!: () => void
    const reading = new Promise<void>((resolve) => (written = resolve))
    const stalled = new Writable({
      objectMode: true,
      highWaterMark: 1,
      write(): void {
        // never calls back: the client stopped reading
        written()
      },
    })
    const readable = Readable.from(pool().stream('select id, v from t', [], { batchSize: 10, timeoutMs: 300 }))
    readable.pipe(stalled)
    // a row reached the writer: the stream holds its lease, and the Readable stops asking for more
    await reading
    expect(await eventually(idle)).toBe(true)
    readable.destroy()
    stalled.destroy()
    expect((await pool().query('select 1 as one')).rows).toEqual([{ one: 1 }])
  })

  it('conn.stream: the stream is closed at timeoutMs, so the handle runs statements again', async () => {
    await pool().withConnection(async (conn) => {
      const it = conn.stream('select id from t order by id', [], { batchSize: 10, timeoutMs: 200 })[Symbol.asyncIterator]()
      expect((await it.next()).done).toBe(false)
      // refused while the stream is open; accepted once its deadline closed it, with no next() in between
      const free = await eventually(() =>
        conn.query('select 2 as two').then(
          () => true,
          (err: unknown) => {
            if (DatabaseError.is(err, 'QUERY_FAILED') && err.message.includes('a stream is open')) return false
            throw err
          },
        ),
      )
      expect(free).toBe(true)
      expect((await rejection(it.next())).code).toBe('QUERY_TIMEOUT')
    })
    expect(pool().stats().used).toBe(0)
  })

  it('tx.stream: an abort closes the stream on the transaction, which goes on and commits what the callback chose to keep', async () => {
    const id = 1_000
    await pool().transaction(async (tx) => {
      const controller = new AbortController()
      const it = tx.stream('select id from t order by id', [], { batchSize: 10, signal: controller.signal })[Symbol.asyncIterator]()
      expect((await it.next()).done).toBe(false)
      controller.abort()
      const free = await eventually(() =>
        tx.query(`insert into t (id, v) values (${id}, 'kept')`).then(
          () => true,
          (err: unknown) => {
            if (DatabaseError.is(err, 'QUERY_FAILED') && err.message.includes('a stream is open')) return false
            throw err
          },
        ),
      )
      expect(free).toBe(true)
      expect((await rejection(it.next())).code).toBe('QUERY_CANCELLED')
    })
    expect((await pool().query(`select v from t where id = ${id}`)).rows).toEqual([{ v: 'kept' }])
    await pool().query(`delete from t where id = ${id}`)
  })

  it('tx.stream: a deadline error the callback throws rolls the transaction back', async () => {
    const id = 1_001
    const error = await rejection(
      pool().transaction(async (tx) => {
        await tx.query(`insert into t (id, v) values (${id}, 'not kept')`)
        const it = tx.stream('select id from t order by id', [], { batchSize: 10, timeoutMs: 200 })[Symbol.asyncIterator]()
        expect((await it.next()).done).toBe(false)
        await sleep(400)
        await it.next()
      }),
    )
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect((await pool().query(`select count(*) as n from t where id = ${id}`)).rows[0]).toEqual({ n: backend === 'postgres' ? 0n : 0 })
    expect(pool().stats().used).toBe(0)
  })
})
