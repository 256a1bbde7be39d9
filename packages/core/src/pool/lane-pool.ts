import { AsyncResource } from 'node:async_hooks'
import { setMaxListeners } from 'node:events'
import { TimeoutError } from 'tarn'
import { DatabaseError, type PoolStatsSnapshot } from '../errors/database-error'
import type { ConnectionManager, FailoverInfo, Lane, ReferencedHandle } from '../driver/connection-manager'
import type { PoolConfig } from '../config/pool-config'
import { inBackground } from './background'
import { handedOverTo, ManagedTarnPool, type PendingAcquire } from './managed-tarn-pool'
import { PooledConnection } from './pooled-connection'
import { waitDeadlineOf } from './wait-deadline'
import { WaitQueue, type Queued } from './wait-queue'
import { isErrorLike } from '../util/error-like'

/** @internal Acquires tarn may hold beyond `max` (see `LanePool.acquire`). */
export const TARN_SLACK = 32

/** tarn's idle timeout when `idleTimeoutMs` is 0 (never): setInterval's largest delay, about 24.8 days. */
const NEVER_MS = 2_147_483_647
/** Attempts of one connect named in its deadline's error (a host list walked twice by prefer-standby, addresses of names). */
const MAX_ATTEMPTS_NAMED = 32

/**
 * @internal What a lane hands a connection to: `waited` is true when the caller may have waited (its
 * lease then reads the connection's clock), `since` is when it asked, `a` and `b` what it passed to
 * `acquire()`. A function per kind of call, not a closure per call: a waiting caller is one
 * {@link Waiter} and the promise it will settle.
 */
export type OnAcquired<C, A, B, T> = (conn: PooledConnection<C>, waited: boolean, since: number, a: A, b: B) => T

/**
 * @internal What a lane calls when a caller's acquire fails, before its promise rejects with `error`:
 * `since` is when it asked, `lane` the lane it asked.
 */
export type OnAcquireFailed = (error: DatabaseError, since: number, lane: Lane) => void

/** @internal What a lane needs from the pool that owns it. */
export interface LaneHost<C> {
  readonly manager: ConnectionManager<C>
  readonly config: PoolConfig
  onCreated(conn: PooledConnection<C>, durationMs: number): void
  onLost(conn: PooledConnection<C>, error: DatabaseError): void
  onFailover(info: FailoverInfo): void
  onDestroyed(conn: PooledConnection<C>, reason: string): void
  onBackgroundError(error: DatabaseError): void
  onAcquireTimeout(): void
  /**
   * Hands back now the connections of `lane` held by nobody waiting on them (statement sharing keeps
   * one until the next macrotask after its last statement); true when it gave any back. Asked only
   * before a caller would be refused with POOL_EXHAUSTED: such a connection is idle to the caller.
   */
  reclaimIdle?(lane: LanePool<C>): boolean
}

/**
 * @internal A caller waiting in a lane's queue, then (once fed) in tarn's: the whole state of a
 * waiting caller besides its promise, about 100 bytes, plus about 60 for the `context` of one queued
 * in the lane's queue (the queue holds many; `bench/memory.js`, `bench/wait-queue.js`).
 */
class Waiter<C> implements Queued {
  queued = false
  /** Set only for a caller with an AbortSignal (rare): what cancelling it needs. */
  cancel: WaiterCancel<C> | undefined = undefined
  /**
   * Set only for a caller that waits in the lane's queue: its async context (AsyncLocalStorage,
   * OpenTelemetry's context manager, domains), captured when it arrived. It is fed to tarn later by
   * another caller's release, so `onAcquired` (and the caller's callback it runs) is run in it.
   */
  context: AsyncResource | undefined = undefined

  constructor(
    readonly since: number,
    readonly onAcquired: OnAcquired<C, unknown, unknown, unknown>,
    readonly a: unknown,
    readonly b: unknown,
    readonly onFailed: OnAcquireFailed | undefined,
  ) {}

  // set by {@link captureResolvers} inside the Promise constructor, before anything can settle it
  resolve!: (value: unknown) => void
  reject!: (reason: unknown) => void
}

/** The waiter whose promise is being constructed (see {@link captureResolvers}). */
let constructing: Waiter<unknown> | undefined

/**
 * The executor of every waiter's promise: one function with no closure, so a waiting caller costs
 * its promise, its two resolving functions and its {@link Waiter}, not also a closure context that
 * would hold what the caller passed (bench/memory.js, bench/wait-queue.js: the heap a burst of
 * waiting callers promotes is what makes its leases dearer).
 */
function captureResolvers(resolve: (value: unknown) => void, reject: (reason: unknown) => void): void {
  const waiter = constructing!
  waiter.resolve = resolve
  waiter.reject = reject
}

/**
 * @internal What can stop a waiting caller before `acquireTimeoutMs`: its AbortSignal's listener, its
 * own shorter deadline (a statement's `timeoutMs`), and its pending acquire once fed to tarn.
 */
class WaiterCancel<C> {
  op: PendingAcquire<PooledConnection<C>> | undefined = undefined
  /** Cancelled while in tarn's queue: counted in `LanePool.#leaving` until its rejection arrives. */
  leaving = false
  signal: AbortSignal | undefined = undefined
  listener: (() => void) | undefined = undefined
  timer: NodeJS.Timeout | undefined = undefined
}

