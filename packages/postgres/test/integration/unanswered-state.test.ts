import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// A transaction state the server never reports (statements issued on a withConnection connection,
// not awaited, on a server that stopped answering: a blackholed TCP proxy) counts as possibly open,
// never as idle: conn.transaction() refuses rather than send BEGIN + COMMIT (which would commit a
// transaction the un-awaited BEGIN opened), and the callback's return rejects rather than resolve.
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

it('conn.transaction() after an un-awaited BEGIN the server never answers is refused (transaction-state-unknown), and so is the return', async () => {
  const target = new URL(db.url)
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
  const blackholed = proxy
  // settledTransactionState waits at most cancelTimeoutMs
  const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'unanswered-state' }, { cancelTimeoutMs: 300 }))
  let inner: unknown
  let ran = false
  const outcome = await p
    .withConnection(async (conn) => {
      await conn.query('select 1')
      blackholed.blackhole()
      void conn.query('BEGIN').catch(() => undefined)
      inner = await conn
        .transaction(async () => {
          ran = true
        })
        .catch((err: unknown) => err)
      return 'resolved'
    })
    .catch((err: unknown) => err)
  expect(ran).toBe(false)
  expect(DatabaseError.is(inner) && { code: inner.code, detail: inner.detail }).toEqual({
    code: 'QUERY_FAILED',
    detail: { reason: 'transaction-state-unknown' },
  })
  expect(DatabaseError.is(outcome) && { code: outcome.code, detail: outcome.detail }).toEqual({
    code: 'TRANSACTION_ROLLED_BACK',
    detail: { reason: 'transaction-state-unknown' },
  })
}, 60_000)
