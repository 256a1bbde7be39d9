import type { Client } from 'pg'
import { DatabaseError, isOutcomeUnknown, sql, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@dbpool/testing'
import { admin, eventually, poolOn, within, type PgClientInternals } from './helpers'

// A server that waits for a synchronous standby that never answers (synchronous_standby_names names
// one that does not exist): every commit is written locally, then waits. pg_terminate_backend during
// that wait sends a WARNING ("The transaction has already committed locally, but might not have been
// replicated to the standby") and closes the session without an ErrorResponse: the commit stands. So
// the statement must fail with its outcome unknown, never retryable. A dedicated server: the setting
// would make every commit of the shared one wait.
let server: EmbeddedPostgresServer
let pool: DatabasePool<PostgresConnection> | undefined

/** A client whose commits do not wait for the missing standby. */
async function local<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  return admin(server.url, async (c) => {
    await c.query('set synchronous_commit = local')
    return fn(c)
  })
}

beforeAll(async () => {
  server = await startEmbeddedPostgres({
    postgresFlags: ['-c', 'synchronous_standby_names=no_such_standby', '-c', 'synchronous_commit=on'],
  })
  await local((c) => c.query('create table ledger (id int primary key)'))
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await server?.stop()
}, 60_000)

async function backendOf(p: DatabasePool<PostgresConnection>): Promise<number> {
  return p.withConnection(async (conn) => (conn.native.client as unknown as PgClientInternals).processID)
}

/** Waits until `pid` waits for synchronous replication, then terminates it. */
async function terminateInSyncRepWait(pid: number): Promise<void> {
  await eventually(
    () =>
      local(async (c) => (await c.query("select 1 from pg_stat_activity where pid = $1 and wait_event = 'SyncRep'", [pid])).rowCount === 1),
    10_000,
    'the statement to wait for the standby',
  )
  await local((c) => c.query('select pg_terminate_backend($1)', [pid]))
}

async function rowExists(id: number): Promise<boolean> {
  return local(async (c) => (await c.query('select 1 from ledger where id = $1', [id])).rowCount === 1)
}

async function failure(work: Promise<unknown>): Promise<DatabaseError> {
  const outcome = await within(work, 10_000)
  if (outcome === 'pending' || !('error' in outcome) || !DatabaseError.is(outcome.error))
    throw new Error(`expected a DatabaseError, got ${JSON.stringify(outcome)}`)
  return outcome.error
}

describe('terminated while waiting for synchronous replication (committed locally)', () => {
  it('an auto-commit INSERT: CONNECTION_LOST, not retryable, outcome unknown; the row is there', async () => {
    pool = poolOn(server.url, { max: 1, min: 0 })
    pool.on('error', () => undefined)
    const pid = await backendOf(pool)
    const writing = pool.query(sql`insert into ledger (id) values (${1})`)
    writing.catch(() => undefined)
    await terminateInSyncRepWait(pid)
    const err = await failure(writing)
    expect(err.code).toBe('CONNECTION_LOST')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
    await eventually(() => rowExists(1), 5_000, 'the locally committed row')
  }, 60_000)

  it('the COMMIT of transaction(): not retryable, outcome unknown; the row is there', async () => {
    pool = poolOn(server.url, { max: 1, min: 0 })
    pool.on('error', () => undefined)
    const pid = await backendOf(pool)
    const writing = pool.transaction(async (tx) => {
      await tx.query(sql`insert into ledger (id) values (${2})`)
    })
    writing.catch(() => undefined)
    await terminateInSyncRepWait(pid)
    const err = await failure(writing)
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
    await eventually(() => rowExists(2), 5_000, 'the locally committed row')
  }, 60_000)
})
