import { DatabaseError } from '../errors/database-error'
import {
  MAX_TIMER_MS,
  checkBoolean,
  checkInteger,
  checkPool,
  configError,
  rejectExtraArguments,
  rejectUnknownKeys,
  requireObject,
} from '../config/validate'
import type { DatabasePool } from '../pool/database-pool'
import type { ReplicaStats } from '../pool/replica-set'
import { withDeadline } from '../pool/lane-pool'
import type { HealthCheckDetail, HealthReport, HealthStatus } from './health-report'
import { isErrorLike } from '../util/error-like'

/** Options of a {@link HealthChecker}. */
export interface HealthCheckOptions {
  /**
   * Deadline for the whole check, the wait for a connection included; a dead database cannot hang it.
   * Synchronous work already under way runs to its end first (SQLite's calls; starting the deep
   * integrity check's worker thread, a few tens of ms the first time), so with a deadline of a few ms
   * the report can come that much later. Default is `5000`.
   */
  readonly timeoutMs?: number
  /** Utilization at or above which (with callers waiting) the pool is degraded. Default is `0.9`. */
  readonly degradedUtilization?: number
  /** A ping slower than this makes the pool degraded. Default is `1000`. */
  readonly slowPingMs?: number
  /** Run the deep backend checks (SQLite `integrity_check`, in a worker thread; not deep, SQLite scans nothing). Default is `false`. */
  readonly deep?: boolean
}

/** How long after its deadline `check()` gives up on a probe that did not end at the deadline itself. */
const DEADLINE_BACKSTOP_MS = 10

const RANK: Record<HealthStatus, number> = { healthy: 0, degraded: 1, unhealthy: 2 }

function utilization(value: unknown): number {
  if (typeof value !== 'number' || !(value > 0 && value <= 1))
    throw configError('health.degradedUtilization', value, 'must be a number > 0 and <= 1')
  return value
}

/** The worst of several statuses. */
export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = 'healthy'
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s
  return worst
}

/**
 * Checks a pool: a real round trip, saturation, and the backend's own checks. `check()` never
 * throws and is bounded by `timeoutMs`, the wait for a connection included: at the deadline the
 * check's request leaves the pool's queue (ACQUIRE_TIMEOUT) before the report says `deadline`, so
 * timed-out probes leave no waiter behind (a probe that cannot be cut short is given up 10 ms after
 * the deadline). On SQLite with readers the probes run on a reader (a long write transaction does not
 * block them).
 */
export class HealthChecker {
  readonly #options: Required<HealthCheckOptions>

  /**
   * @param options See {@link HealthCheckOptions}. Invalid values and unknown keys throw CONFIGURATION
   *   naming `health.<option>` (a `timeoutMs` beyond a timer's 2^31 - 1 ms used to fail every check at once).
   */
  constructor(options: HealthCheckOptions = {}) {
    const raw = requireObject('health', options)
    rejectUnknownKeys('health', raw, ['timeoutMs', 'degradedUtilization', 'slowPingMs', 'deep'])
    this.#options = {
      timeoutMs: raw.timeoutMs === undefined ? 5_000 : checkInteger('health.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS),
      degradedUtilization: raw.degradedUtilization === undefined ? 0.9 : utilization(raw.degradedUtilization),
      slowPingMs: raw.slowPingMs === undefined ? 1_000 : checkInteger('health.slowPingMs', raw.slowPingMs, 0, MAX_TIMER_MS),
      deep: raw.deep === undefined ? false : checkBoolean('health.deep', raw.deep),
    }
  }

