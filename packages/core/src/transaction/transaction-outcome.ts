import { DatabaseError, type ErrorBackend } from '../errors/database-error'
import { OUTCOME_UNKNOWN } from '../errors/error-outcome'
import type { Backend, TransactionState } from '../driver/connection-manager'
import type { SqlFragment } from '../sql/sql'
import { queryText, transactionControlStatement } from './transaction-control'
import { isErrorLike } from '../util/error-like'

/**
 * @internal What a transaction's handle knows about the transaction while `fn` runs: the statement
 * errors seen (the first one is the cause when the engine threw the work away) and whether the engine
 * already ended the transaction, after which no statement of the handle may run (it would run in
 * autocommit and be kept).
 */
export class TransactionOutcome {
  /** Errors of statements that reached the engine, oldest first; trimmed when a savepoint recovers. */
  readonly errors: DatabaseError[] = []
  #ended: DatabaseError | undefined

  constructor(
    readonly backend: ErrorBackend,
    /** Reads the engine's transaction state of the connection (the manager's `transactionState`). */
    private readonly state: (() => TransactionState) | undefined,
    /**
     * The handle's lease: only one whose `native` was handed out (`nativeTaken`) can have its
     * transaction ended outside the pool, and only while it is `active` (an idle connection released
     * or revoked by `close()` is not that: the statement's own refusal says what happened).
     * Default (undefined): always checked.
     */
    private readonly lease: { readonly active: boolean; readonly nativeTaken: boolean } | undefined = undefined,
  ) {}

  /** The error every later statement gets, once the engine ended the transaction. */
  get ended(): DatabaseError | undefined {
    return this.#ended
  }

