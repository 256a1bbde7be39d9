import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  HealthChecker,
  redactUrlPasswords,
  configError,
  type DatabasePool,
  type HealthCheckOptions,
  type HealthReport,
  type HealthStatus,
  type PoolManager,
} from '@dbpool/core'
import { checkInteger, checkString, rejectUnknownKeys, requireObject, withDeadline, isErrorLike } from '@dbpool/core/internal'
import { DetailGate, type DetailAccess } from './detail-access'
import { MetricsRegistry } from './metrics-registry'
import { valueKind } from './value-kind'

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
  /**
   * The three paths. Defaults are `/health`, `/ready` and `/metrics`. Each starts with `/`, is `/`
   * or `/`-led segments of URL path characters (no query, fragment, space or empty segment: no
   * request could reach it) and differs from the others (`metrics` only while `/metrics` is served):
   * else CONFIGURATION naming `health handler.paths.<key>`.
   */
  readonly paths?: { readonly health?: string; readonly ready?: string; readonly metrics?: string }
  /**
   * Show every caller the detail of `/ready` (each pool's target, backend, server version, stats,
   * check messages and timings) and of errors. Default is `false`: statuses only, since
   * `dbpool serve` listens on all interfaces. Give it only where every caller may see the
   * database's address and version (a private network, a sidecar on localhost). Not with `token`.
   */
  readonly details?: boolean
  /**
   * A bearer token: requests with `Authorization: Bearer <token>` see the detail, compared in
   * constant time. Requests without `Authorization` (probes) see statuses; a wrong token or another
   * scheme gets `401` with `WWW-Authenticate: Bearer`. At least 16 characters, printable ASCII only
   * (`!` to `~`: no whitespace, no `é`, which a request's header could never carry to match it).
   * `/metrics` requires it (`401` without it: its series carry `server_address`, `server_port`,
   * `db_namespace`, a SQLite file's path; give the scrape config `authorization: { credentials }`).
   * Not with `details: true`.
   */
  readonly token?: string
}

/** A node:http request listener; as Express middleware it calls `next()` for paths it does not serve. */
export type HealthRequestListener = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

/** The `/health` body: `ok` while every pool is open, `closed` once one is closed, and each pool's state. */
export interface LivenessBody {
  readonly status: 'ok' | 'closed'
  readonly pools: Readonly<Record<string, 'open' | 'closed'>>
}

/**
 * The `/ready` body: the overall status and, per pool, its status alone (the default) or its whole
 * {@link HealthReport} (target, backend, stats, checks with messages and the server version) when
 * the request may see the detail (`details: true`, or the bearer `token`): `ReadinessBody<HealthReport>`.
 */
export interface ReadinessBody<P extends PoolReadiness = PoolReadiness | HealthReport> {
  readonly status: HealthStatus
  readonly checkedAt: string
  readonly pools: Readonly<Record<string, P>>
}

/** One pool in a statuses-only `/ready` body. */
export interface PoolReadiness {
  readonly status: HealthStatus
}

const OPTION_KEYS = ['timeoutMs', 'health', 'metrics', 'paths', 'details', 'token'] as const
const PATH_KEYS = ['health', 'ready', 'metrics'] as const
/** A configured path a request can reach: `/`-led segments of RFC 3986 `pchar`s, none empty, an optional trailing `/`. */
const SERVABLE_PATH = /^(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)+\/?$/
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

type Pools = () => [string, DatabasePool<unknown>][]

/**
 * Health and metrics over HTTP for one pool or a {@link PoolManager}, as a node:http request listener
 * (`http.createServer(handler)`, `app.use(handler)` in Express, `reply.hijack(); handler(req.raw,
 * reply.raw)` in Fastify):
 *
 * - `GET /health`: liveness. 200 while every pool is open, 503 once one is closed. No database work.
 * - `GET /ready`: readiness. Checks every pool (a real round trip, saturation, backend checks) within
 *   `timeoutMs`: 200 when healthy or degraded, 503 when unhealthy or when there is no pool (an empty
 *   PoolManager), with each pool's status as JSON;
 *   each pool's whole report (redacted target, version, stats, check messages) only for requests
 *   allowed the detail (`details`, `token`). Passwords never appear. Concurrent probes share one check.
 * - `GET /metrics`: the Prometheus text format rendered by `@opentelemetry/exporter-prometheus`
 *   from the `db.client.connection.*` instruments (see {@link MetricsRegistry}).
 *
 * Other paths answer 404 without listing the served ones (or go to Express's `next()`); a request
 * target in absolute form (`GET http://host/ready`) is routed by its path; methods other than GET and
 * HEAD answer 405;
 * with a `token`, a request to `/health` or `/ready` that presents a wrong one answers 401, and
 * `/metrics` answers 401 to a request without it (its series name the targets: `server_address`,
 * `db_namespace`).
 *
 * @throws DatabaseError `CONFIGURATION` naming the option for a bad option or target.
 */
