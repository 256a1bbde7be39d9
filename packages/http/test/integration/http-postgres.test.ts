import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import parsePrometheus from 'parse-prometheus-text-format'
import { PoolFactory, sql, type DatabasePool, type HealthReport } from '@dbpool/core'
import { createHealthHandler, createMetricsRegistry, type ReadinessBody } from '@dbpool/http'
import { createTestDatabase, startTcpProxy, testPostgresUrl, type TestDatabase } from '@dbpool/testing'

const servers: Server[] = []
const pools: DatabasePool<unknown>[] = []
let db: TestDatabase
let admin: DatabasePool<unknown>

async function serve(handler: ReturnType<typeof createHealthHandler>): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function get(url: string, token?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {})
  return { status: res.status, text: await res.text() }
}

async function waitForStatus(url: string, status: number, timeoutMs: number): Promise<{ status: number; text: string; afterMs: number }> {
  const started = Date.now()
  for (;;) {
    const res = await get(url)
    if (res.status === status) return { ...res, afterMs: Date.now() - started }
    if (Date.now() - started > timeoutMs) throw new Error(`still ${res.status} after ${timeoutMs} ms: ${res.text}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

beforeAll(async () => {
  db = await createTestDatabase()
  admin = await PoolFactory.create(await testPostgresUrl(), { min: 0, max: 1, name: 'admin' })
}, 180_000)

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  await Promise.all(pools.map((p) => p.close({ timeoutMs: 5_000 })))
  await admin?.query(sql`alter database ${sql.id(db.name)} allow_connections true`).catch(() => undefined)
  await admin?.close()
  await db?.drop()
}, 60_000)

describe('health handler on Postgres', () => {
  it('turns /ready 503 while the database refuses connections and 200 once it accepts them again', async () => {
    const pool = await PoolFactory.create(db.url, { min: 1, max: 2, name: 'ledger' })
    pools.push(pool)
    const base = await serve(createHealthHandler(pool, { timeoutMs: 2_000, details: true }))
    const ok = await get(`${base}/ready`)
    expect(ok.status).toBe(200)
    expect((JSON.parse(ok.text) as ReadinessBody<HealthReport>).pools.ledger?.backend).toBe('postgres')

    // the database goes away: no new sessions, and the pool's sessions are killed
    await admin.query(sql`alter database ${sql.id(db.name)} allow_connections false`)
    await admin.query(sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db.name} and pid <> pg_backend_pid()`)
    const down = await waitForStatus(`${base}/ready`, 503, 5_000)
    const report = (JSON.parse(down.text) as ReadinessBody<HealthReport>).pools.ledger
    expect(report?.status).toBe('unhealthy')
    expect(report?.checks.find((c) => c.name === 'ping')?.status).toBe('unhealthy')
    expect(down.text).not.toMatch(/password/i)
    expect((await get(`${base}/health`)).status).toBe(200)

    await admin.query(sql`alter database ${sql.id(db.name)} allow_connections true`)
    const back = await waitForStatus(`${base}/ready`, 200, 10_000)
    expect(back.afterMs).toBeLessThan(5_000)
    expect(JSON.parse(back.text).status).toBe('healthy')
  }, 60_000)

  it('tells a stranger statuses only; the bearer token shows target, server version and stats; a wrong one gets 401', async () => {
    const token = 'postgres-integration-token-0123456789'
    const pool = await PoolFactory.create(db.url, { min: 1, max: 2, name: 'orders' })
    pools.push(pool)
    const base = await serve(createHealthHandler(pool, { token }))
    const target = new URL(db.url)
    const [{ version }] = (await pool.query<{ version: string }>("select current_setting('server_version') as version")).rows as [
      { version: string },
    ]

    for (const path of ['/ready', '/health']) {
      const stranger = await get(`${base}${path}`)
      expect(stranger.status).toBe(200)
      for (const secret of [target.hostname, target.port, decodeURIComponent(target.username), version, db.name])
        expect(stranger.text).not.toContain(secret)
    }
    expect(JSON.parse((await get(`${base}/ready`)).text).pools).toEqual({ orders: { status: 'healthy' } })

    const insider = await get(`${base}/ready`, token)
    expect(insider.status).toBe(200)
    const report = (JSON.parse(insider.text) as ReadinessBody<HealthReport>).pools.orders
    expect(report?.target).toContain(`${target.hostname}:${target.port}`)
    expect(report?.stats.max).toBe(2)
    expect(insider.text).toContain(version)
    expect(insider.text).not.toContain(decodeURIComponent(target.password))

    const wrong = await fetch(`${base}/ready`, { headers: { authorization: 'Bearer postgres-integration-token-01234567890' } })
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer /)
    expect(await wrong.text()).not.toContain(version)
  }, 60_000)

  it('answers 503 within the deadline while the network swallows every packet, and 200 after', async () => {
    const target = new URL(db.url)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
    try {
      const pool = await PoolFactory.create(proxy.urlFor(db.url), {
        min: 1,
        max: 2,
        name: 'behind-proxy',
        createTimeoutMs: 1_000,
        validateAfterIdleMs: 0,
      })
      pools.push(pool)
      const base = await serve(createHealthHandler(pool, { timeoutMs: 800 }))
      expect((await get(`${base}/ready`)).status).toBe(200)
      proxy.blackhole()
      const started = Date.now()
      const res = await get(`${base}/ready`)
      const elapsed = Date.now() - started
      expect(res.status).toBe(503)
      expect(elapsed).toBeLessThan(800 + 1_000)
      expect(JSON.parse(res.text).status).toBe('unhealthy')
      proxy.resume()
      proxy.resetAll()
      const back = await waitForStatus(`${base}/ready`, 200, 10_000)
      expect(back.status).toBe(200)
    } finally {
      await proxy.close()
    }
  }, 60_000)

  it('serves the db_client_connection_* series of a Postgres pool recording on the registry', async () => {
    const registry = createMetricsRegistry()
    const pool = await PoolFactory.create(db.url, { min: 1, max: 4, name: 'pg-metrics' }, { backend: { ...registry.poolOptions() } })
    pools.push(pool)
    // leases (not pipelined statements) are what wait_time counts: take 8 of them
    await Promise.all(Array.from({ length: 8 }, (_, i) => pool.withConnection((c) => c.query(sql`select ${i}::int as n, pg_sleep(0.02)`))))
    const base = await serve(createHealthHandler(pool, { metrics: registry }))
    const text = (await get(`${base}/metrics`)).text
    const families = new Map(parsePrometheus(text).map((f) => [f.name, f]))
    const count = families.get('db_client_connection_count')
    expect(count?.type).toBe('GAUGE')
    const states = new Map((count?.metrics ?? []).map((m) => [m.labels?.db_client_connection_state, Number(m.value)]))
    expect((states.get('idle') ?? 0) + (states.get('used') ?? 0)).toBeGreaterThanOrEqual(1)
    expect(Number(families.get('db_client_connection_max')?.metrics[0]?.value)).toBe(4)
    expect(families.get('db_client_connection_wait_time')?.type).toBe('HISTOGRAM')
    const waits = text
      .split('\n')
      .find((l) => l.startsWith('db_client_connection_wait_time_count{') && l.includes('pool_name="pg-metrics"'))
    expect(Number(waits?.split(' ').pop())).toBeGreaterThanOrEqual(8)
    const creates = text
      .split('\n')
      .find((l) => l.startsWith('db_client_connection_create_time_count{') && l.includes('pool_name="pg-metrics"'))
    expect(Number(creates?.split(' ').pop())).toBeGreaterThanOrEqual(2)
    await registry.shutdown()
  }, 60_000)
})