  /**
   * Before each statement of the handle (`query()`, `stream()`, a savepoint's statements, `native`,
   * so `copyFrom()` too) and before COMMIT: the error refusing it when the transaction is over: ended
   * by the engine (see {@link afterStatement}), or outside the pool, which leaves the connection idle
   * (a COMMIT or ROLLBACK run through `tx.native`): a statement now would run in autocommit and be
   * kept whatever `transaction()` then reports. One read of the lease's `nativeTaken` per call, and
   * only on a lease that lent its `native` one read of the engine's state (SQLite `inTransaction`;
   * Postgres the status of the last ReadyForQuery, `unknown` while an answer is on its way, which
   * counts as open); undefined while the transaction is open.
   */
  checkOpen(): DatabaseError | undefined {
    if (this.#ended !== undefined) return this.#ended
    const lease = this.lease
    // nothing but `native` ends a transaction between its statements (afterStatement reads the state after each)
    if (lease !== undefined && (!lease.nativeTaken || !lease.active)) return undefined
    if (this.state?.() !== 'idle') return undefined
    return (this.#ended = endedOutside(this.backend, undefined))
  }

  /**
   * The error `transaction()` rejects with when `fn` failed with `err` (before COMMIT was sent): `err`,
   * unless the transaction was ended outside the pool (see {@link checkOpen}), which `err` would hide
   * (the callback's own error reads as "rolled back" when work may have been committed): then that
   * error, `err` as its `cause`.
   */
  callbackFailed(err: unknown): unknown {
    const ended = this.#ended ?? this.checkOpen()
    if (ended === undefined || ended === err || ended.detail?.reason !== ENDED_OUTSIDE) return err
    return endedOutside(this.backend, err)
  }

  /** The first statement error still relevant (not recovered by a savepoint). */
  get firstError(): DatabaseError | undefined {
    return this.errors[0]
  }

  /**
   * Before each statement of the handle: the error refusing a statement that would end or begin the
   * transaction (`COMMIT`, `ROLLBACK`, `END`, ... through `tx.query()`), which is then never sent;
   * otherwise undefined. Such a statement used to run: a COMMIT kept the work and `transaction()`
   * still rejected, or the callback's own error was rethrown as if nothing had been kept.
   */
  refuseControl(query: SqlFragment | string): DatabaseError | undefined {
    if (this.backend === 'pool') return undefined
    const backend: Backend = this.backend
    const statement = transactionControlStatement(queryText(query, backend), backend)
    if (statement === undefined) return undefined
    return new DatabaseError(
      'QUERY_FAILED',
      `${statement} through tx.query() is refused and was not run: transaction() owns the transaction (return from the callback to commit, throw to roll back; tx.transaction() for a savepoint)`,
      { backend, retryable: false, detail: { statement } },
    )
  }

  /**
   * When a savepoint's callback returned: throws when the savepoint cannot be released because its
   * work is gone, so the savepoint is rolled back and the caller told, instead of the RELEASE failing
   * with an error that hides the first one: the engine ended the transaction (SQLite), or aborted it
   * (Postgres `E`: the callback caught a statement error and returned).
   *
   * @param since How many errors were recorded before the savepoint began.
   */
  checkSavepoint(since: number): void {
    const ended = this.checkOpen()
    if (ended) throw ended
    if (this.state?.() === 'failed') throw savepointRolledBack(this.backend, this.errors[since] ?? this.firstError)
  }

  /**
   * The error a savepoint reports when its RELEASE failed: when a statement inside the savepoint had
   * failed first (the engine's state was not yet known when the callback returned, so
   * {@link checkSavepoint} could not tell), TRANSACTION_ROLLED_BACK with that first error as cause;
   * otherwise the RELEASE error itself.
   *
   * @param since How many errors were recorded before the savepoint began.
   */
  releaseFailed(releaseError: unknown, since: number): unknown {
    const first = this.errors[since]
    if (first === undefined || first === releaseError) return releaseError
    return savepointRolledBack(this.backend, first)
  }

  /** After each statement of the handle: remember its error; notice a transaction the engine ended. */
  afterStatement(error: unknown): void {
    // a value refused before sending never reached the engine and cannot have aborted anything (one
    // the server refused, such as a Postgres Bind with the wrong value count, has a SQLSTATE and did)
    if (DatabaseError.is(error) && (error.code !== 'INVALID_PARAMETER' || error.sqlState !== undefined)) this.errors.push(error)
    if (this.#ended) return
    // a statement of a transaction gets POOL_CLOSED only once close() revoked its lease: the pool
    // rolled the transaction back (or closed its connection), which is what a later COMMIT says
    if (DatabaseError.is(error, 'POOL_CLOSED')) {
      this.#ended = rolledBack(this.backend, 'close() revoked the transaction, and the pool rolled it back', error)
      return
    }
    if (this.state?.() !== 'idle') return
    this.#ended = this.firstError
      ? rolledBack(this.backend, 'the database rolled the transaction back by itself', this.firstError)
      : new DatabaseError(
          'QUERY_FAILED',
          'a statement run inside the transaction ended it (COMMIT, ROLLBACK or END through tx.query()); later statements would run outside it, so they are refused: let transaction() commit or roll back',
          { backend: this.backend, retryable: false },
        )
  }

  /** A savepoint could not be rolled back to: the transaction can no longer be trusted and must end. */
  abandon(cause: unknown): void {
    this.#ended ??= rolledBack(this.backend, 'a savepoint could not be rolled back, so the whole transaction was', cause)
  }

  /**
   * Before COMMIT: throws when COMMIT could not commit the work: the engine already ended the
   * transaction, or aborted it (Postgres `E`: the server would answer COMMIT with ROLLBACK).
   */
  checkBeforeCommit(): void {
    const ended = this.checkOpen()
    if (ended) throw ended
    // with no statement error seen, COMMIT itself tells: answered ROLLBACK (see checkCommitted), or the
    // session is gone (Postgres: a lost connection, CONNECTION_LOST, never sent)
    if (this.firstError !== undefined && this.state?.() === 'failed')
      throw rolledBack(this.backend, 'the transaction was aborted by an earlier error and could not commit', this.firstError)
  }

  /** After COMMIT: the server's answer says whether it committed (Postgres answers ROLLBACK for an aborted one). */
  checkCommitted(command: string | undefined): void {
    if (command !== undefined && command.toUpperCase() === 'ROLLBACK')
      throw rolledBack(this.backend, 'COMMIT was answered with ROLLBACK: the transaction had been aborted', this.firstError)
  }
}

/** `detail.reason` of {@link endedOutside}'s error. */
const ENDED_OUTSIDE = 'ended-outside'

/**
 * The transaction was ended outside `transaction()`: the connection is idle although the callback
 * has not returned (a COMMIT or ROLLBACK run through `tx.native`, which the pool does not see).
 * QUERY_FAILED, not retryable, `detail.outcome` `'unknown'` (what ran before it was committed or rolled
 * back by that statement: the pool cannot tell which, so it is never replayed), `detail.reason`
 * `'ended-outside'`; `cause`: the callback's own error when it failed after.
 */
function endedOutside(backend: ErrorBackend, callbackError: unknown): DatabaseError {
  const after =
    callbackError === undefined
      ? ''
      : `; the callback then failed with ${DatabaseError.is(callbackError) ? callbackError.code + ': ' : ''}${isErrorLike(callbackError) ? callbackError.message : String(callbackError)} (the cause)`
  return new DatabaseError(
    'QUERY_FAILED',
    `the transaction was ended outside transaction() (a COMMIT or ROLLBACK run through tx.native): the statements that ran in it before that were committed or rolled back by that statement, whichever it was (the pool cannot tell: check before running the work again); every statement sent to the transaction after it was refused and not run, and transaction() committed nothing${after}`,
    {
      backend,
      retryable: false,
      ...(callbackError === undefined ? {} : { cause: callbackError }),
      detail: { reason: ENDED_OUTSIDE, outcome: 'unknown' },
    },
  )
}

/** TRANSACTION_ROLLED_BACK for a savepoint whose callback returned after the engine aborted its work. */
function savepointRolledBack(backend: ErrorBackend, first: DatabaseError | undefined): DatabaseError {
  const detail = first ? `; first error: ${first.code}: ${first.message}` : ''
  return new DatabaseError(
    'TRANSACTION_ROLLED_BACK',
    `the savepoint was rolled back: its callback returned after a statement error had aborted the transaction${detail}`,
    { backend, cause: first, retryable: first?.retryable ?? false, sqlState: first?.sqlState, sqliteCode: first?.sqliteCode },
  )
}

/** A TRANSACTION_ROLLED_BACK error; retryable exactly when its cause is (a caught serialization failure replays). */
export function rolledBack(backend: ErrorBackend, reason: string, cause: unknown): DatabaseError {
  const first = DatabaseError.is(cause) ? cause : undefined
  const detail = first ? `; first error: ${first.code}: ${first.message}` : ''
  return new DatabaseError('TRANSACTION_ROLLED_BACK', `nothing was committed: ${reason}${detail}`, {
    backend,
    cause,
    retryable: first?.retryable ?? false,
    sqlState: first?.sqlState,
    sqliteCode: first?.sqliteCode,
  })
}

/**
 * Statements issued on a leased connection were still unanswered by the engine when its transaction
 * state had to be known (a `withConnection` callback returned, `conn.transaction()` began, `pool.query()`
 * or a stream ended), and the manager's bound (Postgres: `cancelTimeoutMs`) passed: they may have
 * committed (autocommit statements still running), or may be inside a transaction that closing the
 * connection rolls back. QUERY_FAILED, `retryable: false`, `detail: { reason: 'transaction-state-unknown',
 * outcome: 'unknown' }` (see `isOutcomeUnknown`): never a claim that the work was rolled back. The
 * connection is discarded at its release (never reused, never rolled back and handed on), so the
 * statements still running fail with the connection's loss. `what`: the call, for the message.
 */
export function transactionStateUnknownError(backend: ErrorBackend, what: string): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `${what} with statements issued on the connection (not awaited) still unanswered by the server: whether they committed, or left a transaction open, is not known, so their outcome is unknown (they may have committed; check before running them again) and the connection is closed instead of reused. Await every statement`,
    { backend, retryable: false, detail: { reason: 'transaction-state-unknown', outcome: OUTCOME_UNKNOWN } },
  )
}

/**
 * A lone statement (`pool.query('BEGIN; insert ...')`, `pool.query('SAVEPOINT x', [], { lane: 'read' })`)
 * that left a transaction open: the pool rolls it back at once (the next `pool.query()` may run on
 * another connection, and a reader left inside a transaction would answer every later read from its
 * old snapshot), so it is not reported done: TRANSACTION_ROLLED_BACK, not retryable. Core raises it for
 * a lease and for the writer's lease-free path; the SQLite manager for a reader's lease-free statement.
 *
 * @param via The call that ran the statement, named in the message: `'query'` (default, `pool.query()`)
 *   or `'stream'` (`pool.stream()`, see `RowStream`).
 * @param committedBefore The text may have committed part of its work before the transaction opened
 *   (`ConnectionManager.committedBeforeLeftOpen`): the message says so, `detail.outcome: 'unknown'`.
 */
export function transactionLeftOpenError(backend: ErrorBackend, via: 'query' | 'stream' = 'query', committedBefore = false): DatabaseError {
  const before = committedBefore
    ? ', but statements of the text that ran before it opened may have been committed: its outcome is unknown, check before running it again'
    : ''
  return new DatabaseError(
    'TRANSACTION_ROLLED_BACK',
    `the statement left a transaction open (BEGIN without COMMIT); pool.${via}() runs each statement on whichever connection is free, so the pool rolled it back: what ran inside it was not committed${before}. Use pool.transaction() or withConnection()`,
    { backend, retryable: false, ...(committedBefore ? { detail: { outcome: OUTCOME_UNKNOWN } } : {}) },
  )
}

/**
 * The error a statement gets when it is refused because an earlier statement of the same transaction
 * failed: TRANSACTION_ROLLED_BACK whose `cause` is that first error (retryable exactly when it is),
 * as Postgres refuses every statement of an aborted transaction until ROLLBACK (SQLSTATE 25P02,
 * `in_failed_sql_transaction`, kept in `sqlState` on Postgres). The SQLite manager refuses the same
 * statements itself, without running them, so that the same code has the same outcome on both.
 *
 * @param backend The backend named in the error.
 * @param first The error that aborted the transaction, when known.
 * @param sqlState `'25P02'` on Postgres (the server's refusal); undefined on SQLite.
 */
export function abortedTransactionError(backend: ErrorBackend, first: DatabaseError | undefined, sqlState?: string): DatabaseError {
  const detail = first ? `; first error: ${first.code}: ${first.message}` : ''
  return new DatabaseError(
    'TRANSACTION_ROLLED_BACK',
    `current transaction is aborted, commands ignored until end of transaction block: the statement was not run, and the transaction can only roll back (ROLLBACK, or ROLLBACK TO SAVEPOINT)${detail}`,
    {
      backend,
      cause: first,
      retryable: first?.retryable ?? false,
      ...(sqlState === undefined ? {} : { sqlState }),
      ...(first?.sqliteCode === undefined ? {} : { sqliteCode: first.sqliteCode }),
    },
  )
}