  /**
   * Healthy, degraded (saturated or slow) or unhealthy (cannot connect, query or integrity fails).
   * Never rejects for the pool's state; rejects with CONFIGURATION naming `health check pool` when
   * `pool` is not a DatabasePool (it was a TypeError), or `check argument` for an argument after it.
   */
  async check(pool: DatabasePool<unknown>, ...extra: []): Promise<HealthReport> {
    checkPool('health check pool', pool)
    rejectExtraArguments('check', extra)
    const started = performance.now()
    const { timeoutMs } = this.#options
    let checks: HealthCheckDetail[]
    if (!pool.isOpen) {
      checks = [{ name: 'pool', status: 'unhealthy', message: 'pool is closed' }]
    } else {
      // the probes end at the deadline themselves (their wait for a connection included), so the
      // report comes once they have left the pool's queue; this timer is the backstop for a probe
      // that cannot be cut short (a synchronous SQLite call, a driver that ignores its deadline)
      const backstop = Math.min(timeoutMs + DEADLINE_BACKSTOP_MS, MAX_TIMER_MS)
      checks = await withDeadline(this.#run(pool, started + timeoutMs), backstop, () => new Error('deadline')).catch(() => [
        { name: 'deadline', status: 'unhealthy' as const, message: `health check did not finish within ${timeoutMs} ms` },
      ])
    }
    return {
      pool: pool.name,
      backend: pool.backend,
      target: pool.target,
      status: worstStatus(checks.map((c) => c.status)),
      checkedAt: new Date().toISOString(),
      latencyMs: round(performance.now() - started),
      stats: pool.stats(),
      checks,
    }
  }

  /**
   * Pings every idle connection (a connection Postgres keeps between lone statements included) and
   * evicts the ones that fail, each ping bounded by this checker's `timeoutMs` (at most
   * `min(createTimeoutMs, 5000)`): a connection that does not answer in time is evicted. See
   * `DatabasePool.validateConnections`. Never rejects for the pool's state (`error` says what failed);
   * rejects with CONFIGURATION naming `validateConnections argument` for an argument after `pool` (it
   * takes none).
   */
  async validateConnections(pool: DatabasePool<unknown>, ...extra: []): Promise<{ checked: number; evicted: number; error?: string }> {
    rejectExtraArguments('validateConnections', extra)
    try {
      return await pool.validateConnections({ timeoutMs: this.#options.timeoutMs })
    } catch (err) {
      return { checked: 0, evicted: 0, error: describe(err) }
    }
  }

  /**
   * The checks, each given what is left before `deadline` (a `performance.now()` time) as its
   * `timeoutMs`, which bounds its wait for a connection too: a check that times out has left the
   * pool's queue by the time its report says so (no abandoned probe keeps waiting, counting against
   * `maxWaitingClients` or served before later callers).
   */
  async #run(pool: DatabasePool<unknown>, deadline: number): Promise<HealthCheckDetail[]> {
    const { slowPingMs, degradedUtilization, deep } = this.#options
    const left = (): number => Math.max(1, Math.floor(deadline - performance.now()))
    const checks: HealthCheckDetail[] = []
    try {
      const latency = await pool.ping(left())
      const slow = latency > slowPingMs
      checks.push({
        name: 'ping',
        status: slow ? 'degraded' : 'healthy',
        latencyMs: round(latency),
        ...(slow ? { message: `ping took ${round(latency)} ms (> ${slowPingMs} ms)` } : {}),
      })
    } catch (err) {
      const busy = this.#busyCheck(err)
      if (busy !== undefined) return [busy]
      checks.push(
        this.#deadlineCheck(err, deadline, 'ping') ?? {
          name: 'ping',
          status: 'unhealthy',
          message: describe(err),
          data: { code: DatabaseError.is(err) ? err.code : 'QUERY_FAILED' },
        },
      )
      return checks
    }
    checks.push(saturationCheck(pool, degradedUtilization))
    const replicas = pool.replicaStats()
    if (replicas !== undefined && replicas.replicas.length > 0) checks.push(replicaCheck(replicas))
    try {
      checks.push(...(await pool.backendChecks({ deep, timeoutMs: left() })))
    } catch (err) {
      checks.push(
        this.#busyCheck(err) ??
          this.#deadlineCheck(err, deadline, 'backend') ?? { name: 'backend', status: 'unhealthy', message: describe(err) },
      )
    }
    return checks
  }

  /**
   * The `saturation` check (degraded) for a probe that got no connection (ACQUIRE_TIMEOUT) while every
   * connection of its lane was leased and the lane's connects had not failed: the pool is busy, not
   * down (one held transaction on a `max: 1` pool, a SQLite writer in DELETE mode). Unhealthy would
   * take every replica of a loaded service out of its load balancer at once. Undefined otherwise (a
   * lane that cannot open connections stays unhealthy).
   */
  #busyCheck(err: unknown): HealthCheckDetail | undefined {
    if (!DatabaseError.is(err) || (err.code !== 'ACQUIRE_TIMEOUT' && err.code !== 'POOL_EXHAUSTED') || err.poolStats === undefined)
      return undefined
    const { used, max, pending } = err.poolStats
    if (used < max || DatabaseError.is(err.cause)) return undefined
    // the probe refused at once because the wait queue is full (maxWaitingClients): busier still, not down
    const why =
      err.code === 'POOL_EXHAUSTED'
        ? `the pool refused the check's probe: its wait queue is full (${pending} callers waiting)`
        : `no connection came free within the check's ${this.#options.timeoutMs} ms`
    return {
      name: 'saturation',
      status: 'degraded',
      message: `${why}: all ${used}/${max} connections are in use (busy, not down; the database was not probed)`,
      data: { utilization: 1, pending, code: err.code },
    }
  }

  /**
   * The `deadline` check for a probe that ran out of the check's own time (its wait for a connection,
   * ACQUIRE_TIMEOUT, or its round trip, QUERY_TIMEOUT, ended at the check's deadline): the same
   * report whichever of the two timers, the probe's or the check's, fires first.
   */
  #deadlineCheck(err: unknown, deadline: number, what: string): HealthCheckDetail | undefined {
    if (!DatabaseError.is(err) || (err.code !== 'ACQUIRE_TIMEOUT' && err.code !== 'QUERY_TIMEOUT')) return undefined
    // a timer may fire up to a millisecond early by performance.now()
    if (performance.now() < deadline - 2) return undefined
    return {
      name: 'deadline',
      status: 'unhealthy',
      message: `health check did not finish within ${this.#options.timeoutMs} ms (${what}: ${describe(err)})`,
      data: { code: err.code },
    }
  }
}

