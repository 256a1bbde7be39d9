import { DatabaseError } from '../errors/database-error'
import { TRANSACTION_RETRY_CODES } from '../errors/error-codes'
import { ISOLATION_LEVELS, type IsolationLevel, type TransactionSettings, type TransactionState } from '../driver/connection-manager'
import type { ErrorBackend } from '../errors/database-error'
import { TransactionOutcome } from './transaction-outcome'
import type { ConnectionHandle, Transaction } from '../pool/pool-connection'
import { checkBoolean, checkEnum, checkInteger, configError, rejectUnknownKeys, requireObject } from '../config/validate'
import { isErrorLike } from '../util/error-like'

/** How `transaction(fn, { retry })` replays the callback. */
export interface RetryOptions {
  /** Total attempts, the first included. Default is `5`. */
  readonly maxAttempts?: number
  /** First backoff; doubles per attempt, with full jitter. Default is `10`. */
  readonly baseDelayMs?: number
  /** Backoff cap. Default is `1000`. */
  readonly maxDelayMs?: number
  /**
   * Which errors replay (never one whose outcome is unknown or committed: see below). Default: SERIALIZATION_FAILURE, DEADLOCK, BUSY, a retryable READ_ONLY (a
   * write on a Postgres server that became read-only after a failover), a retryable error of a named
   * prepared statement the server invalidated (Postgres 0A000 / 26000 / 42804 / 42883 / 42846 / 42725
   * inside a transaction: thrown retryable only when a replay prepares it again; 42804 / 42883 /
   * 42846 / 42725 only with `detail.failedAtBind: true`, the proof it was refused at Bind, before
   * anything of it executed), and
   * TRANSACTION_ROLLED_BACK whose cause is one of those (fn caught it and went on). Never an error
   * with `detail.outcome` (`'unknown'`, `'committed'`): part of the work may have been committed.
   * One that throws rejects the transaction with CONFIGURATION naming `transaction.retry.retryOn`,
   * `cause` the attempt's error, `detail.retryOnError` what it threw; nothing is replayed. The message
   * follows the attempt's outcome (rolled back; unknown or committed when the cause has
   * `detail.outcome`, which the CONFIGURATION error keeps at its top level).
   *
   * An attempt whose error (or an error in its `cause` chain) has `detail.outcome` (`'unknown'`: a
   * COMMIT whose answer was lost with its connection; `'committed'`: a statement that committed on
   * its own, a CALL whose body committed) is never replayed, whatever `retryOn` returns: its work may
   * already be in the database and a replay would apply it twice. When `retryOn` returned true for
   * one, the transaction rejects with an error of the same code and `detail` (`outcome` at its top
   * level, `notReplayed: true`), `retryable: false`, its message saying why it was not replayed, the
   * attempt's error as `cause`.
   *
   * A replay runs the whole callback again, its side effects outside the database too (an HTTP call,
   * an e-mail, a counter or cache in memory): keep them out of the callback, or make them idempotent.
   */
  readonly retryOn?: (error: DatabaseError) => boolean
}

/** Options of `pool.transaction()`. */
export interface TransactionOptions extends TransactionSettings {
  /** `true` for the defaults, a number of attempts, or {@link RetryOptions}. Default is no retry. */
  readonly retry?: boolean | number | RetryOptions
}

/**
 * @internal What a transaction begun on a held connection needs from the pool (`conn.transaction()`):
 * one object per pool, shared by every handle.
 */
export interface HeldTransactionHost<C> {
  readonly backend: ErrorBackend
  beginStatement(settings: TransactionSettings): string
  /** The manager's `transactionState`, when it has one. */
  transactionState: ((conn: C) => TransactionState) | undefined
}

/** @internal What runTransaction needs from the pool. */
export interface TransactionHost<C> extends HeldTransactionHost<C> {
  lease<T>(readOnly: boolean, body: (handle: ConnectionHandle<C>, markBroken: (err: unknown) => DatabaseError) => Promise<T>): Promise<T>
  /** Told before each replay: the attempt that failed (1 for the first), its error, the backoff in ms. */
  onRetry?(attempt: number, error: DatabaseError, delayMs: number): void
  /**
   * Waits out the backoff before a replay (a plain timer when absent). The pool's rejects with
   * POOL_CLOSED (`cause`: the attempt's error) at `close()`'s deadline, and clears its timer.
   */
  backoff?(delayMs: number, error: DatabaseError): Promise<void>
}

interface ResolvedRetry {
  readonly maxAttempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly retryOn: (error: DatabaseError) => boolean
}

const SETTING_KEYS = ['isolation', 'readOnly', 'deferrable'] as const
const OPTION_KEYS = [...SETTING_KEYS, 'retry'] as const
const RETRY_KEYS = ['maxAttempts', 'baseDelayMs', 'maxDelayMs', 'retryOn'] as const

