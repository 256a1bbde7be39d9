import { HealthChecker, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, rejection, sleep } from './helpers'

// A health probe's timeoutMs bounds its wait for a connection too: at its deadline it leaves the
// queue (ACQUIRE_TIMEOUT), so timed-out probes leave no waiter behind to count against
// maxWaitingClients or to be served before the application's calls (review h2/h3/h4).
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

describe('Postgres health probes at their deadline', () => {
  it('with every connection held: ping, backendChecks and HealthChecker leave the queue at their deadline; the app query is not refused', async () => {
    pool = poolOn(db.url, { max: 1, min: 0, acquireTimeoutMs: 20_000, maxWaitingClients: 2, name: 'probe' })
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const holder = pool.withConnection(async (conn) => {
      await conn.query('select 1')
      await held
    })
    // the connect may take longer than a fixed pause on a loaded machine
    await eventually(() => pool!.stats().used === 1, 10_000, 'the holder to lease the only connection')

    const ping = await rejection(pool.ping(50))
    expect(ping.code).toBe('ACQUIRE_TIMEOUT')
    expect(pool.stats().pending).toBe(0)
    const checks = await rejection(pool.backendChecks({ timeoutMs: 50 }))
    expect(checks.code).toBe('ACQUIRE_TIMEOUT')
    expect(pool.stats().pending).toBe(0)

    const checker = new HealthChecker({ timeoutMs: 50 })
    for (let i = 0; i < 3; i++) {
      const report = await checker.check(pool)
      // busy, not down: degraded (it was unhealthy, 503); the probe left the queue before the report
      expect(report.status).toBe('degraded')
      expect(report.checks[0]).toMatchObject({ name: 'saturation', data: { code: 'ACQUIRE_TIMEOUT' } })
      expect(pool.stats().pending).toBe(0)
    }

    // maxWaitingClients 2: abandoned probes would have filled it (POOL_EXHAUSTED)
    const app = pool.query<{ one: number }>('select 1 as one')
    await sleep(10)
    expect(pool.stats().pending).toBe(1)
    release()
    await holder
    expect((await app).rows).toEqual([{ one: 1 }])
    // and a probe that gets its connection in time is healthy
    expect((await new HealthChecker({ timeoutMs: 2_000 }).check(pool)).status).toBe('healthy')
  })
})

// review r13 D12: postgres.connections counted every pg_stat_activity row, the server's background
// processes (checkpointer, walwriter, autovacuum launcher...) too, which take no max_connections slot
it('postgres.connections counts client sessions only, not the server background processes', async () => {
  pool = poolOn(db.url, { max: 1, name: 'connections-check' })
  const report = await new HealthChecker({ timeoutMs: 5_000 }).check(pool)
  const check = report.checks.find((c) => c.name === 'postgres.connections')
  const used = (check?.data as { used: number }).used
  const { rows } = await pool.query<{ clients: number; background: number }>(
    "select count(*) filter (where backend_type = 'client backend')::int as clients, count(*) filter (where backend_type <> 'client backend')::int as background from pg_stat_activity",
  )
  const { clients, background } = rows[0]!
  expect(background).toBeGreaterThanOrEqual(4)
  expect(used).toBeGreaterThanOrEqual(1)
  // other test files' sessions come and go in between: a small tolerance, well below the background count
  expect(used).toBeLessThanOrEqual(clients + 2)
})
