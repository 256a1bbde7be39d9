import type { Client } from 'pg'
import { DatabaseError, isOutcomeUnknown, sql, type DatabasePool, type PoolOptions } from '@dbpool/core'
import type { PostgresConnection, PostgresPoolOptions } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, sleep, within, type PgClientInternals } from './helpers'

// A statement whose connection is lost while it is in flight may have committed: the server commits
// an auto-commit statement (or a COMMIT) before it says ReadyForQuery, and a backend whose client
// vanished runs its statement to the end. Such a failure is CONNECTION_LOST with `retryable: false`
// and `detail.outcome: 'unknown'`, so an app that retries on `retryable` does not apply a write twice.
// Statements that cannot have committed (read-only, refused by the server before completing, inside
// a transaction the server rolls back with the session) keep `retryable: true`.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => c.query('create table ledger (id int primary key, note text)'))
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

let nextId = 1
/** A fresh row id per test. */
function newId(): number {
  return nextId++
}

/** A one-connection pool and the pg client of its connection. */
async function onePool(options: PostgresPoolOptions = {}, poolOptions: PoolOptions = {}): Promise<{ client: Client }> {
  const created = poolOn(db.url, { max: 1, min: 0, acquireTimeoutMs: 5_000, ...poolOptions }, options)
  created.on('error', () => undefined)
  pool = created
  const client = await created.withConnection(async (conn) => conn.native.client)
  return { client }
}

/**
 * Swallows the ReadyForQuery that follows the next CommandComplete on `client` and destroys its
 * socket there: the connection is lost after the server reported the statement complete (and, for an
 * auto-commit statement or a COMMIT, committed it), before it said ReadyForQuery.
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

/** Fails unless the loss armed by {@link loseAtCommandComplete} happened. */
async function expectLost(lost: Promise<void> | undefined): Promise<void> {
  expect(lost).toBeDefined()
  expect(await within(lost!, 1_000)).toEqual({ value: undefined })
}

function terminateBackend(client: Client): Promise<unknown> {
  const pid = (client as unknown as PgClientInternals).processID
  return admin(db.url, async (c) => c.query('select pg_terminate_backend($1)', [pid]))
}

/** Waits until the backend of `client` runs a statement containing `fragment`. */
async function running(client: Client, fragment: string): Promise<void> {
  const pid = (client as unknown as PgClientInternals).processID
  await eventually(
    async () =>
      admin(db.url, async (c) => {
        const { rows } = await c.query<{ query: string; state: string }>('select query, state from pg_stat_activity where pid = $1', [pid])
        return rows[0]?.state === 'active' && rows[0].query.includes(fragment)
      }),
    5_000,
    `the statement ${fragment} to run`,
  )
}

