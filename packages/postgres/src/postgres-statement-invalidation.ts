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
export type StatementInvalidation = 'changed' | 'types' | 'dropped' | 'parameter'

/**
 * Errors of parse analysis that a statement parsed before can only meet again when something it uses
 * changed since (its text and parameter types are the same): the server analyses a cached statement
 * again at Bind after a change (RevalidateCachedQuery), with the parameter types fixed at its Parse.
 * 42804 datatype_mismatch (a written column changed type), 42883 undefined_function (`operator does
 * not exist: text = integer` after an `int` column became `text`), 42846 cannot_coerce, 42725
 * ambiguous_function.
 */
const STALE_PARAMETER_TYPE_STATES: ReadonlySet<string> = new Set(['42804', '42883', '42846', '42725'])

/**
 * The context (`where`) the server gives an error raised while it converted a Bind value to its
 * parameter's type (PostgreSQL 13+): `unnamed portal parameter $1 = '...'`, `portal "p" parameter $2`
 * (the value shown only when log_parameter_max_length_on_error is not 0), as the whole context, or
 * after the json input function's own line (`JSON data, line 1: ...`). One with other lines before it (`PL/pgSQL function audit_check(integer) line 2 at RAISE`, `SQL function ...`,
 * a domain CHECK's function at Bind) ran user code, whose side effects a run again would repeat.
 */
const BIND_PARAMETER_CONTEXT = /^(?:JSON data, line \d+: [^\n]*\n)?(?:unnamed portal|portal "[^"\n]*") parameter \$\d+(?: = [\s\S]*)?$/

/**
 * Whether a named statement failed because the server no longer accepts it as cached, so preparing it
 * again fixes it (postgres.js retries on the same server routines):
 * - `'changed'`: 0A000 from RevalidateCachedQuery, "cached plan must not change result type" (a
 *   table the statement reads changed its columns), or 42804 from transformAssignedExpr on a
 *   statement parsed before this run (a column it writes changed type, the cached parameter types
 *   no longer fit);
 *   no longer fit);
 * - `'types'`: on a statement parsed before this run, 42883, 42846, 42725 or another 42804 (see
 *   STALE_PARAMETER_TYPE_STATES: parse analysis at Bind with stale parameter types): only this
 *   statement is prepared again (one of them raised while it ran, `'x'::regprocedure`, must not
 *   make every connection re-prepare);
 * - `'dropped'`: 26000, "prepared statement does not exist" (`DEALLOCATE`, `DISCARD ALL`, a pooler);
 * - `'parameter'`: a class 22 error (22003 out of range, 22P02 invalid input syntax...) raised while
 *   the server converted a Bind value to the parameter type cached at Parse, on a statement parsed
 *   before this run (the `where` context `unnamed portal parameter $1 = ...`, PostgreSQL 13+): the
 *   column the value is for may have changed type (`int` → `bigint`) since. Raised at Bind, before
 *   anything ran. Also the error of a value that is wrong for the column: only this statement is
 *   prepared again (a bad value from a user must not make every connection re-prepare).
 *
 * Only an error raised at Bind qualifies, proven twice: the server sent no BindComplete for this
 * run (`bound` false: an error while the statement executed, `select nextval('s'), $1::regprocedure`
 * with a bad name, comes after it), and it ran no user code: no context (`where`) but the Bind
 * parameter's own line, no internal query (`internalQuery`). A domain CHECK calling a function runs
 * user code at Bind, before BindComplete; its error has the function's line in its context. Running
 * any of these again would run that work (a `nextval`, a write through dblink) twice, and fail the
 * same way. Not provable (so not excluded): a domain CHECK whose SQL function the server inlined
 * (no function line), whose class 22 error reads as `'parameter'`.
 *
 * @param err What pg rejected the statement with.
 * @param wasParsed The statement was parsed on the connection before this run (this run sent no Parse).
 * @param bound The server answered this run's Bind with BindComplete (it may have executed since).
 * @returns The kind of invalidation, or `undefined` for any other error.
 */
export function statementInvalidation(err: unknown, wasParsed: boolean, bound: boolean): StatementInvalidation | undefined {
  if (bound) return undefined
  const sqlState = sqlStateOf(err)
  if (sqlState === undefined) return undefined
  const origin = err as ErrorOrigin
  if (origin.internalQuery !== undefined) return undefined
  if (origin.where !== undefined) {
    // a Bind value the cached parameter type cannot take; anything else with a context was raised
    // inside the statement's own work (a function, a trigger, dynamic SQL), not by its cached plan
    const bind = wasParsed && sqlState.startsWith('22') && typeof origin.where === 'string' && BIND_PARAMETER_CONTEXT.test(origin.where)
    return bind ? 'parameter' : undefined
  }
  if (sqlState === '0A000' && origin.routine === 'RevalidateCachedQuery') return 'changed'
  if (sqlState === '42804' && origin.routine === 'transformAssignedExpr' && wasParsed) return 'changed'
  if (wasParsed && STALE_PARAMETER_TYPE_STATES.has(sqlState)) return 'types'
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
