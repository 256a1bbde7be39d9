import type { DatabaseError } from '../errors/database-error'

/** A call's own deadline, as the lane it waits in names it in ACQUIRE_TIMEOUT. */
export interface WaitDeadline {
  /** The call's `timeoutMs`. */
  readonly timeoutMs: number
  /** The option that set it, as the message names it (`stream.timeoutMs`, `copyFrom.timeoutMs`). */
  readonly option: string
  /** What was not sent, as the message names it (`the statement`, `the COPY`). */
  readonly subject: string
}

const deadlines = new WeakMap<DatabaseError, WaitDeadline>()

/**
 * @internal Marks `reason` (the QUERY_TIMEOUT a call aborts its own signal with when its `timeoutMs`
 * passes) as that call's deadline. A caller still waiting for a connection when the signal aborts
 * then leaves the lane's queue with ACQUIRE_TIMEOUT naming `deadline.option` (retryable: nothing was
 * sent), made and counted (`db.client.connection.timeouts`) by the lane itself, as for
 * `pool.query()`'s `timeoutMs`; any other abort reason leaves it with QUERY_CANCELLED. So every
 * ACQUIRE_TIMEOUT a caller receives is made, and counted once, by `LanePool`. Returns `reason`.
 */
export function markWaitDeadline(reason: DatabaseError, deadline: WaitDeadline): DatabaseError {
  deadlines.set(reason, deadline)
  return reason
}

/** @internal The deadline `reason` was marked with by {@link markWaitDeadline}, if any. */
export function waitDeadlineOf(reason: unknown): WaitDeadline | undefined {
  return typeof reason === 'object' && reason !== null ? deadlines.get(reason as DatabaseError) : undefined
}
