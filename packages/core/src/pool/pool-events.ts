import { configError } from '../config/validate'
import type { DatabaseError } from '../errors/database-error'
import type { FailoverInfo, Lane } from '../driver/connection-manager'
import type { ReadFallbackInfo, ReplicaStateInfo } from './replica-set'

/** What a `leak` event carries: the lease held past the threshold and where it was taken. */
export interface LeakInfo {
  readonly leaseId: number
  readonly lane: Lane
  readonly heldForMs: number
  /** The acquirer's stack trace. */
  readonly stack: string
}

/** Typed pool events and their listener signatures. */
export interface PoolEvents {
  /** A background failure nobody awaited (warm-up connect, keepalive, destroy). */
  error: (error: DatabaseError) => void
  /** A connection died (socket error, server kill, fatal error); it is never reused. */
  connectionLost: (error: DatabaseError, info: { readonly connectionId: number; readonly lane: Lane; readonly idle: boolean }) => void
  /** A lease was held longer than `leakDetectionThresholdMs`. */
  leak: (info: LeakInfo) => void
  /** A physical connection was opened. */
  connect: (info: { readonly connectionId: number; readonly lane: Lane; readonly durationMs: number }) => void
  /**
   * New connections reach another server than before (a multi-host Postgres target whose primary
   * changed): connections to the old one are evicted as they come back.
   */
  failover: (info: FailoverInfo) => void
  /**
   * A replica of the read lane was taken out (its connect failed, or its lag passed
   * `maxReplicaLagMs`) or is usable again (found so by a keepalive pass).
   */
  replica: (info: ReplicaStateInfo) => void
  /** Read-lane work runs on the primary: no replica is usable (once per spell; `replicaStats()` counts each read). */
  readFallback: (info: ReadFallbackInfo) => void
  /** A physical connection was closed, and why. */
  destroy: (info: { readonly connectionId: number; readonly lane: Lane; readonly reason: string }) => void
}

/** Event names of {@link PoolEvents}. */
export type PoolEventName = keyof PoolEvents

const EVENT_NAMES: Readonly<Record<PoolEventName, true>> = {
  error: true,
  connectionLost: true,
  leak: true,
  connect: true,
  failover: true,
  replica: true,
  readFallback: true,
  destroy: true,
}
/** Every event name of {@link PoolEvents}. */
export const POOL_EVENT_NAMES: readonly PoolEventName[] = Object.keys(EVENT_NAMES) as PoolEventName[]

/**
 * Throws CONFIGURATION naming `<call>.event` unless `event` is a {@link PoolEventName} (a typo would
 * subscribe to an event that never comes), and `<call>.listener` unless `listener` is a function (as
 * Node's EventEmitter refuses it, ERR_INVALID_ARG_TYPE there).
 */
export function checkPoolListener(call: 'on' | 'off', event: unknown, listener: unknown): void {
  if (typeof event !== 'string' || !Object.hasOwn(EVENT_NAMES, event))
    throw configError(`${call}.event`, event, `unknown pool event; known events are ${POOL_EVENT_NAMES.join(', ')}`)
  if (typeof listener !== 'function') throw configError(`${call}.listener`, listener, 'must be a function')
}

/**
 * A small typed emitter whose listeners are isolated: a throwing listener is reported through
 * `onListenerError` and never breaks the pool or the other listeners.
 */
export class PoolEventEmitter {
  readonly #listeners = new Map<PoolEventName, Set<(...args: never[]) => void>>()
  readonly #onListenerError: (event: string, err: unknown) => void

  constructor(onListenerError: (event: string, err: unknown) => void) {
    this.#onListenerError = onListenerError
  }

  /** Adds `listener`; CONFIGURATION for an unknown event or a listener that is not a function ({@link checkPoolListener}). */
  on<E extends PoolEventName>(event: E, listener: PoolEvents[E]): void {
    checkPoolListener('on', event, listener)
    let set = this.#listeners.get(event)
    if (!set) this.#listeners.set(event, (set = new Set()))
    set.add(listener as (...args: never[]) => void)
  }

  /** Removes `listener` (nothing when it was not added); CONFIGURATION as {@link on}. */
  off<E extends PoolEventName>(event: E, listener: PoolEvents[E]): void {
    checkPoolListener('off', event, listener)
    this.#listeners.get(event)?.delete(listener as (...args: never[]) => void)
  }

  listenerCount(event: PoolEventName): number {
    return this.#listeners.get(event)?.size ?? 0
  }

  emit<E extends PoolEventName>(event: E, ...args: Parameters<PoolEvents[E]>): void {
    const set = this.#listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as (...a: unknown[]) => void)(...args)
      } catch (err) {
        this.#onListenerError(event, err)
      }
    }
  }

  clear(): void {
    this.#listeners.clear()
  }
}
