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
  /**
   * The status was `E` (a failed transaction) when it was last sent: a `COMMIT`, `END` or `PREPARE
   * TRANSACTION` that ends that transaction rolls it back (the server answers `ROLLBACK`).
   */
  aborted = false
  /** CommandComplete messages received for it (one per statement of a multi-statement text). */
  completed = 0
  /**
   * Given up on before it was sent (its AbortSignal or deadline, while it waited its turn behind the
   * statements issued before it): it is never written, and fails with this error when its turn
   * comes, if it is still queued then.
   */
  withdrawn: Error | undefined = undefined
  /**
   * Its array check's probe or pg_type lookup (see ArrayParameterCheck), submitted for it and not
   * answered yet: kept in the connection's queue (taken out with it when it is withdrawn), or on the
   * server (then it is the running statement to cancel).
   */
  checking: object | undefined = undefined
  /**
   * Releases the hold its answer put on the connection's kept statements (see PostgresConnection.hold):
   * it was answered inside a transaction with a result the manager will refuse, which must abort the
   * transaction before the server sees the next statement (see `runStatement`). Called once done with it.
   */
  hold: (() => void) | undefined = undefined
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
 * @param aborted The session's transaction had failed (`E`) when it was sent.
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

/**
 * Statements whose body can commit part of their work before they end, when they run outside a
 * transaction block: a procedure (`CALL`: its body, a `COMMIT` in it, is not seen here) and a `DO`
 * block. Inside a transaction block neither can commit (the server refuses it: 2D000). A function
 * (`SELECT f()`) never commits on its own (Postgres refuses transaction control in functions).
 */
const BODY_HEADS: ReadonlySet<string> = new Set(['CALL', 'DO'])

/** Statements that open a transaction block. */
const OPENING_HEADS: ReadonlySet<string> = new Set(['BEGIN', 'START TRANSACTION'])

/** Where a text can commit part of its work before it ends (see {@link innerCommitPoint}). */
export interface CommitPoint {
  /** The 0-based index of the statement in the text. */
  readonly index: number
  /** The statement's first words: `CALL`, `DO`, `COMMIT`, `END`, `PREPARE TRANSACTION`, `COMMIT PREPARED`. */
  readonly kind: string
}

/**
 * The first statement of `text` after whose start part of the text's work may be committed while
 * the text goes on (so that a later error leaves that part committed), judged from the text alone
 * and conservatively: a `CALL` or `DO` run outside a transaction block (its body may `COMMIT`), or
 * a `COMMIT`, `END`, `PREPARE TRANSACTION` or `COMMIT PREPARED` followed by more statements (`insert
 * ...; commit; lock ...`). `undefined` when the text cannot commit before it ends: a lone statement
 * other than `CALL`/`DO`, a text ending with its `COMMIT`, a `CALL` inside a transaction block. A
 * text the splitter cannot read counts as committing at its first statement.
 *
 * @param inTransaction The session was inside a transaction block (`T` or `E`) when it was sent.
 * @param aborted The session's transaction had failed (`E`) when it was sent.
 */
export function innerCommitPoint(text: string, inTransaction: boolean, aborted = false): CommitPoint | undefined {
  let statements: { head: readonly string[] }[]
  try {
    statements = splitSqlStatements(text, 'postgres')
  } catch {
    // not split (it does not throw today): counted as a body that may commit
    return { index: 0, kind: 'DO' }
  }
  let open = inTransaction
  // sent in a failed transaction: until it ends, its COMMIT commits nothing (the server rolls it back)
  let failed = inTransaction && aborted
  for (let i = 0; i < statements.length; i++) {
    const head = statements[i]!.head
    const kind = kindOf(head)
    const last = i === statements.length - 1
    if (BODY_HEADS.has(kind) && !open) return { index: i, kind }
    if (failed) {
      // ROLLBACK TO a savepoint leaves the transaction open and usable; anything else ends the failed one
      failed = false
      if (ENDING_HEADS.has(kind)) {
        open = head.includes('CHAIN') && !head.includes('NO')
        continue
      }
    }
    if (ENDING_HEADS.has(kind) || kind === 'COMMIT PREPARED') {
      if (!last) return { index: i, kind }
    } else if (OPENING_HEADS.has(kind)) open = true
    // ROLLBACK AND CHAIN opens the next transaction at once; a plain ROLLBACK leaves auto-commit
    else if (DISCARDING_HEADS.has(kind)) open = head.includes('CHAIN') && !head.includes('NO')
  }
  return undefined
}

/** Whether a commit point is a CALL or DO, whose body may commit (not a COMMIT of the text that completed). */
export function mayCommitInBody(point: CommitPoint): boolean {
  return BODY_HEADS.has(point.kind)
}

