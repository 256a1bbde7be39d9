import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import parsePrometheus from 'parse-prometheus-text-format'
import { PoolFactory, PoolManager, type DatabasePool, type HealthReport } from '@dbpool/core'
import { createHealthHandler, createMetricsRegistry, type ReadinessBody } from '@dbpool/http'
import { createSqlitePool } from '@dbpool/sqlite'

const dir = mkdtempSync(join(tmpdir(), 'dbpool-http-sqlite-'))
const servers: Server[] = []
const pools: DatabasePool<unknown>[] = []

async function serve(handler: ReturnType<typeof createHealthHandler>): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url)
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

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  await Promise.all(pools.map((p) => p.close({ timeoutMs: 5_000 })))
  rmSync(dir, { recursive: true, force: true })
})

describe('health handler on SQLite', () => {
  it('turns /ready 503 when the database file is replaced by a broken one, and 200 when it is restored', async () => {
    const path = join(dir, 'app.db')
    const seed = await PoolFactory.create(`sqlite:${path}`, { min: 0, max: 1, name: 'seed' })
    await seed.query('create table notes (id integer primary key, body text)')
    await seed.query("insert into notes (body) values ('kept')")
    await seed.close()
    const saved = join(dir, 'saved.db')
    copyFileSync(path, saved)

    // connections are retired after 300 ms, so the pool has to reopen the file to stay healthy
    const pool = await PoolFactory.create(
      `sqlite:${path}`,
      { min: 1, max: 1, name: 'app', maxLifetimeMs: 300, maxLifetimeJitter: 0 },
      { backend: { createIfMissing: false } },
    )
    pools.push(pool)
    const base = await serve(createHealthHandler(pool, { timeoutMs: 1_000, details: true }))
    const ok = await get(`${base}/ready`)
    expect(ok.status).toBe(200)
    const body = JSON.parse(ok.text) as ReadinessBody<HealthReport>
    expect(body.pools.app?.backend).toBe('sqlite')
    expect(body.pools.app?.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['ping', 'saturation']))

    // the file is swapped for one that is not a database (a bad restore, a clobbered volume)
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
    writeFileSync(path, 'this is not a SQLite database\n'.repeat(200))
    const down = await waitForStatus(`${base}/ready`, 503, 5_000)
    expect(down.afterMs).toBeLessThan(2_000)
    const report = (JSON.parse(down.text) as ReadinessBody<HealthReport>).pools.app
    expect(report?.status).toBe('unhealthy')
    expect(report?.checks[0]).toMatchObject({ name: 'ping', status: 'unhealthy', data: { code: expect.any(String) } })
    // liveness does not touch the database: the process is fine, only the database is not
    expect((await get(`${base}/health`)).status).toBe(200)

    rmSync(path)
    copyFileSync(saved, path)
    const back = await waitForStatus(`${base}/ready`, 200, 5_000)
    expect(back.afterMs).toBeLessThan(2_000)
    expect(existsSync(path)).toBe(true)
    expect((await pool.query<{ body: string }>('select body from notes')).rows).toEqual([{ body: 'kept' }])
  }, 30_000)

  it('answers 503 on /health and /ready for a closed pool of a manager, 200 for the others', async () => {
    const a = await PoolFactory.create(`sqlite:${join(dir, 'a.db')}`, { min: 0, max: 1, name: 'a' })
    const b = await PoolFactory.create(`sqlite:${join(dir, 'b.db')}`, { min: 0, max: 1, name: 'b' })
    pools.push(a, b)
    const base = await serve(createHealthHandler(new PoolManager().add('a', a).add('b', b)))
    expect((await get(`${base}/health`)).status).toBe(200)
    expect((await get(`${base}/ready`)).status).toBe(200)
    await b.close()
    const live = await get(`${base}/health`)
    expect(live.status).toBe(503)
    expect(JSON.parse(live.text)).toEqual({ status: 'closed', pools: { a: 'open', b: 'closed' } })
    const ready = await get(`${base}/ready`)
    expect(ready.status).toBe(503)
    const body = JSON.parse(ready.text) as ReadinessBody
    expect([body.pools.a?.status, body.pools.b?.status]).toEqual(['healthy', 'unhealthy'])
  }, 30_000)

  it('tells a stranger statuses only, and the holder of the bearer token the file, stats and checks', async () => {
    const token = 'sqlite-integration-token-0123456789'
    const path = join(dir, 'private-name.db')
    const pool = await PoolFactory.create(`sqlite:${path}`, { min: 1, max: 1, name: 'notes' })
    pools.push(pool)
    const base = await serve(createHealthHandler(pool, { token }))

    const stranger = await get(`${base}/ready`)
    expect(stranger.status).toBe(200)
    expect(JSON.parse(stranger.text)).toEqual({ status: 'healthy', checkedAt: expect.any(String), pools: { notes: { status: 'healthy' } } })
    expect(stranger.text).not.toContain('private-name')

    const res = await fetch(`${base}/ready`, { headers: { authorization: `Bearer ${token}` } })
    const insider = (await res.json()) as ReadinessBody<HealthReport>
    expect(res.status).toBe(200)
    expect(insider.pools.notes).toMatchObject({ backend: 'sqlite', status: 'healthy', stats: expect.any(Object) })
    expect(insider.pools.notes?.target).toContain('private-name.db')

    const wrong = await fetch(`${base}/ready`, { headers: { authorization: `Bearer ${token.toUpperCase()}` } })
    expect(wrong.status).toBe(401)
    expect(await wrong.text()).not.toContain('private-name')
  }, 30_000)

  it('serves /metrics with the db_client_connection_* series of real pools', async () => {
    const registry = createMetricsRegistry()
    const recorded = createSqlitePool(join(dir, 'metrics.db'), { min: 1, max: 1, name: 'recorded' }, { readers: 2 }, registry.poolOptions())
    // a pool built by the factory records on the global meter, not on this registry: its gauges are observed
    const observed = await PoolFactory.create(`sqlite:${join(dir, 'observed.db')}`, { min: 0, max: 1, name: 'observed' })
    pools.push(recorded as unknown as DatabasePool<unknown>, observed)
    await recorded.query('create table t (id integer primary key)')
    // transactions lease the writer (single statements on SQLite may skip the lease)
    await Promise.all(Array.from({ length: 10 }, (_, i) => recorded.transaction((tx) => tx.query('insert into t (id) values (?)', [i]))))
    await recorded.query('select count(*) from t')
    const base = await serve(
      createHealthHandler(new PoolManager().add('recorded', recorded as unknown as DatabasePool<unknown>).add('observed', observed), {
        metrics: registry,
      }),
    )
    const text = (await get(`${base}/metrics`)).text
    const families = new Map(parsePrometheus(text).map((f) => [f.name, f]))
    for (const name of [
      'db_client_connection_count',
      'db_client_connection_max',
      'db_client_connection_idle_max',
      'db_client_connection_idle_min',
      'db_client_connection_pending_requests',
    ]) {
      expect(families.get(name)?.type).toBe('GAUGE')
    }
    for (const name of ['db_client_connection_create_time', 'db_client_connection_wait_time', 'db_client_connection_use_time']) {
      expect(families.get(name)?.type).toBe('HISTOGRAM')
    }
    const max = new Map(
      (families.get('db_client_connection_max')?.metrics ?? []).map((m) => [m.labels?.db_client_connection_pool_name, Number(m.value)]),
    )
    // one writer plus two readers
    expect(max.get('recorded')).toBe(3)
    expect(max.get('observed')).toBe(3)
    const waitCount = text
      .split('\n')
      .find((l) => l.startsWith('db_client_connection_wait_time_count{') && l.includes('pool_name="recorded"'))
    expect(Number(waitCount?.split(' ').pop())).toBeGreaterThanOrEqual(10)
    await registry.shutdown()
  }, 30_000)
})

