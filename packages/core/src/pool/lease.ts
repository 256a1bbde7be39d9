import { resolve } from 'node:path'
import { DatabaseError } from '../errors/database-error'
import type { PooledConnection } from './pooled-connection'

let nextLeaseId = 1

let turn = 0
let turnEnding = false
const nextTurn = (): void => {
  turn++
  turnEnding = false
}

/**
 * @internal A number that changes once the event loop has moved on (a `setImmediate` since the last
 * call): code run in one chain of promise reactions, such as an async function resumed by a
 * rejection and returning right after, reads the same number.
 */
export function eventLoopTurn(): number {
  if (!turnEnding) {
    turnEnding = true
    setImmediate(nextTurn)
  }
  return turn
}

/**
 * @internal What holds a lease across the caller's own code: a `pool.transaction()` callback, a
 * `withConnection()` callback, or undefined for the pool's own short holds (a statement, a stream, a
 * ping). Named by ACQUIRE_TIMEOUT when every connection of a lane is held (see `LanePool`).
 */
export type LeaseHolder = 'transaction' | 'withConnection' | undefined
// src/ or dist/ of @dbpool/core: frames from here are the pool's own, not the acquirer's
const CORE_ROOT = resolve(__dirname, '..')

/** @internal One borrowing of a connection. Released exactly once; a second release throws. */
export class Lease<C> {
  readonly id = nextLeaseId++
  /** Captured at acquire; its `.stack` is only formatted when a leak is reported. */
  readonly origin: Error | undefined
  leakReported = false
  /** `readYourWrites`: a write-lane statement that may have written ran on it (its release records the write position). */
  wrote = false
  /**
   * Synchronous drivers: settles when the statements issued on this lease that are waiting for the
   * event loop (see `ConnectionManager.executeNow`) have run. Later statements on the lease run after
   * them, and the release waits for them, so the connection serves nobody else first.
   */
  pending: Promise<void> | undefined = undefined
  /**
   * `conn.native` / `tx.native` was handed out on this lease: what runs there is not seen, so a
   * transaction on it checks before each statement that the engine still has it open (see
   * `TransactionOutcome.checkOpen`); a transaction on a lease that never lent it pays nothing for that.
   */
  nativeTaken = false
  /**
   * The last statement issued on this lease through a handle (withConnection, conn.transaction(),
   * their BEGIN / COMMIT): `settledTurn` is the {@link eventLoopTurn} its promise settled in,
   * undefined while it runs. withConnection reads it to tell a callback that returned straight after
   * awaiting that statement's error from one that returned later, having left it running.
   */
  lastStatement: { settledTurn: number | undefined } | undefined = undefined
  /**
   * The last statement of {@link lastStatement}'s kind whose own error said its outcome is unknown: a
   * callback that awaited only a later statement (a COMMIT in doubt it did not await) did not see it.
   */
  inDoubtStatement: { settledTurn: number | undefined } | undefined = undefined
  #state: 'active' | 'released' | 'revoked' = 'active'

  constructor(
    readonly conn: PooledConnection<C>,
    origin: Error | undefined,
    /** `performance.now()` when the lease began. */
    readonly acquiredAt: number,
    /**
     * True when the lease carries its own admission (close() waits for it); false inside a
     * transaction, which holds one admission for all its attempts.
     */
    readonly admission = true,
    /** What holds it (see {@link LeaseHolder}). */
    readonly holder: LeaseHolder = undefined,
  ) {
    this.origin = origin
  }

  get active(): boolean {
    return this.#state === 'active'
  }

  get revoked(): boolean {
    return this.#state === 'revoked'
  }

  /** Marks the lease released; throws on a second release. Returns false when it was revoked by close(). */
  markReleased(): boolean {
    if (this.#state === 'released') {
      throw new DatabaseError('QUERY_FAILED', `lease ${this.id} of connection ${this.conn.id} was already released`)
    }
    const wasActive = this.#state === 'active'
    this.#state = 'released'
    return wasActive
  }

  /** close() took the connection back; the holder's later release is a no-op. */
  revoke(): void {
    if (this.#state === 'active') this.#state = 'revoked'
  }

  /** The acquirer's stack, without the first line and without dbpool's own frames. */
  stack(): string {
    const frames = this.origin?.stack?.split('\n').slice(1)
    if (!frames) return '(stack capture disabled)'
    const outside = frames.filter((frame) => !frame.includes(CORE_ROOT))
    return (outside.length > 0 ? outside : frames).join('\n')
  }
}