/**
 * How ACQUIRE_TIMEOUT names a `'withConnection'` lease: a connection held across its holder's own
 * code through `pool.withConnection()`, which is a caller's callback or the pool's own users of it
 * (a Kysely statement, the Migrator), so it is not called "a withConnection() callback".
 */
const HELD_CONNECTION = 'a held connection (a withConnection() callback, a Kysely statement or a Migrator run)'

/**
 * @internal One tarn pool of one lane. Owns the wait queue (see {@link LanePool.acquire}), creation
 * (with its own deadline, so a late connect is destroyed, never leaked), validation on borrow
 * (lifetime, usability, ping after idle), retirement of idle connections at the end of their
 * lifetime (a timer, no borrow), keepalive pings without a borrow, and destroy.
 */
export class LanePool<C> {
  readonly tarn: ManagedTarnPool<PooledConnection<C>>
  readonly live = new Set<PooledConnection<C>>()
  /** The connection the pool last ran a lease-free statement on (a hint, checked before use). */
  lastDirect: PooledConnection<C> | undefined
  readonly #host: LaneHost<C>
  #lastCreateError: DatabaseError | undefined
  /**
   * The clock read at the latest acquire; validation uses it instead of reading the clock again.
   * A caller that waited is handed a connection released just now, so a stale reading is harmless.
   */
  #now = 0
  /** Fires at the earliest expiry among live connections; unref'd, one per lane. */
  #retireTimer: NodeJS.Timeout | undefined
  #retireAt = Number.POSITIVE_INFINITY
  /** After close() began: no more retirement timers. */
  #stopped = false
  /**
   * Aborted when close() gives up on the lane's waiters ({@link abortWaiting}): connects in flight are
   * then abandoned (the manager destroys their socket, see `ConnectionHooks.signal`), so neither
   * their socket nor their deadline timers keep the process alive after close().
   */
  readonly #connects = connectsController()
  /** How soon an expired connection that was leased at its expiry is looked at again. */
  readonly #recheckMs: number
  /** Callers waiting beyond the acquires tarn is given at once, oldest first. */
  readonly #queue: WaitQueue<Waiter<C>>
  /** Warm-up acquires not yet settled: in {@link waiting}'s queues, yet no caller's. */
  #warming = 0
  /**
   * Callers cancelled (their signal aborted, their own deadline passed) while in tarn's queue, whose
   * rejection has not arrived yet: tarn drops a rejected acquire from its queue in a later promise
   * callback, and until then `numPendingAcquires()` still counts it, while the caller has left.
   */
  #leaving = 0
  /** tarn acquires issued and not yet settled, at most {@link #tarnLimit}. */
  #inTarn = 0
  /** How many acquires tarn may have at once: `max + TARN_SLACK`, whatever the number of callers. */
  readonly #tarnLimit: number
  /**
   * The deadline of one connect, in ms: `createTimeoutMs`, or longer when the manager's own
   * deadlines need it (`ConnectionManager.connectDeadlineMs`: a multi-host walk with libpq's per-host
   * `connect_timeout`), so the pool never ends a walk before its later hosts are tried (review r6 item 4).
   */
  readonly #createDeadlineMs: number