describe('/metrics of closed pools and same-named pools (SQLite)', () => {
  function gauge(text: string, metric: string, pool: string, state?: string): string | undefined {
    const labels = `db_client_connection_pool_name="${pool}"${state ? `,db_client_connection_state="${state}"` : ''}`
    const line = text.split('\n').find((l) => l.startsWith(`${metric}{${labels}`))
    return line?.slice(line.lastIndexOf(' ') + 1)
  }

  it('a closed pool that recorded on the registry reads its final state (zero connections), not its last scrape', async () => {
    const registry = createMetricsRegistry({ withoutScopeInfo: true })
    const pool = createSqlitePool(join(dir, 'metrics-closed.db'), { name: 'closing' }, {}, registry.poolOptions())
    const base = await serve(createHealthHandler(pool, { metrics: registry }))
    try {
      let held = ''
      await pool.withConnection(async () => {
        held = (await get(`${base}/metrics`)).text
      })
      expect(gauge(held, 'db_client_connection_count', 'closing', 'used')).toBe('1')
      await pool.close()
      const after = (await get(`${base}/metrics`)).text
      expect(gauge(after, 'db_client_connection_count', 'closing', 'used')).toBe('0')
      expect(gauge(after, 'db_client_connection_count', 'closing', 'idle')).toBe('0')
      expect(gauge(after, 'db_client_connection_pending_requests', 'closing')).toBe('0')
      expect(gauge(after, 'db_client_connection_max', 'closing')).toBe(String(pool.stats().max))
    } finally {
      await pool.close()
      await registry.shutdown()
    }
  })

  it('a pool observed by the registry (not recording on it), closed and rebuilt under its name: the new pool takes the series over', async () => {
    const registry = createMetricsRegistry({ withoutScopeInfo: true })
    // the pools record on their own meter (no SDK): the registry observes them at scrape time
    const old = createSqlitePool(join(dir, 'rebuilt.db'), { name: 'rebuilt', max: 3 }, { readers: 3 })
    const first = await serve(createHealthHandler(old, { metrics: registry }))
    expect(gauge((await get(`${first}/metrics`)).text, 'db_client_connection_max', 'rebuilt')).toBe(String(old.stats().max))
    await old.close()
    // scraped once closed: its series read its final state and stay exported
    expect(gauge((await get(`${first}/metrics`)).text, 'db_client_connection_count', 'rebuilt', 'used')).toBe('0')
    const fresh = createSqlitePool(join(dir, 'rebuilt.db'), { name: 'rebuilt', max: 6 }, { readers: 6 })
    const second = await serve(createHealthHandler(fresh, { metrics: registry }))
    try {
      expect(fresh.stats().max).not.toBe(old.stats().max)
      let held = ''
      await fresh.withConnection(async () => {
        held = (await get(`${second}/metrics`)).text
      })
      expect(gauge(held, 'db_client_connection_max', 'rebuilt')).toBe(String(fresh.stats().max))
      expect(gauge(held, 'db_client_connection_count', 'rebuilt', 'used')).toBe('1')
    } finally {
      await fresh.close()
      await registry.shutdown()
    }
  })

  it('two open pools with one name: a warning, one pool per series (never a mix), the second after the first closes', async () => {
    const registry = createMetricsRegistry({ withoutScopeInfo: true })
    const warnings: unknown[] = []
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation((...args: unknown[]) => void warnings.push(args))
    const a = createSqlitePool(join(dir, 'same-a.db'), { name: 'same' }, { readers: 1 }, registry.poolOptions())
    const b = createSqlitePool(join(dir, 'same-b.db'), { name: 'same' }, { readers: 4 }, registry.poolOptions())
    try {
      expect(warnings).toEqual([[expect.stringMatching(/two open pools named "same"/), { code: 'DBPOOL_DUPLICATE_POOL_NAME' }]])
      const base = await serve(createHealthHandler(new PoolManager().add('a', a).add('b', b), { metrics: registry }))
      expect(gauge((await get(`${base}/metrics`)).text, 'db_client_connection_max', 'same')).toBe('2')
      await a.close()
      expect(gauge((await get(`${base}/metrics`)).text, 'db_client_connection_max', 'same')).toBe('5')
    } finally {
      spy.mockRestore()
      await a.close()
      await b.close()
      await registry.shutdown()
    }
  })
})
