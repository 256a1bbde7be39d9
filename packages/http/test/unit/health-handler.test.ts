import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import parsePrometheus from 'parse-prometheus-text-format'
import { DatabaseError, DatabasePool, PoolManager, type HealthReport } from '@dbpool/core'
import { createHealthHandler, createMetricsRegistry, type HealthHandlerOptions, type ReadinessBody } from '@dbpool/http'
import { FakeConnectionManager, type FakeConnection } from '@dbpool/core/testing'

const pools: DatabasePool<FakeConnection>[] = []
const servers: Server[] = []

function fakePool(
  name = 'main',
  managerOptions: ConstructorParameters<typeof FakeConnectionManager>[0] = {},
): { pool: DatabasePool<FakeConnection>; manager: FakeConnectionManager } {
  const manager = new FakeConnectionManager(managerOptions)
  const pool = new DatabasePool(manager, { name, min: 0, max: 2 })
  pools.push(pool)
  return { pool, manager }
}

async function serve<C>(target: DatabasePool<C> | PoolManager, options?: HealthHandlerOptions): Promise<string> {
  const server = createServer(createHealthHandler(target, options))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function get(url: string, init?: RequestInit): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, init)
  return { status: res.status, text: await res.text(), headers: res.headers }
}

/** `DatabasePool<C>` is invariant in C; PoolManager takes `DatabasePool<unknown>`. */
function anyPool<C>(pool: DatabasePool<C>): DatabasePool<unknown> {
  return pool as unknown as DatabasePool<unknown>
}

/** The value of one sample line: `name{...pool_name="pool"...[,le="le"]...} value`. */
function sample(text: string, name: string, pool: string, le?: string): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) || !line.includes(`db_client_connection_pool_name="${pool}"`)) continue
    if (le !== undefined && !line.includes(`le="${le}"`)) continue
    return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return undefined
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))))
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 1_000 })))
})

