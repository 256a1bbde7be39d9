import { checkCloseOptions } from '../config/call-options'
import { checkBoolean, checkPool, configError, rejectExtraArguments, rejectUnknownKeys, requireObject } from '../config/validate'
import { DatabaseError } from '../errors/database-error'
import { isErrorLike } from '../util/error-like'
import { HealthChecker, worstStatus, type HealthCheckOptions } from '../health/health-checker'
import type { HealthReport, HealthStatus } from '../health/health-report'
import type { CloseOptions, CloseReport, DatabasePool } from '../pool/database-pool'

/** The aggregate of every pool's report. */
export interface ManagerHealthReport {
  readonly status: HealthStatus
  readonly pools: Readonly<Record<string, HealthReport>>
}

/**
 * Named pools with one primary (the first added unless another is marked), checked and closed
 * together. Once `closeAll()` was called the manager is closed: it adopts no more pools.
 */
export class PoolManager {
  readonly #pools = new Map<string, DatabasePool<unknown>>()
  #primary: string | undefined
  #closed = false

  /** Takes no argument: pools are added with {@link add}; an argument is CONFIGURATION naming `PoolManager argument`. */
  constructor(...extra: []) {
    rejectExtraArguments('PoolManager', extra)
  }

  /**
   * Adds a pool under a unique name. Throws POOL_CLOSED once `closeAll()` was called (the pool is not
   * adopted and stays as it is: its owner closes it), CONFIGURATION naming `pool name` for an empty or
   * taken name, and CONFIGURATION naming `pool` when the same pool object is already registered under
   * another name (one pool counted twice in health and closed twice). CONFIGURATION naming `pool`
   * when `pool` is not a DatabasePool (it failed later, in `closeAll()` and `/ready`), naming
   * `pool manager add options` for options that are not an object or have an unknown key, naming
   * `pool manager add options.primary` when it is not a boolean; CONFIGURATION naming `pool` when the
   * pool is closed or closing (`close()` was called: `isOpen` false; `/ready` would be unhealthy for good).
   */
  add(name: string, pool: DatabasePool<unknown>, options: { readonly primary?: boolean } = {}): this {
    if (this.#closed)
      throw new DatabaseError('POOL_CLOSED', `the pool manager is closed (closeAll() was called): pool "${String(name)}" was not added`, {
        retryable: false,
      })
    if (typeof name !== 'string' || name.length === 0) throw configError('pool name', name, 'must be a non-empty string')
    checkPool('pool', pool)
    // a closed (or closing) pool would make every health check unhealthy for good
    if ((pool as { isOpen?: unknown }).isOpen === false)
      throw configError('pool', name, 'is closed (close() was called): add an open pool, or make a new one with the same settings')
    if (options === null) throw configError('pool manager add options', options, 'must be an object')
    const raw = requireObject('pool manager add options', options)
    rejectUnknownKeys('pool manager add options', raw, ['primary'])
    const primary = raw.primary === undefined ? false : checkBoolean('pool manager add options.primary', raw.primary)
    if (this.#pools.has(name)) throw configError('pool name', name, 'is already registered')
    for (const [known, registered] of this.#pools)
      if (registered === pool) throw configError('pool', name, `is the pool already registered as "${known}"`)
    this.#pools.set(name, pool)
    if (primary || this.#primary === undefined) this.#primary = name
    return this
  }

  /** The pool with that name; throws CONFIGURATION naming the known ones. */
  get(name: string): DatabasePool<unknown> {
    const pool = this.#pools.get(name)
    if (!pool) throw configError('pool name', name, `is not registered; known pools: ${[...this.#pools.keys()].join(', ') || '(none)'}`)
    return pool
  }

  /** Whether a pool with that name exists. */
  has(name: string): boolean {
    return this.#pools.has(name)
  }

  /** The primary pool. */
  get primary(): DatabasePool<unknown> {
    if (this.#primary === undefined) throw configError('primary pool', undefined, 'no pool is registered')
    return this.get(this.#primary)
  }

  /** Names in insertion order. */
  get names(): string[] {
    return [...this.#pools.keys()]
  }

  /** Whether `closeAll()` was called (`add()` then throws POOL_CLOSED). */
  get isClosed(): boolean {
    return this.#closed
  }

  /**
   * Checks every pool in parallel; the status is the worst of them. Never throws. A manager with no
   * pool reports `healthy` with no entries (nothing is failing: the liveness reading); after
   * `closeAll()` each pool reports `unhealthy` ("pool is closed").
   */
  async healthCheckAll(options: HealthCheckOptions = {}): Promise<ManagerHealthReport> {
    const checker = new HealthChecker(options)
    const entries = await Promise.all([...this.#pools].map(async ([name, pool]) => [name, await checker.check(pool)] as const))
    return { status: worstStatus(entries.map(([, r]) => r.status)), pools: Object.fromEntries(entries) }
  }

  /**
   * Closes every pool in parallel, each with the same deadline. `options` are checked first, as
   * `pool.close()` checks them (CONFIGURATION naming `close.<option>`), even when no pool is
   * registered: nothing is closed when they are bad. Then the manager is closed: a later `add()`
   * throws POOL_CLOSED; a second `closeAll()` closes the same pools again (each `close()` is idempotent).
   * Every pool's close runs to its end; when one rejects, `closeAll()` rejects after all have settled,
   * with a DatabaseError naming the pools that failed (`detail.failed`), the first failure as `cause`
   * and the other pools' reports in `detail.reports`.
   */
  async closeAll(options: CloseOptions = {}): Promise<Record<string, CloseReport>> {
    checkCloseOptions(options)
    this.#closed = true
    // every pool's close runs to its end, whatever another one's does (review r13 D5: one rejecting lost the others' reports)
    const pools = [...this.#pools]
    const settled = await Promise.allSettled(pools.map(([, pool]) => pool.close(options)))
    const reports: Record<string, CloseReport> = {}
    const failed: { name: string; reason: unknown }[] = []
    settled.forEach((result, i) => {
      const name = pools[i]![0]
      if (result.status === 'fulfilled') reports[name] = result.value
      else failed.push({ name, reason: result.reason })
    })
    if (failed.length === 0) return reports
    const first = failed[0]!.reason
    throw new DatabaseError(
      DatabaseError.is(first) ? first.code : 'QUERY_FAILED',
      `closing ${failed.map((f) => `pool "${f.name}"`).join(', ')} failed: ${isErrorLike(first) ? first.message : String(first)}; the other pools were closed (detail.reports)`,
      { retryable: false, cause: first, detail: { reports, failed: failed.map((f) => f.name) } },
    )
  }
}
