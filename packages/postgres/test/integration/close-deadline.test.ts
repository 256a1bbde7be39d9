import { DatabaseError, isOutcomeUnknown, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, backends, eventually, poolOn } from './helpers'

// close({ timeoutMs }) while statements still run: at the deadline every revoked busy connection is
// destroyed at once, all of them together. pg's end() in pipeline mode (lone pool.query statements
// share connections that way) waits for every statement on the wire before it says goodbye: before
// the fix close() took cancelTimeoutMs per busy connection, one after another.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, (c) => c.query('create table close_t (id int)'))
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 0 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** How the callers of `statements` end when close({ timeoutMs: 100 }) cuts them. */
async function closeWhileRunning(
  name: string,
  statements: readonly string[],
  run: (p: DatabasePool<PostgresConnection>, text: string, index: number) => Promise<unknown>,
): Promise<{ closedInMs: number; errors: DatabaseError[]; outstanding: number }> {
  // a cancelTimeoutMs far above the close deadline: waiting for it cannot pass as the deadline
  const p = (pool = poolOn(db.url, { max: 3, min: 0, name }, { cancelTimeoutMs: 30_000 }))
  const appName = (await p.query<{ n: string }>('select current_setting($1) as n', ['application_name'])).rows[0]!.n
  const settled = statements.map((text, i) =>
    run(p, text, i).then(
      () => new Error('resolved'),
      (err: unknown) => err as DatabaseError,
    ),
  )
  await eventually(
    async () => (await backends(db.url, appName)).filter((b) => b.state === 'active' && b.query.includes('pg_sleep')).length >= 3,
    10_000,
    'three busy backends',
  )
  const started = Date.now()
  const report = await p.close({ timeoutMs: 100 })
  const closedInMs = Date.now() - started
  return { closedInMs, errors: (await Promise.all(settled)) as DatabaseError[], outstanding: report.outstandingLeases.length }
}

it('lone pool.query writes in flight at the deadline: their connections are destroyed at once, the callers hear commit-unknown', async () => {
  // six writes on three connections: a write joins a shared connection only behind reads, so three
  // run and three wait for a connection
  const writes = Array.from({ length: 6 }, (_, i) => `insert into close_t select ${i} from pg_sleep(20)`)
  const { closedInMs, errors, outstanding } = await closeWhileRunning('close-writes', writes, (p, text) => p.query(text))
  expect(outstanding).toBe(3)
  // bound: far below one cancelTimeoutMs (30 s); before the fix: 3 x 30 s
  expect(closedInMs).toBeLessThan(10_000)
  for (const err of errors) expect(err).toBeInstanceOf(DatabaseError)
  const sent = errors.filter((err) => err.code === 'CONNECTION_LOST')
  expect(sent).toHaveLength(3)
  // written on the wire: it may commit on the server, so the caller must not read it as not done
  for (const err of sent) expect(isOutcomeUnknown(err)).toBe(true)
  // never sent: refused as closed, nothing to wonder about
  const waiting = errors.filter((err) => err.code !== 'CONNECTION_LOST')
  expect(waiting.map((err) => [err.code, isOutcomeUnknown(err)])).toEqual([
    ['POOL_CLOSED', false],
    ['POOL_CLOSED', false],
    ['POOL_CLOSED', false],
  ])
}, 60_000)

it('lone pool.query reads in flight: destroyed at once, CONNECTION_LOST (a read has no unknown outcome)', async () => {
  const reads = Array.from({ length: 3 }, () => 'select pg_sleep(20)')
  const { closedInMs, errors } = await closeWhileRunning('close-reads', reads, (p, text) => p.query(text))
  expect(closedInMs).toBeLessThan(10_000)
  for (const err of errors) {
    expect(err.code).toBe('CONNECTION_LOST')
    expect(isOutcomeUnknown(err)).toBe(false)
  }
}, 60_000)

it('withConnection and transaction callbacks in flight: revoked together (in parallel), not one after another', async () => {
  const texts = ['select pg_sleep(20)', 'select pg_sleep(20)', 'select pg_sleep(20)']
  const { closedInMs, errors, outstanding } = await closeWhileRunning('close-leases', texts, (p, text, i) =>
    i === 0 ? p.withConnection(async (c) => c.query(text)) : p.transaction(async (tx) => tx.query(text)),
  )
  expect(outstanding).toBe(3)
  expect(closedInMs).toBeLessThan(10_000)
  for (const err of errors) expect(err.code).toBe('CONNECTION_LOST')
}, 60_000)
