import type { IncomingMessage, ServerResponse } from 'node:http'
import { checkInteger, checkString, configError, rejectUnknownKeys, requireObject } from '../config/validate'
import { HealthChecker, type HealthCheckOptions } from '../health/health-checker'
import type { HealthReport, HealthStatus } from '../health/health-report'
import type { PoolManager } from '../manager/pool-manager'
import type { DatabasePool } from '../pool/database-pool'
import { withDeadline } from '../pool/lane-pool'
import { redactUrlPasswords } from '../util/redact'
import { MetricsRegistry } from './metrics-registry'

/** Options of {@link createHealthHandler}. */
export interface HealthHandlerOptions {
  /** Deadline of a readiness check in ms; a dead database answers 503 within it. Default is `2000`. */
  readonly timeoutMs?: number
  /** Passed to the checks: `degradedUtilization`, `slowPingMs`, `deep`. */
  readonly health?: Omit<HealthCheckOptions, 'timeoutMs'>
  /**
   * The registry the pools record on, rendered at `/metrics`. Default is a private registry that
   * observes each pool's connection gauges; `false` turns `/metrics` off (404).
   */
  readonly metrics?: MetricsRegistry | false
  /** The three paths. Defaults are `/health`, `/ready` and `/metrics`. */
  readonly paths?: { readonly health?: string; readonly ready?: string; readonly metrics?: string }
}

/** A node:http request listener; as Express middleware it calls `next()` for paths it does not serve. */
export type HealthRequestListener = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

/** The `/ready` body: the overall status and each pool's report. */
export interface ReadinessBody {
  readonly status: HealthStatus
  readonly checkedAt: string
  readonly pools: Readonly<Record<string, HealthReport>>
}

const OPTION_KEYS = ['timeoutMs', 'health', 'metrics', 'paths'] as const
const PATH_KEYS = ['health', 'ready', 'metrics'] as const
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

type Pools = () => [string, DatabasePool<unknown>][]

/**
 * Health and metrics over HTTP for one pool or a {@link PoolManager}, as a node:http request listener
 * (`http.createServer(handler)`, `app.use(handler)` in Express, `reply.hijack(); handler(req.raw,
 * reply.raw)` in Fastify):
 *
 * - `GET /health`: liveness. 200 while every pool is open, 503 once one is closed. No database work.
 * - `GET /ready`: readiness. Checks every pool (a real round trip, saturation, backend checks) within
 *   `timeoutMs`: 200 when healthy or degraded, 503 when unhealthy, with each pool's report as JSON
 *   (targets are redacted, passwords never appear). Concurrent probes share one check.
 * - `GET /metrics`: the Prometheus text format rendered by `@opentelemetry/exporter-prometheus`
 *   from the `db.client.connection.*` instruments (see {@link MetricsRegistry}).
 *
 * Other paths answer 404 (or go to Express's `next()`); methods other than GET and HEAD answer 405.
 */
export function createHealthHandler<C>(target: DatabasePool<C> | PoolManager, options: HealthHandlerOptions = {}): HealthRequestListener {
  const settings = resolveOptions(options)
  const pools = poolsOf(target)
  const checker = new HealthChecker({ ...settings.health, timeoutMs: settings.timeoutMs })
  const registry = settings.metrics === false ? undefined : (settings.metrics ?? new MetricsRegistry())
  let inflight: Promise<ReadinessBody> | undefined

  const readiness = (): Promise<ReadinessBody> => {
    inflight ??= checkAll(pools, checker, settings.timeoutMs).finally(() => {
      inflight = undefined
    })
    return inflight
  }

  return (req, res, next) => {
    const path = pathOf(req.url)
    const route =
      path === settings.paths.health
        ? 'health'
        : path === settings.paths.ready
          ? 'ready'
          : path === settings.paths.metrics && registry
            ? 'metrics'
            : undefined
    if (!route) {
      if (next) return next()
      return send(
        req,
        res,
        404,
        'application/json; charset=utf-8',
        JSON.stringify({ error: 'not found', paths: Object.values(settings.paths) }),
      )
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return send(req, res, 405, 'application/json; charset=utf-8', JSON.stringify({ error: `method ${req.method ?? ''} not allowed` }))
    }
    const work =
      route === 'health'
        ? Promise.resolve(liveness(pools))
        : route === 'ready'
          ? readiness().then((body) => ({ status: body.status === 'unhealthy' ? 503 : 200, body: JSON.stringify(body) }))
          : (registry as MetricsRegistry).scrape(pools().map(([, pool]) => pool)).then((text) => ({ status: 200, body: text }))
    work.then(
      ({ status, body }) =>
        send(
          req,
          res,
          status,
          route === 'metrics' ? PROMETHEUS_CONTENT_TYPE : 'application/json; charset=utf-8',
          route === 'metrics' ? body : redactUrlPasswords(body),
        ),
      (err: unknown) =>
        send(
          req,
          res,
          500,
          'application/json; charset=utf-8',
          JSON.stringify({ error: redactUrlPasswords(err instanceof Error ? err.message : String(err)) }),
        ),
    )
  }
}

