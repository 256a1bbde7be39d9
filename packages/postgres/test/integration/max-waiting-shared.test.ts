import type { DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// maxWaitingClients 0 ("no caller may wait") on a pool of one connection: right after an awaited
// pool.query(), statement sharing still holds the connection until the next macrotask. The pool is
// idle to the caller, so the next call is served, not refused with POOL_EXHAUSTED.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

it('withConnection, transaction and a statement with a deadline right after an awaited pool.query() are served', async () => {
  const p = (pool = poolOn(db.url, { max: 1, min: 1, maxWaitingClients: 0, name: 'max-waiting-shared' }))
  const calls = [
    () => p.withConnection(async (c) => c.query('select 1')),
    () => p.transaction(async (tx) => tx.query('select 1')),
    () => p.query('select 1', [], { timeoutMs: 1_000 }),
  ]
  for (const call of calls) {
    await p.query('select 1')
    await expect(call()).resolves.toBeDefined()
  }
}, 30_000)

it('two lone pool.query() calls issued in one tick share the idle connection instead of one being refused', async () => {
  const p = (pool = poolOn(db.url, { max: 1, min: 1, maxWaitingClients: 0, name: 'max-waiting-burst' }))
  await p.query('select 1')
  await new Promise((resolve) => setTimeout(resolve, 20)) // the kept connection goes back: one idle connection
  const outcome = (q: Promise<unknown>): Promise<string> =>
    q.then(
      () => 'ok',
      (err: { code?: string }) => err.code ?? 'error',
    )
  expect(await Promise.all([outcome(p.query('select pg_sleep(0.1)')), outcome(p.query('select 2'))])).toEqual(['ok', 'ok'])
}, 30_000)