describe('createHealthHandler: /health', () => {
  it('answers 200 while the pool is open and 503 once it is closed, without touching the database', async () => {
    const { pool, manager } = fakePool()
    const base = await serve(pool)
    const open = await get(`${base}/health`)
    expect(open.status).toBe(200)
    expect(JSON.parse(open.text)).toEqual({ status: 'ok', pools: { main: 'open' } })
    expect(open.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(open.headers.get('cache-control')).toBe('no-store')
    expect(manager.pings).toBe(0)
    await pool.close()
    const closed = await get(`${base}/health`)
    expect(closed.status).toBe(503)
    expect(JSON.parse(closed.text)).toEqual({ status: 'closed', pools: { main: 'closed' } })
  })
})

describe('createHealthHandler: /ready', () => {
  it('answers 200 with the report when healthy, 503 when the database fails, and 200 again once it is back', async () => {
    const { pool, manager } = fakePool()
    const base = await serve(pool, { timeoutMs: 500, details: true })
    const ok = await get(`${base}/ready`)
    expect(ok.status).toBe(200)
    const body = JSON.parse(ok.text) as ReadinessBody<HealthReport>
    expect(body.status).toBe('healthy')
    expect(body.pools.main?.status).toBe('healthy')
    expect(body.pools.main?.checks.map((c) => c.name)).toContain('ping')
    expect(Number.isNaN(Date.parse(body.checkedAt))).toBe(false)

    // the database goes away: live connections die and new ones cannot be made
    manager.connectFault = {
      kind: 'fail',
      error: new DatabaseError('CONNECTION_FAILED', 'connect ECONNREFUSED 127.0.0.1:5432', { backend: 'postgres' }),
    }
    for (const conn of manager.open) manager.kill(conn)
    const down = await get(`${base}/ready`)
    expect(down.status).toBe(503)
    const downBody = JSON.parse(down.text) as ReadinessBody<HealthReport>
    expect(downBody.status).toBe('unhealthy')
    expect(downBody.pools.main?.checks[0]).toMatchObject({ name: 'ping', status: 'unhealthy', data: { code: 'CONNECTION_FAILED' } })

    manager.connectFault = undefined
    const back = await get(`${base}/ready`)
    expect(back.status).toBe(200)
  })

  it('answers 200 when degraded (slow ping)', async () => {
    const { pool } = fakePool('slow', { connectDelayMs: 30 })
    const base = await serve(pool, { health: { slowPingMs: 5 } })
    const res = await get(`${base}/ready`)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text).status).toBe('degraded')
  })

  it('answers 503 within the timeout when the database hangs', async () => {
    const { pool, manager } = fakePool()
    manager.pingFault = { kind: 'hang' }
    manager.connectFault = { kind: 'hang' }
    const base = await serve(pool, { timeoutMs: 200, details: true })
    const started = Date.now()
    const res = await get(`${base}/ready`)
    const elapsed = Date.now() - started
    manager.releaseHangs()
    expect(res.status).toBe(503)
    expect(elapsed).toBeLessThan(1_000)
    expect(res.text).toMatch(/did not finish within 200 ms/)
  })

  it('shares one check between concurrent probes', async () => {
    const { pool, manager } = fakePool('main', { connectDelayMs: 50 })
    const base = await serve(pool)
    const results = await Promise.all([get(`${base}/ready`), get(`${base}/ready`), get(`${base}/ready`)])
    expect(results.map((r) => r.status)).toEqual([200, 200, 200])
    expect(manager.connectAttempts).toBe(1)
    await get(`${base}/ready`)
    expect(manager.connectAttempts).toBe(1)
  })

  it('never shows a password from an error message', async () => {
    const { pool, manager } = fakePool()
    manager.connectFault = {
      kind: 'fail',
      error: new DatabaseError('CONNECTION_FAILED', 'cannot reach postgres://app:s3cret-pw@db:5432/ledger'),
    }
    const base = await serve(pool, { details: true })
    const res = await get(`${base}/ready`)
    expect(res.status).toBe(503)
    expect(res.text).not.toContain('s3cret-pw')
    expect(res.text).toContain('postgres://app:[REDACTED]@db:5432/ledger')
  })

  it('reports every pool of a manager; the worst status wins', async () => {
    const a = fakePool('primary')
    const b = fakePool('replica')
    const manager = new PoolManager().add('primary', anyPool(a.pool)).add('replica', anyPool(b.pool))
    const base = await serve(manager)
    expect((await get(`${base}/ready`)).status).toBe(200)
    b.manager.connectFault = { kind: 'fail', error: new DatabaseError('CONNECTION_FAILED', 'refused') }
    for (const conn of b.manager.open) b.manager.kill(conn)
    const res = await get(`${base}/ready`)
    expect(res.status).toBe(503)
    const body = JSON.parse(res.text) as ReadinessBody
    expect(Object.keys(body.pools)).toEqual(['primary', 'replica'])
    expect(body.pools.primary?.status).toBe('healthy')
    expect(body.pools.replica?.status).toBe('unhealthy')
    const live = await get(`${base}/health`)
    expect(JSON.parse(live.text)).toEqual({ status: 'ok', pools: { primary: 'open', replica: 'open' } })
  })

  it('answers 503 for a closed pool', async () => {
    const { pool } = fakePool()
    await pool.close()
    const base = await serve(pool, { details: true })
    const res = await get(`${base}/ready`)
    expect(res.status).toBe(503)
    expect(JSON.parse(res.text).pools.main.checks[0].message).toBe('pool is closed')
  })
})

