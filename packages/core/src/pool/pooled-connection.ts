import type { DatabaseError } from '../errors/database-error'
import type { Lane } from '../driver/connection-manager'
import type { Lease } from './lease'

let nextConnectionId = 1

/** @internal The pool's record of one physical connection (tarn's resource). */
export class PooledConnection<C> {
  readonly id = nextConnectionId++
  /** `performance.now()` at creation; every time on this record uses that clock. */
  readonly createdAt = performance.now()
  /** Last time it was known good: created, released clean, or pinged. */
  lastCheckedAt = this.createdAt
  /** Set when the connection must never be reused. */
  broken: DatabaseError | undefined = undefined
  /** Set when validation on borrow made a round trip (the borrow then took real time). */
  pinged = false
  /** Handed out by tarn (to a lease or an internal cycle); false while idle in the free list. */
  leased = false
  /** The lease holding it, while one does. */
  lease: Lease<C> | undefined = undefined
  destroyed = false
  /** With `allowExitOnIdle`: its native handle is unref'd while idle and ref'd while leased. */
  unrefWhileIdle = false
  /** The manager's `nativeLent` for this connection, when it has one (called by `PoolConnection.native`). */
  nativeLent: (() => void) | undefined = undefined

  constructor(
    readonly native: C,
    readonly lane: Lane,
    /** Absolute time after which it is retired; `Infinity` when lifetime is off. */
    readonly expiresAt: number,
    /** The read target (replica) index it was opened for; `-1` for a lane with a single target. */
    readonly target = -1,
  ) {}
}
