import { Pool } from 'tarn'
import { inBackground } from './background'

/** tarn's record of one pending acquire (its class is not exported from tarn's entry point). */
export type PendingAcquire<T> = ReturnType<Pool<T>['acquire']>

/** A pending acquire {@link ManagedTarnPool.handOver} gave a resource to. */
interface HandedOver<T> {
  handedOver?: T
}

/**
 * The resource {@link ManagedTarnPool.handOver} gave to `op`, if any. An acquire that fails anyway
 * (it had timed out, been aborted or failed by a connect error a moment before) must give it back.
 */
export function handedOverTo<T>(op: PendingAcquire<T>): T | undefined {
  return (op as HandedOver<T>).handedOver
}

/** tarn's record of a pooled resource; `timestamp` (Date.now() of its last release) is its idle start. */
interface TarnResource {
  timestamp: number
}

/**
 * @internal tarn's pool plus the few operations dbpool needs on members tarn's typings mark
 * `protected` (so a subclass reaches them without casts, and a rename in tarn fails the build):
 *
 * - the idle reaper interval (`interval`, started on the first acquire) is unref'd: tarn leaves it
 *   ref'd, so an idle pool kept the process alive; it is started in no caller's async context;
 * - callers waiting in `pendingAcquires` / `pendingValidations` can be failed before `destroy()`,
 *   which first waits for every lease;
 * - an acquire can be given a shorter deadline than `acquireTimeoutMillis` (a caller that already
 *   waited in dbpool's queue has only the rest of its time);
 * - an idle resource can be handed out at once, when nobody waits and it needs no asynchronous
 *   validation, without tarn's pending operation, timer and promise chain;
 * - a resource coming back can go straight to the oldest pending acquire, without passing through
 *   the free list and tarn's validation (a pending operation with its own timer and promise chain);
 * - idle resources leave the `free` list without a borrow: a borrow made only to drop a resource
 *   would also open a replacement nobody asked for;
 * - an idle resource can be checked out (for a keepalive ping) and back in with its idle start kept,
 *   so pings never count as use for the idle timeout.
 */
export class ManagedTarnPool<T> extends Pool<T> {
  override _startReaping(): void {
    if (this.interval) return
    // the first acquirer's context would otherwise be the reaper's (and its destroys') for life
    inBackground(() => super._startReaping())
    // TypeScript still narrows `interval` to null here, but super just set it
    const reaper = this.interval as NodeJS.Timeout | null
    reaper?.unref()
  }

  /**
   * tarn's `acquire()` with its deadline `timeoutMs` instead of `acquireTimeoutMillis`. tarn reads the
   * setting synchronously in `acquire()` (for the pending acquire's timer, and for the validation
   * timer of a resource handed out in the same call, whose caller's deadline is no later).
   */
  acquireWithin(timeoutMs: number): PendingAcquire<T> {
    const configured = this.acquireTimeoutMillis
    this.acquireTimeoutMillis = timeoutMs
    try {
      return this.acquire()
    } finally {
      this.acquireTimeoutMillis = configured
    }
  }

  /**
   * What `acquire()` does when nobody waits and a resource is free, done synchronously: takes the
   * resource tarn would take (the last freed) if `ready(resource)` holds, moves it to the used list
   * and starts the reaper, as a successful acquire does. Returns `undefined` (nothing moved) when
   * callers are waiting, nothing is free, or `ready` refuses it (then `acquire()` validates it, so
   * tarn destroys or pings it as usual).
   */
  takeFree(ready: (resource: T) => boolean): T | undefined {
    if (this.pendingAcquires.length > 0) return undefined
    const free = this.free
    const entry = free[free.length - 1]
    if (entry === undefined || !ready(entry.resource)) return undefined
    free.pop()
    this.used.push(entry)
    this._startReaping()
    return entry.resource
  }

  /**
   * Gives `resource`, which is in the used list and stays there, to the oldest pending acquire, as
   * `release()` would after validating it (the caller validated it). Returns false when nobody
   * waits. The acquire is marked (see {@link handedOverTo}): one that had already been rejected
   * (its timer fired, close() aborted it, a connect error failed it) without having left the queue
   * yet ignores the resolve, and its rejection handler gives the resource back.
   */
  handOver(resource: T): boolean {
    let next = this.pendingAcquires.shift()
    while (next?.isRejected) next = this.pendingAcquires.shift()
    if (!next) return false
    ;(next as HandedOver<T>).handedOver = resource
    next.resolve(resource)
    return true
  }

  /**
   * Whether `op` is still in the queue `numPendingAcquires()` counts (not handed a resource, not being
   * validated, not dropped after its rejection). O(length of tarn's queue), which dbpool bounds at
   * `max + TARN_SLACK` (see LanePool); asked only when a waiting caller is cancelled.
   */
  waitsInQueue(op: PendingAcquire<T>): boolean {
    return this.pendingAcquires.includes(op)
  }

  /** The idle resources, in tarn's free-list order. */
  idle(): T[] {
    return this.free.map((r) => r.resource)
  }

  /** Fails every caller waiting for a resource (queued, or being validated) with tarn's `aborted` error. */
  abortWaiting(): void {
    for (const op of [...this.pendingAcquires, ...this.pendingValidations]) op.abort()
  }

  /** Fails every caller waiting for a resource (queued, or being validated) with `error`. */
  rejectWaiting(error: Error): void {
    for (const op of [...this.pendingAcquires, ...this.pendingValidations]) op.reject(error)
  }

  /** Takes the idle resources matching `drop` out of the free list and returns them; the caller destroys them. */
  removeIdle(drop: (resource: T) => boolean): T[] {
    const removed: T[] = []
    if (!this.free.some((r) => drop(r.resource))) return removed
    this.free = this.free.filter((r) => {
      if (!drop(r.resource)) return true
      r.settle()
      removed.push(r.resource)
      return false
    })
    return removed
  }

  /**
   * Moves an idle resource to the used list without validating it, as an acquire would. Returns its
   * idle start for {@link checkIn}, or `undefined` when it is not idle (borrowed meanwhile).
   */
  checkOut(resource: T): number | undefined {
    const index = this.free.findIndex((r) => r.resource === resource)
    if (index < 0) return undefined
    const [entry] = this.free.splice(index, 1)
    this.used.push(entry!)
    return entry!.timestamp
  }

  /** Returns a checked-out resource (a waiter may take it at once); if it stays idle, its idle start is `idleSince`. */
  checkIn(resource: T, idleSince: number): void {
    this.release(resource)
    const entry = this.free.find((r) => r.resource === resource)
    if (entry) (entry as unknown as TarnResource).timestamp = idleSince
  }
}
