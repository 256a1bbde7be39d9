import { DatabaseError, type ErrorBackend } from '../errors/database-error'
import type { TransactionState } from '../driver/connection-manager'

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
  ) {}

  /** The error every later statement gets, once the engine ended the transaction. */
  get ended(): DatabaseError | undefined {
    return this.#ended
  }

  /** The first statement error still relevant (not recovered by a savepoint). */
  get firstError(): DatabaseError | undefined {
    return this.errors[0]
  }

  /** After each statement of the handle: remember its error; notice a transaction the engine ended. */
  afterStatement(error: unknown): void {
    // a value refused before sending never reached the engine and cannot have aborted anything (one
    // the server refused, such as a Postgres Bind with the wrong value count, has a SQLSTATE and did)
    if (DatabaseError.is(error) && (error.code !== 'INVALID_PARAMETER' || error.sqlState !== undefined)) this.errors.push(error)
    if (this.#ended || this.state?.() !== 'idle') return
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
    if (this.#ended) throw this.#ended
    if (this.state?.() === 'failed')
      throw rolledBack(this.backend, 'the transaction was aborted by an earlier error and could not commit', this.firstError)
  }

  /** After COMMIT: the server's answer says whether it committed (Postgres answers ROLLBACK for an aborted one). */
  checkCommitted(command: string | undefined): void {
    if (command !== undefined && command.toUpperCase() === 'ROLLBACK')
      throw rolledBack(this.backend, 'COMMIT was answered with ROLLBACK: the transaction had been aborted', this.firstError)
  }
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