function resolveOptions(options: HealthHandlerOptions): {
  timeoutMs: number
  health: Omit<HealthCheckOptions, 'timeoutMs'>
  metrics: MetricsRegistry | false | undefined
  paths: { health: string; ready: string; metrics: string }
} {
  const raw = requireObject('health handler', options)
  rejectUnknownKeys('health handler', raw, OPTION_KEYS)
  const timeoutMs = raw.timeoutMs === undefined ? 2_000 : checkInteger('health handler.timeoutMs', raw.timeoutMs, 1, 600_000)
  const health = requireObject('health handler.health', raw.health) as Omit<HealthCheckOptions, 'timeoutMs'>
  rejectUnknownKeys('health handler.health', health, ['degradedUtilization', 'slowPingMs', 'deep'])
  if (
    raw.metrics !== undefined &&
    raw.metrics !== false &&
    typeof (raw.metrics as Partial<MetricsRegistry> | null)?.scrape !== 'function'
  ) {
    throw configError('health handler.metrics', raw.metrics, 'must be a MetricsRegistry (createMetricsRegistry()) or false')
  }
  const rawPaths = requireObject('health handler.paths', raw.paths)
  rejectUnknownKeys('health handler.paths', rawPaths, PATH_KEYS)
  const paths = { health: '/health', ready: '/ready', metrics: '/metrics' }
  for (const key of PATH_KEYS) {
    if (rawPaths[key] === undefined) continue
    const value = checkString(`health handler.paths.${key}`, rawPaths[key])
    if (!value.startsWith('/')) throw configError(`health handler.paths.${key}`, value, 'must start with /')
    paths[key] = trimSlash(value)
  }
  return { timeoutMs, health, metrics: raw.metrics as MetricsRegistry | false | undefined, paths }
}

function poolsOf<C>(target: DatabasePool<C> | PoolManager): Pools {
  const candidate = target as Partial<PoolManager> & Partial<DatabasePool<C>>
  if (candidate && typeof candidate.healthCheckAll === 'function' && typeof candidate.get === 'function') {
    const manager = target as PoolManager
    return () => manager.names.map((name) => [name, manager.get(name)])
  }
  if (candidate && typeof candidate.ping === 'function' && typeof candidate.stats === 'function') {
    const pool = target as unknown as DatabasePool<unknown>
    return () => [[pool.name, pool]]
  }
  throw configError('health handler target', target, 'must be a DatabasePool or a PoolManager')
}

function liveness(pools: Pools): { status: number; body: string } {
  const states = Object.fromEntries(pools().map(([name, pool]) => [name, pool.isOpen ? 'open' : 'closed']))
  const open = Object.values(states).every((s) => s === 'open')
  return { status: open ? 200 : 503, body: JSON.stringify({ status: open ? 'ok' : 'closed', pools: states }) }
}

async function checkAll(pools: Pools, checker: HealthChecker, timeoutMs: number): Promise<ReadinessBody> {
  const entries = await Promise.all(
    pools().map(async ([name, pool]): Promise<[string, HealthReport]> => {
      // HealthChecker is bounded by timeoutMs itself; this is the backstop that guarantees an answer
      const report = await withDeadline(checker.check(pool), timeoutMs + 1_000, () => new Error('deadline')).catch(() =>
        deadlineReport(pool, timeoutMs),
      )
      return [name, report]
    }),
  )
  const statuses = entries.map(([, r]) => r.status)
  const status: HealthStatus = statuses.includes('unhealthy') ? 'unhealthy' : statuses.includes('degraded') ? 'degraded' : 'healthy'
  return { status, checkedAt: new Date().toISOString(), pools: Object.fromEntries(entries) }
}

function deadlineReport(pool: DatabasePool<unknown>, timeoutMs: number): HealthReport {
  return {
    pool: pool.name,
    backend: pool.backend,
    target: pool.target,
    status: 'unhealthy',
    checkedAt: new Date().toISOString(),
    latencyMs: timeoutMs,
    stats: pool.stats(),
    checks: [{ name: 'deadline', status: 'unhealthy', message: `health check did not finish within ${timeoutMs} ms` }],
  }
}

function send(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.headersSent || res.writableEnded) return
  res.statusCode = status
  res.setHeader('content-type', contentType)
  res.setHeader('cache-control', 'no-store')
  res.setHeader('content-length', Buffer.byteLength(body))
  res.end(req.method === 'HEAD' ? undefined : body)
}

function pathOf(url: string | undefined): string {
  const raw = (url ?? '/').split('?')[0] ?? '/'
  return trimSlash(raw === '' ? '/' : raw)
}

function trimSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}
