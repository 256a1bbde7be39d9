import type { Lane } from '../driver/connection-manager'
import { DatabaseError } from '../errors/database-error'
import { isSqlFragment } from '../sql/sql'
import { MAX_TIMER_MS, checkBoolean, checkEnum, checkInteger, configError, rejectUnknownKeys, requireObject } from './validate'

/**
 * The per-call options of the pool's public methods, validated the same way whatever the backend:
 * the pool checks them before anything runs (no lease taken, no statement sent), so a SQLite pool
 * refuses what a Postgres pool refuses. Each validator throws DatabaseError CONFIGURATION naming
 * `<call>.<option>` and the value (`invalid query.timeoutMs -5: must be an integer between 1 and
 * 2147483647`); a key the call does not take is refused (`unknown option; known options are ...`), and
 * options that are not an object are refused naming `<call> options`.
 */

const LANES: readonly Lane[] = ['write', 'read']

/** Keys of `pool.query()` options. */
export const POOL_QUERY_OPTION_KEYS = ['lane', 'timeoutMs', 'signal'] as const
/** Keys of `conn.query()` / `tx.query()` options (the connection is the handle's: no lane). */
export const HANDLE_QUERY_OPTION_KEYS = ['timeoutMs', 'signal'] as const

/**
 * Throws unless `value` is an `AbortSignal` (an object with a boolean `aborted` and the two listener
 * methods: a signal of another realm or a polyfill passes).
 */
export function checkSignal(option: string, value: unknown): AbortSignal {
  const signal = value as Partial<AbortSignal> | null
  if (
    typeof signal !== 'object' ||
    signal === null ||
    typeof signal.aborted !== 'boolean' ||
    typeof signal.addEventListener !== 'function' ||
    typeof signal.removeEventListener !== 'function'
  )
    throw configError(option, value, 'must be an AbortSignal')
  return signal as AbortSignal
}

/**
 * Whether a statement call's `args` (its `arguments`) hold a defined argument after the third
 * (`pool.query(text, params, options, cb)`): trailing `undefined` ones are no argument (a wrapper
 * forwarding `(text, params, options, cb)` with no `cb`), as an option key set to `undefined` is
 * none. Read only when `arguments.length > 3`: nothing is allocated on the common path.
 */
export function hasExtraArgument(args: ArrayLike<unknown>): boolean {
  for (let i = 3; i < args.length; i++) if (args[i] !== undefined) return true
  return false
}

/**
 * The error for a statement call given a defined argument after its three (see {@link hasExtraArgument}:
 * `pool.query(text, params, options, callback)`, also `stream()` and a connection's or transaction's):
 * it would be ignored without a word (a pg-style callback never called, options meant for it).
 * CONFIGURATION, `detail.option` `<method>()`, `detail.argument` the 1-based position of the first
 * defined extra argument.
 */
export function extraArguments(method: string, args: ArrayLike<unknown>): DatabaseError {
  let position = 4
  while (position <= args.length && args[position - 1] === undefined) position++
  const nth = position === 4 ? 'a 4th' : `argument ${position}`
  const rule = `takes at most 3 arguments (text, params, options); ${nth} was given: callbacks are not supported, use the promise`
  return new DatabaseError('CONFIGURATION', `${method}() ${rule}`, { detail: { option: `${method}()`, rule, argument: position } })
}

/**
 * Throws CONFIGURATION naming `query` unless `query` is SQL text (a string) or an `sql` fragment:
 * `pool.query(undefined)` or `query(42)` is a programming error, refused before anything runs (it
 * used to reach the driver and come back QUERY_FAILED).
 */
export function checkQueryText(query: unknown): void {
  if (typeof query !== 'string' && !isSqlFragment(query)) throw configError('query', query, 'must be SQL text or a sql`` fragment')
}

/**
 * Validates the options of `query(q, params, options)`: `timeoutMs` an integer from 1 to
 * {@link MAX_TIMER_MS} (leave it out for no deadline), `signal` an AbortSignal, `lane` `'write'` or
 * `'read'` where `keys` has it, no other key. Throws CONFIGURATION naming `query.<option>`.
 */
export function checkQueryOptions(options: unknown, keys: readonly string[]): void {
  const raw = requireObject('query options', options)
  rejectUnknownKeys('query', raw, keys)
  if (raw.timeoutMs !== undefined) checkInteger('query.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS)
  if (raw.signal !== undefined) checkSignal('query.signal', raw.signal)
  if (raw.lane !== undefined) checkEnum('query.lane', raw.lane, LANES)
}

/**
 * Validates the options of a statement a manager runs (`ConnectionManager.execute`), for a manager
 * that is handed options without the pool in front: {@link checkQueryOptions} without `lane`.
 */
export function checkExecuteOptions(options: unknown): void {
  checkQueryOptions(options, HANDLE_QUERY_OPTION_KEYS)
}

/**
 * Validates `withConnection(fn, options)`: `fn` a function, `options.lane` `'write'` or `'read'`,
 * `options.signal` an AbortSignal. Returns the lane (default `'write'`).
 */
export function checkWithConnection(fn: unknown, options: unknown): Lane {
  if (typeof fn !== 'function') throw configError('withConnection callback', fn, 'must be a function')
  if (options === undefined) return 'write'
  const raw = requireObject('withConnection options', options)
  rejectUnknownKeys('withConnection', raw, ['lane', 'signal'])
  if (raw.signal !== undefined) checkSignal('withConnection.signal', raw.signal)
  return raw.lane === undefined ? 'write' : checkEnum('withConnection.lane', raw.lane, LANES)
}

/** Validates `close(options)`: `timeoutMs` an integer from 0 to {@link MAX_TIMER_MS}. Returns it (default `30000`). */
export function checkCloseOptions(options: unknown): number {
  const raw = requireObject('close options', options)
  rejectUnknownKeys('close', raw, ['timeoutMs'])
  return raw.timeoutMs === undefined ? 30_000 : checkInteger('close.timeoutMs', raw.timeoutMs, 0, MAX_TIMER_MS)
}

/** Validates `ping(timeoutMs)`: an integer from 1 to {@link MAX_TIMER_MS}. */
export function checkPingTimeout(timeoutMs: unknown): number {
  return checkInteger('ping.timeoutMs', timeoutMs, 1, MAX_TIMER_MS)
}

/** Validates `backendChecks(options)`: `deep` a boolean (default false), `timeoutMs` 1 to {@link MAX_TIMER_MS} (default 5000). */
export function checkBackendCheckOptions(options: unknown): { deep: boolean; timeoutMs: number } {
  const raw = requireObject('backendChecks options', options)
  rejectUnknownKeys('backendChecks', raw, ['deep', 'timeoutMs'])
  return {
    deep: raw.deep === undefined ? false : checkBoolean('backendChecks.deep', raw.deep),
    timeoutMs: raw.timeoutMs === undefined ? 5_000 : checkInteger('backendChecks.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS),
  }
}
