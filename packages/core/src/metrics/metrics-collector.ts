import {
  createNoopMeter,
  metrics as otel,
  type Attributes,
  type BatchObservableCallback,
  type Counter,
  type Histogram,
  type Meter,
  type ObservableUpDownCounter,
} from '@opentelemetry/api'
import { configError, rejectExtraArguments, rejectUnknownKeys, requireObject } from '../config/validate'
import { DatabaseError, type PoolStatsSnapshot } from '../errors/database-error'

/** The OpenTelemetry semantic-convention names dbpool records. */
export const METRIC_NAMES = {
  count: 'db.client.connection.count',
  idleMax: 'db.client.connection.idle.max',
  idleMin: 'db.client.connection.idle.min',
  max: 'db.client.connection.max',
  pendingRequests: 'db.client.connection.pending_requests',
  timeouts: 'db.client.connection.timeouts',
  createTime: 'db.client.connection.create_time',
  waitTime: 'db.client.connection.wait_time',
  useTime: 'db.client.connection.use_time',
  operationDuration: 'db.client.operation.duration',
} as const

/** The attribute naming the pool on every instrument. */
export const POOL_NAME_ATTRIBUTE = 'db.client.connection.pool.name'

const SECONDS_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30]

/** The bucket boundaries the database conventions advise for `db.client.operation.duration`, in seconds. */
export const OPERATION_DURATION_BUCKETS: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10])

/** What the API's no-op meter returns for every histogram: recording on it would be wasted work. */
const NOOP_HISTOGRAM = createNoopMeter().createHistogram('noop')

/** Options of a {@link MetricsCollector}. */
export interface MetricsCollectorOptions {
  /** The meter to record on. Default is the global `metrics.getMeter('@dbpool/core')`. */
  readonly meter?: Meter
}

/** Count, total and maximum of a timing, in milliseconds. */
export interface TimingSummary {
  readonly count: number
  readonly totalMs: number
  readonly maxMs: number
  readonly avgMs: number
}

/** A plain, SDK-free view of what a collector recorded. */
export interface MetricsSnapshot {
  readonly poolName: string
  readonly connections: {
    readonly idle: number
    readonly used: number
    readonly pending: number
    readonly max: number
    readonly idleMin: number
    readonly idleMax: number
  }
  readonly created: number
  readonly dropped: number
  readonly acquired: number
  readonly returned: number
  readonly timeouts: number
  readonly createTime: TimingSummary
  readonly waitTime: TimingSummary
  readonly useTime: TimingSummary
}

class Timing {
  count = 0
  totalMs = 0
  maxMs = 0
  add(ms: number): void {
    this.count++
    this.totalMs += ms
    if (ms > this.maxMs) this.maxMs = ms
  }
  summary(): TimingSummary {
    return { count: this.count, totalMs: this.totalMs, maxMs: this.maxMs, avgMs: this.count === 0 ? 0 : this.totalMs / this.count }
  }
}

/**
 * The collectors whose gauges a meter observes, by pool name: one name, one set of series. A closed
 * pool's collector stays here (reporting its final state) until a collector with the same name
 * takes its place.
 */
const SAME_NAME = new WeakMap<Meter, Map<string, MetricsCollector[]>>()

/** Names already warned about per meter (one warning per name). */
const WARNED = new WeakMap<Meter, Set<string>>()

function warnDuplicate(meter: Meter, poolName: string): void {
  let warned = WARNED.get(meter)
  if (!warned) WARNED.set(meter, (warned = new Set()))
  if (warned.has(poolName)) return
  warned.add(poolName)
  process.emitWarning(
    `two open pools named ${JSON.stringify(poolName)} record on the same meter: their connection gauges would be one series, so only the first pool's are reported until it closes (give pools distinct names)`,
    { code: 'DBPOOL_DUPLICATE_POOL_NAME' },
  )
}

/**
 * Records pool metrics through `@opentelemetry/api` under the semantic-convention names (units in
 * seconds, attribute `db.client.connection.pool.name`) and keeps plain totals for {@link snapshot}.
 * Gauges are read from the pool at collection time, so they are exact and cost nothing per query.
 *
 * The pool name is the series' identity. Two open pools with the same name on the same meter would
 * write the same series (the last observation wins, the other pool is invisible): the second one
 * emits a process warning `DBPOOL_DUPLICATE_POOL_NAME` (once per name and meter) and its gauges are
 * not reported until the first closes (then it takes the series over); its timings and timeouts
 * still add to the shared series.
 * A closed pool ({@link detach}) keeps reporting its final state: zero connections (idle and used)
 * and zero pending, its `max`, `idle.max` and `idle.min` as they were. OpenTelemetry's JS SDK keeps
 * exporting a cumulative series once seen (it has no staleness for asynchronous instruments), so the
 * series of a closed pool cannot be withdrawn and must not keep its last scrape (Prometheus's own
 * convention for a gone target is that its series stop; the nearest the SDK allows is the final,
 * empty state, which sums correctly across pools). A new pool with that name takes the series over.
 */
