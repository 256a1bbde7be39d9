import { PoolConfig, type PoolOptions } from '../config/pool-config'
import {
  POOL_QUERY_OPTION_KEYS,
  checkBackendCheckOptions,
  checkCloseOptions,
  checkPingTimeout,
  checkQueryOptions,
  checkQueryText,
  checkWithConnection,
  extraArguments,
  hasExtraArgument,
} from '../config/call-options'
import { MAX_TIMER_MS, checkInteger, configError, rejectUnknownKeys, requireObject } from '../config/validate'
import { DatabaseError, type PoolStatsSnapshot } from '../errors/database-error'
import { OUTCOME_UNKNOWN, isOutcomeUnknown } from '../errors/error-outcome'
import type {
  Backend,
  ConnectionManager,
  HeldLock,
  ExecuteOptions,
  Lane,
  QueryResult,
  ReferencedHandle,
  SessionFeatures,
} from '../driver/connection-manager'
import type { HealthCheckDetail } from '../health/health-report'
import { MetricsCollector, alreadyBound, checkCollectorOptions, type MetricsCollectorOptions } from '../metrics/metrics-collector'
import { isSqlFragment, type CompiledQuery } from '../sql/sql'
import { describeValue } from '../sql/parameters'
import { runTransaction, type TransactionOptions } from '../transaction/transaction'
import { transactionLeftOpenError, transactionStateUnknownError } from '../transaction/transaction-outcome'
import { eventLoopTurn, Lease, type LeaseHolder } from './lease'
import { LanePool, withDeadline, type LaneHost, type OnAcquired, type OnAcquireFailed } from './lane-pool'
import {
  ConnectionHandle,
  type HeldConnectionHost,
  type LeaseRunner,
  type PoolConnection,
  type Queryable,
  type Transaction,
} from './pool-connection'
import { PoolMaintenance } from './pool-maintenance'
import { createReplicaSet, type ReplicaSet, type ReplicaStats } from './replica-set'
import { StatementSharing } from './statement-sharing'
import { StreamSupport, type RowStream, type StreamOptions } from './row-stream'
import { PoolExtensions, type PoolExtension } from './pool-extensions'
import { PoolEventEmitter, type PoolEventName, type PoolEvents } from './pool-events'
import { checkLogger, type PoolLogger } from '../telemetry/logger'
import { PoolTelemetry, type OperationOptions, type OperationSpan } from '../telemetry/pool-telemetry'
import { noteServer } from '../telemetry/statement-server'
import type { Tracer } from '@opentelemetry/api'
import type { PooledConnection } from './pooled-connection'
import { isErrorLike } from '../util/error-like'

/**
 * Options of a {@link DatabasePool} besides its {@link PoolConfig}: the fourth argument of
 * `createSqlitePool`, `options.pool` of `PoolFactory.create`, among `createPostgresPool`'s options.
 * Anything but a plain object, or an unknown key (a misspelt `loger`), is CONFIGURATION naming it
 * (`pool.loger`) on every backend.
 */
export interface DatabasePoolOptions {
  /**
   * The collector to record on. Default is a new collector on the global OpenTelemetry meter. One
   * collector reports one pool: a collector another open pool was given is CONFIGURATION naming
   * `pool.metrics` and that pool, when this pool is made; once that pool closed it may be reused.
   */
  readonly metrics?: MetricsCollector
  /** Passed to the default collector. */
  readonly metricsOptions?: MetricsCollectorOptions
  /**
   * Where the pool writes its own log lines (pino, or any object with pino's five level methods; see
   * {@link PoolLogger}). Default: none; leaks and throwing listeners then go to `process.emitWarning`.
   */
  readonly logger?: PoolLogger
  /**
   * The tracer for the pool's spans. Default is the global provider's tracer `@dbpool/core`, taken
   * once when the pool is made (an SDK registered later is still used: the global provider is a proxy).
   */
  readonly tracer?: Tracer
}

/** Options of `pool.query()`: the statement's deadline and signal, and the lane. */
export interface QueryOptions extends ExecuteOptions {
  /**
   * `'read'`: run on the read lane (a Postgres replica, a SQLite reader) whatever the routing says,
   * as read-only work (SQLite: a reader has `PRAGMA query_only` on; without readers the writer is
   * lent on a lease with it on until the release: a write is READ_ONLY either way; Postgres without
   * replicas: the primary, writes run); `'write'`: on the primary / writer. Default: the pool's
   * routing (`readRouting`; SQLite: read-only statements on a reader).
   */
  readonly lane?: Lane
}

/** Options of {@link DatabasePool.validateConnections}. */
export interface ValidateConnectionsOptions {
  /** Bound of each ping in ms, at most `min(createTimeoutMs, 5000)` (the default). */
  readonly timeoutMs?: number
}

/** Options of `withConnection()`. */
export interface WithConnectionOptions {
  /**
   * Which lane to borrow from. Default is `'write'`. `'read'` is read-only work as for
   * {@link QueryOptions.lane} (SQLite without readers: the writer, with `query_only` on until the release).
   */
  readonly lane?: Lane
  /**
   * Aborting while the caller still waits for a connection takes it out of the queue: the call
   * rejects with QUERY_CANCELLED (`cause`: the signal's reason) and `fn` never runs. Once `fn` runs,
   * the signal is `fn`'s to watch. Default: none.
   */
  readonly signal?: AbortSignal
}

/** Options of `close()`. */
export interface CloseOptions {
  /**
   * How long the work issued before `close()` may take to finish (callers still waiting for a
   * connection included) before waiting callers fail and leases still out are taken back. Default is `30000`.
   * Destroying the connections after that gets what is left, but at least 1 s (see `close()`).
   */
  readonly timeoutMs?: number
}

/** A lease still out when `close()` gave up waiting. */
export interface OutstandingLease {
  readonly leaseId: number
  readonly connectionId: number
  readonly lane: Lane
  readonly heldForMs: number
  readonly stack: string
}

/** What `close()` reports. */
export interface CloseReport {
  readonly durationMs: number
  /** Leases still held at the deadline; they were revoked and their connections destroyed. */
  readonly outstandingLeases: readonly OutstandingLease[]
  /** Callers still waiting for a connection at the deadline; each failed with POOL_CLOSED. */
  readonly abortedWaiters: number
  /** True when some step hit the deadline. */
  readonly timedOut: boolean
}

type PoolState = 'open' | 'closing' | 'closed'

/** A direct connection: every session feature works. */
const PLAIN_SESSION: SessionFeatures = Object.freeze({ pgbouncer: false, sessions: true })

/** Awaited to let the current call return first (one microtask). */
const SETTLED = Promise.resolve()

/** What `#acquire` hands a connection to: the acquirer's stack (leak detection) and the call's own argument. */
type Lender<B, T> = OnAcquired<unknown, Error | undefined, B, T>

/** A statement waiting for a lease of its own. */
interface LeasedQuery {
  readonly compiled: CompiledQuery
  readonly options: ExecuteOptions | undefined
}

/** What a transaction attempt runs on its lease (see `TransactionHost.lease`). */
type TransactionBody<T> = (tx: ConnectionHandle<unknown>, markBroken: (err: unknown) => DatabaseError) => Promise<T>

/**
 * The pool: one class for every backend, generic over the {@link ConnectionManager}, holding one
 * tarn pool per lane. Leases are taken and released only inside this class.
 *
 * ```ts
 * const pool = new DatabasePool(manager, { max: 10, name: 'ledger' })
 * const { rows } = await pool.query(sql`select * from accounts where id = ${id}`)
 * await pool.transaction(async (tx) => { ... }, { isolation: 'serializable', retry: true })
 * await pool.close()
 * ```
 */
/** Swallows a settled statement's outcome where only its end matters. */
function noop(): void {}

export class DatabasePool<out C = unknown> {
  /** The validated settings. */
  readonly config: PoolConfig
  /** Records the OpenTelemetry pool metrics; `metrics.snapshot()` works without an SDK. */
  readonly metrics: MetricsCollector
  readonly #manager: ConnectionManager<unknown>
  readonly #events: PoolEventEmitter
  readonly #write: LanePool<unknown>
  readonly #read: LanePool<unknown> | undefined
  /** The read lane when the manager has read targets (Postgres replicas): a pool per replica. */
  readonly #replicas: ReplicaSet | undefined
  /**
   * No read lane, and the manager makes a write-lane connection read-only for work asked on the read
   * lane (`lendForRead`: SQLite with `readers: 0`, `:memory:`): such work takes a lease (never the
   * lease-free path), made read-only when lent and restored at its release.
   */
  readonly #readOnWriter: boolean
  /**
   * Calls admitted and not finished: waiting for a connection or holding a lease (each lease is also
   * `conn.lease` of its connection: no per-lease set on the hot path). close() waits for it to reach 0.
   */
  #admitted = 0
  #state: PoolState = 'open'
  /** Set at close()'s deadline: a connection handed out from then on is refused. */
  #revoking = false
  #closing: Promise<CloseReport> | undefined
  /** Transactions sleeping their retry backoff (see {@link #backoff}): woken at close()'s deadline. */
  readonly #sleeping = new Set<() => void>()
  /** Waits for {@link exclusiveLock} in progress: close() aborts them at once. */
  readonly #lockWaits = new Set<AbortController>()
  #drained: (() => void) | undefined
  /**
   * Connections whose lease was released and whose reset (Postgres: the ROLLBACK of a transaction
   * left open, a setup run again) is still running: no lease holds them, yet their caller has not
   * settled. close() drains them, and destroys those still resetting at its deadline.
   */
  readonly #resetting = new Set<PooledConnection<unknown>>()
  readonly #maintenance: PoolMaintenance
  readonly #sharing: StatementSharing | undefined
  readonly #streams: StreamSupport
  readonly #telemetry: PoolTelemetry
  readonly #extensions = new PoolExtensions()

