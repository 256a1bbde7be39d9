import { DatabaseError, PoolFactory, type DatabasePool } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// A pool call made inside the pool's own transaction() or withConnection() callback waits for the
// connection that callback holds (SQLite's single writer, Postgres max: 1): it failed ACQUIRE_TIMEOUT
// after acquireTimeoutMs with only the pool's counters, which read like a full pool (found by review).
// The message now says what holds every connection of the lane, for how long, and what to do;
// detail.heldBy counts the holders. Both backends.

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'
const BACKENDS: Backend[] = ['sqlite', 'postgres']

let pgDb: TestDatabase
let file: TempSqlite
const pools: DatabasePool[] = []

async function open(backend: Backend, max: number, name: string): Promise<DatabasePool> {
  const url = backend === 'postgres' ? pgDb.url : file.url
  // a short acquireTimeoutMs: the waits below are self-deadlocks that end only at it
  const pool = await PoolFactory.create(url, { min: 0, max, name, acquireTimeoutMs: 400 })
  pools.push(pool)
  return pool
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
  const setup = await PoolFactory.create(pgDb.url, { min: 0, max: 1, name: 'holders-setup-pg' })
  await setup.query('create table t (id integer primary key, v text)')
  await setup.close()
  const lite = await PoolFactory.create(file.url, { min: 0, max: 1, name: 'holders-setup-sqlite' })
  await lite.query('create table t (id integer primary key, v text)')
  await lite.close()
}, 120_000)

afterAll(async () => {
  for (const pool of pools) await pool.close({ timeoutMs: 5_000 })
  await pgDb?.drop()
  await file?.remove()
})

describe.each(BACKENDS)('%s: ACQUIRE_TIMEOUT names what holds the connections', (backend) => {
  const subject = backend === 'sqlite' ? 'the writer' : 'its only connection'

  it('a write through the pool inside its own transaction: held by a transaction, for how long, use the tx', async () => {
    const pool = await open(backend, 1, `holders-tx-${backend}`)
    let inner: DatabaseError | undefined
    await pool.transaction(async (tx) => {
      await tx.query("insert into t (id, v) values (1, 'tx')")
      inner = await rejection(pool.query("insert into t (id, v) values (2, 'pool')"))
    })
    expect(inner!.code).toBe('ACQUIRE_TIMEOUT')
    expect(inner!.message).toContain(`${subject} has been held by a transaction for `)
    expect(inner!.message).toContain("if this call was made inside that transaction's callback it waits for itself (a self-deadlock")
    expect(inner!.message).toContain("use the callback's tx, not the pool; else another caller's transaction holds it")
    expect(inner!.detail).toMatchObject({ heldBy: { transaction: 1, withConnection: 0, other: 0 } })
    expect(inner!.detail?.heldForMs).toEqual(expect.any(Number))
    // the transaction went on and committed; nothing of the refused call ran
    expect((await pool.query('select id from t order by id')).rows).toEqual([{ id: 1 }])
    await pool.query('delete from t')
  })

  it("the statement's own timeoutMs passing while it waits says the same", async () => {
    const pool = await open(backend, 1, `holders-deadline-${backend}`)
    await pool.transaction(async (tx) => {
      await tx.query('select 1')
      const inner = await rejection(pool.query("insert into t (id, v) values (3, 'pool')", [], { timeoutMs: 200 }))
      expect(inner.code).toBe('ACQUIRE_TIMEOUT')
      expect(inner.message).toContain("no connection within the statement's timeoutMs (200 ms)")
      expect(inner.message).toContain(`${subject} has been held by a transaction for `)
      expect(inner.detail).toMatchObject({ timeoutMs: 200, heldBy: { transaction: 1, withConnection: 0, other: 0 } })
    })
  })

  it('inside a withConnection() callback: held by a held connection, use the callback conn if inside it', async () => {
    const pool = await open(backend, 1, `holders-conn-${backend}`)
    const inner = await pool.withConnection(
      async (conn) => {
        await conn.query('select 1')
        return rejection(pool.query("insert into t (id, v) values (4, 'pool')"))
      },
      { lane: 'write' },
    )
    expect(inner.code).toBe('ACQUIRE_TIMEOUT')
    expect(inner.message).toContain(`${subject} has been held for `)
    expect(inner.message).toContain('by a held connection (a withConnection() callback, a Kysely statement or a Migrator run)')
    expect(inner.message).toContain('if this call was made inside a withConnection() callback it waits for itself')
    expect(inner.message).toContain("use the callback's conn, not the pool")
    expect(inner.detail).toMatchObject({ heldBy: { transaction: 0, withConnection: 1, other: 0 } })
  })
})

describe('sqlite: another caller, not inside any callback, waits for a transaction', () => {
  it('is told the self-deadlock only as a condition, and that another caller may hold the writer', async () => {
    const pool = await open('sqlite', 1, 'holders-unrelated')
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let holding!: () => void
    const held = new Promise<void>((resolve) => (holding = resolve))
    // caller A: a batch job holding the writer in its transaction
    const a = pool.transaction(async (tx) => {
      await tx.query("insert into t (id, v) values (10, 'a')")
      holding()
      await gate
    })
    await held
    // caller B: a plain write, inside no callback
    const b = await rejection(pool.query("insert into t (id, v) values (11, 'b')"))
    release()
    await a
    expect(b.code).toBe('ACQUIRE_TIMEOUT')
    expect(b.message).toContain('the writer has been held by a transaction for ')
    expect(b.message).toContain("if this call was made inside that transaction's callback")
    expect(b.message).toContain("else another caller's transaction holds it longer than acquireTimeoutMs")
    expect(b.message).not.toMatch(/a pool call made inside that transaction's callback waits for the connection its own callback holds/)
    await pool.query('delete from t')
  })
})

describe('postgres: several connections, every one held', () => {
  it('names how many each kind holds; with a connection free the call runs', async () => {
    const pool = await open('postgres', 2, 'holders-two')
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let holding!: () => void
    const held = new Promise<void>((resolve) => (holding = resolve))
    const other = pool.transaction(async (tx) => {
      await tx.query('select 1')
      holding()
      await gate
    })
    await held
    let inner: DatabaseError | undefined
    await pool.transaction(async (tx) => {
      await tx.query('select 1')
      inner = await rejection(pool.query('select 2'))
    })
    release()
    await other
    expect(inner!.code).toBe('ACQUIRE_TIMEOUT')
    expect(inner!.message).toContain('all 2 connections are held (2 by transactions), the longest for ')
    expect(inner!.detail).toMatchObject({ heldBy: { transaction: 2, withConnection: 0, other: 0 } })
    // a connection free: no wait, no hint
    await pool.transaction(async () => {
      expect((await pool.query<{ n: number }>('select 3 as n')).rows).toEqual([{ n: 3 }])
    })
  })
})