  constructor(
    host: LaneHost<C>,
    readonly lane: Lane,
    readonly max: number,
    readonly min: number,
    /** The manager's read target (`lanes.readTargets` index) this pool's connections go to; `-1`: the lane's only target. */
    readonly target = -1,
    /** What its errors name it after the lane: `replica <target>` by default (a read target), e.g. `primary read-only`. */
    readonly targetName = `replica ${target}`,
  ) {
    this.#host = host
    const { config } = host
    this.#recheckMs = Math.min(1_000, Math.max(10, Math.floor(config.maxLifetimeMs / 10)))
    this.#queue = new WaitQueue<Waiter<C>>(config.acquireTimeoutMs, (waiter) => this.#expired(waiter))
    this.#tarnLimit = max + TARN_SLACK
    const own = host.manager.connectDeadlineMs?.(lane, target < 0 ? undefined : target)
    this.#createDeadlineMs = Math.max(config.createTimeoutMs, typeof own === 'number' && Number.isFinite(own) ? own : 0)
    this.tarn = new ManagedTarnPool<PooledConnection<C>>({
      // in no caller's context: the connection outlives whoever made tarn open it, and its socket's
      // events (a loss, `connectionLost`, `destroy`) run in the context it was opened in. The caller
      // that gets it still continues in its own (its acquire's `then`, or its waiter's context)
      create: () => inBackground(() => this.#create()),
      destroy: (conn) => this.#destroy(conn, conn.broken ? 'broken' : 'retired'),
      validate: (conn) => this.#validate(conn) as unknown as boolean,
      min,
      max,
      acquireTimeoutMillis: config.acquireTimeoutMs,
      // our own connect deadline fires first; tarn's is a backstop
      createTimeoutMillis: this.#createDeadlineMs + 1_000,
      destroyTimeoutMillis: 5_000,
      // tarn's reaper closes idle connections beyond `min`; it runs at least once a second (unref'd)
      idleTimeoutMillis: config.idleTimeoutMs > 0 ? config.idleTimeoutMs : NEVER_MS,
      reapIntervalMillis: config.idleTimeoutMs > 0 ? Math.max(10, Math.min(1_000, config.idleTimeoutMs)) : 1_000,
      createRetryIntervalMillis: 100,
      propagateCreateError: true,
      log: () => undefined,
    })
  }

  /** Counters of this lane. */
  stats(): { -readonly [K in keyof PoolStatsSnapshot]: PoolStatsSnapshot[K] } {
    const idle = this.tarn.numFree()
    const used = this.tarn.numUsed()
    const size = idle + used + this.tarn.numPendingCreates()
    return { size, idle, used, pending: this.waiting, max: this.max, min: this.min, utilization: used / this.max }
  }

  /**
   * Callers waiting for a connection of this lane: in the lane's queue and in tarn's, without the
   * pool's own warm-up acquires (see {@link acquireForWarmUp}): nobody asked for those.
   */
  get waiting(): number {
    return Math.max(0, this.#queue.size + this.tarn.numPendingAcquires() - this.#warming - this.#leaving)
  }

  /**
   * An acquire of the pool's warm-up to `min` (pool-maintenance): as {@link acquire}, resolving with
   * the connection, but never counted as a pending request (`stats().pending`,
   * `db.client.connection.pending_requests`, the counters in error messages, `maxWaitingClients`).
   */
  acquireForWarmUp(): Promise<PooledConnection<C>> {
    this.#warming++
    let counted = true
    const settled = (): void => {
      if (counted) this.#warming--
      counted = false
    }
    return this.acquire(
      (conn: PooledConnection<C>) => {
        settled()
        return conn
      },
      undefined,
      undefined,
    ).finally(settled)
  }

  /**
   * Borrows a connection and hands it to `onAcquired` (with `a` and `b`), mapping tarn's failures to
   * DatabaseErrors; resolves with what `onAcquired` returns (a promise is followed). An idle
   * connection that needs no ping, with nobody waiting, is handed out synchronously (`onAcquired`
   * runs inside this call); otherwise `onAcquired` runs inside the `then` that settles tarn's acquire.
   *
   * The wait queue: tarn is given at most `max + 32` acquires at a time (`max` so it opens every
   * connection the lane may have, the rest so callers passing through at moderate concurrency go
   * straight to it), so its own queue, an array it shifts and searches, stays short. Callers beyond
   * that wait in the lane's {@link WaitQueue} (O(1) per caller, one shared deadline timer, no timer
   * per caller) and are fed to tarn in order as its acquires settle, each with what is left of its
   * `acquireTimeoutMs`. So the order is first come first served across both queues, tarn's rules
   * (validation, creation, a connect error failing the oldest caller at once) apply unchanged, and
   * the cost of a lease does not grow with the number of callers waiting.
   *
   * Fails with POOL_EXHAUSTED when `maxWaitingClients` callers already wait, ACQUIRE_TIMEOUT (with
   * the pool's counters, what holds every connection when all are held, and the last connect error
   * as `cause`) when `acquireTimeoutMs` passes,
   * POOL_CLOSED when close() gives up on waiting callers, QUERY_CANCELLED when `signal` aborts while
   * the caller waits (it leaves the queue at once), or with the connect error itself. `onFailed`
   * runs before each of those rejections, with the error.
   */
  acquire<A, B, T>(
    onAcquired: OnAcquired<C, A, B, T>,
    a: A,
    b: B,
    now = performance.now(),
    onFailed?: OnAcquireFailed,
    signal?: AbortSignal,
    waitMs?: number,
  ): Promise<Awaited<T>> {
    const { tarn } = this
    this.#now = now
    const queued = this.#queue.size
    if (queued > 0 || (tarn.numFree() === 0 && tarn.numUsed() + tarn.numPendingCreates() >= this.max)) {
      const waiting = this.waiting
      // (rare path) a connection kept by statement sharing with nothing in flight is idle to the
      // caller: it is handed back (or on its way back, after its reset) instead of refusing the caller
      if (waiting >= this.#host.config.maxWaitingClients && !(this.#host.reclaimIdle?.(this) ?? false)) {
        const refused = this.#poolError(
          'POOL_EXHAUSTED',
          `${this.#describe()} has ${waiting} callers waiting (maxWaitingClients ${this.#host.config.maxWaitingClients})`,
        )
        onFailed?.(refused, now, this.lane)
        return Promise.reject(refused)
      }
    }
    if (queued === 0 && signal === undefined) {
      // the most common case: an idle connection that needs no ping, nobody waiting for it
      const idle = tarn.takeFree(this.#readyNow)
      if (idle) {
        idle.pinged = false
        this.#handOut(idle)
        try {
          return Promise.resolve(onAcquired(idle, false, now, a, b))
        } catch (err) {
          return Promise.reject(err)
        }
      }
    }
    if (queued === 0 && this.#inTarn < this.#tarnLimit && signal === undefined && waitMs === undefined) {
      // straight to tarn, whose deadline is the caller's whole acquireTimeoutMs. Only a caller that
      // may wait is marked so (the lease then reads the connection's clock)
      const mayWait = tarn.numFree() === 0
      this.#inTarn++
      const op = tarn.acquire()
      // (a promise returned by onAcquired is followed: the result is what it resolves to)
      return op.promise.then(
        (conn) => {
          this.#leftTarn()
          return onAcquired(conn, mayWait || conn.pinged, now, a, b)
        },
        (err: unknown) => {
          this.#leftTarn(op)
          const error = this.#acquireError(err)
          onFailed?.(error, now, this.lane)
          throw this.#counted(error)
        },
      ) as Promise<Awaited<T>>
    }
    const waiter = new Waiter<C>(now, onAcquired as OnAcquired<C, unknown, unknown, unknown>, a, b, onFailed)
    constructing = waiter as Waiter<unknown>
    const promise = new Promise<Awaited<T>>(
      captureResolvers as (resolve: (value: Awaited<T>) => void, reject: (reason: unknown) => void) => void,
    )
    constructing = undefined
    try {
      this.#enqueue(waiter, signal, waitMs)
    } catch (err) {
      waiter.reject(err)
    }
    return promise
  }

  #enqueue(waiter: Waiter<C>, signal: AbortSignal | undefined, waitMs: number | undefined): void {
    if (signal) {
      if (signal.aborted) {
        this.#fail(waiter, this.#stoppedError(signal))
        return
      }
      const cancel = (waiter.cancel = new WaiterCancel<C>())
      cancel.signal = signal
      cancel.listener = () => this.#cancel(waiter, this.#stoppedError(signal))
      signal.addEventListener('abort', cancel.listener, { once: true })
    }
    if (waitMs !== undefined && waitMs < this.#host.config.acquireTimeoutMs) {
      // a deadline of the caller's own, shorter than the pool's: one timer, only for a caller that waits
      const cancel = (waiter.cancel ??= new WaiterCancel<C>())
      cancel.timer = setTimeout(
        () => this.#cancel(waiter, this.#deadlineError(waitMs, "the statement's timeoutMs", 'the statement')),
        waitMs,
      )
    }
    if (this.#queue.size === 0 && this.#inTarn < this.#tarnLimit)
      this.#start(waiter, this.#host.config.acquireTimeoutMs, this.tarn.numFree() === 0)
    else {
      // fed to tarn later from another caller's release (see #start): keep this caller's context
      waiter.context = new AsyncResource('dbpool.Waiter')
      this.#queue.push(waiter)
    }
  }

  /**
   * Hands a waiter to tarn, with `timeoutMs` left before its deadline. Called in the caller's own
   * context (from acquire) or, for a queued caller, in the context of whoever released the
   * connection: `onAcquired` then runs in the context the caller captured when it was queued.
   */
  #start(waiter: Waiter<C>, timeoutMs: number, waited: boolean): void {
    this.#inTarn++
    const op = timeoutMs === this.#host.config.acquireTimeoutMs ? this.tarn.acquire() : this.tarn.acquireWithin(timeoutMs)
    if (waiter.cancel) waiter.cancel.op = op
    op.promise.then(
      (conn) => {
        this.#leftTarn()
        this.#leave(waiter)
        let value: unknown
        try {
          const { context } = waiter
          value = context
            ? context.runInAsyncScope(waiter.onAcquired, undefined, conn, waited || conn.pinged, waiter.since, waiter.a, waiter.b)
            : waiter.onAcquired(conn, waited || conn.pinged, waiter.since, waiter.a, waiter.b)
        } catch (err) {
          waiter.reject(err)
          return
        }
        waiter.resolve(value)
      },
      (err: unknown) => {
        // tarn has dropped it from its queue by now (its own rejection handler runs first)
        if (waiter.cancel?.leaving) {
          waiter.cancel.leaving = false
          this.#leaving--
        }
        this.#leftTarn(op)
        this.#fail(waiter, this.#acquireError(err))
      },
    )
  }

  /**
   * A tarn acquire settled: the oldest queued callers take its place. `failed`: the acquire failed,
   * and a connection handed over to it (see `release()`) just before goes back.
   */
  #leftTarn(failed?: PendingAcquire<PooledConnection<C>>): void {
    this.#inTarn--
    const handed = failed && handedOverTo(failed)
    if (handed) this.release(handed)
    if (this.#queue.size > 0) this.#feed()
  }

  #feed(): void {
    // one clock reading for the batch; validation of the connections they get reads it too
    const now = (this.#now = performance.now())
    const timeoutMs = this.#host.config.acquireTimeoutMs
    while (this.#inTarn < this.#tarnLimit) {
      const waiter = this.#queue.shift()
      if (!waiter) return
      const left = Math.ceil(waiter.since + timeoutMs - now)
      if (left > 0) this.#start(waiter, left, true)
      else this.#expired(waiter)
    }
  }

  /** A queued caller's deadline passed (the queue's timer, or found due when it was fed). */
  #expired(waiter: Waiter<C>): void {
    this.#fail(waiter, this.#timeoutError())
  }