/** @internal Validates options, then runs begin → fn → commit with rollback and bounded replays. */
export async function runTransaction<C, T>(
  fn: (tx: Transaction<C>) => Promise<T>,
  options: TransactionOptions,
  host: TransactionHost<C>,
): Promise<T> {
  if (typeof fn !== 'function') throw configError('transaction callback', fn, 'must be a function')
  const { settings, retry } = resolveOptions(options)
  const begin = host.beginStatement(settings)
  for (let attempt = 1; ; attempt++) {
    try {
      return await host.lease(settings.readOnly ?? false, (handle, markBroken) => runOnce(host, handle, begin, fn, markBroken))
    } catch (err) {
      if (!DatabaseError.is(err) || attempt >= retry.maxAttempts || !replays(retry, err)) throw err
      // the attempt's work may have been committed: a replay could apply it twice, whatever retryOn said
      const outcome = outcomeOf(err)
      if (outcome !== undefined) throw notReplayed(err, outcome)
      const delayMs = backoff(attempt, retry)
      host.onRetry?.(attempt, err, delayMs)
      await (host.backoff ? host.backoff(delayMs, err) : sleep(delayMs))
    }
  }
}

/**
 * @internal Validates `settings`, then runs begin → fn → commit on a connection the caller already
 * holds (no retry: a replay would need another connection's state). `readOnlyLane`: the connection is
 * a reader, so the transaction is read-only (an explicit `readOnly: false` is refused).
 */
export function runOnHeldConnection<C, T>(
  host: HeldTransactionHost<C>,
  handle: ConnectionHandle<C>,
  fn: (tx: Transaction<C>) => Promise<T>,
  settings: TransactionSettings | undefined,
  readOnlyLane: boolean,
  markBroken: (err: unknown) => DatabaseError,
): Promise<T> {
  if (typeof fn !== 'function') throw configError('transaction callback', fn, 'must be a function')
  const resolved = resolveSettings(settings ?? {}, SETTING_KEYS)
  if (readOnlyLane) {
    if (resolved.readOnly === false)
      throw configError('transaction.readOnly', false, 'a connection of the read lane runs read-only transactions only')
    resolved.readOnly = true
  }
  checkDeferrable(resolved)
  return runOnce(host, handle, host.beginStatement(resolved), fn, markBroken)
}

async function runOnce<C, T>(
  host: HeldTransactionHost<C>,
  tx: ConnectionHandle<C>,
  begin: string,
  fn: (tx: Transaction<C>) => Promise<T>,
  markBroken: (err: unknown) => DatabaseError,
): Promise<T> {
  await tx.control(begin)
  const readState = host.transactionState
  const native = tx.ownNative()
  const outcome = new TransactionOutcome(host.backend, readState && (() => readState(native)), tx.currentLease())
  tx.track(outcome)
  let result: T
  let ended = false
  let committing = false
  try {
    try {
      result = await fn(tx)
    } finally {
      // a statement fn started and did not await (a forgotten await) that reaches tx from now on would
      // run after the COMMIT or ROLLBACK, outside the transaction: refused. Those issued before this
      // point are already queued on the connection and run before the COMMIT (Lease.pending, pg's queue).
      tx.callbackSettled()
    }
    // a savepoint fn opened and did not await, still running: roll back rather than commit half of it
    tx.checkScopesEnded()
    // resolve only if the engine committed: never report work it threw away as done
    outcome.checkBeforeCommit()
    tx.track(undefined)
    committing = true
    const commit = await tx.control('COMMIT')
    ended = true
    outcome.checkCommitted(commit.command)
  } catch (err) {
    tx.track(undefined)
    // read before the ROLLBACK: a transaction ended through tx.native is reported as such, never as
    // the callback's error alone (which reads as "nothing kept" when its work may have been committed)
    const reported = committing ? err : outcome.callbackFailed(err)
    if (!ended) await rollback(tx, markBroken)
    throw reported
  }
  return result
}

async function rollback<C>(tx: ConnectionHandle<C>, markBroken: (err: unknown) => DatabaseError): Promise<void> {
  try {
    await tx.control('ROLLBACK')
  } catch (rollbackError) {
    // the session state is unknown: the connection is destroyed instead of reused
    markBroken(rollbackError)
  }
}

function resolveOptions(options: TransactionOptions): { settings: TransactionSettings; retry: ResolvedRetry } {
  const settings = checkDeferrable(resolveSettings(options, OPTION_KEYS))
  return { settings, retry: resolveRetry((options as { retry?: unknown }).retry) }
}

type MutableSettings = { isolation?: IsolationLevel; readOnly?: boolean; deferrable?: boolean }