  constructor(manager: ConnectionManager<C>, config?: PoolConfig | PoolOptions, options: DatabasePoolOptions = {}) {
    this.config = PoolConfig.from(config)
    this.#manager = manager
    const readState = manager.transactionState
    this.#held = {
      backend: manager.backend,
      beginStatement: (settings) => manager.beginStatement(settings),
      transactionState: readState && ((native) => readState.call(manager, native as C)),
      settledTransactionState:
        manager.settledTransactionState && ((native, options) => manager.settledTransactionState!(native as C, options)),
      markBroken: (lease, err) => this.#markBroken(lease, err),
      traced: (run) => this.#telemetry.transaction(run),
    }
    this.#events = new PoolEventEmitter((event, err) => {
      if (this.#telemetry.log) this.#telemetry.listenerThrew(event, err)
      else process.emitWarning(`dbpool: a "${event}" listener threw: ${isErrorLike(err) ? err.message : String(err)}`, 'DbpoolWarning')
    })
    checkPoolOptionKeys(options)
    const logger = checkLogger(options.logger)
    checkTelemetryOptions(options)
    this.metrics = options.metrics ?? new MetricsCollector(this.config.name, options.metricsOptions)
    this.#telemetry = new PoolTelemetry({
      backend: manager.backend,
      target: manager.telemetryTarget,
      config: this.config,
      metrics: this.metrics,
      tracer: options.tracer,
      logger,
      redact: manager.redact && ((text) => manager.redact!(text)),
      stats: () => this.stats(),
    })
    const host = this.#laneHost()
    const writeMax = Math.min(this.config.max, manager.lanes.writeMax ?? this.config.max)
    this.#write = new LanePool(host, 'write', writeMax, Math.min(this.config.min, writeMax))
    const readers = manager.lanes.readers
    this.#read = readers > 0 ? new LanePool(host, 'read', readers, Math.min(this.config.min, readers)) : undefined
    this.#replicas = createReplicaSet(manager, host, this.config, {
      emitState: (info) => {
        this.#telemetry.replica(info)
        this.#events.emit('replica', info)
      },
      emitFallback: (info) => {
        this.#telemetry.readFallback(info)
        this.#events.emit('readFallback', info)
      },
    })
    this.#readOnWriter = this.#read === undefined && this.#replicas === undefined && manager.lendForRead !== undefined
    const depth = manager.pipelineDepth ?? 1
    this.#sharing = depth > 1 && manager.canPipeline ? new StatementSharing(this.#sharingHost(), depth) : undefined
    this.#maintenance = new PoolMaintenance({
      config: this.config,
      lanes: () => this.#lanes(),
      isOpen: () => this.#state === 'open',
      activeLeases: () => this.#activeLeases(),
      toError: (err) => toDatabaseError(this.#manager, err),
      emitError: (error) => this.#emitError(error),
      keepalive: this.#replicas && (() => this.#replicas!.probe(Math.min(this.config.createTimeoutMs, 5_000))),
      emitLeak: (info) => {
        this.#telemetry.leak(info)
        if (this.#events.listenerCount('leak') > 0) this.#events.emit('leak', info)
        else if (!this.#telemetry.log)
          process.emitWarning(
            `dbpool: pool "${this.config.name}" lease ${info.leaseId} held for ${info.heldForMs} ms (possible leak), acquired at:\n${info.stack}`,
            'DbpoolLeakWarning',
          )
      },
    })
    this.#maintenance.start()
    this.#streams = new StreamSupport({
      manager: this.#manager,
      compile: (query, params) => this.#compile(query, params),
      lane: (compiled, requested) =>
        requested === undefined
          ? this.#hasReadLane && this.#manager.route
            ? this.#manager.route(compiled)
            : 'write'
          : requested === 'read' && (this.#replicas || this.#readOnWriter)
            ? 'read'
            : this.#lane(requested).lane,
      acquire: (lane, signal) => {
        const leasing = this.#acquire(lane, this.#leased, undefined, signal)
        // readYourWrites: a stream's statement does not pass #execute; a write-lane stream may write (INSERT ... RETURNING)
        return lane === 'write' && this.#replicas?.readYourWrites ? leasing.then(markWrote) : leasing
      },
      release: (lease) => this.#release(lease),
      noteStatement: (lease, compiled) => this.#replicas?.noteStatement(lease, compiled),
      afterStatement: (lease) => (this.#replicas?.readYourWrites ? this.#recordCommitted(lease) : undefined),
      fail: (lease, err) =>
        this.#manager.isUsable(lease.conn.native) ? toDatabaseError(this.#manager, err) : this.#markBroken(lease, err),
      closedError: () => this.#closedError(),
      watch: (compiled) => (this.#telemetry.watching ? this.#telemetry.stream(compiled) : undefined),
    })
    // last: a pool whose construction failed never held the collector (checked free in checkTelemetryOptions)
    this.metrics.bind(() => this.stats(), { name: this.config.name, open: () => this.#state !== 'closed' })
  }

  /** The backend of this pool's manager. */
  get backend(): Backend {
    return this.#manager.backend
  }

  /** The redacted target (no password). */
  get target(): string {
    return this.#manager.target
  }

  /**
   * What a session can be relied on for through this pool's target: `sessions: false` (with the
   * reason) behind PgBouncer in transaction mode, where LISTEN, session advisory locks and SET do not
   * stay with the client. Features that need a session check it and refuse with CONFIGURATION.
   */
  get sessionFeatures(): SessionFeatures {
    return this.#manager.sessionFeatures ?? PLAIN_SESSION
  }

  /** The pool's name (from the config). */
  get name(): string {
    return this.config.name
  }

  /** True until `close()` is called. */
  get isOpen(): boolean {
    return this.#state === 'open'
  }

  /**
   * Subscribes to a pool event; a throwing listener never breaks the pool. Returns the pool (chains
   * as Node's EventEmitter). Throws CONFIGURATION naming `on.event` for a name that is not one of
   * {@link PoolEvents} (a typo would wait for an event that never comes) and `on.listener` for a
   * listener that is not a function.
   */
  on<E extends PoolEventName>(event: E, listener: PoolEvents[E]): this {
    this.#events.on(event, listener)
    return this
  }

  /** Removes a listener added with {@link on} (nothing when it was not); CONFIGURATION as {@link on}, naming `off.<argument>`. */
  off<E extends PoolEventName>(event: E, listener: PoolEvents[E]): this {
    this.#events.off(event, listener)
    return this
  }

  /**
   * The read lane's replicas (usable or why not, lag, connections) and where read-lane work ran;
   * `undefined` without replicas.
   */
  replicaStats(): ReplicaStats | undefined {
    return this.#replicas?.stats()
  }

  /**
   * Counters over all lanes (or `lane`'s): size, idle, used, pending, max, min, utilization. `max`
   * and `min` are the lanes' own, summed (`min` applies per lane, each capped at the lane's size:
   * SQLite with `min: 1` reports 2, its writer and one reader). Throws CONFIGURATION naming
   * `stats.lane` for a lane that is not `'write'` or `'read'`.
   */
  stats(lane?: Lane): PoolStatsSnapshot {
    if (lane !== undefined && lane !== 'write' && lane !== 'read') throw configError('stats.lane', lane, "must be 'write' or 'read'")
    const dedicated = lane === undefined ? this.#extensions.connections : undefined
    if (dedicated !== undefined) return { ...this.#allStats(), dedicated }
    return lane === undefined ? this.#allStats() : this.#oneLaneStats(lane)
  }

  /**
   * @internal For backend packages: the pool's extension under `key` (created by `create`, given
   * the manager, on first use), whose connections `stats().dedicated` counts and `close()` ends
   * (Postgres `listen()`). POOL_CLOSED once `close()` was called.
   */
  extension<T extends PoolExtension>(key: symbol, create: (manager: ConnectionManager<unknown>) => T): T {
    if (this.#state !== 'open') throw this.#closedError()
    return this.#extensions.get(key, () => create(this.#manager))
  }

  /**
   * @internal For `@dbpool/kysely`: the manager's {@link ConnectionManager.exclusiveLock} on this
   * database (SQLite: a lock file next to it), or undefined when the backend has none (Postgres).
   * POOL_CLOSED once `close()` was called, also while waiting for it (close() ends the wait at once);
   * BUSY when another holder kept it past `timeoutMs`;
   * CONFIGURATION when its lock file cannot be created (SQLite; a `readonly` pool takes none).
   */
  async exclusiveLock(name: string, timeoutMs: number): Promise<HeldLock | undefined> {
    if (this.#state !== 'open') throw this.#closedError()
    const lock = this.#manager.exclusiveLock
    if (lock === undefined) return undefined
    // a wait for the lock is new work, not a lease to drain: close() ends it at once (POOL_CLOSED)
    const waiting = new AbortController()
    this.#lockWaits.add(waiting)
    let held: HeldLock
    try {
      held = await lock.call(this.#manager, name, timeoutMs, waiting.signal)
    } catch (err) {
      if (waiting.signal.aborted) throw this.#closedError()
      throw err
    } finally {
      this.#lockWaits.delete(waiting)
    }
    if (this.#state !== 'open') {
      held.release()
      throw this.#closedError()
    }
    return held
  }

  /**
   * @internal For `@dbpool/kysely`: the refusal a lease-free `pool.query(text)` gets because `text`
   * changes a connection setting that the release of its lease restores at once (SQLite: a PRAGMA
   * that sets one, see `ConnectionManager.checkLeaseFree`), without running anything; undefined when
   * it changes none, or the backend refuses nothing (Postgres).
   */
  settingChangeError(text: string): DatabaseError | undefined {
    const check = this.#manager.checkLeaseFree
    if (check === undefined) return undefined
    try {
      check.call(this.#manager, { text, params: [] })
    } catch (err) {
      return toDatabaseError(this.#manager, err)
    }
    return undefined
  }

  /**
   * @internal For backend packages: runs work that does not go through `query()` (Postgres COPY,
   * LISTEN, NOTIFY) under a span of the pool's tracer, named and attributed from `text` as a
   * statement's CLIENT span is, failed with `error.type` when `run` rejects (see
   * `PoolTelemetry.operation`). `run` gets the span for attributes and events (a no-op one without an SDK).
   */
  traced<T>(text: string, run: (span: OperationSpan) => Promise<T>, options?: OperationOptions): Promise<T> {
    try {
      return this.#telemetry.operation(text, run, options)
    } catch (err) {
      // a promise-returning method never throws synchronously (review r13 D1)
      return Promise.reject<T>(err)
    }
  }

  /**
   * @internal For backend packages: one line on the pool's `logger` at `level`, with `pool` and
   * `event` first as the pool's own lines, and `err` (when given) written secret-free as theirs are.
   * False when the pool has no logger (the caller decides whether a process warning replaces it).
   */
  log(
    level: 'debug' | 'info' | 'warn' | 'error',
    event: string,
    msg: string,
    fields: Record<string, unknown> = {},
    err?: unknown,
  ): boolean {
    const log = this.#telemetry.log
    if (log === undefined) return false
    log.write(level, event, err === undefined ? fields : { ...fields, err: log.error(err) }, msg)
    return true
  }

  #oneLaneStats(lane: Lane): PoolStatsSnapshot {
    if (lane === 'write') return this.#laneStats(this.#write)
    if (lane === 'read') return this.#readStats() ?? { size: 0, idle: 0, used: 0, pending: 0, max: 0, min: 0, utilization: 0 }
    return this.#allStats()
  }

  #allStats(): PoolStatsSnapshot {
    const w = this.#laneStats(this.#write)
    const r = this.#readStats()
    if (!r) return w
    const max = w.max + r.max
    const used = w.used + r.used
    return {
      size: w.size + r.size,
      idle: w.idle + r.idle,
      used,
      pending: w.pending + r.pending,
      max,
      min: w.min + r.min,
      utilization: used / max,
    }
  }

  /** The read lane's counters: its pool, or the sum over the replicas' pools. */
  #readStats(): PoolStatsSnapshot | undefined {
    if (this.#read) return this.#laneStats(this.#read)
    if (!this.#replicas) return undefined
    const all = this.#replicas.pools.map((p) => this.#laneStats(p))
    const sum = (key: 'size' | 'idle' | 'used' | 'pending' | 'max' | 'min'): number => all.reduce((n, s) => n + s[key], 0)
    return {
      size: sum('size'),
      idle: sum('idle'),
      used: sum('used'),
      pending: sum('pending'),
      max: sum('max'),
      min: sum('min'),
      utilization: sum('used') / sum('max'),
    }
  }

  /** Whether the pool has a read lane (SQLite readers, Postgres replicas). */
  get #hasReadLane(): boolean {
    return this.#read !== undefined || this.#replicas !== undefined
  }

  #laneStats(lane: LanePool<unknown>): PoolStatsSnapshot {
    const s = lane.stats()
    // a connection kept by statement sharing between two statements is idle to the caller
    const held = this.#sharing?.idleHeld(lane) ?? 0
    if (held === 0) return s
    return { ...s, idle: s.idle + held, used: s.used - held, utilization: (s.used - held) / s.max }
  }

  /**
   * Runs one statement: an `sql` fragment, or backend-native text with parameters. On a pool with a
   * read lane, a statement the manager routes as read-only runs on a reader. `options` ({@link QueryOptions})
   * are checked before anything runs, the same on every backend: a bad `lane`, `timeoutMs` or `signal`,
   * another key, or options that are not an object reject with CONFIGURATION naming `query.<option>`.
   * A defined argument after `options` (a pg-style callback) rejects with CONFIGURATION (`detail.option`
   * `query()`); trailing `undefined` arguments are none (see `hasExtraArgument`), on `stream()` and
   * a connection's or transaction's too.
   */
  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    // not an async function: the lease-free paths return their own promise without an extra frame
    let compiled: CompiledQuery
    let lane: Lane
    let routed = false
    try {
      // refused before anything runs, whatever the backend (see config/call-options)
      // eslint-disable-next-line prefer-rest-params -- arguments, not a rest parameter: the public signature stays 3 arguments
      if (arguments.length > 3 && hasExtraArgument(arguments)) throw extraArguments('query', arguments)
      if (options !== undefined) checkQueryOptions(options, POOL_QUERY_OPTION_KEYS)
      compiled = this.#compile(query, params)
      if (options?.lane !== undefined) {
        lane = options.lane
        options = withoutLane(options)
      } else if (this.#hasReadLane && this.#manager.route) {
        lane = this.#manager.route(compiled)
        routed = true
      } else lane = 'write'
    } catch (err) {
      return Promise.reject(err)
    }
    if (routed && lane === 'read' && this.#replicas) return this.#routedToReplica<R>(compiled, options)
    // one getter when nothing watches (no SDK, no meter provider, no slow-statement log)
    if (this.#telemetry.watching) return this.#watchedQuery<R>(lane, compiled, options)
    return this.#dispatch<R>(lane, compiled, options)
  }

  /**
   * `readRouting: 'auto'` sent a statement to a replica: one the standby refuses as a write (25006,
   * READ_ONLY: a view or functional notation `t.f` calling a function that writes, which the text
   * does not show) runs again on the primary. Nothing ran on the standby (it commits nothing).
   */
  #routedToReplica<R>(compiled: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    const running = this.#telemetry.watching
      ? this.#watchedQuery<R>('read', compiled, options)
      : this.#dispatch<R>('read', compiled, options)
    return running.catch((err: unknown) => {
      if (!DatabaseError.is(err) || err.code !== 'READ_ONLY' || this.#state !== 'open') throw err
      // a write after all: readYourWrites records its position
      this.#replicas?.refusedOnReplica(compiled)
      return this.#telemetry.watching ? this.#watchedQuery<R>('write', compiled, options) : this.#dispatch<R>('write', compiled, options)
    })
  }

  // the closures of the watched paths live in methods of their own: a closure in query() or #run would
  // make V8 allocate a context for their variables on every call, watched or not
  #watchedQuery<R>(lane: Lane, compiled: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    return this.#telemetry.statement(compiled, () => this.#dispatch<R>(lane, compiled, options))
  }

  #watchedExecute<R>(lease: Lease<unknown>, compiled: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    return this.#telemetry.statement(compiled, () => this.#execute<R>(lease, compiled, options))
  }

  /** Runs a compiled statement on the lease-free path the manager allows, or on a lease of its own. */
  #dispatch<R>(lane: Lane, compiled: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    // read-lane work on the writer takes a lease, made read-only while it lasts (see #readOnWriter)
    if (
      this.#manager.executeSync &&
      this.#state === 'open' &&
      options?.signal?.aborted !== true &&
      !(lane === 'read' && this.#readOnWriter)
    ) {
      try {
        const idle = this.#idleConnection(this.#lane(lane))
        const result = idle && this.#executeDirect<R>(idle, compiled)
        if (result) return Promise.resolve(result)
        // undefined: no idle connection, or the statement must wait (a SQLite lock held elsewhere; it
        // changed nothing) and waits on a lease, through the manager's `execute`
      } catch (err) {
        return Promise.reject(err)
      }
    }
    const shareable =
      this.#sharing !== undefined &&
      this.#state === 'open' &&
      options?.timeoutMs === undefined &&
      options?.signal === undefined &&
      this.#manager.canPipeline!(compiled)
    if (shareable && !(lane === 'write' && this.#replicas?.needsLease(compiled))) {
      // a deadline or a cancel can destroy the connection: such statements don't share one
      if (lane === 'read' && this.#replicas) return this.#shareOnReplica<R>(this.#replicas, compiled, shareable === 'read')
      return this.#sharing!.run<R>(this.#lane(lane), compiled, shareable === 'read')
    }
    return this.#queryOnLease<R>(lane, compiled, options)
  }

  /**
   * A lone read-lane statement sharing a replica's connection: on the replica the set chooses (on a
   * lease of its own when `readYourWrites` must check the connection that serves it); a replica
   * found down is taken out and the statement, a read, runs again on the next choice.
   */
  #shareOnReplica<R>(replicas: ReplicaSet, compiled: CompiledQuery, read: boolean): Promise<QueryResult<R>> {
    if (replicas.checksConnections) return this.#queryOnLease<R>('read', compiled, undefined)
    const pool = replicas.choose() ?? this.#write
    const running = this.#sharing!.run<R>(pool, compiled, read)
    if (pool === this.#write || replicas.isPrimary(pool)) return running
    return running.catch((err: unknown) => {
      if (!DatabaseError.is(err) || !REPLICA_DOWN_CODES.has(err.code) || this.#state !== 'open') throw err
      // a statement that may have taken effect (a write sent to the read lane of a server that took it) is not run again
      const unknown = isOutcomeUnknown(err)
      replicas.failed(pool, err, unknown)
      if (unknown) throw err
      return this.#queryOnLease<R>('read', compiled, undefined)
    })
  }

  #queryOnLease<R>(lane: Lane, compiled: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    if (this.#manager.checkLeaseFree) {
      try {
        this.#manager.checkLeaseFree(compiled)
      } catch (err) {
        return Promise.reject(toDatabaseError(this.#manager, err))
      }
    }
    // a signal that aborts while the caller waits for a connection takes it out of the queue
    // a statement's timeoutMs bounds its wait for a connection too (ACQUIRE_TIMEOUT: nothing was sent)
    return this.#acquire(lane, this.#lendQuery, { compiled, options }, waitSignal(options), false, options?.timeoutMs) as Promise<
      QueryResult<R>
    >
  }

  async #queryLeased<R>(lease: Lease<unknown>, compiled: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    try {
      const result = await this.#execute<R>(lease, compiled, options)
      // the release below rolls back a transaction the text left open: never report that work as done
      let state = this.#manager.transactionState?.(lease.conn.native)
      // Postgres: an answer still on its way (pipeline mode) is settled; still unknown: its outcome is unknown
      if (state === 'unknown' && this.#manager.settledTransactionState) {
        state = await this.#manager.settledTransactionState(lease.conn.native)
        // not answered in time: the outcome is unknown, and the release closes the connection (see transactionStateUnknownError)
        if (state === 'unknown') throw this.#markBroken(lease, transactionStateUnknownError(this.#manager.backend, 'pool.query() ended'))
      }
      if (state === 'open' || state === 'failed')
        throw transactionLeftOpenError(this.#manager.backend, 'query', this.#manager.committedBeforeLeftOpen?.(lease.conn.native) === true)
      return result
    } finally {
      const releasing = this.#release(lease)
      if (releasing) await releasing
    }
  }

  /**
   * An idle, usable connection of a lane that nobody holds: safe to use for one synchronous statement,
   * which runs to completion before any other code (a lease, a transaction) can touch it.
   */
  #idleConnection(lane: LanePool<unknown>): PooledConnection<unknown> | undefined {
    // the connection used last is almost always free again: try it before walking the lane
    const last = lane.lastDirect
    if (last && this.#directlyUsable(last)) return last
    for (const conn of lane.live) {
      if (this.#directlyUsable(conn)) return (lane.lastDirect = conn)
    }
    return undefined
  }

  #directlyUsable(conn: PooledConnection<unknown>): boolean {
    return !conn.leased && !conn.broken && !conn.destroyed && this.#manager.isUsable(conn.native)
  }

  #executeDirect<R>(conn: PooledConnection<unknown>, query: CompiledQuery): QueryResult<R> | undefined {
    let result: QueryResult<R> | undefined
    try {
      result = this.#manager.executeSync!<R>(conn.native, query)
    } catch (err) {
      const error = toDatabaseError(this.#manager, err)
      if (!this.#manager.isUsable(conn.native)) {
        conn.broken ??= error
        this.#maintenance.sweep()
      }
      // no release follows a direct statement: a `BEGIN` sent through query() must not leave the idle
      // connection inside a transaction that later statements and leases would run in
      this.#resetDirect(conn)
      throw error
    }
    // a reader's statement is not followed by a transactionState call (the point-read hot path): the
    // manager's executeSync throws for one that left a transaction open there (see ConnectionManager.executeSync)
    if (result === undefined || conn.lane !== 'write') return result
    const readState = this.#manager.transactionState
    if (readState === undefined) {
      this.#resetDirect(conn)
      return result
    }
    const state = readState.call(this.#manager, conn.native)
    if (state === 'idle') return result
    // the text left a transaction open ('BEGIN; insert ...'): it is rolled back now, so the work is not done
    const committedBefore = this.#manager.committedBeforeLeftOpen?.(conn.native) === true
    this.#resetDirect(conn)
    throw transactionLeftOpenError(this.#manager.backend, 'query', committedBefore)
  }

  #resetDirect(conn: PooledConnection<unknown>): void {
    // a reader too: a failing text of its own transaction control (`BEGIN; select ...; select nope`)
    // would leave it inside an aborted transaction, failing every later read routed to it
    if (conn.broken) return
    try {
      const resetting = this.#manager.reset(conn.native)
      if (resetting) resetting.catch((err: unknown) => this.#discardDirect(conn, err))
    } catch (err) {
      this.#discardDirect(conn, err)
    }
  }

  #discardDirect(conn: PooledConnection<unknown>, err: unknown): void {
    conn.broken ??= toDatabaseError(this.#manager, err)
    this.#maintenance.sweep()
  }

  /**
   * Streams a statement's rows (an `AsyncIterable`: `for await`, `Readable.from()`), a batch at a
   * time, holding one lease for the whole iteration, released when the loop ends, breaks or throws.
   * Postgres: a server-side cursor (pg-cursor) on a connection of its own, never shared; SQLite:
   * `iterate()` on a reader (for a read-only statement), yielding to the event loop between batches.
   * Parameters and rows follow `query()`'s contract. See {@link RowStream} and {@link StreamOptions}.
   */
  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: StreamOptions): RowStream<R> {
    // eslint-disable-next-line prefer-rest-params -- arguments, not a rest parameter: the public signature stays 3 arguments
    const extra = arguments.length > 3 && hasExtraArgument(arguments) ? arguments : undefined
    if (extra) return this.#streams.pool<R>(query, params, extraArguments('stream', extra) as StreamOptions)
    return this.#streams.pool<R>(query, params, options)
  }

  /**
   * Lends a connection to `fn` and takes it back when `fn` settles. The only way to hold one. A `fn`
   * that is not a function, a bad `lane` or another key rejects with CONFIGURATION (`withConnection.<option>`)
   * before a connection is taken. Statements `fn` issued and did not await are answered before the
   * connection's transaction state is read: `fn` returning inside a transaction rejects
   * TRANSACTION_ROLLED_BACK (the release rolls it back); on Postgres, statements still unanswered after
   * `cancelTimeoutMs` reject QUERY_FAILED with `detail: { reason: 'transaction-state-unknown', outcome:
   * 'unknown' }` (they may have committed) and the connection is closed instead of reused; so does a
   * connection lost with a COMMIT of `fn` in flight, unless `fn` returned right after awaiting that
   * statement's own error.
   */
  withConnection<T>(fn: (conn: PoolConnection<C>) => Promise<T>, options?: WithConnectionOptions): Promise<T> {
    let lane: Lane
    try {
      lane = checkWithConnection(fn, options)
    } catch (err) {
      return Promise.reject<T>(err)
    }
    return this.#acquire(
      lane === 'read' && (this.#hasReadLane || this.#readOnWriter) ? 'read' : 'write',
      this.#lendConnection,
      fn,
      waitSignal(options),
    ) as Promise<T>
  }

  /** `immediate`: the lease may have been handed out inside withConnection() itself (see `#lendConnection`). */
  async #withHandle<T>(lease: Lease<unknown>, fn: (conn: PoolConnection<C>) => Promise<T>, immediate: boolean): Promise<T> {
    const handle = new ConnectionHandle(
      lease,
      this.#manager.backend,
      this.#run,
      this.#held,
      this.#streams,
    ) as unknown as ConnectionHandle<C>
    try {
      // `fn` always starts after withConnection() has returned, as it did before immediate hand-outs
      if (immediate) await SETTLED
      const result = await fn(handle)
      // the callback returned straight after its last statement settled (it awaited it and saw its error)
      const lastAtReturn = lease.lastStatement
      const sawLast = lastAtReturn === undefined || lastAtReturn.settledTurn === eventLoopTurn()
      // statements `fn` issued and did not await, still waiting for the event loop, run first (#executeLater)
      handle.detach()
      while (lease.pending !== undefined) await lease.pending
      // the release below rolls back a transaction `fn` began and left open (or aborted): never report that work as done
      if (lease.active) {
        let state = this.#manager.transactionState?.(lease.conn.native)
        // Postgres: the callback returned before the server answered what it issued (a failed statement,
        // or a BEGIN it did not await): settled. A state still not known (cancelTimeoutMs passed) is
        // neither idle nor open: the outcome is unknown, and the release closes the connection rather
        // than roll back behind the statements and hand it on (see transactionStateUnknownError).
        // A connection the pool gave up on because its state could not be learnt (conn.transaction()
        // refused: the pool marked it broken, so it reads 'failed', not 'open') reports that unless it
        // has since been seen idle. A connection lost when `fn` returned is not waited for; its state
        // is unknown when the server may have committed what was in flight (a COMMIT): reported so,
        // unless `fn` returned straight after that statement settled, its last (it awaited it and saw
        // its own error, CONNECTION_LOST with its outcome); a lost transaction the server rolled back
        // reads 'failed' (TRANSACTION_ROLLED_BACK)
        const stateLost = lease.conn.broken?.detail?.reason === 'transaction-state-unknown'
        const unknown = (): DatabaseError =>
          this.#markBroken(lease, transactionStateUnknownError(this.#manager.backend, 'the withConnection callback returned'))
        if (stateLost && state !== 'idle') throw unknown()
        if (state === 'unknown' && this.#manager.settledTransactionState) {
          if (this.#manager.isUsable(lease.conn.native)) state = await this.#manager.settledTransactionState(lease.conn.native)
          // it saw the doubt only when no statement is in doubt but the one it awaited last (re-review r7
          // item 2: an un-awaited COMMIT in doubt behind an awaited select's CONNECTION_LOST resolved)
          else if (
            sawLast &&
            lease.lastStatement === lastAtReturn &&
            (lease.inDoubtStatement === undefined || lease.inDoubtStatement === lastAtReturn)
          )
            state = 'idle'
          if (state === 'unknown') throw unknown()
        }
        // a transaction aborted by a lost session (conn.transaction() could not send its ROLLBACK): the
        // server ended it with the session; the callback did nothing wrong, and its advice would be false
        if (state === 'failed' && !this.#manager.isUsable(lease.conn.native))
          throw lostInTransaction(
            this.#manager.backend,
            // the loss itself, not an earlier statement error the callback already handled
            lease.conn.broken ?? (DatabaseError.is(handle.lastError, 'CONNECTION_LOST') ? handle.lastError : undefined),
            // rolled back for certain only when every statement was answered before the return and none
            // is in doubt; a COMMIT still in flight when the session ended may have committed
            (lastAtReturn === undefined || lastAtReturn.settledTurn !== undefined) && lease.inDoubtStatement === undefined,
          )
        if (state === 'open' || state === 'failed') throw leftOpenByCallback(this.#manager.backend, state, handle.lastError)
      }
      return result
    } finally {
      handle.detach()
      const releasing = this.#release(lease)
      if (releasing) await releasing
    }
  }

  /**
   * Runs `fn` in a transaction: commit on success; on error roll back (only if BEGIN succeeded) and
   * rethrow the original error. `retry` replays the whole callback on serialization failures,
   * deadlocks and busy errors. `readOnly` runs on the read lane when there is one, except
   * `isolation: 'serializable'` with read replicas: a standby refuses serializable transactions
   * (Postgres 0A000 "cannot use serializable mode in a hot standby"), so those run on the primary
   * (still `READ ONLY`). Once `fn` has
   * settled, `tx` refuses new work with QUERY_FAILED (a statement `fn` did not await would otherwise
   * run after the COMMIT, outside the transaction); statements issued before run before the COMMIT.
   * While a savepoint (`tx.transaction()`) is open, `tx` refuses other work (QUERY_FAILED,
   * `detail.reason: 'scope-open'`: see {@link Transaction.transaction}); `fn` resolving with one still
   * running rolls the transaction back.
   *
   * Inside `fn` use `tx`, not the pool: a pool call there runs on another connection, outside the
   * transaction, and waits for one while `fn` holds it (SQLite: every write, the transaction holding
   * the single writer; Postgres with `max: 1`) until `acquireTimeoutMs`; that ACQUIRE_TIMEOUT says
   * the lane is held by a transaction and for how long (`detail.heldBy`, `detail.heldForMs`).
   *
   * A transaction is admitted once, for all its attempts: a replay that starts while `close()`
   * drains belongs to a call made before it and runs (until close()'s deadline); a backoff still
   * running at the deadline ends then with POOL_CLOSED (`cause`: the last attempt's error).
   */
  transaction<T>(fn: (tx: Transaction<C>) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.#state !== 'open') return Promise.reject<T>(this.#closedError())
    this.#admitted++
    let running: Promise<T>
    try {
      running = this.#telemetry.tracing ? this.#tracedTransaction(fn, options) : this.#runTransaction(fn, options)
    } catch (err) {
      // never a synchronous throw, and never an admission left counted (close() would wait for it)
      running = Promise.reject<T>(err)
    }
    running.then(this.#finish, this.#finish)
    return running
  }

  #tracedTransaction<T>(fn: (tx: Transaction<C>) => Promise<T>, options: TransactionOptions): Promise<T> {
    return this.#telemetry.transaction(() => this.#runTransaction(fn, options))
  }

  #runTransaction<T>(fn: (tx: Transaction<C>) => Promise<T>, options: TransactionOptions): Promise<T> {
    const readState = this.#manager.transactionState
    return runTransaction(fn, options, {
      backend: this.#manager.backend,
      beginStatement: (settings) => this.#manager.beginStatement(settings),
      transactionState: readState && ((native) => readState.call(this.#manager, native)),
      lease: <R>(readOnly: boolean, body: (tx: ConnectionHandle<C>, markBroken: (err: unknown) => DatabaseError) => Promise<R>) =>
        this.#acquire(
          readOnly && this.#hasReadLane && !(this.#replicas && options.isolation === 'serializable') ? 'read' : 'write',
          this.#lendTransaction,
          body as TransactionBody<unknown>,
          undefined,
          true,
        ) as Promise<R>,
      onRetry: (attempt, error, delayMs) => this.#telemetry.retrying(attempt, error, delayMs),
      backoff: this.#backoff,
    })
  }

  /**
   * A transaction's retry backoff: a timer, woken at close()'s deadline (the replay is then refused
   * with POOL_CLOSED, `cause`: the attempt's error, and the timer cleared). Until the deadline the
   * replay belongs to a call made before close() and runs.
   */
  readonly #backoff = (delayMs: number, error: DatabaseError): Promise<void> => {
    if (this.#revoking) return Promise.reject(this.#closedError(error))
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(timer)
        this.#sleeping.delete(wake)
        reject(this.#closedError(error))
      }
      const timer = setTimeout(() => {
        this.#sleeping.delete(wake)
        resolve()
      }, delayMs)
      this.#sleeping.add(wake)
    })
  }

  async #transactionLeased<T>(lease: Lease<unknown>, body: TransactionBody<T>): Promise<T> {
    const handle = new ConnectionHandle(lease, this.#manager.backend, this.#run, undefined, this.#streams)
    try {
      return await body(handle, (err) => this.#markBroken(lease, err))
    } finally {
      handle.detach()
      const releasing = this.#release(lease)
      if (releasing) await releasing
    }
  }

  /**
   * Borrows a connection and makes a real round trip; resolves with the latency in ms (the wait for
   * the connection included). `timeoutMs` (1 to 2^31 - 1, default 5000) bounds the whole call, the
   * wait for a connection too, as a statement's `timeoutMs` does: a caller still waiting at the
   * deadline leaves the queue at once with ACQUIRE_TIMEOUT (nothing was sent), so timed-out probes
   * never pile up behind busy connections (nor count against `maxWaitingClients`, nor get served
   * before later callers); the round trip gets what is left (QUERY_TIMEOUT past it). It runs on the
   * writer when one is free, else on a SQLite reader when there are readers, so a long write
   * transaction holding the single writer does not make it wait; Postgres probes the primary (never
   * a replica). A bad `timeoutMs` is CONFIGURATION (`ping.timeoutMs`); a closed pool is POOL_CLOSED.
   */
  async ping(timeoutMs = 5_000): Promise<number> {
    checkPingTimeout(timeoutMs)
    const started = performance.now()
    return this.#probe(timeoutMs, started, async (lease, leftMs) => {
      await this.#manager.ping(lease.conn.native, leftMs).catch((err: unknown) => {
        throw this.#markBroken(lease, err)
      })
      return performance.now() - started
    })
  }

  /**
   * Runs the manager's backend checks (SQLite integrity, WAL size, ...) on a leased connection (the
   * writer when free, else a SQLite reader, as {@link ping}). `deep` (default false), `timeoutMs` (1 to
   * 2^31 - 1, default 5000) bounds the wait for the connection too (ACQUIRE_TIMEOUT, the caller
   * leaves the queue at its deadline); the checks get what is left. Bad options are CONFIGURATION
   * (`backendChecks.<option>`) before a connection is taken.
   */
  async backendChecks(options: { readonly deep?: boolean; readonly timeoutMs?: number } = {}): Promise<HealthCheckDetail[]> {
    const settings = checkBackendCheckOptions(options)
    const checks = this.#manager.healthChecks
    if (!checks) return []
    return this.#probe(settings.timeoutMs, performance.now(), (lease, leftMs) =>
      checks.call(this.#manager, lease.conn.native, { deep: settings.deep, timeoutMs: leftMs }),
    )
  }

  /**
   * A health probe's lease, waiting at most `timeoutMs` (from `started`) for it; `body` gets what is
   * left of `timeoutMs` (at least 1 ms) and the lease is released after. On the writer when it can be
   * had without waiting (its checks, such as SQLite's file identity, are the ones that guard the
   * data), else on the local read lane when there is one (SQLite readers; never a Postgres replica:
   * the primary is what is probed), so a long write transaction does not hold the probe up.
   */
  async #probe<T>(timeoutMs: number, started: number, body: (lease: Lease<unknown>, leftMs: number) => Promise<T>): Promise<T> {
    let lane: Lane = 'write'
    if (this.#read !== undefined && this.#replicas === undefined) {
      const writer = this.#write.stats()
      if (writer.pending > 0 || (writer.idle === 0 && writer.size >= writer.max)) lane = 'read'
    }
    const lease = await this.#acquire(lane, this.#leased, undefined, undefined, false, timeoutMs)
    try {
      return await body(lease, Math.max(1, Math.floor(timeoutMs - (performance.now() - started))))
    } finally {
      await this.#release(lease)
    }
  }

  /**
   * Pings every idle connection and evicts the ones that fail (the pool refills to `min`), the
   * lanes at once. Idle includes a connection Postgres statement sharing keeps between lone
   * `pool.query()` calls (until the next macrotask): it is handed back to its lane first, then
   * pinged like the others. Each ping is bounded by `options.timeoutMs` (an integer from 1 to
   * 2^31 - 1; default and upper bound `min(createTimeoutMs, 5000)`, as validation on borrow): a
   * connection that does not answer in time is evicted. Resolves with how many were checked and
   * evicted. A bad `timeoutMs` or another key rejects with CONFIGURATION (`validateConnections.<option>`).
   */
  async validateConnections(options?: ValidateConnectionsOptions): Promise<{ checked: number; evicted: number }> {
    const raw = options === undefined ? {} : requireObject('validateConnections options', options)
    rejectUnknownKeys('validateConnections', raw, ['timeoutMs'])
    const limit = Math.min(this.config.createTimeoutMs, 5_000)
    const pingMs =
      raw.timeoutMs === undefined ? limit : Math.min(limit, checkInteger('validateConnections.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS))
    const results = await Promise.all(
      this.#lanes().map(async (lane) => {
        await this.#sharing?.returnIdle(lane)
        return this.#state === 'open' ? lane.pingIdle(pingMs) : { checked: 0, evicted: 0 }
      }),
    )
    return {
      checked: results.reduce((n, r) => n + r.checked, 0),
      evicted: results.reduce((n, r) => n + r.evicted, 0),
    }
  }

  /**
   * Closes the pool, letting the work issued before it finish (what pg-pool's `end()` does):
   *
   * - refused at once with POOL_CLOSED: every call made after `close()` (`query`, `withConnection`,
   *   `transaction`, `ping`, ... including a call a running callback makes on the pool itself);
   * - drained, up to `timeoutMs`: every call made before it, including callers still waiting for a
   *   connection (they get one; connections are still opened for them), statements queued to share a
   *   pipelined connection, leases already out (their handles keep working), and the `retry`
   *   replays of a transaction begun before it;
   * - a wait for the manager's exclusive lock (Kysely's Migrator on SQLite, see {@link exclusiveLock})
   *   fails at once with POOL_CLOSED and counts as an aborted waiter;
   * - at the deadline, a transaction sleeping its retry backoff fails at once with POOL_CLOSED
   *   (`cause`: the error of its last attempt; the timer is cleared) and counts as an aborted waiter;
   * - at the deadline: callers still waiting fail with POOL_CLOSED, leases still out are revoked (their
   *   handles refuse work with POOL_CLOSED) and their connections destroyed at once, all together (a
   *   busy Postgres connection's socket is destroyed, not ended gracefully: the statement in flight
   *   fails with CONNECTION_LOST, its outcome unknown when it may have committed);
   * - a connection released but still resetting (Postgres: the release's ROLLBACK of a transaction left
   *   open) is drained too, and at the deadline destroyed with the revoked ones: its caller settles then;
   * - then every connection is destroyed (Postgres: an idle one gets its Terminate, each bounded by
   *   `cancelTimeoutMs`) and the manager ended. Destroying the connections, the revoked ones
   *   included, gets what is left of `timeoutMs`, but at least 1 s, so idle connections are still
   *   closed cleanly with `timeoutMs: 0`: close() can return up to 1 s after `timeoutMs` (a server
   *   that does not answer; `timedOut` is then true, and what is left finishes in the background).
   *
   * The report holds the revoked leases (with the acquirer's stack when leak detection is on), how
   * many waiting callers failed, and whether the deadline was hit. Background work (warm-up,
   * keepalive, retirement) stops at once. Idempotent: later calls return the same report.
   *
   * `timeoutMs`: 0 to 2^31 - 1 (default 30000). A bad value or another key rejects with CONFIGURATION
   * (`close.<option>`) and closes nothing.
   */
  close(options?: CloseOptions): Promise<CloseReport> {
    let timeoutMs: number
    try {
      timeoutMs = checkCloseOptions(options)
    } catch (err) {
      // refused before anything happens: the pool stays open
      return Promise.reject<CloseReport>(err)
    }
    this.#closing ??= this.#close(timeoutMs)
    return this.#closing
  }

  // ---- internals ----

  #laneHost(): LaneHost<unknown> {
    return {
      manager: this.#manager,
      config: this.config,
      onCreated: (conn, durationMs) => {
        try {
          this.metrics.recordConnectionCreated(durationMs)
        } catch (err) {
          this.#telemetry.failed('db.client.connection.create_time record', err)
        }
        this.#telemetry.connected(conn.id, conn.lane, durationMs)
        this.#events.emit('connect', { connectionId: conn.id, lane: conn.lane, durationMs })
      },
      onLost: (conn, error) => {
        if (conn.broken || conn.destroyed) return
        conn.broken = error
        // idle: no caller held it (the pool's own warm-up or keepalive ping may have borrowed it: review r13 D11)
        const idle = conn.lease === undefined
        this.#telemetry.lost(conn.id, conn.lane, idle, error)
        this.#events.emit('connectionLost', error, { connectionId: conn.id, lane: conn.lane, idle })
        // an idle connection is dropped now; a leased one when its lease ends
        if (!conn.leased) this.#maintenance.sweep()
      },
      onFailover: (info) => {
        this.#telemetry.failover(info)
        this.#events.emit('failover', info)
      },
      onDestroyed: (conn, reason) => {
        this.metrics.recordConnectionDropped()
        this.#telemetry.destroyed(conn.id, conn.lane, reason)
        this.#events.emit('destroy', { connectionId: conn.id, lane: conn.lane, reason })
        if (this.#state === 'open') this.#maintenance.scheduleWarmUp(0)
      },
      onBackgroundError: (error) => this.#emitError(error),
      onAcquireTimeout: () => {
        try {
          this.metrics.recordTimeout()
        } catch (err) {
          this.#telemetry.failed('db.client.connection.timeouts add', err)
        }
      },
      reclaimIdle: (lane) => this.#sharing?.reclaim(lane) ?? false,
    }
  }

  #sharingHost(): ConstructorParameters<typeof StatementSharing>[0] {
    return {
      // a replica's pool is the one its statements were sent to: no second choice of replica
      acquire: (lane) =>
        lane.target >= 0 && this.#state === 'open'
          ? this.#acquireOn(lane, this.#leased, undefined, undefined, false)
          : this.#acquire(lane.lane, this.#leased, undefined),
      release: (lease) => this.#release(lease),
      execute: <R>(lease: Lease<unknown>, query: CompiledQuery) =>
        lease.active ? this.#executeShared<R>(lease, query) : Promise.reject<QueryResult<R>>(this.#closedError()),
      isOpen: () => this.#state === 'open',
    }
  }

  #lanes(): LanePool<unknown>[] {
    if (this.#replicas) return [this.#write, ...this.#replicas.pools]
    return this.#read ? [this.#write, this.#read] : [this.#write]
  }

  /** The lane pool a connection belongs to (a replica's, on a read lane with several targets). */
  #home(conn: PooledConnection<unknown>): LanePool<unknown> {
    return conn.target >= 0 && this.#replicas ? this.#replicas.poolOf(conn) : this.#lane(conn.lane)
  }

  #lane(lane: Lane): LanePool<unknown> {
    return lane === 'read' && this.#read ? this.#read : this.#write
  }

  #compile(query: Queryable, params: readonly unknown[] | undefined): CompiledQuery {
    if (isSqlFragment(query)) {
      if (params !== undefined && (!Array.isArray(params) || params.length > 0)) {
        throw new DatabaseError('INVALID_PARAMETER', 'pass values inside the sql`...` template, not as a separate params array', {
          retryable: false,
        })
      }
      return query.compile(this.#manager.dialect)
    }
    checkQueryText(query)
    if (params !== undefined && !Array.isArray(params))
      throw new DatabaseError('INVALID_PARAMETER', `params must be an array, got ${describeValue(params)}`, { retryable: false })
    return { text: query, params: params ?? [] }
  }

  /**
   * Takes a lease and hands it to `lend` with `arg` (synchronously when a connection is idle and
   * ready, else inside the `then` that settles the lane's acquire); resolves with what `lend`
   * returns. A caller waiting for a connection is then one waiter record and its promise, with no
   * async frame of its own. `admitted`: the caller already
   * holds an admission (a transaction, across its attempts), so the lease is allowed while close()
   * drains and neither adds nor ends one (`lend` is {@link #lendTransaction}).
   */
  #acquire<B, T>(lane: Lane, lend: Lender<B, T>, arg: B, signal?: AbortSignal, admitted = false, waitMs?: number): Promise<Awaited<T>> {
    if (admitted ? this.#revoking : this.#state !== 'open') return Promise.reject<Awaited<T>>(this.#closedError())
    if (lane === 'read' && this.#replicas) return this.#acquireReplica(this.#replicas, lend, arg, signal, admitted, waitMs)
    if (lane === 'read' && this.#readOnWriter)
      return this.#acquireOn(this.#write, this.#lendingForRead(lend), arg, signal, admitted, waitMs)
    return this.#acquireOn(this.#lane(lane), lend, arg, signal, admitted, waitMs)
  }

  /**
   * `lend`, after the manager made the write-lane connection read-only for read-lane work
   * (`lendForRead`, see {@link #readOnWriter}); the release's `reset` makes it writable again.
   */
  #lendingForRead<B, T>(lend: Lender<B, T>): Lender<B, T> {
    const manager = this.#manager
    return (conn, waited, started, origin, arg) => {
      manager.lendForRead!(conn.native)
      return lend(conn, waited, started, origin, arg)
    }
  }

  /**
   * A read-lane acquire with replicas: on the replica the set chooses (or the primary); a replica whose
   * connect fails (nothing ran yet) is taken out and the next choice is tried. `readYourWrites`: the
   * connection handed out is checked before it is lent (`ReplicaSet.check`: no round trip when it is
   * known to have replayed the last write); one behind goes back unused and the next choice is tried
   * without that replica (in the end the primary).
   */
  async #acquireReplica<B, T>(
    replicas: ReplicaSet,
    lend: Lender<B, T>,
    arg: B,
    signal: AbortSignal | undefined,
    admitted: boolean,
    waitMs: number | undefined,
  ): Promise<Awaited<T>> {
    let skip: Set<LanePool<unknown>> | undefined
    // a replica connection found behind leaves its acquire's admission to the next acquire
    let carried = false
    for (;;) {
      const pool = replicas.choose(skip) ?? this.#write
      let lent = false
      let behind = false
      const lendOnce: Lender<B, T> = (conn, waited, started, origin, b) => {
        const checking = replicas.check(conn)
        if (checking === undefined) {
          lent = true
          return lend(conn, waited, started, origin, b)
        }
        return checking.then((caughtUp) => {
          if (caughtUp) {
            lent = true
            return lend(conn, waited, started, origin, b)
          }
          // not lent: back to its pool (destroyed when the question failed)
          behind = true
          if (conn.broken) void this.#discard(conn)
          else this.#giveBack(conn, performance.now())
          throw BEHIND
        }) as T
      }
      const onPrimary = pool === this.#write || replicas.isPrimary(pool)
      const acquiring = this.#acquireOn(pool, onPrimary ? lend : lendOnce, arg, signal, admitted, waitMs)
      if (carried) {
        // ended once the next acquire holds its own, so close() never sees 0 in between
        carried = false
        this.#finished()
      }
      if (onPrimary) return acquiring
      try {
        return await acquiring
      } catch (err) {
        if (behind) {
          ;(skip ??= new Set()).add(pool)
          carried = !admitted
          continue
        }
        if (lent || !DatabaseError.is(err) || !REPLICA_DOWN_CODES.has(err.code) || this.#state !== 'open') throw err
        replicas.failed(pool, err)
      }
    }
  }

  #acquireOn<B, T>(
    pool: LanePool<unknown>,
    lend: Lender<B, T>,
    arg: B,
    signal: AbortSignal | undefined,
    admitted: boolean,
    waitMs?: number,
  ): Promise<Awaited<T>> {
    let failed: OnAcquireFailed | undefined = admitted ? undefined : this.#finish
    if (this.#telemetry.tracing) {
      // the connection may come through another caller's release: `lend` (and the callback it runs) keeps this caller's context
      lend = this.#telemetry.bind(lend)
      // a wait that fails gets its dbpool.acquire span too, in the caller's context (review r13 D8)
      failed = this.#telemetry.bind(admitted ? this.#waitFailed : this.#waitFailedFinish)
    }
    const started = performance.now()
    // captured before the first await, so the stack still holds the caller's frames
    const origin = this.config.leakDetectionThresholdMs > 0 ? new Error('connection acquired here') : undefined
    if (admitted) return pool.acquire(lend, origin, arg, started, failed, signal, waitMs)
    // admitted now: close() lets it finish, even if it is still waiting when close() is called
    this.#admitted++
    return pool.acquire(lend, origin, arg, started, failed, signal, waitMs)
  }

  /** A caller's acquire failed (tracing): its wait's span, failed with the error it gets. */
  readonly #waitFailed: OnAcquireFailed = (error, since, lane) => this.#telemetry.waited(since, performance.now(), lane, error)

  /** {@link #waitFailed}, and the end of the admission the acquire held. */
  readonly #waitFailedFinish: OnAcquireFailed = (error, since, lane) => {
    this.#finished()
    this.#telemetry.waited(since, performance.now(), lane, error)
  }

  /** A bare lease (ping, backend checks, statement sharing): the caller releases it. */
  readonly #leased: Lender<undefined, Lease<unknown>> = (conn, waited, started, origin) => this.#lease(conn, waited, started, origin, true)

  /** A connection handed out without waiting may come synchronously, inside the caller's own call. */
  readonly #lendConnection: Lender<(conn: PoolConnection<C>) => Promise<unknown>, Promise<unknown>> = (conn, waited, started, origin, fn) =>
    this.#withHandle(this.#lease(conn, waited, started, origin, true, 'withConnection'), fn, !waited)

  readonly #lendQuery: Lender<LeasedQuery, Promise<QueryResult<unknown>>> = (conn, waited, started, origin, q) => {
    const lease = this.#lease(conn, waited, started, origin, true)
    // the clock is read again only for a statement with a deadline that may have waited
    const options = waited && q.options?.timeoutMs !== undefined ? afterWait(q.options, performance.now() - started) : q.options
    const running = this.#queryLeased(lease, q.compiled, options)
    if (options === q.options) return running
    return running.catch((err: unknown) => {
      throw callersDeadline(err, options?.timeoutMs, q.options?.timeoutMs)
    })
  }

  readonly #lendTransaction: Lender<TransactionBody<unknown>, Promise<unknown>> = (conn, waited, started, origin, body) =>
    this.#transactionLeased(this.#lease(conn, waited, started, origin, false, 'transaction'), body)

  /** Turns a connection handed out by a lane into a lease (`admission`, `holder`: see {@link Lease}). */
  #lease(
    conn: PooledConnection<unknown>,
    waited: boolean,
    started: number,
    origin: Error | undefined,
    admission: boolean,
    holder?: LeaseHolder,
  ): Lease<unknown> {
    if (this.#revoking) {
      this.#home(conn).release(conn)
      if (admission) this.#finished()
      throw this.#closedError()
    }
    if (conn.unrefWhileIdle) (conn.native as ReferencedHandle).ref()
    conn.leased = true
    // one clock read per acquire: an immediate borrow waited ~0 ms, and a waiter was handed the
    // connection when it was released or created, whose clock reading the connection carries
    const now = waited ? Math.max(started, conn.lastCheckedAt) : started
    const lease = new Lease(conn, origin, now, admission, holder)
    conn.lease = lease
    // the lease exists: nothing from here on may throw, or no caller would hold it to release it
    // (review r13 D1: a span processor throwing in the wait span's end leaked the connection for good)
    try {
      this.metrics.recordConnectionAcquired(now - started)
    } catch (err) {
      this.#telemetry.failed('db.client.connection.wait_time record', err)
    }
    if (waited) this.#telemetry.waited(started, now, conn.lane)
    return lease
  }

  /** {@link #finished} as a callback: a failed acquire, or the end of a transaction. */
  readonly #finish = (): void => this.#finished()

  /** An admitted call ended without a lease to release: its acquire failed, or a transaction ended. */
  #finished(): void {
    if (--this.#admitted === 0 && this.#drained && this.#resetting.size === 0) this.#drained()
  }

  /** Ends a lease: reset, then back to tarn, or destroyed. Synchronous when the reset is. */
  #release(lease: Lease<unknown>): void | Promise<void> {
    // statements issued on the lease still waiting for the event loop run first (see #executeLater)
    const pending = lease.pending
    if (pending !== undefined) return pending.then(() => this.#release(lease))
    // readYourWrites: the write's position is recorded before the caller sees its result
    if (lease.wrote && this.#replicas?.readYourWrites && lease.active) {
      if (this.#committed(lease.conn))
        return this.#replicas.recordWrite(lease, Math.min(this.config.createTimeoutMs, 5_000)).then(() => this.#release(lease))
      // the connection was lost (an outcome unknown): what it sent may have committed
      if (this.#lost(lease.conn)) this.#replicas.lostWrite(lease)
    }
    if (!lease.markReleased()) return
    const conn = lease.conn
    conn.lease = undefined
    if (lease.admission) this.#admitted--
    const now = performance.now()
    try {
      this.metrics.recordConnectionReturned(now - lease.acquiredAt)
    } catch (err) {
      this.#telemetry.failed('db.client.connection.use_time record', err)
    }
    if (conn.broken || !this.#manager.isUsable(conn.native)) return this.#discard(conn)
    let resetting: void | Promise<void>
    try {
      resetting = this.#manager.reset(conn.native)
    } catch (err) {
      this.#markBroken(lease, err)
      return this.#discard(conn)
    }
    if (!resetting) return this.#giveBack(conn, now)
    this.#resetting.add(conn)
    return resetting.then(
      () => {
        this.#resetting.delete(conn)
        return conn.broken ? this.#discard(conn) : this.#giveBack(conn, performance.now())
      },
      (err: unknown) => {
        this.#resetting.delete(conn)
        this.#markBroken(lease, err)
        return this.#discard(conn)
      },
    )
  }

  /**
   * Whether what ran on a usable connection may have committed: not when a transaction is still open
   * or failed (the release rolls it back); when the state is not known (yet), it may have.
   */
  #committed(conn: PooledConnection<unknown>): boolean {
    if (this.#lost(conn)) return false
    const state = this.#manager.transactionState?.(conn.native)
    return state !== 'open' && state !== 'failed'
  }

  /** Whether the connection is broken or unusable: nothing more can be asked on it. */
  #lost(conn: PooledConnection<unknown>): boolean {
    return conn.broken !== undefined || !this.#manager.isUsable(conn.native)
  }

  #giveBack(conn: PooledConnection<unknown>, now: number): void {
    if (conn.unrefWhileIdle) (conn.native as ReferencedHandle).unref()
    conn.leased = false
    conn.lastCheckedAt = now
    this.#home(conn).release(conn, now)
    if (this.#drained && this.#admitted === 0 && this.#resetting.size === 0) this.#drained()
  }

  /** Destroys a connection that must not be reused, then hands tarn its slot back. */
  async #discard(conn: PooledConnection<unknown>): Promise<void> {
    conn.leased = false
    const pool = this.#home(conn)
    await pool.evict(conn, conn.broken ? `broken: ${conn.broken.code}` : 'unusable')
    pool.release(conn)
    pool.dropDestroyed()
    if (this.#drained && this.#admitted === 0 && this.#resetting.size === 0) this.#drained()
  }

  /** Shared by every `withConnection` handle: begins a transaction on its lease (`conn.transaction()`). */
  readonly #held: HeldConnectionHost<unknown>

  /** Shared by every handle: runs a statement on a still-active lease. */
  readonly #run: LeaseRunner<unknown> = <R>(
    lease: Lease<unknown>,
    query: Queryable,
    params: readonly unknown[] | undefined,
    options: ExecuteOptions | undefined,
  ) => {
    if (!lease.active) return Promise.reject<QueryResult<R>>(this.#closedError())
    const compiled = this.#compile(query, params)
    const running = this.#telemetry.watching
      ? this.#watchedExecute<R>(lease, compiled, options)
      : this.#execute<R>(lease, compiled, options)
    return this.#replicas?.readYourWrites ? this.#recordingWrites<R>(lease, running) : running
  }

  /**
   * `readYourWrites` on a lease the caller holds (`withConnection`, a transaction's `tx`, a
   * `conn.transaction()`): a statement after which a write of the lease is committed (an auto-commit
   * write, a COMMIT) records the write position before its caller sees the result, as a lone
   * statement's release does, so a read-lane read later in the same callback is not served by a
   * replica that has not replayed it. Failed statements too (a text that committed part of itself).
   */
  #recordingWrites<R>(lease: Lease<unknown>, running: Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    return running.then(
      (result) => {
        const recording = this.#recordCommitted(lease)
        return recording === undefined ? result : recording.then(() => result)
      },
      (err: unknown) => {
        const recording = this.#recordCommitted(lease)
        if (recording === undefined) throw err
        return recording.then(() => {
          throw err
        })
      },
    )
  }

  /**
   * Records the write position (see ReplicaSet.recordWrite) when a statement that may have written
   * ran on the lease and the engine reports no transaction open now (known `'idle'`: what it wrote is
   * committed); undefined otherwise (nothing written, a transaction still open or failed, or a state
   * not known yet: the release then decides, see {@link #release}). A lost connection records the
   * position as unknown ({@link ReplicaSet.lostWrite}): what it sent may have committed.
   */
  #recordCommitted(lease: Lease<unknown>): Promise<void> | undefined {
    if (!lease.wrote || !lease.active) return undefined
    const conn = lease.conn
    if (this.#lost(conn)) {
      // what it sent may have committed (an outcome unknown): reads later in the callback go to the primary
      this.#replicas!.lostWrite(lease)
      return undefined
    }
    if (this.#manager.transactionState?.(conn.native) !== 'idle') return undefined
    return this.#replicas!.recordWrite(lease, Math.min(this.config.createTimeoutMs, 5_000))
  }

  #execute<R>(lease: Lease<unknown>, query: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    const manager = this.#manager
    if (manager.executeNow === undefined) return this.#executeAsync<R>(lease, query, options)
    // a synchronous driver: statements issued on a lease run in the order they were issued, the ones
    // waiting for the event loop included, and before the lease ends (see #release)
    if (lease.pending !== undefined || options !== undefined || manager.serverOf !== undefined)
      return this.#executeLater<R>(lease, query, options)
    // a statement without a deadline runs now: no promise and async frame of its own
    let result: QueryResult<R> | undefined
    try {
      result = manager.executeNow<R>(lease.conn.native, query)
    } catch (err) {
      this.#replicas?.noteStatement(lease, query)
      return Promise.reject(manager.isUsable(lease.conn.native) ? toDatabaseError(manager, err) : this.#markBroken(lease, err))
    }
    if (result === undefined) return this.#executeLater<R>(lease, query, undefined)
    this.#replicas?.noteStatement(lease, query)
    return Promise.resolve(result)
  }

  /**
   * A statement of a synchronous driver that may wait for the event loop (the manager's fairness
   * yield): queued behind the lease's earlier waiting statements, and recorded on the lease so that
   * later statements queue behind it and the release waits for it. Without that, a statement issued
   * and not awaited could run after the callback returned, on the connection's next lease: inside
   * another caller's transaction, and rolled back with it after resolving as done.
   */
  #executeLater<R>(lease: Lease<unknown>, query: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    const before = lease.pending
    let running: Promise<QueryResult<R>>
    let settled: Promise<void>
    if (before === undefined) {
      running = this.#executeAsync<R>(lease, query, options)
      settled = running.then(noop, noop)
    } else if (options?.signal === undefined && options?.timeoutMs === undefined) {
      // a lease revoked meanwhile (close() at its deadline) runs nothing more
      running = before.then(() =>
        lease.active ? this.#executeAsync<R>(lease, query, options) : Promise.reject<QueryResult<R>>(this.#closedError()),
      )
      settled = running.then(noop, noop)
    } else {
      running = this.#executeInTurn<R>(lease, before, query, options)
      // one given up on before its turn settles early: what follows still waits for the statements before it
      settled = before.then(() => running).then(noop, noop)
    }
    lease.pending = settled
    void settled.then(() => {
      if (lease.pending === settled) lease.pending = undefined
    })
    return running
  }

  /**
   * {@link #executeLater} of a statement with a deadline or a signal, queued behind the lease's
   * earlier statements: its `timeoutMs` counts from now, and when it passes (or `signal` aborts)
   * before its turn, it is taken out of the queue and fails at once (QUERY_TIMEOUT / QUERY_CANCELLED,
   * retryable, `detail.started: false`: never run); the statements before it are not touched. Its turn
   * come, it runs with what is left of `timeoutMs`.
   */
  #executeInTurn<R>(lease: Lease<unknown>, before: Promise<void>, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    const issuedAt = performance.now()
    const { signal, timeoutMs } = options
    return new Promise<QueryResult<R>>((resolve, reject) => {
      let done = false
      const finish = (): boolean => {
        if (done) return false
        done = true
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        return true
      }
      const giveUp = (why: 'deadline' | 'abort'): void => {
        if (finish()) reject(notStartedError(this.#manager.backend, why, timeoutMs, signal))
      }
      const onAbort = (): void => giveUp('abort')
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => giveUp('deadline'), timeoutMs)
      // an already aborted signal is refused by the manager when its turn comes (nothing runs)
      signal?.addEventListener('abort', onAbort, { once: true })
      void before.then(() => {
        if (!finish()) return
        // a lease revoked meanwhile (close() at its deadline) runs nothing more
        if (!lease.active) return reject(this.#closedError())
        const left = timeoutMs === undefined ? undefined : Math.max(1, Math.ceil(timeoutMs - (performance.now() - issuedAt)))
        resolve(this.#executeAsync<R>(lease, query, left === timeoutMs ? options : { ...options, timeoutMs: left }))
      })
    })
  }

  async #executeAsync<R>(lease: Lease<unknown>, query: CompiledQuery, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    this.#replicas?.noteStatement(lease, query)
    try {
      const result = await this.#manager.execute<R>(lease.conn.native, query, options ?? {})
      if (this.#manager.serverOf !== undefined && this.#telemetry.watching) this.#noteServer(lease, result)
      return result
    } catch (err) {
      const error = this.#manager.isUsable(lease.conn.native) ? toDatabaseError(this.#manager, err) : this.#markBroken(lease, err)
      if (this.#manager.serverOf !== undefined && this.#telemetry.watching) this.#noteServer(lease, error)
      throw error
    }
  }

  async #executeShared<R>(lease: Lease<unknown>, query: CompiledQuery): Promise<QueryResult<R>> {
    if (!this.#manager.executeShared) return this.#execute<R>(lease, query, undefined)
    try {
      const result = await this.#manager.executeShared<R>(lease.conn.native, query)
      if (this.#manager.serverOf !== undefined && this.#telemetry.watching) this.#noteServer(lease, result)
      return result
    } catch (err) {
      const error = this.#manager.isUsable(lease.conn.native) ? toDatabaseError(this.#manager, err) : this.#markBroken(lease, err)
      if (this.#manager.serverOf !== undefined && this.#telemetry.watching) this.#noteServer(lease, error)
      throw error
    }
  }

  /** Tells the statement's span and metric which server it ran on (a multi-host target, a replica). */
  #noteServer(lease: Lease<unknown>, outcome: unknown): void {
    noteServer(outcome, this.#manager.serverOf!(lease.conn.native))
  }

  #markBroken(lease: Lease<unknown>, err: unknown): DatabaseError {
    const error = toDatabaseError(this.#manager, err)
    lease.conn.broken ??= error
    return error
  }

  /** `retried`: the error of a transaction attempt whose replay close() refused. */
  #closedError(retried?: DatabaseError): DatabaseError {
    if (retried === undefined) return new DatabaseError('POOL_CLOSED', `pool "${this.config.name}" is closed`, { poolStats: this.stats() })
    return new DatabaseError(
      'POOL_CLOSED',
      `pool "${this.config.name}" is closed: the transaction was waiting to retry after ${retried.code}, and close() reached its deadline`,
      { poolStats: this.stats(), cause: retried },
    )
  }

  #emitError(error: DatabaseError): void {
    this.#telemetry.backgroundError(error)
    this.#events.emit('error', error)
  }

  async #close(timeoutMs: number): Promise<CloseReport> {
    const started = Date.now()
    // from here on new calls are refused; the admitted ones run (see close())
    this.#state = 'closing'
    this.#maintenance.stop()
    for (const lane of this.#lanes()) lane.stop()
    // connections outside the lanes (LISTEN) are no admitted work: they end now
    const extensionsClosed = this.#extensions.close()
    this.#sharing?.flush()
    // waits for an exclusive lock (Kysely's Migrator on SQLite) end now with POOL_CLOSED: aborted waiters
    const abortedLockWaits = this.#lockWaits.size
    for (const waiting of [...this.#lockWaits]) waiting.abort()
    this.#lockWaits.clear()
    const drained = await this.#drain(timeoutMs)
    // the deadline (or nothing left): refuse what is still waiting, revoke what is still out
    this.#revoking = true
    // transactions sleeping their retry backoff fail now (counted below as aborted waiters)
    for (const wake of [...this.#sleeping]) wake()
    const leased = this.#activeLeases().length
    const abortedWaiters = abortedLockWaits + (drained ? 0 : Math.max(0, this.#admitted - leased))
    for (const lane of this.#lanes()) lane.abortWaiting()
    const outstanding = this.#activeLeases().map((lease) => ({
      leaseId: lease.id,
      connectionId: lease.conn.id,
      lane: lease.conn.lane,
      heldForMs: Math.round(performance.now() - lease.acquiredAt),
      stack: lease.stack(),
    }))
    let timedOut = !drained
    const remaining = Math.max(CLOSE_GOODBYE_FLOOR_MS, timeoutMs - (Date.now() - started))
    // the revokes all at once (each handle refuses work from the first step of #revoke on), so one
    // busy connection does not hold up the next; tarn's destroy waits for their release
    const revoked = Promise.all([
      ...this.#activeLeases().map((lease) => this.#revoke(lease)),
      // released, their reset still running (a ROLLBACK on a server that does not answer): destroyed
      // as well; the reset then fails, its caller settles, and the release hands tarn the slot back
      ...[...this.#resetting].map((conn) => this.#destroyResetting(conn)),
    ])
    try {
      await withDeadline(
        revoked.then(() => Promise.all(this.#lanes().map((lane) => lane.tarn.destroy()))),
        remaining,
        () => new Error('destroy deadline'),
      )
    } catch {
      timedOut = true
    }
    await extensionsClosed
    await this.#manager.end?.().catch((err: unknown) => this.#emitError(toDatabaseError(this.#manager, err)))
    // close() reports how the pool closed; a collector or telemetry that throws here does not change that
    try {
      this.metrics.detach()
    } catch (err) {
      this.#emitError(toDatabaseError(this.#manager, err))
    }
    try {
      this.#telemetry.close()
    } catch (err) {
      this.#emitError(toDatabaseError(this.#manager, err))
    }
    this.#state = 'closed'
    return { durationMs: Date.now() - started, outstandingLeases: outstanding, abortedWaiters, timedOut }
  }

  /** Resolves true once every admitted call has finished, false at the deadline. */
  #drain(timeoutMs: number): Promise<boolean> {
    if (this.#admitted === 0 && this.#resetting.size === 0) return Promise.resolve(true)
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#drained = undefined
        resolve(false)
      }, timeoutMs)
      this.#drained = () => {
        this.#drained = undefined
        clearTimeout(timer)
        resolve(true)
      }
    })
  }

  /** Every lease still out, found through the connections that carry them (rare paths only). */
  #activeLeases(): Lease<unknown>[] {
    const leases: Lease<unknown>[] = []
    for (const lane of this.#lanes()) for (const conn of lane.live) if (conn.lease?.active) leases.push(conn.lease)
    return leases
  }

  /** A released connection still resetting at close()'s deadline (see {@link #resetting}). */
  #destroyResetting(conn: PooledConnection<unknown>): Promise<void> {
    conn.broken ??= this.#closedError()
    return this.#home(conn).evict(conn, 'closed while resetting')
  }

  async #revoke(lease: Lease<unknown>): Promise<void> {
    lease.revoke()
    // the lease ends here (its holder's later release is a no-op): its use time is sampled now
    try {
      this.metrics.recordConnectionReturned(performance.now() - lease.acquiredAt)
    } catch (err) {
      this.#telemetry.failed('db.client.connection.use_time record', err)
    }
    const conn = lease.conn
    conn.lease = undefined
    if (lease.admission) this.#admitted--
    conn.broken ??= this.#closedError()
    const pool = this.#home(conn)
    await pool.evict(conn, 'closed while leased')
    pool.release(conn)
    pool.dropDestroyed()
  }
}

/**
 * The least time close() gives the destruction of its connections after the drain, whatever is left
 * of `timeoutMs` (see `close()`): an idle connection's clean goodbye takes a round trip.
 */
const CLOSE_GOODBYE_FLOOR_MS = 1_000

/**
 * Connect failures of a replica (nothing ran on it): the replica is taken out and the read goes to
 * another replica or the primary. AUTHENTICATION_FAILED too: a replica that refuses the pool's
 * credentials (a password rotated on the primary first, `pg_hba.conf` on the replica alone) serves
 * nothing until a later keepalive pass finds it accepts them.
 */
const REPLICA_DOWN_CODES: ReadonlySet<string> = new Set(['CONNECTION_FAILED', 'CONNECTION_LOST', 'AUTHENTICATION_FAILED'])

/** `readYourWrites`: the replica connection handed out had not replayed the last write (never seen by callers). */
const BEHIND = new Error('replica connection behind the last write')

function markWrote(lease: Lease<unknown>): Lease<unknown> {
  lease.wrote = true
  return lease
}

/** The options without `lane`, which the manager does not take. */
function withoutLane(options: QueryOptions): ExecuteOptions | undefined {
  const { lane: _lane, ...rest } = options
  return rest.timeoutMs === undefined && rest.signal === undefined && Object.keys(rest).length === 0 ? undefined : rest
}

/** The statement's signal, for waiting in the queue (validated by `query()` / the handle's `query()` / `withConnection()`). */
function waitSignal(options: ExecuteOptions | WithConnectionOptions | undefined): AbortSignal | undefined {
  return options?.signal
}

/** A statement's options once it waited `waitedMs` for its connection: what is left of its `timeoutMs` (at least 1 ms). */
function afterWait(options: ExecuteOptions | undefined, waitedMs: number): ExecuteOptions | undefined {
  const timeoutMs = options?.timeoutMs
  if (timeoutMs === undefined || waitedMs < 1) return options
  return { ...options, timeoutMs: Math.max(1, Math.floor(timeoutMs - waitedMs)) }
}

/**
 * A QUERY_TIMEOUT of a statement that ran with what was left of its `timeoutMs` after the wait for a
 * connection ({@link afterWait}) names the caller's `timeoutMs` (the manager only knew the rest):
 * "exceeded its 150 ms deadline (query.timeoutMs; 5 ms of it spent waiting for a connection)", not
 * "its 145 ms deadline". Every other error, and every other field, is kept as it is.
 */
function callersDeadline(err: unknown, leftMs: number | undefined, givenMs: number | undefined): unknown {
  if (!DatabaseError.is(err, 'QUERY_TIMEOUT') || leftMs === undefined || givenMs === undefined) return err
  const named = `its ${leftMs} ms deadline`
  if (!err.message.includes(named)) return err
  const message = err.message.replace(
    named,
    `its ${givenMs} ms deadline (query.timeoutMs; ${givenMs - leftMs} ms of it spent waiting for a connection)`,
  )
  return new DatabaseError(err.code, message, {
    cause: err.cause,
    retryable: err.retryable,
    backend: err.backend,
    sqlState: err.sqlState,
    sqliteCode: err.sqliteCode,
    poolStats: err.poolStats,
    detail: { ...err.detail, timeoutMs: givenMs },
  })
}

/**
 * A `withConnection` callback that resolved while its connection was inside a transaction (a BEGIN
 * sent through `conn.query()` without COMMIT, or one aborted by an error): the release rolls it back,
 * so withConnection rejects instead of resolving, as `pool.query('BEGIN; ...')` does. `cause`: the
 * statement error that aborted it, when the handle saw one.
 */
function leftOpenByCallback(backend: Backend, state: 'open' | 'failed', cause: DatabaseError | undefined): DatabaseError {
  const first = state === 'failed' ? cause : undefined
  const why =
    state === 'failed'
      ? `a transaction aborted by an error${first ? ` (${first.code}: ${first.message})` : ''}`
      : 'a transaction open (BEGIN without COMMIT)'
  return new DatabaseError(
    'TRANSACTION_ROLLED_BACK',
    `the withConnection callback returned with ${why}; the pool rolled it back when the connection was released: what ran inside it was not committed. COMMIT before returning, or use conn.transaction()`,
    { backend, cause: first, retryable: first?.retryable ?? false, sqlState: first?.sqlState, sqliteCode: first?.sqliteCode },
  )
}

/**
 * A withConnection callback whose connection was lost inside a transaction (state `failed` on a
 * connection no longer usable). `rolledBack` (every statement answered before the return, none in
 * doubt): TRANSACTION_ROLLED_BACK, the server rolled the transaction back when the session ended,
 * retryable exactly when `cause` is. Otherwise a COMMIT still in flight then may have committed, so no
 * rollback is claimed: QUERY_FAILED, `detail: { reason: 'connection-lost-in-transaction', outcome:
 * 'unknown' }`, not retryable. `cause`: the loss (CONNECTION_LOST when known).
 */
function lostInTransaction(backend: Backend, cause: DatabaseError | undefined, rolledBack: boolean): DatabaseError {
  const lost = `the connection was lost inside a transaction of the withConnection callback${cause ? ` (${cause.code}: ${cause.message})` : ''}`
  if (rolledBack)
    return new DatabaseError(
      'TRANSACTION_ROLLED_BACK',
      `${lost}: the server rolled it back when the session ended, so nothing in it was committed`,
      { backend, cause, retryable: cause?.retryable ?? false, sqlState: cause?.sqlState, sqliteCode: cause?.sqliteCode },
    )
  return new DatabaseError(
    'QUERY_FAILED',
    `${lost}: the server rolls back a transaction still open when its session ends, but a COMMIT in flight then may have committed, so the outcome is unknown: check before running it again`,
    {
      backend,
      cause,
      retryable: false,
      detail: { reason: 'connection-lost-in-transaction', outcome: OUTCOME_UNKNOWN },
    },
  )
}

function toDatabaseError(manager: ConnectionManager<unknown>, err: unknown): DatabaseError {
  return DatabaseError.is(err) ? err : manager.mapError(err)
}

/**
 * CONFIGURATION naming `pool.metrics` (not a MetricsCollector, or the collector of another open pool), `metricsOptions...` (see
 * checkCollectorOptions) or `pool.tracer` (not an OpenTelemetry Tracer: every statement then threw a
 * TypeError, `startSpan is not a function`).
 */
/** The keys of {@link DatabasePoolOptions}. */
const POOL_OPTION_KEYS = ['metrics', 'metricsOptions', 'logger', 'tracer'] as const

/** What the pool calls on its `metrics` (see {@link MetricsCollector}). */
const COLLECTOR_METHODS = [
  'bind',
  'detach',
  'snapshot',
  'recordConnectionCreated',
  'recordConnectionAcquired',
  'recordConnectionReturned',
  'recordConnectionDropped',
  'recordTimeout',
  'recordOperation',
] as const

/**
 * @internal CONFIGURATION unless `options` is a plain object (or undefined) of {@link DatabasePoolOptions}
 * keys: a misspelt `loger` is named (`pool.loger`) as every other unknown option, on every backend. A
 * key whose value is `undefined` (an unset variable) is no option given, and passes.
 */
export function checkPoolOptionKeys(options: unknown): void {
  const raw = requireObject('pool options', options)
  for (const key in raw) {
    if (raw[key] !== undefined && !(POOL_OPTION_KEYS as readonly string[]).includes(key))
      rejectUnknownKeys('pool', { [key]: raw[key] }, POOL_OPTION_KEYS)
  }
}

function checkTelemetryOptions(options: DatabasePoolOptions): void {
  const metrics = options.metrics as Partial<MetricsCollector> | null | undefined
  // every method the pool calls (a collector of another copy of @dbpool/core passes; a stand-in
  // missing one broke every statement and close() later: review r13 D5)
  if (
    metrics !== undefined &&
    (metrics === null ||
      typeof metrics !== 'object' ||
      COLLECTOR_METHODS.some((method) => typeof (metrics as Record<string, unknown>)[method] !== 'function'))
  )
    throw configError('pool.metrics', metrics, 'must be a MetricsCollector (new MetricsCollector(name), registry.collector(name))')
  // one collector, one pool: the collector of another open pool is refused before anything is made
  const holder = typeof metrics?.boundTo === 'function' ? metrics.boundTo() : undefined
  if (holder !== undefined) throw alreadyBound(metrics!.poolName ?? '', holder)
  if (options.metrics === undefined) checkCollectorOptions(options.metricsOptions)
  const tracer = options.tracer as Partial<Tracer> | null | undefined
  if (
    tracer !== undefined &&
    (tracer === null ||
      typeof tracer !== 'object' ||
      typeof tracer.startSpan !== 'function' ||
      typeof tracer.startActiveSpan !== 'function')
  )
    throw configError('pool.tracer', tracer, 'must be an OpenTelemetry Tracer (trace.getTracer(...))')
}

/**
 * A statement given up on (its deadline, its AbortSignal) while it still waited its turn on its lease
 * behind the statements issued before it: never run, so retryable; the statements before it go on.
 */
function notStartedError(
  backend: Backend,
  why: 'deadline' | 'abort',
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): DatabaseError {
  const waiting = 'while it still waited its turn behind the statements issued before it on its connection: it was never run'
  if (why === 'deadline')
    return new DatabaseError('QUERY_TIMEOUT', `statement exceeded its ${timeoutMs} ms deadline ${waiting}`, {
      backend,
      retryable: true,
      detail: { started: false, timeoutMs },
    })
  return new DatabaseError('QUERY_CANCELLED', `the statement was cancelled before it started, ${waiting}`, {
    backend,
    retryable: true,
    cause: signal?.reason,
    detail: { started: false },
  })
}