  /**
   * The caller's signal aborted or its own deadline passed: out of the queue now, or out of tarn's (its
   * rejection settles it). Either way it stops counting as waiting at once (`maxWaitingClients`,
   * `stats().pending`): one still in tarn's queue counts in {@link #leaving} until tarn drops it.
   */
  #cancel(waiter: Waiter<C>, error: DatabaseError): void {
    const cancel = waiter.cancel
    if (!cancel) return
    if (this.#queue.remove(waiter)) {
      this.#fail(waiter, error)
      return
    }
    const op = cancel.op
    if (op === undefined) return
    // (rare path) one still waiting in tarn's queue, not handed a connection being validated
    if (!cancel.leaving && this.tarn.waitsInQueue(op)) {
      cancel.leaving = true
      this.#leaving++
    }
    op.reject(error)
  }

  #fail(waiter: Waiter<C>, error: DatabaseError): void {
    this.#leave(waiter)
    waiter.onFailed?.(error, waiter.since, this.lane)
    waiter.reject(this.#counted(error))
  }

  /**
   * The one place an ACQUIRE_TIMEOUT is counted (`db.client.connection.timeouts`): as it reaches its
   * caller, whatever ended the wait (`acquireTimeoutMs`, a statement's `timeoutMs`, the deadline of a
   * stream or a COPY marked by `markWaitDeadline`), so each one a caller receives counts once.
   */
  #counted(error: DatabaseError): DatabaseError {
    if (error.code === 'ACQUIRE_TIMEOUT') this.#host.onAcquireTimeout()
    return error
  }

  /** The caller got its connection or failed: its abort listener goes. */
  #leave(waiter: Waiter<C>): void {
    const cancel = waiter.cancel
    if (!cancel) return
    waiter.cancel = undefined
    if (cancel.listener) cancel.signal?.removeEventListener('abort', cancel.listener)
    clearTimeout(cancel.timer)
  }

  /**
   * Returns a connection. If callers wait in tarn and it passes the checks of validation on borrow
   * at once (as of `now`), it goes straight to the oldest of them; otherwise back to tarn, which
   * hands it out after validating it (pinging it if it has been idle too long) or keeps it idle.
   */
  release(conn: PooledConnection<C>, now = performance.now()): void {
    conn.leased = false
    const { tarn } = this
    if (tarn.numPendingAcquires() > 0) {
      this.#now = now
      if (this.#readyNow(conn) && tarn.handOver(conn)) {
        conn.pinged = false
        this.#handOut(conn)
        return
      }
    }
    tarn.release(conn)
  }

  /** Rejects every caller still waiting for a connection with POOL_CLOSED (close() at its deadline). */
  abortWaiting(): void {
    // the queue first: tarn's callers, failing, would feed queued ones to tarn
    for (const waiter of this.#queue.drain()) this.#fail(waiter, this.#closedError())
    this.tarn.abortWaiting()
    // nobody is left to use a connection still being opened (a warm-up's included)
    this.#connects.abort()
  }

  /**
   * Fails every caller still waiting for a connection of this lane with `error` (a replica found not
   * answering: its callers, waiting for connects that hang, go to the next choice at once). The
   * lane stays open: later callers wait as before.
   */
  failWaiting(error: DatabaseError): void {
    // the queue first: tarn's callers, failing, would feed queued ones to tarn
    for (const waiter of this.#queue.drain()) this.#fail(waiter, error)
    this.tarn.rejectWaiting(error)
  }

  /** Clears the retirement timer for good (close() calls this first). */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#retireTimer)
    this.#retireTimer = undefined
  }

  /**
   * Pings every idle connection without borrowing it: tarn does not validate it (so a failed one is
   * never replaced beyond `min` unless a caller waits), and it keeps its idle start (a ping is not
   * use). A connection that fails is destroyed. Resolves with how many were checked and evicted.
   * Each ping is bounded by `pingMs` (default: `min(createTimeoutMs, 5000)`, as validation on borrow);
   * one that does not answer in time counts as failed.
   */
  async pingIdle(pingMs?: number): Promise<{ checked: number; evicted: number }> {
    const results = await Promise.all(this.tarn.idle().map((conn) => this.#pingIdleOne(conn, pingMs)))
    return { checked: results.filter((r) => r !== undefined).length, evicted: results.filter((r) => r === false).length }
  }

  /** `true` alive, `false` evicted, `undefined` not idle any more. */
  async #pingIdleOne(conn: PooledConnection<C>, pingMs: number | undefined): Promise<boolean | undefined> {
    const { manager, config } = this.#host
    if (conn.destroyed) return undefined
    const idleSince = this.tarn.checkOut(conn)
    if (idleSince === undefined) return undefined
    // held for the ping: the lease-free path of a synchronous driver skips it meanwhile
    conn.leased = true
    if (!conn.broken) {
      try {
        await manager.ping(conn.native, pingMs ?? Math.min(config.createTimeoutMs, 5_000))
        conn.lastCheckedAt = performance.now()
      } catch (err) {
        conn.broken ??= DatabaseError.is(err) ? err : manager.mapError(err)
      }
    }
    if (conn.broken || conn.destroyed || !manager.isUsable(conn.native)) {
      await this.#destroy(conn, conn.broken ? `broken: ${conn.broken.code}` : 'unusable')
      this.release(conn)
      this.dropDestroyed()
      return false
    }
    conn.leased = false
    this.tarn.checkIn(conn, idleSince)
    return true
  }

  /** Arms the retirement timer for `at` (a performance.now() reading), unless it is due sooner already. */
  #armRetirement(at: number): void {
    if (this.#stopped || at >= this.#retireAt) return
    clearTimeout(this.#retireTimer)
    this.#retireAt = at
    this.#retireTimer = setTimeout(() => this.#retireExpired(), Math.max(0, Math.ceil(at - performance.now()))).unref()
  }

  /**
   * Destroys the idle connections past their lifetime, then arms the timer for the next expiry. A
   * connection leased (or being pinged) at its expiry is looked at again shortly, and retired once
   * it is idle; tarn's validation refuses it meanwhile if it is borrowed again.
   */
  #retireExpired(): void {
    this.#retireTimer = undefined
    this.#retireAt = Number.POSITIVE_INFINITY
    const now = performance.now()
    for (const conn of this.tarn.removeIdle((c) => c.expiresAt <= now)) void this.#destroy(conn, 'max lifetime')
    let next = Number.POSITIVE_INFINITY
    for (const conn of this.live) {
      if (conn.destroyed) continue
      next = Math.min(next, conn.expiresAt > now ? conn.expiresAt : now + this.#recheckMs)
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armRetirement(next)
  }

  async #create(): Promise<PooledConnection<C>> {
    const { manager, config } = this.#host
    const started = performance.now()
    let conn: PooledConnection<C> | undefined
    const signal = this.#connects.signal
    // the hosts a multi-host walk tried, for the deadline's error (see ConnectionHooks.onAttempt)
    const attempts: { host: string; outcome: string | undefined }[] = []
    const hooks = {
      onLost: (error: DatabaseError) => conn && this.#host.onLost(conn, error),
      onFailover: (info: FailoverInfo) => this.#host.onFailover(info),
      onAttempt: (host: string, outcome?: string) => {
        const last = attempts.at(-1)
        if (outcome !== undefined && last?.host === host && last.outcome === undefined) last.outcome = outcome
        else if (attempts.length < MAX_ATTEMPTS_NAMED) attempts.push({ host, outcome })
      },
      signal,
    }
    if (signal.aborted) throw this.#closedError()
    const connecting = this.target < 0 ? manager.connect(this.lane, hooks) : manager.connect(this.lane, hooks, this.target)
    try {
      const native = await withDeadline(
        connecting,
        this.#createDeadlineMs,
        () => {
          const tried = attempts.map((a) => `${a.host} ${a.outcome ?? '(no answer yet)'}`)
          return new DatabaseError(
            'CONNECTION_FAILED',
            `connecting to ${manager.target} timed out after ${this.#createDeadlineMs} ms${tried.length > 0 ? `; tried ${tried.join('; ')}` : ''}`,
            { backend: manager.backend, ...(tried.length > 0 ? { detail: { tried } } : {}) },
          )
        },
        // the pool's timers never keep the process alive (a connect's socket does, until close())
        { unref: true, signal, onAbort: () => this.#closedError() },
      )
      conn = new PooledConnection(native, this.lane, expiry(config.maxLifetimeMs, config.maxLifetimeJitter), this.target)
      if (manager.nativeLent) conn.nativeLent = () => manager.nativeLent!(native)
      if (config.allowExitOnIdle && isReferencedHandle(native)) {
        // idle until leased: its socket must not keep the process alive (pg-pool's allowExitOnIdle)
        conn.unrefWhileIdle = true
        native.unref()
      }
    } catch (err) {
      // a connect that completes after its deadline is closed, never leaked into the pool
      connecting.then((late) => manager.destroy(late)).catch(() => undefined)
      const error = DatabaseError.is(err) ? err : manager.mapError(err)
      this.#lastCreateError = error
      throw error
    }
    this.#lastCreateError = undefined
    this.live.add(conn)
    if (conn.expiresAt !== Number.POSITIVE_INFINITY) this.#armRetirement(conn.expiresAt)
    try {
      this.#host.onCreated(conn, performance.now() - started)
    } catch (err) {
      // what the pool records of a new connection (metrics, telemetry, listeners) never strands it:
      // it goes to tarn as made (review r13 D5: a throw here left it in neither tarn nor a caller's hands)
      this.#host.onBackgroundError(DatabaseError.is(err) ? err : manager.mapError(err))
    }
    return conn
  }

  /** True when validation would pass at once (no ping needed): the connection can be handed out now. */
  readonly #readyNow = (conn: PooledConnection<C>): boolean => {
    const { manager, config } = this.#host
    const now = this.#now
    return (
      !conn.broken &&
      !conn.destroyed &&
      now < conn.expiresAt &&
      now - conn.lastCheckedAt <= config.validateAfterIdleMs &&
      manager.isUsable(conn.native)
    )
  }

  #validate(conn: PooledConnection<C>): boolean | Promise<boolean> {
    const { manager, config } = this.#host
    if (conn.broken || conn.destroyed || !manager.isUsable(conn.native)) return false
    const now = this.#now
    if (now >= conn.expiresAt) return false
    conn.pinged = false
    if (now - conn.lastCheckedAt <= config.validateAfterIdleMs) return this.#handOut(conn)
    conn.pinged = true
    return manager.ping(conn.native, Math.min(config.createTimeoutMs, 5_000)).then(
      () => {
        conn.lastCheckedAt = performance.now()
        return this.#handOut(conn)
      },
      (err: unknown) => {
        conn.broken = DatabaseError.is(err) ? err : manager.mapError(err)
        return false
      },
    )
  }

  /** tarn hands a validated connection out: from now on it is not idle (the direct path skips it). */
  #handOut(conn: PooledConnection<C>): true {
    conn.leased = true
    return true
  }

  async #destroy(conn: PooledConnection<C>, reason: string): Promise<void> {
    if (conn.destroyed) return
    conn.destroyed = true
    this.live.delete(conn)
    if (this.lastDirect === conn) this.lastDirect = undefined
    try {
      await this.#host.manager.destroy(conn.native)
    } catch (err) {
      this.#host.onBackgroundError(this.#host.manager.mapError(err))
    }
    this.#host.onDestroyed(conn, reason)
  }

  /** Destroys a connection outside tarn (evicted while leased, or found dead while idle). */
  evict(conn: PooledConnection<C>, reason: string): Promise<void> {
    return this.#destroy(conn, reason)
  }

  /**
   * Takes destroyed connections out of tarn's free list now. tarn would only notice them on a later
   * borrow, and a borrow made just to notice them would also open replacements nobody asked for
   * (with a dead server, a pending create the pool would then count as a connection).
   */
  dropDestroyed(): void {
    this.tarn.removeIdle((conn) => conn.destroyed)
  }

  /** Destroys the idle connections known to be dead (lost, or failed outside a lease) and drops them. */
  async sweep(): Promise<void> {
    const dead = [...this.live].filter((c) => c.broken && !c.leased && !c.destroyed)
    if (dead.length === 0) return
    await Promise.all(dead.map((c) => this.#destroy(c, `broken: ${c.broken?.code ?? 'unknown'}`)))
    this.dropDestroyed()
  }

  #acquireError(err: unknown): DatabaseError {
    if (err instanceof TimeoutError) return this.#timeoutError()
    if (isErrorLike(err) && err.message === 'aborted') return this.#closedError()
    if (DatabaseError.is(err)) return err
    return this.#host.manager.mapError(err)
  }

  /** ACQUIRE_TIMEOUT for a caller that already left the queues (counted as it is delivered, see {@link #counted}). */
  #timeoutError(): DatabaseError {
    const cause = this.#lastCreateError
    const hint = cause ? `; last connect error: ${cause.code}: ${cause.message}` : ''
    const held = this.#held()
    // the caller already left the queue: count it back in the snapshot
    return this.#poolError(
      'ACQUIRE_TIMEOUT',
      `${this.#describe(1)} timed out after ${this.#host.config.acquireTimeoutMs} ms waiting for a connection${held?.hint ?? ''}${hint}`,
      cause,
      held?.detail,
    )
  }

  /**
   * Why no connection came (ACQUIRE_TIMEOUT only, a rare path: the lane's connections are read then,
   * nothing is tracked per call): when every connection of the lane is held by a lease, the message
   * says by what and for how long, and when transactions or held connections (`withConnection()`:
   * a callback, a Kysely statement, the Migrator) hold them, what it means if this call was made
   * inside such a callback (it waits for the connection its own callback holds: SQLite's single
   * writer, Postgres `max: 1`, until `acquireTimeoutMs`), and that otherwise another caller holds
   * them: the pool cannot tell which without tracking every call's context. Nothing
   * when a connection is free or still opening (the wait was for something else: connecting).
   */
  #held(): { hint: string; detail: Record<string, unknown> } | undefined {
    const now = performance.now()
    let transaction = 0
    let withConnection = 0
    let other = 0
    let longestMs = 0
    for (const conn of this.live) {
      const lease = conn.lease
      if (!conn.leased || lease === undefined || !lease.active) continue
      if (lease.holder === 'transaction') transaction++
      else if (lease.holder === 'withConnection') withConnection++
      else other++
      if (lease.holder !== undefined) longestMs = Math.max(longestMs, Math.round(now - lease.acquiredAt))
    }
    if (transaction + withConnection + other < this.max) return undefined
    const detail = { heldBy: { transaction, withConnection, other }, ...(longestMs > 0 ? { heldForMs: longestMs } : {}) }
    const writer = this.max === 1 && this.lane === 'write' && this.#host.manager.backend === 'sqlite'
    const subject = writer ? 'the writer' : this.max === 1 ? 'its only connection' : `all ${this.max} connections`
    if (transaction + withConnection === 0)
      return { hint: `; ${subject} ${this.max === 1 ? 'is' : 'are'} held by statements or streams`, detail }
    if (this.max === 1) {
      const byTx = transaction === 1
      return {
        hint: byTx
          ? `; ${subject} has been held by a transaction for ${longestMs} ms: if this call was made inside that transaction's ` +
            `callback it waits for itself (a self-deadlock until acquireTimeoutMs): use the callback's tx, not the pool; ` +
            `else another caller's transaction holds it longer than acquireTimeoutMs`
          : `; ${subject} has been held for ${longestMs} ms by ${HELD_CONNECTION}: if this call was made inside a ` +
            `withConnection() callback it waits for itself (a self-deadlock until acquireTimeoutMs): use the callback's conn, ` +
            `not the pool; else that holder keeps it longer than acquireTimeoutMs`,
        detail,
      }
    }
    const parts = [
      transaction > 0 ? `${transaction} by transactions` : undefined,
      withConnection > 0 ? `${withConnection} as held connections` : undefined,
      other > 0 ? `${other} by statements or streams` : undefined,
    ].filter((part) => part !== undefined)
    return {
      hint:
        `; ${subject} are held (${parts.join(', ')}), the longest for ${longestMs} ms: if this call was made inside a ` +
        `transaction's or withConnection() callback it waits for the others while its own callback holds one (a self-deadlock ` +
        `when every holder does): use the callback's tx (or conn), not the pool; else other callers hold them longer than acquireTimeoutMs`,
      detail,
    }
  }

  #closedError(): DatabaseError {
    return this.#poolError('POOL_CLOSED', `${this.#describe()} is closed`)
  }

  /**
   * ACQUIRE_TIMEOUT for a caller whose own deadline (a statement's `timeoutMs`, a stream's or a COPY's,
   * named by `option`) passed while it waited: nothing ran (`subject` was not sent). Counted as it
   * is delivered (see {@link #counted}).
   */
  #deadlineError(waitMs: number, option: string, subject: string): DatabaseError {
    const held = this.#held()
    // made while the caller still waits: the counters include it
    return new DatabaseError(
      'ACQUIRE_TIMEOUT',
      `${this.#describe()}: no connection within ${option} (${waitMs} ms); ${subject} was not sent${held?.hint ?? ''}`,
      { poolStats: this.stats(), cause: this.#lastCreateError, detail: { timeoutMs: waitMs, ...held?.detail } },
    )
  }

  /**
   * The caller's signal aborted while it waited: ACQUIRE_TIMEOUT when the reason is the call's own
   * deadline (a stream's or a COPY's `timeoutMs`, see `markWaitDeadline`), else QUERY_CANCELLED.
   */
  #stoppedError(signal: AbortSignal): DatabaseError {
    const deadline = waitDeadlineOf(signal.reason)
    return deadline ? this.#deadlineError(deadline.timeoutMs, deadline.option, deadline.subject) : this.#cancelledError(signal)
  }

  #cancelledError(signal: AbortSignal): DatabaseError {
    return new DatabaseError('QUERY_CANCELLED', 'the statement was cancelled before it got a connection (AbortSignal aborted)', {
      cause: signal.reason,
    })
  }

  #poolError(
    code: 'ACQUIRE_TIMEOUT' | 'POOL_EXHAUSTED' | 'POOL_CLOSED',
    message: string,
    cause?: unknown,
    detail?: Record<string, unknown>,
  ): DatabaseError {
    const stats = this.stats()
    const pending = code === 'ACQUIRE_TIMEOUT' ? stats.pending + 1 : stats.pending
    return new DatabaseError(code, message, { poolStats: { ...stats, pending }, cause, ...(detail ? { detail } : {}) })
  }

  #describe(extraPending = 0): string {
    const s = this.stats()
    s.pending += extraPending
    const lane = this.lane === 'read' ? (this.target < 0 ? ' (read lane)' : ` (read lane, ${this.targetName})`) : ''
    return `pool "${this.#host.config.name}"${lane} (size=${s.size}, used=${s.used}, idle=${s.idle}, pending=${s.pending}, max=${s.max})`
  }
}