export function createHealthHandler<C>(target: DatabasePool<C> | PoolManager, options: HealthHandlerOptions = {}): HealthRequestListener {
  const settings = resolveOptions(options)
  const gate = new DetailGate(options.details, options.token)
  const pools = poolsOf(target)
  const checker = new HealthChecker({ ...settings.health, timeoutMs: settings.timeoutMs })
  const registry = settings.metrics === false ? undefined : (settings.metrics ?? new MetricsRegistry())
  let inflight: Promise<ReadinessBody<HealthReport>> | undefined

  const readiness = (): Promise<ReadinessBody<HealthReport>> => {
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
        // the configured paths are not listed: a non-default metrics path may be meant to stay unknown
        JSON.stringify({ error: 'not found' }),
      )
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return send(req, res, 405, 'application/json; charset=utf-8', JSON.stringify({ error: `method ${req.method ?? ''} not allowed` }))
    }
    const access: DetailAccess = gate.access(req)
    if (access === 'invalid-token') {
      res.setHeader('www-authenticate', 'Bearer realm="dbpool", error="invalid_token"')
      return send(req, res, 401, 'application/json; charset=utf-8', JSON.stringify({ error: 'invalid bearer token' }))
    }
    // with a token, /metrics is for its holder: the series carry server_address, server_port and
    // db_namespace (a SQLite file's path); Prometheus sends it (the scrape config's authorization)
    if (route === 'metrics' && gate.hasToken && access !== 'details') {
      res.setHeader('www-authenticate', 'Bearer realm="dbpool"')
      return send(req, res, 401, 'application/json; charset=utf-8', JSON.stringify({ error: 'bearer token required' }))
    }
    const work =
      route === 'health'
        ? Promise.resolve(liveness(pools))
        : route === 'ready'
          ? readiness().then((body) => ({
              status: body.status === 'unhealthy' ? 503 : 200,
              body: JSON.stringify(access === 'details' ? body : statusesOnly(body)),
            }))
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
          JSON.stringify({
            error: access === 'details' ? redactUrlPasswords(isErrorLike(err) ? err.message : String(err)) : 'internal error',
          }),
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
  const metrics = raw.metrics as Partial<MetricsRegistry> | null | undefined | false
  if (
    metrics !== undefined &&
    metrics !== false &&
    !(metrics instanceof MetricsRegistry) &&
    (metrics === null ||
      typeof metrics !== 'object' ||
      typeof metrics.scrape !== 'function' ||
      typeof metrics.poolOptions !== 'function' ||
      typeof metrics.collector !== 'function')
  ) {
    throw configError('health handler.metrics', valueKind(raw.metrics), 'must be a MetricsRegistry (createMetricsRegistry()) or false')
  }
  const rawPaths = requireObject('health handler.paths', raw.paths)
  rejectUnknownKeys('health handler.paths', rawPaths, PATH_KEYS)
  const paths = { health: '/health', ready: '/ready', metrics: '/metrics' }
  for (const key of PATH_KEYS) {
    if (rawPaths[key] === undefined) continue
    const value = checkString(`health handler.paths.${key}`, rawPaths[key])
    if (!value.startsWith('/')) throw configError(`health handler.paths.${key}`, value, 'must start with /')
    // a request's path (see pathOf) never holds a query, a fragment, a space or an empty segment
    if (value !== '/' && !SERVABLE_PATH.test(value))
      throw configError(
        `health handler.paths.${key}`,
        value,
        'can never match a request: use "/" or segments of letters, digits and -._~!$&\'()*+,;=:@% (no query, fragment, space or empty segment)',
      )
    paths[key] = trimSlash(value)
  }
  // one path for two routes: the second could never be reached
  const served = raw.metrics === false ? (['health', 'ready'] as const) : PATH_KEYS
  for (const [i, key] of served.entries())
    for (const other of served.slice(0, i))
      if (paths[key] === paths[other])
        throw configError(`health handler.paths.${key}`, paths[key], `is also the ${other} path: each route needs its own path`)
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
  throw configError('health handler target', valueKind(target), 'must be a DatabasePool or a PoolManager')
}

function liveness(pools: Pools): { status: number; body: string } {
  const states = Object.fromEntries(pools().map(([name, pool]) => [name, pool.isOpen ? ('open' as const) : ('closed' as const)]))
  const open = Object.values(states).every((s) => s === 'open')
  const body: LivenessBody = { status: open ? 'ok' : 'closed', pools: states }
  return { status: open ? 200 : 503, body: JSON.stringify(body) }
}

/** The body a caller without the detail sees: the statuses, nothing about the database. */
function statusesOnly(body: ReadinessBody<HealthReport>): ReadinessBody<PoolReadiness> {
  const pools = Object.fromEntries(Object.entries(body.pools).map(([name, report]) => [name, { status: report.status }]))
  return { status: body.status, checkedAt: body.checkedAt, pools }
}

async function checkAll(pools: Pools, checker: HealthChecker, timeoutMs: number): Promise<ReadinessBody<HealthReport>> {
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
  // nothing registered (yet) is not ready: an app whose pools are not there cannot serve
  const status: HealthStatus =
    statuses.length === 0 || statuses.includes('unhealthy') ? 'unhealthy' : statuses.includes('degraded') ? 'degraded' : 'healthy'
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

/**
 * The path of a request target: origin form (`/ready?x`) or absolute form (`http://host/ready`, which
 * RFC 9112 section 3.2.2 says a server must accept, and which proxies send).
 */
function pathOf(url: string | undefined): string {
  let target = url ?? '/'
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    try {
      target = new URL(target).pathname
    } catch {
      target = '/'
    }
  }
  const raw = target.split(/[?#]/)[0] ?? '/'
  return trimSlash(raw === '' ? '/' : raw)
}

function trimSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}