export class MetricsCollector {
  readonly poolName: string
  readonly #attrs: Attributes
  readonly #timeouts: Counter
  readonly #createTime: Histogram
  readonly #waitTime: Histogram
  readonly #useTime: Histogram
  readonly #operationDuration: Histogram
  readonly #meter: Meter
  readonly #observables: ObservableUpDownCounter[]
  readonly #callback: BatchObservableCallback
  #stats: () => PoolStatsSnapshot = () => ({ size: 0, idle: 0, used: 0, pending: 0, max: 0, min: 0, utilization: 0 })
  #created = 0
  #dropped = 0
  #timeoutCount = 0
  readonly #create = new Timing()
  readonly #wait = new Timing()
  readonly #use = new Timing()
  #observing = false
  #closed = false
  /** The source {@link bind} connected: whose pool, and whether it is still open (until {@link detach}). */
  #owner: CollectorOwner | undefined

  /**
   * @throws DatabaseError CONFIGURATION naming `metrics collector poolName` (not a non-empty string),
   *   `metricsOptions` (not an object, an unknown key) or `metricsOptions.meter` (not a Meter).
   */
  constructor(poolName: string, options: MetricsCollectorOptions = {}) {
    if (typeof poolName !== 'string' || poolName.length === 0)
      throw configError('metrics collector poolName', poolName, 'must be a non-empty string (the pool name)')
    checkCollectorOptions(options)
    this.poolName = poolName
    this.#attrs = { [POOL_NAME_ATTRIBUTE]: poolName }
    const meter = (this.#meter = options.meter ?? otel.getMeter('@dbpool/core', '0.1.0'))
    this.#timeouts = meter.createCounter(METRIC_NAMES.timeouts, {
      unit: '{timeout}',
      description: 'Number of connection timeouts that have occurred trying to obtain a connection from the pool.',
    })
    const seconds = (name: string, description: string): Histogram =>
      meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: SECONDS_BUCKETS } })
    this.#createTime = seconds(METRIC_NAMES.createTime, 'The time it took to create a new connection.')
    this.#waitTime = seconds(METRIC_NAMES.waitTime, 'The time it took to obtain an open connection from the pool.')
    this.#useTime = seconds(METRIC_NAMES.useTime, 'The time between borrowing a connection and returning it to the pool.')
    this.#operationDuration = meter.createHistogram(METRIC_NAMES.operationDuration, {
      unit: 's',
      description: 'Duration of database client operations.',
      advice: { explicitBucketBoundaries: [...OPERATION_DURATION_BUCKETS] },
    })
    const gauge = (name: string, unit: string, description: string): ObservableUpDownCounter =>
      meter.createObservableUpDownCounter(name, { unit, description })
    const count = gauge(
      METRIC_NAMES.count,
      '{connection}',
      'The number of connections that are currently in state described by the state attribute.',
    )
    const idleMax = gauge(METRIC_NAMES.idleMax, '{connection}', 'The maximum number of idle open connections allowed.')
    const idleMin = gauge(METRIC_NAMES.idleMin, '{connection}', 'The minimum number of idle open connections allowed.')
    const max = gauge(METRIC_NAMES.max, '{connection}', 'The maximum number of open connections allowed.')
    const pending = gauge(METRIC_NAMES.pendingRequests, '{request}', 'The number of current pending requests for an open connection.')
    this.#observables = [count, idleMax, idleMin, max, pending]
    this.#callback = (result) => {
      const s = this.#stats()
      result.observe(count, s.idle, { ...this.#attrs, 'db.client.connection.state': 'idle' })
      result.observe(count, s.used, { ...this.#attrs, 'db.client.connection.state': 'used' })
      result.observe(idleMax, s.max, this.#attrs)
      result.observe(idleMin, s.min, this.#attrs)
      result.observe(max, s.max, this.#attrs)
      result.observe(pending, s.pending, this.#attrs)
    }
    this.#observe()
  }

  /**
   * Joins the collectors of its name on this meter (warning once when an open one is there already)
   * and lets {@link MetricsCollector.#elect} choose which of them reports the series.
   */
  /**
   * Whether this collector records on `meter` (a registry tells by it that a pool reports there,
   * whatever name the collector was given).
   */
  recordsOn(meter: Meter): boolean {
    return this.#meter === meter
  }

  /**
   * Whether an open collector named `poolName` records on `meter` (a pool not closed yet: its
   * collector was not {@link detach}ed). A closed pool's series still export its final state, so a
   * registry asks this, not the series it collects, to tell whether a pool of that name records
   * there: a new pool with the name must be observed and take the series over.
   */
  static recordsOpen(meter: Meter, poolName: string): boolean {
    return (
      SAME_NAME.get(meter)
        ?.get(poolName)
        ?.some((c) => !c.#closed) ?? false
    )
  }

  #observe(): void {
    if (!this.recordsOperations) {
      // the API's no-op meter (no SDK): nothing is exported, names cannot clash
      this.#report()
      return
    }
    let byName = SAME_NAME.get(this.#meter)
    if (!byName) SAME_NAME.set(this.#meter, (byName = new Map()))
    let list = byName.get(this.poolName)
    if (!list) byName.set(this.poolName, (list = []))
    if (list.some((c) => c !== this && !c.#closed)) warnDuplicate(this.#meter, this.poolName)
    if (!list.includes(this)) list.push(this)
    MetricsCollector.#elect(list)
  }

  /**
   * One collector per name reports the gauges: the oldest open one, else the newest closed one (the
   * final state of the last pool of that name). Closed ones that no longer report are forgotten.
   */
  static #elect(list: MetricsCollector[]): void {
    const reporter = list.find((c) => !c.#closed) ?? list[list.length - 1]
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!
      if (c === reporter) continue
      c.#unreport()
      if (c.#closed) list.splice(i, 1)
    }
    if (reporter) reporter.#report()
  }

  #report(): void {
    if (this.#observing) return
    this.#observing = true
    this.#meter.addBatchObservableCallback(this.#callback, this.#observables)
  }

  #unreport(): void {
    if (!this.#observing) return
    this.#observing = false
    this.#meter.removeBatchObservableCallback(this.#callback, this.#observables)
  }

  /**
   * Connects the gauges to a source of pool counters (the pool does this; `owner` names the pool and
   * tells whether it is still open). A collector reports one pool: while the source it is bound to
   * is open (not {@link detach}ed, and `owner.open()` if given), binding another one is refused with
   * CONFIGURATION naming `pool.metrics` and that pool (it would silently take the first pool's gauges and
   * `snapshot()` over, and either pool's `close()` would detach it for both). Once that pool closed, the
   * collector may be bound again (a new pool reuses it): it reports the new pool and, when that one
   * closes, its final state.
   *
   * @throws DatabaseError CONFIGURATION naming `metrics collector bind stats` (not a function) or
   *   `pool.metrics` (already bound to an open pool).
   */
  bind(stats: () => PoolStatsSnapshot, owner?: CollectorOwner): void {
    if (typeof stats !== 'function') throw configError('metrics collector bind stats', stats, 'must be a function returning pool stats')
    const holder = this.boundTo()
    if (holder !== undefined) throw alreadyBound(this.poolName, holder)
    this.#owner = owner ?? { name: undefined, open: () => true }
    this.#stats = stats
    if (this.#closed) {
      // reused after its pool closed: it reports the new pool (taking the series of its name over)
      this.#closed = false
      this.#observe()
    }
  }

  /**
   * @internal The pool this collector reports while that pool is open: its name (`''` for a source
   * bound without one), else undefined (never bound, or its pool closed: it may be bound again).
   */
  boundTo(): string | undefined {
    const owner = this.#owner
    if (owner === undefined || this.#closed || !owner.open()) return undefined
    return owner.name ?? ''
  }

  /** A new physical connection took `durationMs` to open. */
  recordConnectionCreated(durationMs: number): void {
    this.#created++
    this.#create.add(durationMs)
    this.#createTime.record(durationMs / 1000, this.#attrs)
  }

  /** A caller waited `waitMs` for a connection. */
  recordConnectionAcquired(waitMs: number): void {
    this.#wait.add(waitMs)
    this.#waitTime.record(waitMs / 1000, this.#attrs)
  }

  /** A connection came back after `useMs` of use. */
  recordConnectionReturned(useMs: number): void {
    this.#use.add(useMs)
    this.#useTime.record(useMs / 1000, this.#attrs)
  }

  /**
   * False when the meter is the API's no-op meter (no MeterProvider was registered when this collector
   * was made): the pool then skips the per-statement work for {@link recordOperation}.
   */
  get recordsOperations(): boolean {
    return this.#operationDuration !== NOOP_HISTOGRAM
  }

  /**
   * One statement took `seconds` (`db.client.operation.duration`); `attributes` are the database
   * conventions' (`db.system.name`, `db.namespace`, `db.operation.name`, `db.collection.name`,
   * `server.address`, `server.port`, and on failure `error.type` and `db.response.status_code`).
   */
  recordOperation(seconds: number, attributes: Attributes): void {
    this.#operationDuration.record(seconds, attributes)
  }

  /** A physical connection was closed. */
  recordConnectionDropped(): void {
    this.#dropped++
  }

  /**
   * An acquire timed out: called once per ACQUIRE_TIMEOUT a caller receives (`acquireTimeoutMs`, or
   * the call's own `timeoutMs`: a statement's, a stream's, a COPY's), by the lane that made it.
   */
  recordTimeout(): void {
    this.#timeoutCount++
    this.#timeouts.add(1, this.#attrs)
  }

  /** Totals and current gauges, without any OpenTelemetry SDK. Takes no argument (CONFIGURATION naming `metrics.snapshot argument`). */
  snapshot(...extra: []): MetricsSnapshot {
    rejectExtraArguments('metrics.snapshot', extra)
    const s = this.#stats()
    return {
      poolName: this.poolName,
      connections: { idle: s.idle, used: s.used, pending: s.pending, max: s.max, idleMin: s.min, idleMax: s.max },
      created: this.#created,
      dropped: this.#dropped,
      acquired: this.#wait.count,
      returned: this.#use.count,
      timeouts: this.#timeoutCount,
      createTime: this.#create.summary(),
      waitTime: this.#wait.summary(),
      useTime: this.#use.summary(),
    }
  }

  /**
   * The pool closed (the pool calls this at the end of `close()`): from now on the gauges report its
   * final state, zero connections and zero pending with `max`, `idle.max` and `idle.min` as they
   * were, until a collector of the same name on the same meter takes the series over (a pool made
   * afterwards with that name); {@link snapshot} reads the same. Idempotent.
   */
  detach(): void {
    if (this.#closed) return
    this.#closed = true
    let last: PoolStatsSnapshot
    try {
      last = this.#stats()
    } catch {
      last = { size: 0, idle: 0, used: 0, pending: 0, max: 0, min: 0, utilization: 0 }
    }
    const final: PoolStatsSnapshot = { ...last, size: 0, idle: 0, used: 0, pending: 0, utilization: 0 }
    this.#stats = () => final
    const list = SAME_NAME.get(this.#meter)?.get(this.poolName)
    if (list) MetricsCollector.#elect(list)
    else this.#unreport()
  }
}

/** @internal Who a collector reports (see {@link MetricsCollector.bind}). */
export interface CollectorOwner {
  /** The pool's name, for the error refusing a second pool. */
  readonly name: string | undefined
  /** Whether the pool is still open (a pool whose construction failed is not). */
  readonly open: () => boolean
}

/** @internal CONFIGURATION naming `pool.metrics`: the collector already reports the open pool `holder` (`''`: a source bound without a pool). */
export function alreadyBound(collectorName: string, holder: string): DatabaseError {
  const rule = `the MetricsCollector ${JSON.stringify(collectorName)} is already the collector of ${holder === '' ? 'another source' : `pool ${JSON.stringify(holder)}`}, which is open: one collector reports one pool (give each pool its own; a collector may be reused once its pool closed)`
  return new DatabaseError('CONFIGURATION', `invalid pool.metrics: ${rule}`, { detail: { option: 'pool.metrics', rule, pool: holder } })
}

/** @internal CONFIGURATION for collector options that are not an object, have an unknown key, or a `meter` that is not a Meter. */
export function checkCollectorOptions(options: unknown): void {
  if (options === null) throw configError('metricsOptions', options, 'must be an object')
  const raw = requireObject('metricsOptions', options)
  rejectUnknownKeys('metricsOptions', raw, ['meter'])
  const meter = raw.meter as Partial<Meter> | null | undefined
  if (
    meter !== undefined &&
    (meter === null ||
      typeof meter !== 'object' ||
      typeof meter.createCounter !== 'function' ||
      typeof meter.createHistogram !== 'function' ||
      typeof meter.createObservableUpDownCounter !== 'function' ||
      typeof meter.addBatchObservableCallback !== 'function' ||
      typeof meter.removeBatchObservableCallback !== 'function')
  )
    throw configError('metricsOptions.meter', meter, 'must be an OpenTelemetry Meter (metrics.getMeter(...))')
}
