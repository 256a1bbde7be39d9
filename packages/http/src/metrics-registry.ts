import { metrics as otel, type Meter } from '@opentelemetry/api'
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import { MeterProvider, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { MetricsCollector, configError, type DatabasePoolOptions, type PoolStatsSnapshot } from '@dbpool/core'
import { checkBoolean, checkInteger, rejectUnknownKeys, requireObject } from '@dbpool/core/internal'
import { valueKind } from './value-kind'

/** Options of {@link createMetricsRegistry}. */
export interface MetricsRegistryOptions {
  /** Prepended to every Prometheus metric name. Default is `''`. */
  readonly prefix?: string
  /** Leave out the `otel_scope_name` / `otel_scope_version` labels. Default is `false`. */
  readonly withoutScopeInfo?: boolean
  /** Leave out the `target_info` series. Default is `false`. */
  readonly withoutTargetInfo?: boolean
  /** Deadline of one collection in ms. Default is `5000`. */
  readonly timeoutMs?: number
}

/** The part of a pool the registry observes when the pool does not record on it. */
export interface ObservedPool {
  readonly name: string
  readonly isOpen: boolean
  stats(): PoolStatsSnapshot
  /** The pool's collector (`DatabasePool.metrics`): a pool whose collector records on this registry is not observed again. */
  readonly metrics?: { recordsOn?(meter: Meter): boolean }
}

const OPTION_KEYS = ['prefix', 'withoutScopeInfo', 'withoutTargetInfo', 'timeoutMs'] as const

/**
 * An OpenTelemetry `MeterProvider` with a Prometheus reader (`@opentelemetry/exporter-prometheus`,
 * its HTTP server never started) that {@link createHealthHandler} serves at `/metrics`.
 *
 * Pools record on it when built with its meter:
 *
 * ```ts
 * const registry = createMetricsRegistry()
 * const pool = new DatabasePool(manager, { name: 'ledger' }, registry.poolOptions())
 * // or, for pools built by PoolFactory / backend helpers with default options:
 * registry.registerGlobal()          // before the pools are created
 * http.createServer(createHealthHandler(pool, { metrics: registry })).listen(9464)
 * ```
 *
 * A pool that does not record here still gets its connection gauges (count, max, idle, pending)
 * at scrape time, read from `pool.stats()`; its timings and timeouts need the meter. Give pools
 * distinct names: the name is the `db_client_connection_pool_name` label; a second open pool with a
 * name already reporting on this meter gets a `DBPOOL_DUPLICATE_POOL_NAME` process warning and its
 * gauges wait until the first closes (see MetricsCollector). Series of a closed pool stay
 * (OpenTelemetry's JS SDK keeps cumulative series once seen; it cannot withdraw them as Prometheus
 * would a gone target's) and read its final state: zero connections (idle and used), zero pending,
 * `max` as configured; its counters and histograms keep their totals.
 */
export class MetricsRegistry {
  /** The SDK meter provider; add views or more readers through the SDK if you need them. */
  readonly meterProvider: MeterProvider
  /** The meter pools record on (`@dbpool/core`). */
  readonly meter: Meter
  readonly #reader: PrometheusExporter
  readonly #serializer: PrometheusSerializer
  readonly #timeoutMs: number
  readonly #fallbacks = new Map<ObservedPool, MetricsCollector>()
  #global = false

  constructor(options: MetricsRegistryOptions = {}) {
    const raw = requireObject('metrics registry', options)
    rejectUnknownKeys('metrics registry', raw, OPTION_KEYS)
    const prefix = raw.prefix === undefined ? '' : raw.prefix
    if (typeof prefix !== 'string' || !/^([A-Za-z_][A-Za-z0-9_]*)?$/.test(prefix))
      throw configError(
        'metrics registry.prefix',
        typeof prefix === 'string' && !prefix.includes('://') ? prefix : valueKind(prefix),
        'must be a Prometheus name prefix ([A-Za-z_][A-Za-z0-9_]*)',
      )
    const withoutScopeInfo =
      raw.withoutScopeInfo === undefined ? false : checkBoolean('metrics registry.withoutScopeInfo', raw.withoutScopeInfo)
    const withoutTargetInfo =
      raw.withoutTargetInfo === undefined ? false : checkBoolean('metrics registry.withoutTargetInfo', raw.withoutTargetInfo)
    this.#timeoutMs = raw.timeoutMs === undefined ? 5_000 : checkInteger('metrics registry.timeoutMs', raw.timeoutMs, 1, 600_000)
    this.#reader = new PrometheusExporter({ preventServerStart: true, prefix, withoutScopeInfo, withoutTargetInfo })
    this.#serializer = new PrometheusSerializer(prefix, false, undefined, withoutTargetInfo, withoutScopeInfo)
    this.meterProvider = new MeterProvider({ readers: [this.#reader] })
    this.meter = this.meterProvider.getMeter('@dbpool/core', '0.1.0')
  }

  /** `DatabasePool` options that make a pool record on this registry (third constructor argument). */
  poolOptions(): DatabasePoolOptions {
    return { metricsOptions: { meter: this.meter } }
  }

  /** A collector on this registry for a pool named `poolName` (pass it as `{ metrics }` to the pool). */
  collector(poolName: string): MetricsCollector {
    return new MetricsCollector(poolName, { meter: this.meter })
  }

  /**
   * Makes this registry the global OpenTelemetry meter provider, so every pool created afterwards
   * with default metrics options records here. Returns false if another provider was registered first;
   * true again when called again after it succeeded ({@link shutdown} still unregisters it).
   */
  registerGlobal(): boolean {
    if (this.#global) return true
    this.#global = otel.setGlobalMeterProvider(this.meterProvider)
    return this.#global
  }

  /**
   * Collects every instrument and renders the Prometheus text exposition format (version 0.0.4).
   * Pools in `pools` that do not record on this registry get their gauges observed from `stats()`:
   * a pool records here when its collector does (`pool.metrics`, whatever name the collector was
   * given: `registry.collector('other')`) or when an open pool's collector of its name records on
   * this registry's meter. A closed pool's series (its final state, which the SDK keeps exporting)
   * do not count: a pool rebuilt under the same name is observed and takes the series over.
   */
  async scrape(pools: Iterable<ObservedPool> = []): Promise<string> {
    const observed = observedPools(pools)
    let metrics = await this.#collect()
    let added = false
    for (const [pool, collector] of this.#fallbacks) {
      // a pool observed here closed: its series now read its final state (and its name is free)
      if (pool.isOpen) continue
      collector.detach()
      this.#fallbacks.delete(pool)
      added = true
    }
    for (const pool of observed) {
      if (
        !pool.isOpen ||
        this.#fallbacks.has(pool) ||
        pool.metrics?.recordsOn?.(this.meter) === true ||
        MetricsCollector.recordsOpen(this.meter, pool.name)
      )
        continue
      const collector = new MetricsCollector(pool.name, { meter: this.meter })
      collector.bind(() => pool.stats())
      this.#fallbacks.set(pool, collector)
      added = true
    }
    if (added) metrics = await this.#collect()
    return this.#serializer.serialize(metrics)
  }

  /** Stops observing pools, unregisters the global provider if {@link registerGlobal} set it, and shuts the provider down. Idempotent. */
  async shutdown(): Promise<void> {
    for (const collector of this.#fallbacks.values()) collector.detach()
    this.#fallbacks.clear()
    if (this.#global) otel.disable()
    this.#global = false
    await this.meterProvider.shutdown().catch(() => undefined)
  }

  async #collect(): Promise<ResourceMetrics> {
    const { resourceMetrics } = await this.#reader.collect({ timeoutMillis: this.#timeoutMs })
    return resourceMetrics
  }
}

/** Creates a {@link MetricsRegistry}. */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): MetricsRegistry {
  return new MetricsRegistry(options)
}

/**
 * `scrape()`'s pools as an array, checked first: CONFIGURATION naming `metrics registry scrape pools`
 * when it is not iterable, or `metrics registry scrape pools[i]` for an entry that is not a pool (a
 * TypeError mid-scrape, or an object silently skipped).
 */
function observedPools(pools: unknown): ObservedPool[] {
  if (pools === null || typeof pools !== 'object' || typeof (pools as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function')
    throw configError('metrics registry scrape pools', pools, 'must be an iterable of pools (an array)')
  const list = [...(pools as Iterable<unknown>)]
  list.forEach((pool, i) => {
    const p = pool as Partial<ObservedPool> | null
    if (p === null || typeof p !== 'object' || typeof p.name !== 'string' || typeof p.isOpen !== 'boolean' || typeof p.stats !== 'function')
      throw configError(`metrics registry scrape pools[${i}]`, pool, 'must be a DatabasePool')
  })
  return list as ObservedPool[]
}
