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
import { rejectExtraArguments } from '../config/validate'
import type { PoolStatsSnapshot } from '../errors/database-error'

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
 * Records pool metrics through `@opentelemetry/api` under the semantic-convention names (units in
 * seconds, attribute `db.client.connection.pool.name`) and keeps plain totals for {@link snapshot}.
 * Gauges are read from the pool at collection time, so they are exact and cost nothing per query.
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

  constructor(poolName: string, options: MetricsCollectorOptions = {}) {
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
    meter.addBatchObservableCallback(this.#callback, this.#observables)
  }

  /** Connects the gauges to a source of pool counters (the pool does this). */
  bind(stats: () => PoolStatsSnapshot): void {
    this.#stats = stats
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

  /** An acquire timed out. */
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

  /** Stops reporting gauges (the pool calls this on close). */
  detach(): void {
    this.#meter.removeBatchObservableCallback(this.#callback, this.#observables)
  }
}
