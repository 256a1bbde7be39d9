import { isErrorLike } from '@dbpool/core/internal'

/**
 * Appends the caller's frames to the stack of an error a statement, a stream or a transaction's
 * begin/commit rejected with, as Kysely's own drivers do (`extendStackTrace` in its `PostgresDriver`):
 * a DatabaseError is built in dbpool's and the driver's callbacks, so its own stack ends there and
 * does not show which query of the app failed. Called in the `catch` of an async function of the
 * dialect, the new stack has V8's async frames: Kysely's query builder and the app's functions up
 * to `Error.stackTraceLimit`. Anything that is not an Error with a string stack is returned as is.
 */
export function withCallerStack(err: unknown): unknown {
  if (isErrorLike(err) && typeof err.stack === 'string') {
    const site = new Error().stack
    const frames = site === undefined ? -1 : site.indexOf('\n')
    if (site !== undefined && frames >= 0) err.stack += site.slice(frames)
  }
  return err
}