/**
 * Whether a statement text that failed with an error of the server may have committed part of its
 * work before the error: its {@link innerCommitPoint} was reached (a `CALL` or `DO` had started; a
 * `COMMIT` followed by more statements had completed, as the CommandComplete messages counted in
 * `progress` say). Such a text must not be run again as if nothing happened (`retryable: false`,
 * `detail.outcome: 'unknown'`: see {@link partlyCommittedError}).
 */
export function mayHavePartlyCommitted(progress: StatementProgress, text: string): CommitPoint | undefined {
  if (!progress.sent) return undefined
  const point = innerCommitPoint(text, progress.inTransaction, progress.aborted)
  if (point === undefined) return undefined
  // the failing statement is the one after the last completed one
  const failing = progress.completed
  if (failing > point.index || (failing === point.index && BODY_HEADS.has(point.kind))) return point
  return undefined
}

/**
 * `error` (a retryable error of the server) restated for a text that may have committed part of its
 * work before it failed ({@link mayHavePartlyCommitted}): same code, SQLSTATE and cause,
 * `retryable: false`, `detail.outcome: 'unknown'`. The SQLite backend words the same rule for a
 * multi-statement script with its own COMMIT (`runScript`).
 */
export function partlyCommittedError(error: DatabaseError, point: CommitPoint): DatabaseError {
  const why = BODY_HEADS.has(point.kind)
    ? `${point.kind === 'DO' ? 'a DO block' : 'a CALL'} run outside a transaction block failed, and its body may have committed part of its work before the error`
    : `a statement of a multi-statement text failed after its ${point.kind} had committed the work before it`
  return new DatabaseError(error.code, `${error.message} (${why}: its outcome is unknown; check before running it again)`, {
    backend: error.backend,
    sqlState: error.sqlState,
    cause: error.cause ?? error,
    retryable: false,
    detail: { ...error.detail, outcome: OUTCOME_UNKNOWN },
  })
}

/** The fields of a pg error (an ErrorResponse) this module reads. */
interface ServerErrorFields {
  readonly severity?: unknown
}

/**
 * Whether a failed statement's outcome is unknown: its session ended (`sessionEnded`: the connection
 * was lost, killed at a deadline, or the server sent FATAL) after the statement was sent, and its
 * text may have committed ({@link mayHaveCommitted}), or part of it may have
 * ({@link mayHavePartlyCommitted}: a `CALL` or `DO` whose body commits, which sends no
 * CommandComplete for it). An ErrorResponse (FATAL) before any CommandComplete otherwise says the
 * server refused the text before completing anything of it: then it did not commit.
 *
 * @param serverError The failure is the server's ErrorResponse for this statement (it has a SQLSTATE).
 */
export function outcomeUnknown(progress: StatementProgress, text: string, sessionEnded: boolean, serverError: boolean): boolean {
  if (!sessionEnded || !progress.sent) return false
  if (mayHavePartlyCommitted(progress, text) !== undefined) return true
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

/**
 * `reason` (a statement's or stream's deadline or abort) that came while the server ran its array
 * check (see ArrayParameterCheck): the check is cancelled as a running statement is (a cancel
 * request; at a deadline, and for a stream, the connection closed, `closed`), and the statement
 * itself is never sent: `retryable: true`, `detail.started: false`. A check cancelled in an open
 * transaction (`inTransaction`, the connection kept) aborts it, as the statement cancelled would.
 */
export function checkCancelledError(reason: DatabaseError, closed: boolean, inTransaction = false): DatabaseError {
  const aborts = !closed && inTransaction ? '; inside a transaction the cancelled check aborts it, as a cancelled statement would' : ''
  return new DatabaseError(
    reason.code,
    `${reason.message}, while the server still ran its array-parameter check (a Parse and Describe of its text, sent before it to learn the parameter types; it may wait for a lock as the statement would): the check was cancelled (a cancel request was sent${closed ? ' and the connection closed' : ''}) and the statement itself was never sent${aborts}`,
    { backend: 'postgres', retryable: true, cause: reason.cause, detail: { ...reason.detail, started: false } },
  )
}

/**
 * `reason` (a stream's or COPY's deadline or abort) for a cursor or COPY taken out of its turn
 * before it was sent (see PostgresConnection.unqueue): nothing of it ran, so it may be run again
 * (`retryable: true`, `detail.started: false`), as a statement withdrawn from its turn is.
 */
export function notSentError(reason: DatabaseError): DatabaseError {
  return new DatabaseError(
    reason.code,
    `${reason.message}, while it still waited its turn behind the statements issued before it on its connection: it was never sent (nothing was cancelled, the connection is kept)`,
    { backend: 'postgres', retryable: true, cause: reason.cause, detail: { ...reason.detail, started: false } },
  )
}
