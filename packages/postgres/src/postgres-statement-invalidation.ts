import { sqlStateOf } from './postgres-errors'

/** The fields of a server error (pg's DatabaseError) that say where it was raised. */
interface ErrorOrigin {
  /** The server routine that raised it (`R` field), e.g. `RevalidateCachedQuery`. */
  readonly routine?: unknown
  /** The context (`W` field): set when it was raised inside a function, a trigger, or a nested SQL statement. */
  readonly where?: unknown
  /** The internally generated query it was raised in (`q` field), e.g. a PL/pgSQL expression. */
  readonly internalQuery?: unknown
}

/** How the server stopped accepting a cached named statement (see {@link statementInvalidation}). */
export type StatementInvalidation = 'changed' | 'dropped'

/**
 * Whether a named statement failed because the server no longer accepts it as cached, so preparing it
 * again fixes it (postgres.js retries on the same server routines):
 * - `'changed'`: 0A000 from RevalidateCachedQuery, "cached plan must not change result type" (a
 *   table the statement reads changed its columns), or 42804 from transformAssignedExpr on a
 *   statement parsed before this run (a column it writes changed type, the cached parameter types
 *   no longer fit);
 * - `'dropped'`: 26000, "prepared statement does not exist" (`DEALLOCATE`, `DISCARD ALL`, a pooler).
 *
 * Only an error of the top-level statement qualifies: one with a context (`where`, set for anything
 * raised inside a function, a trigger or a PL/pgSQL `EXECUTE`) or an internal query (`internalQuery`)
 * was raised by the statement's own work, not by its cached plan; running it again would run that
 * work (a `nextval`, a write through dblink) twice, and fail the same way.
 *
 * @param err What pg rejected the statement with.
 * @param wasParsed The statement was parsed on the connection before this run (this run sent no Parse).
 * @returns The kind of invalidation, or `undefined` for any other error.
 */
export function statementInvalidation(err: unknown, wasParsed: boolean): StatementInvalidation | undefined {
  const sqlState = sqlStateOf(err)
  if (sqlState === undefined) return undefined
  const origin = err as ErrorOrigin
  // raised inside the statement's own work (a function, a trigger, dynamic SQL), not by its cached plan
  if (origin.where !== undefined || origin.internalQuery !== undefined) return undefined
  if (sqlState === '0A000' && origin.routine === 'RevalidateCachedQuery') return 'changed'
  if (sqlState === '42804' && origin.routine === 'transformAssignedExpr' && wasParsed) return 'changed'
  if (sqlState === '26000') return 'dropped'
  return undefined
}

/**
 * 0A000 "cached plan must not change result type" (RevalidateCachedQuery), wherever it was raised:
 * it says nothing about the session, unlike the rest of class 0A (which closes the connection).
 */
export function isCachedPlanChange(err: unknown): boolean {
  return sqlStateOf(err) === '0A000' && (err as ErrorOrigin).routine === 'RevalidateCachedQuery'
}
