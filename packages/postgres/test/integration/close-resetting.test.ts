import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// close() at its deadline with a connection released but still resetting: a withConnection callback
// returned inside a transaction it began, and the release's ROLLBACK hangs on a server that stopped
// answering (a blackholed TCP proxy). The lease was marked released before the reset, so close()
// neither revoked nor destroyed the connection: it returned with the socket open, and the caller
// settled only at cancelTimeoutMs.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let proxy: TcpProxy | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 0 })
  pool = undefined
  await proxy?.close()
  proxy = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

it('a connection whose release reset (ROLLBACK) hangs is drained by close() and destroyed at its deadline: its caller settles before close() returns', async () => {
  const target = new URL(db.url)
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
  const blackholed = proxy
  // a cancelTimeoutMs far above the close deadline: the caller settling at it cannot pass for the fix
  const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'close-resetting' }, { cancelTimeoutMs: 30_000 }))
  let settled: unknown
  const caller = p
    .withConnection(async (conn) => {
      await conn.query('BEGIN')
      blackholed.blackhole()
      return 'returned inside BEGIN'
    })
    .then(
      (value) => (settled = value),
      (err: unknown) => (settled = err),
    )
  // the release's ROLLBACK is on the wire, unanswered
  await new Promise((resolve) => setTimeout(resolve, 100))
  expect(settled).toBeUndefined()
  const report = await p.close({ timeoutMs: 300 })
  expect(report.timedOut).toBe(true)
  await new Promise((resolve) => setImmediate(resolve))
  // settled with close(), not 30 s later: the connection was destroyed at the deadline
  expect(DatabaseError.is(settled) && settled.code).toBe('TRANSACTION_ROLLED_BACK')
  expect(p.stats()).toMatchObject({ size: 0, used: 0 })
  await caller
}, 60_000)
