import type { PoolConfig } from '../config/pool-config'
import type { DatabaseError } from '../errors/database-error'
import { inBackground } from './background'
import type { LanePool } from './lane-pool'
import type { Lease } from './lease'
import type { LeakInfo } from './pool-events'

/** @internal What the background work needs from the pool. */
export interface MaintenanceHost {
  readonly config: PoolConfig
  lanes(): LanePool<unknown>[]
  isOpen(): boolean
  activeLeases(): Lease<unknown>[]
  toError(err: unknown): DatabaseError
  emitError(error: DatabaseError): void
  emitLeak(info: LeakInfo): void
  /** More work for each maintenance pass (the read lane's replica probes); its failures are its own. */
  readonly keepalive?: (() => Promise<void>) | undefined
}

/**
 * @internal The pool's background work, which tarn does not do: warm-up to `min` (with backoff while
 * connects fail), keepalive pings of idle connections, and leak scans. Every timer is unref'd and
 * cleared by `stop()`. (Each lane retires its own expired connections, and tarn's reaper closes idle
 * ones beyond `min`.)
 *
 * Keepalive pings check idle connections out without a borrow (see `LanePool.pingIdle`): a borrow
 * would make tarn replace a failed one even when nobody needs it. Warm-up borrows ("a cycle"): that
 * is how tarn is made to open connections.
 */
export class PoolMaintenance {
  readonly #host: MaintenanceHost
  readonly #timers: NodeJS.Timeout[] = []
  #warmUpTimer: NodeJS.Timeout | undefined
  #warmUpBackoffMs = 0

  constructor(host: MaintenanceHost) {
    this.#host = host
  }

  /**
   * Starts the keepalive and leak timers and the first warm-up, in no caller's async context (see
   * `inBackground`): a pool made inside a request does not run its background work in it for life.
   */
  start(): void {
    inBackground(() => this.#startTimers())
  }

  #startTimers(): void {
    const { keepaliveIntervalMs, leakDetectionThresholdMs } = this.#host.config
    const maintenanceMs = keepaliveIntervalMs > 0 ? keepaliveIntervalMs : 30_000
    this.#timers.push(setInterval(() => this.#maintain(keepaliveIntervalMs > 0), maintenanceMs).unref())
    if (leakDetectionThresholdMs > 0) {
      const every = Math.max(10, Math.min(leakDetectionThresholdMs, 1_000))
      this.#timers.push(setInterval(() => this.#scanLeaks(), every).unref())
    }
    this.scheduleWarmUp(0)
  }

  /** Clears every timer (close() calls this first). */
  stop(): void {
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers.length = 0
    clearTimeout(this.#warmUpTimer)
    this.#warmUpTimer = undefined
  }

  /** Borrows `count` connections of a lane at once (validating each), then returns them. */
  async #cycle(lane: LanePool<unknown>, count: number): Promise<void> {
    const host = this.#host
    if (count <= 0 || !host.isOpen()) return
    // not callers: never counted as pending requests
    const results = await Promise.allSettled(Array.from({ length: count }, () => lane.acquireForWarmUp()))
    let failure: DatabaseError | undefined
    for (const result of results) {
      if (result.status === 'fulfilled') lane.release(result.value)
      else failure ??= host.toError(result.reason)
    }
    // a loss reported while this cycle held the connections was not swept then: sweep now
    if (host.isOpen()) await lane.sweep()
    if (failure && host.isOpen()) throw failure
  }

  /**
   * Destroys and drops dead idle connections of every lane (no borrowing, so nothing new is opened),
   * in no caller's context: they are nobody's (their `destroy` events neither).
   */
  sweep(): void {
    inBackground(() => {
      for (const lane of this.#host.lanes()) lane.sweep().catch((err: unknown) => this.#host.emitError(this.#host.toError(err)))
    })
  }

  /**
   * Tops every lane up to its `min` after `delayMs`; one warm-up is pending at a time. Its timer (and
   * so the warm-up's connects) is in no caller's context, whoever asked for it (a caller's release).
   */
  scheduleWarmUp(delayMs: number): void {
    if (!this.#host.isOpen() || this.#warmUpTimer) return
    this.#warmUpTimer = inBackground(() => setTimeout(this.#warmUpNow, delayMs)).unref()
  }

  readonly #warmUpNow = (): void => {
    this.#warmUpTimer = undefined
    void this.#warmUp()
  }

  async #warmUp(): Promise<void> {
    try {
      for (const lane of this.#host.lanes()) {
        const missing = lane.min - lane.stats().size
        if (missing > 0) await this.#cycle(lane, lane.tarn.numFree() + missing)
      }
      this.#warmUpBackoffMs = 0
    } catch (err) {
      if (!this.#host.isOpen()) return
      this.#host.emitError(this.#host.toError(err))
      this.#warmUpBackoffMs = Math.min(30_000, Math.max(100, this.#warmUpBackoffMs * 2))
      this.scheduleWarmUp(this.#warmUpBackoffMs)
    }
  }

  /** Maintenance pass: ping idle connections (unless callers are waiting: the lane is busy), refill to `min`. */
  #maintain(ping: boolean): void {
    const host = this.#host
    if (!host.isOpen()) return
    if (ping) {
      for (const lane of host.lanes()) {
        if (lane.waiting === 0) lane.pingIdle().catch((err: unknown) => host.emitError(host.toError(err)))
      }
    }
    host.keepalive?.().catch((err: unknown) => host.emitError(host.toError(err)))
    this.scheduleWarmUp(0)
  }

  #scanLeaks(): void {
    const now = performance.now()
    const threshold = this.#host.config.leakDetectionThresholdMs
    for (const lease of this.#host.activeLeases()) {
      if (lease.leakReported || now - lease.acquiredAt < threshold) continue
      lease.leakReported = true
      this.#host.emitLeak({ leaseId: lease.id, lane: lease.conn.lane, heldForMs: Math.round(now - lease.acquiredAt), stack: lease.stack() })
    }
  }
}