/**
 * The `saturation` check of a pool whose probe got a connection: `degraded` when a lane is used at
 * `degradedUtilization` or more with callers waiting for it, judged per lane (a SQLite writer held
 * with writes queued is saturated, however many readers are idle; summed over both lanes it read
 * 1 of 5 in use), `healthy` otherwise. `data`: the pool's utilization and callers waiting, and for a
 * saturated lane that lane's (`lane`).
 */
function saturationCheck(pool: DatabasePool<unknown>, degradedUtilization: number): HealthCheckDetail {
  const all = pool.stats()
  for (const lane of ['write', 'read'] as const) {
    const stats = pool.stats(lane)
    if (stats.max === 0 || stats.utilization < degradedUtilization || stats.pending === 0) continue
    const which = all.max === stats.max ? '' : ` of the ${lane} lane`
    return {
      name: 'saturation',
      status: 'degraded',
      data: { utilization: round(stats.utilization), pending: stats.pending, ...(which === '' ? {} : { lane }) },
      message: `${stats.used}/${stats.max} connections${which} in use with ${stats.pending} callers waiting`,
    }
  }
  return { name: 'saturation', status: 'healthy', data: { utilization: round(all.utilization), pending: all.pending } }
}

/**
 * The `replicas` check of a pool with read replicas: `degraded` while one or more is out of the read
 * lane (unreachable, refusing the pool's credentials, lagging, not a standby), `healthy` otherwise,
 * never `unhealthy`: the primary still serves the read lane then (read-only), so the pool stays
 * ready. Read from the replica set's state (its last keepalive pass, or a read whose connect
 * failed): a replica no read or pass has tried since it went down is not known to be out yet. The
 * message names each replica by `host:port` and reason only.
 */
function replicaCheck(stats: ReplicaStats): HealthCheckDetail {
  const out = stats.replicas.filter((r) => !r.usable)
  const data = {
    replicas: stats.replicas.map((r) => ({
      replica: r.replica,
      usable: r.usable,
      ...(r.reason === undefined ? {} : { reason: r.reason }),
      ...(r.lagMs === undefined ? {} : { lagMs: r.lagMs }),
    })),
  }
  if (out.length === 0) return { name: 'replicas', status: 'healthy', data }
  const where = out.length === stats.replicas.length ? 'the primary' : 'the other replicas'
  return {
    name: 'replicas',
    status: 'degraded',
    message: `${out.length} of ${stats.replicas.length} replicas out of the read lane (${out.map((r) => `${r.replica} ${r.reason ?? 'unreachable'}`).join(', ')}); read-lane work runs on ${where}`,
    data,
  }
}

function describe(err: unknown): string {
  if (DatabaseError.is(err)) return `${err.code}: ${err.message}`
  return isErrorLike(err) ? err.message : String(err)
}

function round(n: number): number {
  return Math.round(n * 100) / 100
}