function resolveSettings(options: TransactionSettings, keys: readonly string[]): MutableSettings {
  const raw = requireObject('transaction', options)
  rejectUnknownKeys('transaction', raw, keys)
  const settings: MutableSettings = {}
  if (raw.isolation !== undefined) settings.isolation = checkEnum('transaction.isolation', raw.isolation, ISOLATION_LEVELS)
  if (raw.readOnly !== undefined) settings.readOnly = checkBoolean('transaction.readOnly', raw.readOnly)
  if (raw.deferrable !== undefined) settings.deferrable = checkBoolean('transaction.deferrable', raw.deferrable)
  return settings
}

/**
 * `deferrable: true` only with `isolation: 'serializable'` and `readOnly: true` (Postgres's rule: it
 * ignores DEFERRABLE otherwise), checked here so that every backend refuses the same settings (SQLite,
 * whose transactions are serializable, has nothing to defer and used to accept any).
 */
function checkDeferrable(settings: MutableSettings): MutableSettings {
  if (settings.deferrable && (settings.isolation !== 'serializable' || settings.readOnly !== true))
    throw configError(
      'transaction.deferrable',
      true,
      'only applies to isolation serializable with readOnly true (Postgres ignores it otherwise)',
    )
  return settings
}

/** The default retry rule: see {@link RetryOptions.retryOn}. */
const defaultRetryOn = (e: DatabaseError): boolean =>
  replaysByDefault(e) || (e.code === 'TRANSACTION_ROLLED_BACK' && DatabaseError.is(e.cause) && replaysByDefault(e.cause))

const RETRY_DEFAULTS: ResolvedRetry = Object.freeze({ maxAttempts: 5, baseDelayMs: 10, maxDelayMs: 1_000, retryOn: defaultRetryOn })

/** No `retry` (every transaction without one): shared, nothing allocated per call. */
const NO_RETRY: ResolvedRetry = Object.freeze({ ...RETRY_DEFAULTS, maxAttempts: 1 })

/** What `retry` accepts, as a refusal names it. */
const RETRY_FORMS =
  'true, false, a number of attempts (an integer between 1 and 100) or an object { maxAttempts, baseDelayMs, maxDelayMs, retryOn }'

function resolveRetry(value: unknown): ResolvedRetry {
  const defaults = RETRY_DEFAULTS
  if (value === undefined || value === false) return NO_RETRY
  if (value === true) return defaults
  if (typeof value === 'number') return { ...defaults, maxAttempts: checkInteger('transaction.retry', value, 1, 100) }
  // every form it takes, not only the object one ('3', null)
  if (value === null || typeof value !== 'object') throw configError('transaction.retry', value, `must be ${RETRY_FORMS}`)
  const raw = requireObject('transaction.retry', value)
  rejectUnknownKeys('transaction.retry', raw, RETRY_KEYS)
  const retryOn = raw.retryOn ?? defaults.retryOn
  if (typeof retryOn !== 'function') throw configError('transaction.retry.retryOn', retryOn, 'must be a function')
  const baseDelayMs =
    raw.baseDelayMs === undefined ? defaults.baseDelayMs : checkInteger('transaction.retry.baseDelayMs', raw.baseDelayMs, 0, 60_000)
  const maxDelayMs =
    raw.maxDelayMs === undefined ? defaults.maxDelayMs : checkInteger('transaction.retry.maxDelayMs', raw.maxDelayMs, 0, 600_000)
  // a ceiling under the first delay would silently cap every delay at it
  if (baseDelayMs > maxDelayMs)
    throw configError('transaction.retry.baseDelayMs', baseDelayMs, `must not exceed transaction.retry.maxDelayMs (${maxDelayMs})`)
  return {
    maxAttempts:
      raw.maxAttempts === undefined ? defaults.maxAttempts : checkInteger('transaction.retry.maxAttempts', raw.maxAttempts, 1, 100),
    baseDelayMs,
    maxDelayMs,
    retryOn: retryOn as (e: DatabaseError) => boolean,
  }
}

/**
 * SQLSTATEs of a named prepared statement the server invalidated (0A000 "cached plan must not change
 * result type" after ALTER TABLE; 26000 "prepared statement does not exist" after DEALLOCATE; 42804,
 * 42883, 42846, 42725 from its stale parameter types after a column changed type): inside a
 * transaction the Postgres backend throws them retryable (only then), and the replay prepares the
 * statement again. One the transaction did to itself (a function running DDL) is not retryable.
 */
const STATEMENT_INVALIDATION_SQLSTATES: ReadonlySet<string> = new Set(['0A000', '26000', '42804', '42883', '42846', '42725'])

