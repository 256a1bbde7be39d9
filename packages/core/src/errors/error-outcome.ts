import { DatabaseError } from './database-error'

/**
 * `detail.outcome` of an error whose statement may or may not have taken effect: the connection was
 * lost (or closed at a deadline) while a statement that may write ran outside a transaction, or while a
 * COMMIT was in flight. Such an error is never `retryable`: check whether the work was done before
 * running it again (Postgres; a SQLite statement runs in process and has no such window).
 */
export const OUTCOME_UNKNOWN = 'unknown'

/**
 * `detail.outcome` of an error reported after its statement is known to have committed (Postgres: a
 * result refused in the client, of a statement that ran outside a transaction and whose session the
 * server then reported idle; both backends: a stream of a write outside a transaction ended by its
 * deadline, its signal or `close()` after its statement ran; SQLite: a constraint error of a statement
 * whose FAIL conflict resolution kept its earlier changes, `detail.changes` of them). Such an error is
 * never `retryable`. Do not run it again as is.
 */
export const OUTCOME_COMMITTED = 'committed'

/** Whether `err` is a DatabaseError whose statement's outcome is unknown (`detail.outcome === 'unknown'`). */
export function isOutcomeUnknown(err: unknown): boolean {
  return DatabaseError.is(err) && err.detail?.outcome === OUTCOME_UNKNOWN
}
