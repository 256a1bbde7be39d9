import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabasePool } from '@dbpool/core'
import { createHealthHandler, createMetricsRegistry, type MetricsRegistry } from '@dbpool/http'
import { createSqlitePool } from '@dbpool/sqlite'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { buildCli, startServe, type RunningServe } from './cli-helpers'

// A real consumer of /metrics: Debian's `prometheus` (installed by .ci/run) scrapes, every second,
// `dbpool serve` (job dbpool-serve: a Postgres and a SQLite pool) and an app's own @dbpool/http handler
// (job app: a SQLite pool recording on a MetricsRegistry and running statements), and the series are
// read back from Prometheus's HTTP API by the names the OpenTelemetry semantic conventions give them
// (db.client.connection.count -> db_client_connection_count).
// Without the binary the test is skipped on a developer machine and fails with CI set.

/** The `prometheus` binary, or undefined. */
function findPrometheus(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).stdout.trim()
  if (found) return found
  return ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p))
}

const binary = findPrometheus()
const required = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'
const describeWithPrometheus = binary || required ? describe : describe.skip

/** A free TCP port on 127.0.0.1 (for a child that cannot be told to pick one and report it). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

interface Sample {
  readonly metric: Record<string, string>
  readonly value: [number, string]
}

describeWithPrometheus('Prometheus scrapes dbpool serve', () => {
  let dir: string
  let db: TestDatabase
  let serve: RunningServe | undefined
  let prometheus: ChildProcess | undefined
  let prometheusLog = ''
  let api: string
  let registry: MetricsRegistry | undefined
  let appPool: DatabasePool<unknown> | undefined
  let appServer: Server | undefined
  let appTarget: string

  async function query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = (await res.json()) as { status: string; data?: { resultType: string; result: Sample[] }; error?: string }
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? res.status}`)
    return body.data?.result ?? []
  }

  /** Polls `expr` until `done` holds for its samples (Prometheus scrapes every second). */
  async function queryUntil(expr: string, done: (samples: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
    const deadline = Date.now() + timeoutMs
    let last: Sample[] = []
    for (;;) {
      last = await query(expr)
      if (done(last)) return last
      if (Date.now() > deadline)
        throw new Error(`${expr} never matched within ${timeoutMs} ms: ${JSON.stringify(last)}\nprometheus: ${prometheusLog.slice(-2_000)}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  const byPool = (samples: Sample[]): Map<string | undefined, number> =>
    new Map(samples.map((s) => [s.metric.db_client_connection_pool_name, Number(s.value[1])]))

  beforeAll(async () => {
    if (!binary) throw new Error("prometheus is not installed (CI is set): .ci/run installs Debian's package; apt-get install prometheus")
    dir = mkdtempSync(join(tmpdir(), 'dbpool-prometheus-'))
    ;[db] = await Promise.all([createTestDatabase(), buildCli()])
    writeFileSync(
      join(dir, 'dbpool.toml'),
      `[pools.ledger]\nurlEnv = "LEDGER_URL"\nprimary = true\nmin = 1\nmax = 3\n\n[pools.notes]\nurl = "sqlite:./notes.db"\nmin = 1\nmax = 2\n`,
    )
    // serve watches the notes database, it does not create it
    const notes = createSqlitePool(join(dir, 'notes.db'), { min: 0, max: 1 })
    await notes.query('select 1')
    await notes.close()
    serve = await startServe(['--port', '0', '--host', '127.0.0.1'], { cwd: dir, env: { LEDGER_URL: db.url } })
    const target = new URL(serve.base).host

    // an app serving its own pool's metrics with the @dbpool/http handler
    registry = createMetricsRegistry()
    appPool = createSqlitePool(
      join(dir, 'app.db'),
      { min: 1, max: 2, name: 'app' },
      {},
      registry.poolOptions(),
    ) as unknown as DatabasePool<unknown>
    const server = (appServer = createHttpServer(createHealthHandler(appPool, { metrics: registry })))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    appTarget = `127.0.0.1:${(server.address() as { port: number }).port}`

    const port = await freePort()
    api = `http://127.0.0.1:${port}`
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: dbpool-serve',
        '    static_configs:',
        `      - targets: ['${target}']`,
        '  - job_name: app',
        '    static_configs:',
        `      - targets: ['${appTarget}']`,
        '',
      ].join('\n'),
    )
    prometheus = spawn(
      binary,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    prometheus.stdout?.setEncoding('utf8').on('data', (s: string) => (prometheusLog += s))
    prometheus.stderr?.setEncoding('utf8').on('data', (s: string) => (prometheusLog += s))
    const deadline = Date.now() + 30_000
    for (;;) {
      const ready = await fetch(`${api}/-/ready`).then(
        (r) => r.status === 200,
        () => false,
      )
      if (ready) break
      if (prometheus.exitCode !== null || Date.now() > deadline)
        throw new Error(`prometheus did not start (exit ${prometheus.exitCode}): ${prometheusLog.slice(-2_000)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }, 240_000)

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const child = prometheus
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    if (serve) expect(await serve.stop()).toBe(0)
    const server = appServer
    if (server) await new Promise((resolve) => server.close(resolve))
    await appPool?.close({ timeoutMs: 5_000 })
    await registry?.shutdown()
    await db?.drop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  it('reads the db_client_connection_* series of a Postgres and a SQLite pool back from /api/v1/query', async () => {
    // readiness checks lease a connection on each pool: wait_time and use_time get samples
    for (let i = 0; i < 5; i++) expect((await fetch(`${serve?.base}/ready`)).status).toBe(200)

    const up = await queryUntil('up{job="dbpool-serve"}', (s) => s.length === 1 && s[0]?.value[1] === '1')
    expect(up[0]?.metric.instance).toBe(new URL(serve?.base ?? '').host)

    // db.client.connection.max: the configured max of each pool (SQLite: one writer + readers)
    const max = byPool(await queryUntil('db_client_connection_max{job="dbpool-serve"}', (s) => byPool(s).size === 2))
    expect(max.get('ledger')).toBe(3)
    expect(max.get('notes')).toBeGreaterThanOrEqual(2)

    // db.client.connection.count by state (idle | used): min = 1 keeps at least one open per pool
    const count = await queryUntil(
      'sum by (db_client_connection_pool_name) (db_client_connection_count{job="dbpool-serve"})',
      (s) => byPool(s).size === 2,
    )
    for (const [pool, open] of byPool(count)) expect({ pool, open: open >= 1 }).toEqual({ pool, open: true })
    const states = new Set((await query('db_client_connection_count{job="dbpool-serve"}')).map((s) => s.metric.db_client_connection_state))
    expect([...states].sort()).toEqual(['idle', 'used'])

    for (const gauge of ['db_client_connection_idle_max', 'db_client_connection_idle_min', 'db_client_connection_pending_requests'])
      expect({ gauge, pools: [...byPool(await query(`${gauge}{job="dbpool-serve"}`)).keys()].sort() }).toEqual({
        gauge,
        pools: ['ledger', 'notes'],
      })

    // the histograms (seconds): connections were created, leased and used
    const created = byPool(await queryUntil('db_client_connection_create_time_count{job="dbpool-serve"}', (s) => byPool(s).size === 2))
    expect(created.get('ledger')).toBeGreaterThanOrEqual(1)
    expect(created.get('notes')).toBeGreaterThanOrEqual(1)
    const waits = await queryUntil(
      'db_client_connection_wait_time_count{db_client_connection_pool_name="ledger"}',
      (s) => Number(s[0]?.value[1]) >= 1,
    )
    expect(Number(waits[0]?.value[1])).toBeGreaterThanOrEqual(1)
    const buckets = await query('db_client_connection_use_time_bucket{db_client_connection_pool_name="ledger"}')
    expect(buckets.some((b) => b.metric.le === '+Inf')).toBe(true)
  }, 90_000)

  it("reads back an app's pool served by createHealthHandler: leases, timings and db.client.operation.duration", async () => {
    const pool = appPool as DatabasePool<unknown>
    await pool.query('create table if not exists events (id integer primary key, body text not null)')
    for (let i = 0; i < 20; i++) await pool.transaction((tx) => tx.query('insert into events (body) values (?)', [`event ${i}`]))
    for (let i = 0; i < 10; i++) await pool.query('select count(*) as n from events')

    await queryUntil('up{job="app"}', (s) => s[0]?.value[1] === '1')
    const max = await queryUntil('db_client_connection_max{job="app"}', (s) => s.length === 1)
    expect(max[0]?.metric.db_client_connection_pool_name).toBe('app')
    // every transaction leased the writer: at least 20 waits and uses were recorded and scraped
    const uses = await queryUntil('db_client_connection_use_time_count{job="app"}', (s) => Number(s[0]?.value[1]) >= 20)
    expect(uses[0]?.metric.db_client_connection_pool_name).toBe('app')
    const waits = await queryUntil('db_client_connection_wait_time_count{job="app"}', (s) => Number(s[0]?.value[1]) >= 20)
    expect(Number(waits[0]?.value[1])).toBeGreaterThanOrEqual(20)
    // the histogram's sum is in seconds: 20+ short local transactions use well under a minute
    const sum = await query('db_client_connection_use_time_sum{job="app"}')
    expect(Number(sum[0]?.value[1])).toBeGreaterThan(0)
    expect(Number(sum[0]?.value[1])).toBeLessThan(60)

    // db.client.operation.duration (stable database conventions): one sample per statement, labelled
    // with db.system.name, db.operation.name and db.collection.name, in seconds, with the advised buckets
    const eventsByOperation = (samples: Sample[]): Map<string | undefined, { system?: string; count: number }> =>
      new Map(
        samples
          .filter((x) => x.metric.db_collection_name === 'events')
          .map((x) => [x.metric.db_operation_name?.toUpperCase(), { system: x.metric.db_system_name, count: Number(x.value[1]) }]),
      )
    // a scrape may have come in the middle of the statements: wait for one after all of them
    const byOperation = eventsByOperation(
      await queryUntil(
        'sum by (db_system_name, db_operation_name, db_collection_name) (db_client_operation_duration_count{job="app"})',
        (samples) => eventsByOperation(samples).get('INSERT')?.count === 20 && eventsByOperation(samples).get('SELECT')?.count === 10,
      ),
    )
    expect(byOperation.get('INSERT')).toEqual({ system: 'sqlite', count: 20 })
    expect(byOperation.get('SELECT')).toEqual({ system: 'sqlite', count: 10 })
    const bounds = new Set(
      (await query('db_client_operation_duration_bucket{job="app", db_operation_name=~"(?i)insert"}')).map((b) => b.metric.le),
    )
    for (const le of ['0.001', '0.005', '0.01', '0.05', '0.1', '0.5', '1', '5', '10', '+Inf'])
      expect({ le, present: bounds.has(le) }).toEqual({ le, present: true })
    const operationSeconds = await query('sum(db_client_operation_duration_sum{job="app"})')
    expect(Number(operationSeconds[0]?.value[1])).toBeGreaterThan(0)
    expect(Number(operationSeconds[0]?.value[1])).toBeLessThan(60)
  }, 90_000)
})