async function failure(work: Promise<unknown>): Promise<DatabaseError> {
  const outcome = await within(work, 10_000)
  if (outcome === 'pending') throw new Error('still pending 10 s after its connection died')
  if (!('error' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`)
  if (!DatabaseError.is(outcome.error)) throw new Error(`expected a DatabaseError, got ${String(outcome.error)}`)
  return outcome.error
}

async function rowExists(id: number): Promise<boolean> {
  return admin(db.url, async (c) => (await c.query('select 1 from ledger where id = $1', [id])).rowCount === 1)
}

function expectUnknown(err: DatabaseError): void {
  expect(err.code).toBe('CONNECTION_LOST')
  expect(err.retryable).toBe(false)
  expect(err.detail).toMatchObject({ outcome: 'unknown' })
  expect(isOutcomeUnknown(err)).toBe(true)
  expect(err.message).toMatch(/outcome is unknown, it may have committed; check before running it again/)
}

function expectRetryable(err: DatabaseError): void {
  expect(err.code).toBe('CONNECTION_LOST')
  expect(err.retryable).toBe(true)
  expect(isOutcomeUnknown(err)).toBe(false)
}

describe('a write outside a transaction lost between CommandComplete and ReadyForQuery (it committed)', () => {
  it('pool.query with parameters (a named statement, extended protocol): CONNECTION_LOST, not retryable, outcome unknown; the row is there', async () => {
    const { client } = await onePool()
    const id = newId()
    const lost = loseAtCommandComplete(client)
    const err = await failure(pool!.query(sql`insert into ledger (id, note) values (${id}, ${'auto-commit'})`))
    await expectLost(lost)
    expectUnknown(err)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)

  it('pool.query of a text without parameters (simple protocol, prepare: false)', async () => {
    const { client } = await onePool({ prepare: false })
    const id = newId()
    const lost = loseAtCommandComplete(client)
    const err = await failure(pool!.query(`insert into ledger (id, note) values (${id}, 'simple')`))
    await expectLost(lost)
    expectUnknown(err)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)

  it('conn.query on a held connection with no open transaction', async () => {
    const { client } = await onePool()
    const id = newId()
    const err = await pool!.withConnection(async (conn) => {
      const lost = loseAtCommandComplete(client)
      const error = await failure(conn.query(sql`insert into ledger (id, note) values (${id}, ${'held'})`))
      await expectLost(lost)
      return error
    })
    expectUnknown(err)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)

  it('a statement with a deadline (timeoutMs) lost in the same window', async () => {
    const { client } = await onePool()
    const id = newId()
    const lost = loseAtCommandComplete(client)
    const err = await failure(
      pool!.query(sql`insert into ledger (id, note) values (${id}, ${'deadline'})`, undefined, { timeoutMs: 5_000 }),
    )
    await expectLost(lost)
    expectUnknown(err)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)
})

describe('a COMMIT lost between CommandComplete and ReadyForQuery (it committed)', () => {
  it('transaction(): the rejection is not retryable, outcome unknown, and retry does not replay it; the row is there', async () => {
    const { client } = await onePool()
    const id = newId()
    let attempts = 0
    let lost: Promise<void> | undefined
    const err = await failure(
      pool!.transaction(
        async (tx) => {
          attempts++
          await tx.query(sql`insert into ledger (id, note) values (${id}, ${'in a transaction'})`)
          // the next CommandComplete is the COMMIT's
          lost = loseAtCommandComplete(client)
        },
        { retry: true },
      ),
    )
    await expectLost(lost)
    expectUnknown(err)
    expect(err.message).toContain('while COMMIT was in flight')
    expect(attempts).toBe(1)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)

  it('transaction() with a custom retryOn that accepts CONNECTION_LOST: not replayed (one call, one row), the message says why', async () => {
    const { client } = await onePool()
    const id = newId()
    let attempts = 0
    let lost: Promise<void> | undefined
    const err = await failure(
      pool!.transaction(
        async (tx) => {
          attempts++
          await tx.query(sql`insert into ledger (id, note) values (${id}, ${'custom retryOn'})`)
          if (attempts === 1) lost = loseAtCommandComplete(client)
        },
        { retry: { maxAttempts: 3, baseDelayMs: 0, retryOn: (e) => e.code === 'CONNECTION_LOST' } },
      ),
    )
    await expectLost(lost)
    expect(attempts).toBe(1)
    expectUnknown(err)
    expect(err.detail).toMatchObject({ notReplayed: true })
    expect(err.message).toMatch(/transaction not replayed although transaction\.retry\.retryOn accepted this error/)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)

  it('conn.query("COMMIT") on a held connection after BEGIN', async () => {
    const { client } = await onePool()
    const id = newId()
    const err = await pool!.withConnection(async (conn) => {
      await conn.query('BEGIN')
      await conn.query(sql`insert into ledger (id, note) values (${id}, ${'held transaction'})`)
      const lost = loseAtCommandComplete(client)
      const error = await failure(conn.query('COMMIT'))
      await expectLost(lost)
      return error
    })
    expectUnknown(err)
    expect(await rowExists(id)).toBe(true)
  }, 30_000)
})

describe('statements that did not commit keep retryable: true', () => {
  it('a SELECT lost in the CommandComplete window is retryable', async () => {
    const { client } = await onePool()
    const lost = loseAtCommandComplete(client)
    expectRetryable(await failure(pool!.query(sql`select ${1}::int as n`)))
    await expectLost(lost)
  }, 30_000)

  it('a SELECT whose backend is terminated while it runs is retryable', async () => {
    const { client } = await onePool()
    const sleeping = pool!.query('select pg_sleep(5)')
    sleeping.catch(() => undefined)
    await running(client, 'pg_sleep')
    await terminateBackend(client)
    const terminated = await failure(sleeping)
    expectRetryable(terminated)
    expect(terminated.sqlState).toBe('57P01')
  }, 30_000)

  it('a SELECT whose socket is destroyed mid-flight is retryable', async () => {
    const { client } = await onePool()
    const sleeping = pool!.query('select pg_sleep(5)')
    sleeping.catch(() => undefined)
    await running(client, 'pg_sleep')
    client.connection.stream.destroy()
    expectRetryable(await failure(sleeping))
  }, 30_000)

  it('a write inside a transaction lost before COMMIT is retryable: the server rolled the transaction back', async () => {
    const { client } = await onePool()
    const id = newId()
    let lost: Promise<void> | undefined
    const err = await failure(
      pool!.transaction(async (tx) => {
        lost = loseAtCommandComplete(client)
        await tx.query(sql`insert into ledger (id, note) values (${id}, ${'rolled back'})`)
      }),
    )
    await expectLost(lost)
    expectRetryable(err)
    await sleep(200)
    expect(await rowExists(id)).toBe(false)
  }, 30_000)

  it('an auto-commit write whose backend is terminated while it runs (57P01 before CommandComplete) is retryable: it did not commit', async () => {
    const { client } = await onePool()
    const id = newId()
    const writing = pool!.query(sql`insert into ledger (id, note) select ${id}, 'slow' from pg_sleep(2)`)
    writing.catch(() => undefined)
    await running(client, 'pg_sleep')
    await terminateBackend(client)
    const err = await failure(writing)
    expectRetryable(err)
    expect(err.sqlState).toBe('57P01')
    await sleep(2_500)
    expect(await rowExists(id)).toBe(false)
  }, 30_000)
})

describe('a write outside a transaction whose socket is lost while it runs', () => {
  it('is outcome unknown: the backend runs it to the end and commits it after the client is gone', async () => {
    const { client } = await onePool()
    const id = newId()
    const writing = pool!.query(sql`insert into ledger (id, note) select ${id}, 'orphan' from pg_sleep(1)`)
    writing.catch(() => undefined)
    await running(client, 'pg_sleep')
    client.connection.stream.destroy()
    expectUnknown(await failure(writing))
    // what a retry on `retryable: true` would have doubled
    await eventually(() => rowExists(id), 5_000, 'the orphaned insert to commit')
  }, 30_000)

  it('a deadline that closes the connection of a running write: QUERY_TIMEOUT with outcome unknown', async () => {
    await onePool()
    const id = newId()
    const err = await failure(
      pool!.query(sql`insert into ledger (id, note) select ${id}::int, 'late' from pg_sleep(1)`, undefined, { timeoutMs: 200 }),
    )
    expect(err.code).toBe('QUERY_TIMEOUT')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
  }, 30_000)
})

describe('pool.stream() of a write outside a transaction, lost after its CommandComplete (the cursor sent Sync: it committed)', () => {
  it('INSERT ... RETURNING: CONNECTION_LOST with outcome unknown; the rows are there. A SELECT in the same window stays retryable', async () => {
    const { client } = await onePool()
    const ids = [newId(), newId()]
    const lost = loseAtCommandComplete(client)
    const writing = pool!
      .stream<{ id: number }>(sql`insert into ledger (id, note) select g, 'streamed' from unnest(${ids}::int[]) g returning id`, [], {
        batchSize: 100,
      })
      [Symbol.asyncIterator]()
      .next()
    expectUnknown(await failure(writing))
    await expectLost(lost)
    expect(await rowExists(ids[0]!)).toBe(true)
    expect(await rowExists(ids[1]!)).toBe(true)

    await pool!.close({ timeoutMs: 5_000 })
    const { client: second } = await onePool()
    const lostRead = loseAtCommandComplete(second)
    const reading = pool!.stream('select generate_series(1, 3) as n', [], { batchSize: 100 })[Symbol.asyncIterator]().next()
    expectRetryable(await failure(reading))
    await expectLost(lostRead)
  }, 30_000)
})