/**
 * Of those, the ones a statement's own execution raises as well (`$1::text::regprocedure` with a name
 * that does not exist: 42883): they replay only with `detail.failedAtBind: true`, the backend's proof
 * that the server refused the statement's Bind, before anything of it executed (Postgres: no
 * BindComplete, no user code in the error's context).
 */
const AT_BIND_ONLY_SQLSTATES: ReadonlySet<string> = new Set(['42804', '42883', '42846', '42725'])

function replaysByDefault(e: DatabaseError): boolean {
  // work of it may have been committed (detail.outcome 'unknown' or 'committed': a CALL whose body
  // committed, a lost COMMIT): a replay could apply it twice, whatever the code says
  if (e.detail?.outcome !== undefined) return false
  return (
    TRANSACTION_RETRY_CODES.has(e.code) ||
    (e.retryable &&
      e.sqlState !== undefined &&
      STATEMENT_INVALIDATION_SQLSTATES.has(e.sqlState) &&
      (!AT_BIND_ONLY_SQLSTATES.has(e.sqlState) || e.detail?.failedAtBind === true)) ||
    // a write that reached a server that became read-only (Postgres 25006 after a failover): the
    // backend evicted the connection, and the replay's new connection looks for a read-write server
    (e.code === 'READ_ONLY' && e.retryable)
  )
}

/**
 * Asks `retryOn` whether `err` replays. A `retryOn` that throws rejects the transaction with
 * CONFIGURATION naming `transaction.retry.retryOn` (its error in `detail.retryOnError`), the
 * attempt's error as `cause`: what happened to the attempt is never hidden (rolled back, or the
 * cause's `detail.outcome`, kept in the CONFIGURATION error's `detail.outcome` and message).
 */
function replays(retry: ResolvedRetry, err: DatabaseError): boolean {
  try {
    return retry.retryOn(err)
  } catch (retryOnError) {
    const thrown = isErrorLike(retryOnError) ? `${retryOnError.name}: ${retryOnError.message}` : String(retryOnError)
    const outcome = err.detail?.outcome
    const attempt =
      outcome === 'unknown'
        ? 'the attempt (whose outcome is unknown: it may have committed)'
        : outcome === 'committed'
          ? 'the attempt (committed)'
          : 'the attempt (rolled back)'
    throw new DatabaseError(
      'CONFIGURATION',
      `transaction.retry.retryOn threw (${thrown}) when asked about the attempt's error, so ${attempt} was not replayed: its error is the cause`,
      {
        cause: err,
        retryable: false,
        detail: { option: 'transaction.retry.retryOn', retryOnError, ...(outcome !== undefined ? { outcome } : {}) },
      },
    )
  }
}

/** How deep {@link outcomeOf} follows `cause` (a TRANSACTION_ROLLED_BACK over the error of a CALL that committed). */
const OUTCOME_CAUSE_DEPTH = 8

/**
 * The `detail.outcome` (`'unknown'`, `'committed'`) of `err` or of an error in its `cause` chain:
 * part of the attempt's work may have been committed (a COMMIT whose answer was lost, a CALL whose
 * body committed before `fn` caught its error).
 */
function outcomeOf(err: DatabaseError): string | undefined {
  let e: unknown = err
  for (let depth = 0; depth < OUTCOME_CAUSE_DEPTH && isErrorLike(e); depth++, e = e.cause) {
    const outcome = DatabaseError.is(e) ? e.detail?.outcome : undefined
    if (typeof outcome === 'string') return outcome
  }
  return undefined
}

/**
 * The error a transaction rejects with when `retryOn` asked to replay an attempt whose outcome is
 * unknown or committed: the attempt's error (same code, `detail` with `outcome` at its top level,
 * `detail.notReplayed: true`, `retryable: false`), its message saying why it was not replayed, the
 * attempt's error as `cause`.
 */
function notReplayed(err: DatabaseError, outcome: string): DatabaseError {
  const why =
    outcome === 'committed'
      ? 'its work was committed (detail.outcome committed)'
      : 'its work may have been committed (detail.outcome unknown: the answer to its COMMIT, or to a statement that commits, was lost)'
  return new DatabaseError(
    err.code,
    `${err.message} [transaction not replayed although transaction.retry.retryOn accepted this error: ${why}, and a replay could apply it twice; check whether it took effect before running it again]`,
    {
      cause: err,
      retryable: false,
      backend: err.backend,
      ...(err.sqlState !== undefined ? { sqlState: err.sqlState } : {}),
      ...(err.sqliteCode !== undefined ? { sqliteCode: err.sqliteCode } : {}),
      ...(err.poolStats !== undefined ? { poolStats: err.poolStats } : {}),
      detail: { ...err.detail, outcome, notReplayed: true },
    },
  )
}

function backoff(attempt: number, retry: ResolvedRetry): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1))
  return Math.floor(Math.random() * ceiling)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