function isReferencedHandle(native: unknown): native is ReferencedHandle {
  const handle = native as Partial<ReferencedHandle> | null
  return typeof handle === 'object' && handle !== null && typeof handle.ref === 'function' && typeof handle.unref === 'function'
}

function expiry(lifetimeMs: number, jitter: number): number {
  if (lifetimeMs === 0) return Number.POSITIVE_INFINITY
  return performance.now() + lifetimeMs - Math.floor(lifetimeMs * jitter * Math.random())
}

/**
 * Races `promise` against a timer that rejects with `onTimeout()`; the timer is always cleared.
 * Options: `unref` (the timer does not keep the process alive), `signal` (rejects with `onAbort()`
 * once it aborts; its listener is removed when the race settles).
 */
export function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  options: { readonly unref?: boolean; readonly signal?: AbortSignal; readonly onAbort?: () => Error } = {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let listener: (() => void) | undefined
  const { signal } = options
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms)
    if (options.unref === true) timer.unref()
    if (signal !== undefined) {
      listener = () => reject(options.onAbort?.() ?? onTimeout())
      if (signal.aborted) listener()
      else signal.addEventListener('abort', listener, { once: true })
    }
  })
  return Promise.race([promise, deadline]).finally(() => {
    clearTimeout(timer)
    if (listener !== undefined) signal?.removeEventListener('abort', listener)
  })
}

/**
 * The lane's connect-abort controller. Every connect in flight listens on its signal (twice: the
 * create deadline and the manager's socket), and a lane opens up to `max` at once, so Node's default
 * limit of 10 listeners printed a MaxListenersExceededWarning ('possible EventTarget memory leak')
 * on a pool of 6 or more connecting together; each listener is removed when its connect settles.
 */
function connectsController(): AbortController {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}
