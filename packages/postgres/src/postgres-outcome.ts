import { DatabaseError, OUTCOME_UNKNOWN, splitSqlStatements } from '@dbpool/core'
import { isReadOnlyStatement } from './postgres-read-only'

/**
 * What one statement reached on the wire before it failed, recorded by the pg Query that runs it
 * (see `runStatement`). Shared by a statement and its rerun after a named statement was prepared
 * again: `sent` and `completed` only grow.
 */
export class StatementProgress {
  /** pg wrote it to the socket (Query.submit succeeded): the server may have run it. */
  sent = false
  /**
   * The transaction status of the server's last ReadyForQuery when it was last sent: true for `T`
   * (open) and `E` (failed). pg sends a statement once the one before it is answered, so the status
   * is current then (a statement sharing a pipelined connection is a lone auto-commit one: `I`).
   */
  inTransaction = false
  /** CommandComplete messages received for it (one per statement of a multi-statement text). */
  completed = 0
}

/**
 * Lone statements that change nothing a retry could apply twice: read-only ones (see
 * {@link isReadOnlyStatement}) and these, by their first words.
 */
const NO_WRITE_HEADS: ReadonlySet<string> = new Set(['BEGIN', 'START TRANSACTION', 'ROLLBACK', 'ABORT', 'SHOW', 'SET', 'RESET'])

/** Statements that commit (or prepare for commit) the open transaction, by their first words. */
const ENDING_HEADS: ReadonlySet<string> = new Set(['COMMIT', 'END', 'PREPARE TRANSACTION'])

/** Statements that end the open transaction without committing it. */
const DISCARDING_HEADS: ReadonlySet<string> = new Set(['ROLLBACK', 'ABORT'])

/** The first words naming a statement: `COMMIT`, `START TRANSACTION`, `ROLLBACK PREPARED`, `SET`... */
function kindOf(head: readonly string[]): string {
  const [first = '', second] = head
  if (first === 'ROLLBACK' && (second === 'TO' || second === 'PREPARED')) return `ROLLBACK ${second}`
  if (first === 'COMMIT' && second === 'PREPARED') return 'COMMIT PREPARED'
  if ((first === 'START' || first === 'PREPARE') && second === 'TRANSACTION') return `${first} TRANSACTION`
  if (first === 'ROLLBACK' && (second === 'WORK' || second === 'TRANSACTION') && head[2] === 'TO') return 'ROLLBACK TO'
  return first
}

/**
 * Whether a statement text whose connection was lost in flight may have committed something, judged
 * from the text alone and conservatively (`true` when in doubt):
 * - sent outside a transaction (auto-commit): unless it is known not to write, a lone statement
 *   that {@link isReadOnlyStatement} accepts (the strict classifier of `readRouting: 'auto'`), or a
 *   lone `BEGIN`, `START TRANSACTION`, `ROLLBACK`, `ABORT`, `SHOW`, `SET` or `RESET`;
 * - sent inside a transaction: only when the text ends it with a commit (`COMMIT`, `END`, `PREPARE
 *   TRANSACTION`), or ends it otherwise (`ROLLBACK`, `ABORT`) and goes on with more statements, which
 *   then run in auto-commit. Anything else inside a transaction is rolled back by the server when the
 *   session dies, so it did not commit.
 *
 * @param text The statement text as sent (several statements allowed).
 * @param inTransaction The session was inside a transaction block (`T` or `E`) when it was sent.
 */
export function mayHaveCommitted(text: string, inTransaction: boolean): boolean {
  let statements: { head: readonly string[] }[]
  try {
    statements = splitSqlStatements(text, 'postgres')
  } catch {
    return true
  }
  const kinds = statements.map((s) => kindOf(s.head))
  if (inTransaction) return kinds.some((kind, i) => ENDING_HEADS.has(kind) || (DISCARDING_HEADS.has(kind) && i < kinds.length - 1))
  if (kinds.length === 1 && NO_WRITE_HEADS.has(kinds[0]!)) return false
  return !isReadOnlyStatement(text)
}

/** The fields of a pg error (an ErrorResponse) this module reads. */
interface ServerErrorFields {
  readonly severity?: unknown
}

/**
 * Whether a failed statement's outcome is unknown: its session ended (`sessionEnded`: the connection
 * was lost, killed at a deadline, or the server sent FATAL) after the statement was sent, the server
 * did not refuse it before completing it (an ErrorResponse before any CommandComplete: then it did
 * not commit), and its text may have committed ({@link mayHaveCommitted}).
 *
 * @param serverError The failure is the server's ErrorResponse for this statement (it has a SQLSTATE).
 */
export function outcomeUnknown(progress: StatementProgress, text: string, sessionEnded: boolean, serverError: boolean): boolean {
  if (!sessionEnded || !progress.sent) return false
  if (serverError && progress.completed === 0) return false
  return mayHaveCommitted(text, progress.inTransaction)
}

/** True for an ErrorResponse that ends the session (FATAL, PANIC). */
export function endsSession(err: unknown): boolean {
  const severity = (err as ServerErrorFields | null)?.severity
  return severity === 'FATAL' || severity === 'PANIC'
}

/**
 * `error` restated for a statement whose outcome is unknown: same code, SQLSTATE and cause,
 * `retryable: false`, a message that says it may have committed, and `detail.outcome: 'unknown'`.
 */
export function unknownOutcomeError(error: DatabaseError, text: string): DatabaseError {
  const what = describeStatement(text)
  return new DatabaseError(
    error.code,
    `${error.message} (the connection was lost while ${what} was in flight: its outcome is unknown, it may have committed; check before running it again)`,
    {
      backend: error.backend,
      sqlState: error.sqlState,
      cause: error.cause ?? error,
      retryable: false,
      detail: { ...error.detail, outcome: OUTCOME_UNKNOWN },
    },
  )
}

function describeStatement(text: string): string {
  // one way to read the blanks around the ";" (two \s* around an optional ";" split a run of blanks every way)
  const kind = /^\s*(commit|end)\b\s*(?:;\s*)?$/i.exec(text)
  return kind ? kind[1]!.toUpperCase() : 'the statement'
}