describe('createHealthHandler: what strangers see (details, token)', () => {
  const TOKEN = 'a-long-enough-test-token-0123456789'

  /** A pool whose readiness check fails with a message naming the target, as a real outage does. */
  function failingPool(): DatabasePool<FakeConnection> {
    const { pool, manager } = fakePool('ledger')
    manager.connectFault = {
      kind: 'fail',
      error: new DatabaseError('CONNECTION_FAILED', 'connect ECONNREFUSED 10.1.2.3:5432 (user app)', { backend: 'postgres' }),
    }
    return pool
  }

  it('by default: /ready and /health carry statuses only, no target, stats or check messages', async () => {
    const { pool } = fakePool('ledger')
    const base = await serve(pool)
    const ready = await get(`${base}/ready`)
    expect(ready.status).toBe(200)
    const body = JSON.parse(ready.text) as ReadinessBody
    expect(Object.keys(body).sort()).toEqual(['checkedAt', 'pools', 'status'])
    expect(body.pools).toEqual({ ledger: { status: 'healthy' } })
    expect(ready.text).not.toContain(pool.target)
    expect(ready.text).not.toMatch(/stats|checks|backend|latency/)
    const live = await get(`${base}/health`)
    expect(JSON.parse(live.text)).toEqual({ status: 'ok', pools: { ledger: 'open' } })
  })

  it('by default: a failing check keeps its 503 but not its message', async () => {
    const base = await serve(failingPool())
    const res = await get(`${base}/ready`)
    expect(res.status).toBe(503)
    expect(JSON.parse(res.text).pools).toEqual({ ledger: { status: 'unhealthy' } })
    expect(res.text).not.toContain('10.1.2.3')
    expect(res.text).not.toContain('ECONNREFUSED')
  })

  it('details: true shows every caller the whole report', async () => {
    const base = await serve(failingPool(), { details: true })
    const res = await get(`${base}/ready`)
    expect(res.status).toBe(503)
    const report = (JSON.parse(res.text) as ReadinessBody<HealthReport>).pools.ledger
    expect(report).toMatchObject({ pool: 'ledger', status: 'unhealthy', stats: expect.any(Object) })
    expect(report?.target).toEqual(expect.any(String))
    expect(res.text).toContain('ECONNREFUSED 10.1.2.3:5432')
  })

  it('token: the right bearer token sees the report; no Authorization sees statuses; a wrong one gets 401', async () => {
    const base = await serve(failingPool(), { token: TOKEN })
    const withToken = await get(`${base}/ready`, { headers: { authorization: `Bearer ${TOKEN}` } })
    expect(withToken.status).toBe(503)
    expect(withToken.text).toContain('ECONNREFUSED 10.1.2.3:5432')
    expect((JSON.parse(withToken.text) as ReadinessBody<HealthReport>).pools.ledger?.checks.length).toBeGreaterThan(0)
    // the scheme is case-insensitive (RFC 9110)
    expect((await get(`${base}/ready`, { headers: { authorization: `bearer ${TOKEN}` } })).text).toContain('ECONNREFUSED')

    const anonymous = await get(`${base}/ready`)
    expect(anonymous.status).toBe(503)
    expect(JSON.parse(anonymous.text).pools).toEqual({ ledger: { status: 'unhealthy' } })

    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer', `Basic ${TOKEN}`, `Token ${TOKEN}`]) {
      const denied = await get(`${base}/ready`, { headers: { authorization } })
      expect(denied.status).toBe(401)
      expect(denied.headers.get('www-authenticate')).toBe('Bearer realm="dbpool", error="invalid_token"')
      expect(denied.text).not.toContain('ledger')
      expect((await get(`${base}/health`, { headers: { authorization } })).status).toBe(401)
    }
    // /metrics needs the token too: its series name the targets (server_address, db_namespace, a SQLite path)
    const noToken = await get(`${base}/metrics`)
    expect(noToken.status).toBe(401)
    expect(noToken.headers.get('www-authenticate')).toBe('Bearer realm="dbpool"')
    expect(noToken.text).not.toContain('db_client')
    const wrongToken = await get(`${base}/metrics`, { headers: { authorization: 'Bearer wrong' } })
    expect(wrongToken.status).toBe(401)
    expect(wrongToken.headers.get('www-authenticate')).toBe('Bearer realm="dbpool", error="invalid_token"')
    const scraper = await get(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    expect(scraper.status).toBe(200)
    expect(scraper.text).toContain('db_client_connection_max')
  })

  it('token: any printable ASCII (RFC 6750 b64token and more) is accepted and matches', async () => {
    const symbols = "A0-._~+/=!#$%&'*^`|" + '"(),:;<>?@[]\\{}'
    const base = await serve(failingPool(), { token: symbols })
    expect((await get(`${base}/ready`, { headers: { authorization: `Bearer ${symbols}` } })).text).toContain('ECONNREFUSED')
  })

  it('an error inside the handler: its message only with the detail', async () => {
    const { pool } = fakePool('ledger')
    const registry = createMetricsRegistry()
    jest.spyOn(registry, 'scrape').mockRejectedValue(new Error('collect failed at postgres://app:pw@10.1.2.3/ledger'))
    try {
      const quiet = await get(`${await serve(pool, { metrics: registry })}/metrics`)
      expect(quiet.status).toBe(500)
      expect(JSON.parse(quiet.text)).toEqual({ error: 'internal error' })
      const loud = await get(`${await serve(pool, { metrics: registry, details: true })}/metrics`)
      expect(loud.status).toBe(500)
      expect(loud.text).toContain('10.1.2.3')
      expect(loud.text).not.toContain(':pw@')
    } finally {
      await registry.shutdown()
    }
  })

  it.each([
    [{ details: 'yes' }, /health handler.details "yes"/],
    [{ token: 4242424242424242 }, /health handler.token \[hidden number\]: must be a non-empty string$/],
    // a secret file read without 'utf8': its bytes never reach the message
    [{ token: Buffer.from('SuperSecretHealthToken42') }, /health handler.token \[hidden Buffer\]: must be a non-empty string$/],
    [{ token: 'short' }, /health handler.token "\[set\]": must be at least 16 characters/],
    [{ token: 'has white space in it ok' }, /health handler.token "\[set\]": must be at least 16 characters without whitespace/],
    [{ details: true, token: TOKEN }, /health handler.details true: give details: true or a token, not both/],
    // a request's header bytes are read as Latin-1: a token outside printable ASCII could never match
    [{ token: 'é'.repeat(20) }, /health handler.token "\[set\]": .*printable ASCII only/],
    [{ token: 'pässwörd-pässwörd-pässwörd' }, /health handler.token "\[set\]": .*printable ASCII only/],
    [{ token: 'control\u0007characters-in-it' }, /health handler.token "\[set\]": .*printable ASCII only/],
  ])('rejects %j, never echoing a token', (options, pattern) => {
    const { pool } = fakePool()
    let error: unknown
    try {
      createHealthHandler(pool, options as never)
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(DatabaseError)
    expect((error as DatabaseError).code).toBe('CONFIGURATION')
    expect((error as Error).message).toMatch(pattern)
    expect((error as Error).message).not.toContain('white space')
    expect((error as Error).message).not.toContain(TOKEN)
    expect((error as Error).message).not.toMatch(/4242|SuperSecret|"data"|83,117|é|ä|control/)
  })
})

describe('createHealthHandler: /metrics', () => {
  it('serves the db_client_connection_* gauges of a pool that does not record on a registry', async () => {
    const { pool } = fakePool('ledger')
    await pool.query('select 1')
    const base = await serve(pool)
    const res = await get(`${base}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const families = parsePrometheus(res.text)
    const byName = new Map(families.map((f) => [f.name, f]))
    const count = byName.get('db_client_connection_count')
    expect(count?.type).toBe('GAUGE')
    const idle = count?.metrics.find((m) => m.labels?.db_client_connection_state === 'idle')
    expect(idle?.labels?.db_client_connection_pool_name).toBe('ledger')
    expect(Number(idle?.value)).toBe(1)
    expect(Number(byName.get('db_client_connection_max')?.metrics[0]?.value)).toBe(2)
    expect(byName.has('db_client_connection_pending_requests')).toBe(true)
    // the README names the labels the series carry (it said `state`, which matches nothing: review r5 item 10)
    const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8')
    const documented = /`db_client_connection_count\{(\w+)="idle"\|"used"\}`/.exec(readme)?.[1]
    expect(Object.keys(idle?.labels ?? {})).toContain(documented)
    expect(readme).toContain('labelled `db_client_connection_pool_name`')
  })

  it('serves histograms and counters of pools that record on the registry, once per series', async () => {
    const registry = createMetricsRegistry({ withoutTargetInfo: true })
    const manager = new FakeConnectionManager()
    const pool = new DatabasePool(manager, { name: 'orders', min: 0, max: 3 }, registry.poolOptions())
    pools.push(pool)
    const other = new DatabasePool(new FakeConnectionManager(), { name: 'audit', min: 0, max: 1 }, { metrics: registry.collector('audit') })
    pools.push(other)
    await Promise.all([pool.query('select 1'), pool.query('select 2'), other.query('select 3')])
    const base = await serve(new PoolManager().add('orders', anyPool(pool)).add('audit', anyPool(other)), { metrics: registry })
    const text = (await get(`${base}/metrics`)).text
    const families = new Map(parsePrometheus(text).map((f) => [f.name, f]))
    const wait = families.get('db_client_connection_wait_time')
    expect(wait?.type).toBe('HISTOGRAM')
    // the parser folds labelled histograms into one sample, so per-pool values are read from the lines
    expect(sample(text, 'db_client_connection_wait_time_count', 'orders')).toBe(2)
    expect(sample(text, 'db_client_connection_wait_time_bucket', 'orders', '+Inf')).toBe(2)
    expect(sample(text, 'db_client_connection_wait_time_count', 'audit')).toBe(1)
    expect(sample(text, 'db_client_connection_create_time_count', 'orders')).toBe(2)
    expect(families.get('db_client_connection_use_time')?.type).toBe('HISTOGRAM')
    expect(families.get('db_client_connection_create_time')?.type).toBe('HISTOGRAM')
    expect(text.match(/^db_client_connection_max\{/gm)).toHaveLength(2)
    const max = families.get('db_client_connection_max')?.metrics ?? []
    expect(max.map((m) => [m.labels?.db_client_connection_pool_name, m.value]).sort()).toEqual([
      ['audit', '1'],
      ['orders', '3'],
    ])
    expect(families.has('target_info')).toBe(false)
    expect(text).toContain('otel_scope_name="@dbpool/core"')
    await registry.shutdown()
  })

  it('reports a closed pool at zero connections, honours prefix and scope options, and can be turned off', async () => {
    const { pool } = fakePool('gone')
    await pool.query('select 1')
    const registry = createMetricsRegistry({ withoutScopeInfo: true, prefix: 'app' })
    const base = await serve(pool, { metrics: registry })
    expect((await get(`${base}/metrics`)).text).toContain('app_db_client_connection_max{db_client_connection_pool_name="gone"} 2')
    expect((await get(`${base}/metrics`)).text).toContain(
      'app_db_client_connection_count{db_client_connection_pool_name="gone",db_client_connection_state="idle"} 1',
    )
    await pool.close()
    const after = (await get(`${base}/metrics`)).text
    expect(after).toContain('app_db_client_connection_count{db_client_connection_pool_name="gone",db_client_connection_state="idle"} 0')
    expect(after).not.toContain('otel_scope_name')
    const off = await serve(pool, { metrics: false })
    expect((await get(`${off}/metrics`)).status).toBe(404)
    await registry.shutdown()
    await registry.shutdown()
  })

  it('answers 500 when collection fails', async () => {
    const { pool } = fakePool()
    const registry = createMetricsRegistry()
    await registry.meterProvider.shutdown()
    const base = await serve(pool, { metrics: registry })
    const res = await get(`${base}/metrics`)
    expect(res.status).toBe(500)
    expect(JSON.parse(res.text).error).toEqual(expect.any(String))
  })
})

describe('createHealthHandler: routing', () => {
  it('answers 404 for other paths, 405 for other methods, HEAD without a body, and ignores query strings and a trailing slash', async () => {
    const { pool } = fakePool()
    const base = await serve(pool)
    const missing = await get(`${base}/nope`)
    expect(missing.status).toBe(404)
    expect(JSON.parse(missing.text)).toEqual({ error: 'not found' })
    const post = await get(`${base}/ready`, { method: 'POST' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, HEAD')
    const head = await get(`${base}/health`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.text).toBe('')
    expect((await get(`${base}/health/?probe=k8s`)).status).toBe(200)
  })

  it('does not tell an unknown path which paths exist (a custom metrics path stays unlisted)', async () => {
    const { pool } = fakePool()
    const base = await serve(pool, { paths: { metrics: '/internal-metrics-7f3a' } })
    const missing = await get(`${base}/x`)
    expect(missing.status).toBe(404)
    expect(missing.text).not.toContain('internal-metrics')
    expect(missing.text).not.toContain('/ready')
  })

  it('routes a request target in absolute form (RFC 9112) by its path', async () => {
    const { pool } = fakePool()
    const handler = createHealthHandler(pool)
    for (const [url, status] of [
      ['http://example.test/health', 200],
      ['http://example.test:9464/health/?probe=1', 200],
      ['HTTP://example.test/nope', 404],
      ['/health#frag', 200],
    ] as const) {
      const res = { statusCode: 0, headersSent: false, writableEnded: false, setHeader: jest.fn(), end: jest.fn() }
      handler({ url, method: 'GET', headers: {} } as IncomingMessage, res as unknown as ServerResponse)
      await new Promise((resolve) => setImmediate(resolve))
      expect([url, res.statusCode]).toEqual([url, status])
    }
  })

  it('is not ready with no pool at all (an empty PoolManager), while liveness stays 200', async () => {
    const handler = createHealthHandler(new PoolManager())
    const server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const ready = await fetch(`${base}/ready`)
      expect(ready.status).toBe(503)
      expect(await ready.json()).toMatchObject({ status: 'unhealthy', pools: {} })
      expect((await fetch(`${base}/health`)).status).toBe(200)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('serves custom paths', async () => {
    const { pool } = fakePool()
    const base = await serve(pool, { paths: { health: '/livez', ready: '/readyz/', metrics: '/internal/metrics' } })
    expect((await get(`${base}/livez`)).status).toBe(200)
    expect((await get(`${base}/readyz`)).status).toBe(200)
    expect((await get(`${base}/internal/metrics`)).status).toBe(200)
    expect((await get(`${base}/health`)).status).toBe(404)
  })

  it('hands unknown paths to next() as Express middleware', () => {
    const { pool } = fakePool()
    const handler = createHealthHandler(pool)
    const next = jest.fn()
    const res = { setHeader: jest.fn(), end: jest.fn() } as unknown as ServerResponse
    handler({ url: '/orders', method: 'GET' } as IncomingMessage, res, next)
    expect(next).toHaveBeenCalledWith()
    expect(res.end).not.toHaveBeenCalled()
  })

  it.each([
    [{ timeoutMs: 0 }, /health handler.timeoutMs 0/],
    [{ extra: true }, /health handler.extra true: unknown option/],
    [{ health: { timeoutMs: 5 } }, /health handler.health.timeoutMs 5: unknown option/],
    [{ metrics: {} }, /health handler.metrics "a plain object": must be a MetricsRegistry/],
    [{ paths: { ready: 'ready' } }, /health handler.paths.ready "ready": must start with \//],
    [{ paths: { live: '/x' } }, /health handler.paths.live/],
  ])('rejects invalid options %j', (options, pattern) => {
    const { pool } = fakePool()
    expect(() => createHealthHandler(pool, options as never)).toThrow(pattern)
  })

  it('rejects a target that is neither a pool nor a manager', () => {
    expect(() => createHealthHandler({} as never)).toThrow(/health handler target .*must be a DatabasePool or a PoolManager/)
  })

  it('validates registry options', () => {
    expect(() => createMetricsRegistry({ prefix: 'bad-prefix' })).toThrow(/metrics registry.prefix "bad-prefix"/)
    expect(() => createMetricsRegistry({ timeoutMs: 0 })).toThrow(/metrics registry.timeoutMs 0/)
    expect(() => createMetricsRegistry({ withoutScopeInfo: 'yes' } as never)).toThrow(/withoutScopeInfo "yes"/)
    expect(() => createMetricsRegistry({ other: 1 } as never)).toThrow(/unknown option/)
  })
})

describe('MetricsRegistry.scrape', () => {
  it('a pool whose collector records here under another name is not observed a second time under its own', async () => {
    const registry = createMetricsRegistry({ withoutTargetInfo: true })
    try {
      const pool = new DatabasePool(
        new FakeConnectionManager(),
        { name: 'ledger', min: 0, max: 2 },
        { metrics: registry.collector('ledgr') },
      )
      pools.push(pool)
      await pool.query('select 1')
      const text = await registry.scrape([pool])
      // one pool, one series: the collector's name (it was also counted as "ledger", twice in sums)
      expect(text.match(/^db_client_connection_max\{.*$/gm)).toEqual([expect.stringContaining('db_client_connection_pool_name="ledgr"')])
    } finally {
      await registry.shutdown()
    }
  })
})

describe('MetricsRegistry.registerGlobal', () => {
  it('makes pools with default metrics options record on the registry', async () => {
    const { metrics } = await import('@opentelemetry/api')
    const registry = createMetricsRegistry()
    expect(registry.registerGlobal()).toBe(true)
    try {
      const { pool } = fakePool('global')
      await pool.query('select 1')
      const text = await registry.scrape([])
      expect(parsePrometheus(text).find((f) => f.name === 'db_client_connection_wait_time')?.type).toBe('HISTOGRAM')
      expect(sample(text, 'db_client_connection_wait_time_count', 'global')).toBe(1)
    } finally {
      await registry.shutdown()
    }
    // shutdown unregistered the global provider it had set: meters are no-ops again
    expect(metrics.getMeterProvider()).not.toBe(registry.meterProvider)
  })

  it('called twice: true both times, and shutdown() still unregisters it (it forgot the first registration)', async () => {
    const { metrics } = await import('@opentelemetry/api')
    const registry = createMetricsRegistry()
    expect(registry.registerGlobal()).toBe(true)
    expect(registry.registerGlobal()).toBe(true)
    await registry.shutdown()
    expect(metrics.getMeterProvider()).not.toBe(registry.meterProvider)
    const next = createMetricsRegistry()
    try {
      expect(next.registerGlobal()).toBe(true)
    } finally {
      await next.shutdown()
    }
    // another registry's provider stays: this one's registerGlobal is refused
    const first = createMetricsRegistry()
    const second = createMetricsRegistry()
    try {
      expect(first.registerGlobal()).toBe(true)
      expect(second.registerGlobal()).toBe(false)
      await second.shutdown()
      expect(metrics.getMeterProvider()).toBe(first.meterProvider)
    } finally {
      await first.shutdown()
      await second.shutdown()
    }
  })
})
