import { DatabaseError, OUTCOME_UNKNOWN, splitSqlStatements, type SqlStatement } from '@dbpool/core'
import { transactionControlOf } from '@dbpool/core/internal'
import type { Database } from 'better-sqlite3'
import { mapSqliteError } from './sqlite-errors'

// what moves when a statement writes: rows changed (committed or not) and the schema cookie (DDL)
const WRITE_MARK_SQL = 'select total_changes() as c, schema_version as s from pragma_schema_version'

/**
 * Runs a multi-statement script without parameters (better-sqlite3's `exec`), with Postgres's outcome:
 *
 * - Outside a transaction, a script without transaction control of its own runs inside `begin`
 *   (`BEGIN IMMEDIATE` on the writer) and COMMIT: all or nothing, as Postgres runs a simple-query
 *   text as one implicit transaction. A failure part-way rolls back what the script did and rejects
 *   with the failing statement's own error (a BUSY stays retryable: nothing was kept). `exec` alone
 *   committed each statement on its own, so the first ones stayed.
 * - A script with its own BEGIN, COMMIT, ROLLBACK, END, SAVEPOINT, RELEASE (a migration file), outside
 *   a transaction or inside the caller's, runs statement by statement as Postgres runs it (see
 *   {@link runInImplicitTransactions}): statements that no transaction of the script holds run
 *   inside an implicit `begin`, which the script's COMMIT commits, its ROLLBACK rolls back, its BEGIN
 *   turns into its own transaction (`insert ...; begin` leaves the insert inside the open
 *   transaction), and which is committed at the end; a SAVEPOINT outside the script's own BEGIN is refused as Postgres
 *   refuses it. A failure rolls back the implicit transaction it came in (nothing of it kept); one
 *   inside a transaction the script opened itself is rolled back at once when it is retryable (so
 *   that running the script again starts afresh on the same connection), else left aborted for its
 *   owner, as Postgres does. The error is the failing statement's own, unless an earlier block of the
 *   script committed work (`...; commit; ...` after a statement that wrote; the caller's transaction
 *   ended by the script's COMMIT counts as written) or the failing statement was a COMMIT whose
 *   transaction is gone: then `retryable: false`, `detail.outcome: 'unknown'`, and the message says so.
 *   Inside the caller's transaction, until a statement of the script ends it, a failure aborts that
 *   transaction (the manager's `#fail`) with the statement's own error, as on Postgres.
 * - Any other script inside the caller's transaction runs as written; a failure aborts that
 *   transaction (the manager's `#fail`), as on Postgres.
 * - A script with a statement SQLite refuses or ignores inside a transaction (VACUUM, ATTACH, DETACH,
 *   PRAGMA) runs as written, as `exec` runs it. When it fails outside the caller's transaction after
 *   an earlier statement of it wrote (`total_changes()` or the schema cookie moved), the error is
 *   restated with `retryable: false` and `detail.outcome: 'unknown'`: its first statements may have
 *   been committed. Not when the transaction the script opened with its first statement, its only
 *   one, is still open after the failure (see {@link ownTransactionOnly}): nothing was committed, the
 *   error is thrown as it is (a retryable one after rolling that transaction back at once).
 *
 * @param begin The statement that opens the implicit transaction (`BEGIN IMMEDIATE` on the writer,
 *   so that the write lock is taken before anything runs; `BEGIN DEFERRED` on a reader).
 * @param fail Maps a native error (the manager's mapping).
 * @returns Whether the script left a transaction open after it may have committed part of its work
 *   (`insert ...; commit; begin; insert ...`): `pool.query()` then says so when it rolls that
 *   transaction back (`ConnectionManager.committedBeforeLeftOpen`).
 * @throws The mapped error, restated as above when the script may have committed part of its work.
 */
export function runScript(db: Database, text: string, begin: string, fail: (err: unknown) => DatabaseError): boolean {
  if (!runsAtomically(text)) {
    const statements = splitSqlStatements(text, 'sqlite')
    if (!statements.some(({ head }) => head[0] !== undefined && OUTSIDE_TRANSACTION.has(head[0])))
      return runInImplicitTransactions(db, statements, begin, fail)
  } else if (!db.inTransaction) {
    runAtomic(db, text, begin, fail)
    return false
  }
  const wasInTransaction = db.inTransaction
  const before = writeMark(db)
  try {
    db.exec(text)
  } catch (err) {
    // still inside the transaction the script's first statement opened, its only one (`BEGIN; ...;
    // COMMIT` whose COMMIT got BUSY in rollback-journal mode, SQLite keeping the transaction, or a
    // constraint failing inside it): nothing of it committed
    if (!wasInTransaction && db.inTransaction && ownTransactionOnly(text)) throw ownTransactionFailure(db, err, fail)
    const error = fail(err)
    // still inside the caller's transaction: nothing of the script committed (it is rolled back or
    // replayed whole); the failure aborted it, so `retryable` means replaying that transaction whole
    if (wasInTransaction && db.inTransaction) throw error
    // nothing written before the failure
    if (before !== null && writeMark(db) === before) throw error
    throw outcomeUnknown(
      error,
      err,
      'a statement of a multi-statement script failed after earlier ones of it may have been committed: its outcome is unknown, what they wrote may be kept; check before running it again',
    )
  }
  // a transaction the script left open, after statements of it that may have committed outside it
  return !wasInTransaction && db.inTransaction && !ownTransactionOnly(text) && (before === null || writeMark(db) !== before)
}

/**
 * A failure inside a transaction the script opened itself, still open, nothing of the script
 * committed: a retryable failure rolls it back at once, on a lease as without one, so that running
 * the script again (what `retryable` says) starts afresh instead of meeting the aborted transaction;
 * a failure that is not retryable leaves it aborted for its owner (the manager's `#fail`), as Postgres
 * does. The error is the statement's own, never outcome unknown.
 */
function ownTransactionFailure(db: Database, err: unknown, fail: (err: unknown) => DatabaseError): DatabaseError {
  if (!mapSqliteError(err).retryable) return fail(err)
  try {
    db.exec('ROLLBACK')
  } catch {
    // still open: the error below aborts it (the manager's #fail) and is not retryable
  }
  const error = fail(err)
  if (!db.inTransaction) return error
  return new DatabaseError(error.code, `${error.message} (the script's transaction could not be rolled back: it is aborted)`, {
    backend: 'sqlite',
    sqliteCode: error.sqliteCode,
    cause: error.cause ?? err,
    retryable: false,
    ...(error.detail === undefined ? {} : { detail: error.detail }),
  })
}

/** `error` restated not retryable, `detail.outcome: 'unknown'`, `why` added to its message. */
function outcomeUnknown(error: DatabaseError, err: unknown, why: string): DatabaseError {
  return new DatabaseError(error.code, `${error.message} (${why})`, {
    backend: 'sqlite',
    sqliteCode: error.sqliteCode,
    cause: error.cause ?? err,
    retryable: false,
    detail: { ...error.detail, outcome: OUTCOME_UNKNOWN },
  })
}

/**
 * A script with its own transaction control, outside a transaction or inside the caller's (which
 * counts as the script's own until a statement of it ends it), run as Postgres runs one simple
 * query: statement by statement, those that no transaction of the script holds inside an implicit
 * transaction (`begin`). The script's COMMIT or END commits it, its ROLLBACK rolls it back, its BEGIN
 * makes it the script's own (not run: SQLite refuses BEGIN inside a transaction), a SAVEPOINT inside
 * it is refused (Postgres: "SAVEPOINT can only be used in transaction blocks"), and it is committed
 * after the last statement. So `insert ...; commit` commits, `insert ...; rollback` keeps nothing,
 * `insert ...; release s` fails keeping nothing and `insert ...; begin` leaves the insert inside the
 * open transaction, as on Postgres; `exec` had committed the insert on its own each time. As on
 * Postgres too: a COMMIT, END, ROLLBACK or ABORT with no transaction open and a BEGIN inside the
 * script's own transaction are skipped (Postgres only warns), and a SAVEPOINT outside the script's own
 * transaction is refused, also as the script's first statement (`savepoint a; insert ...; release a`
 * keeps nothing: Postgres errors; SQLite alone would open a transaction with it and commit it at the
 * RELEASE). RELEASE and ROLLBACK TO outside the script's own transaction fail (no such savepoint), as
 * Postgres errors. See {@link runScript} for failures.
 */
function runInImplicitTransactions(
  db: Database,
  statements: readonly SqlStatement[],
  begin: string,
  fail: (err: unknown) => DatabaseError,
): boolean {
  // the caller's transaction (a lease's), open when the script began, until a statement of it ends it
  let caller = db.inTransaction
  // whether the open transaction is the implicit one (else the script's own, or the caller's)
  let implicit = false
  // a block of the script committed (a COMMIT, END or RELEASE that ended a transaction that wrote)
  let committed = false
  // the statement running ends the open transaction by committing it (COMMIT, END, RELEASE, the last COMMIT)
  let committing = false
  // what had been written when the open transaction began (see writeMark); undefined for the
  // caller's, whose writes before the script are not known here: its commit counts as writing
  let markAtOpen: string | null | undefined
  try {
    for (const { head, text } of statements) {
      const control = head[0] === 'SAVEPOINT' || head[0] === 'RELEASE' ? head[0] : transactionControlOf(head)
      const open = db.inTransaction
      if (control === undefined) {
        if (!open) {
          markAtOpen = writeMark(db)
          db.exec(begin)
          implicit = true
        }
        db.exec(text)
        continue
      }
      // a BEGIN inside the implicit transaction makes it the script's own; inside the script's own
      // transaction it is skipped, as Postgres skips it (a warning: "there is already a transaction in progress")
      if (open && control === 'BEGIN') {
        implicit = false
        continue
      }
      // a COMMIT, END, ROLLBACK or ABORT with no transaction open (nothing ran since the last one ended):
      // skipped, as Postgres skips it (a warning: "there is no transaction in progress")
      if (!open && (control === 'COMMIT' || control === 'END' || control === 'ROLLBACK' || control === 'ABORT')) continue
      // a SAVEPOINT outside a transaction the script opened with BEGIN, refused before it runs, as
      // Postgres refuses it (SQLite would open a transaction with it, which its RELEASE commits)
      if (control === 'SAVEPOINT' && (!open || implicit))
        throw new DatabaseError(
          'QUERY_FAILED',
          `SAVEPOINT can only be used in transaction blocks: a script's statements outside its own BEGIN run in one implicit transaction, as on Postgres (open one with BEGIN first): ${text}`,
          { backend: 'sqlite', retryable: false },
        )
      committing = open && (control === 'COMMIT' || control === 'END' || control === 'RELEASE')
      // the script's own BEGIN: what it writes from here on is measured from here
      if (!open) markAtOpen = writeMark(db)
      db.exec(text)
      if (open && !db.inTransaction) {
        // a block that wrote nothing (read-only work, the read lane) committed nothing a retry would redo
        if (control !== 'ROLLBACK' && (markAtOpen == null || writeMark(db) !== markAtOpen)) committed = true
        implicit = false
        caller = false
      } else if (!open && db.inTransaction) implicit = false
      committing = false
    }
    if (db.inTransaction && implicit) {
      committing = true
      db.exec('COMMIT')
      committing = false
    }
    // the script's own transaction left open after an earlier block of it committed
    return committed && db.inTransaction
  } catch (err) {
    const open = db.inTransaction
    // a COMMIT that failed with its transaction gone: whether it committed is not known
    const inDoubt = committing && !open
    let error: DatabaseError
    if (open && caller) {
      // still inside the caller's transaction: nothing of the script committed; the failure aborts that
      // transaction (the manager's #fail), as on Postgres, and `retryable` means replaying it whole
      error = fail(err)
    } else if (open && !implicit) {
      error = ownTransactionFailure(db, err, fail)
    } else {
      // the implicit transaction is rolled back, as Postgres rolls it back at an error (before the
      // error is mapped: the manager must not see it as a failure inside a transaction of the caller's)
      if (open) {
        try {
          db.exec('ROLLBACK')
        } catch {
          // the pool's release (or the failed connection's discard) rolls back
        }
      }
      error = fail(err)
    }
    if (inDoubt)
      throw outcomeUnknown(
        error,
        err,
        `the script's COMMIT failed and its transaction is gone: its outcome is unknown${committed ? ', and an earlier block of the script was committed' : ''}; check before running it again`,
      )
    if (committed)
      throw outcomeUnknown(
        error,
        err,
        'a statement of a multi-statement script failed after an earlier block of it was committed (its COMMIT ran): its outcome is unknown to a retry, what that block wrote is kept, what the failure came in was not; check before running it again',
      )
    throw error
  }
}

// SQLite refuses these inside a transaction (VACUUM, ATTACH, DETACH) or ignores them there (PRAGMA
// foreign_keys, journal_mode...): a script holding one runs as written
const OUTSIDE_TRANSACTION = new Set(['VACUUM', 'ATTACH', 'DETACH', 'PRAGMA'])

/**
 * Whether a script runs as one transaction (outside the caller's): none of its statements is
 * transaction control or needs to run outside one. Such a script that failed kept nothing.
 */
export function runsAtomically(text: string): boolean {
  for (const { head } of splitSqlStatements(text, 'sqlite')) {
    const first = head[0]
    if (first === 'SAVEPOINT' || first === 'RELEASE' || (first !== undefined && OUTSIDE_TRANSACTION.has(first))) return false
    if (transactionControlOf(head) !== undefined) return false
  }
  return true
}

/**
 * Whether everything `text` runs is inside the one transaction it opens itself: its first statement
 * is BEGIN, and no later statement controls the transaction (COMMIT, END, ROLLBACK not `TO`, ABORT,
 * BEGIN) but a last COMMIT or END. While that transaction is open, nothing of the script has committed.
 */
export function ownTransactionOnly(text: string): boolean {
  const statements = splitSqlStatements(text, 'sqlite')
  const last = statements.length - 1
  for (let i = 0; i <= last; i++) {
    const control = transactionControlOf(statements[i]!.head)
    if (i === 0 ? control !== 'BEGIN' : control !== undefined && !(i === last && (control === 'COMMIT' || control === 'END'))) return false
  }
  return last >= 0
}

/**
 * Whether `text` ends or begins a transaction itself (COMMIT, END, ROLLBACK but not ROLLBACK TO,
 * BEGIN, RELEASE of a savepoint): a transaction that is gone after it failed may have been ended by
 * the text, not by SQLite.
 */
export function controlsTransaction(text: string): boolean {
  for (const { head } of splitSqlStatements(text, 'sqlite')) {
    if (head[0] === 'RELEASE' || transactionControlOf(head) !== undefined) return true
  }
  return false
}

/** `begin`, the script, COMMIT; on any failure ROLLBACK (when SQLite did not already) and the statement's own error. */
function runAtomic(db: Database, text: string, begin: string, fail: (err: unknown) => DatabaseError): void {
  try {
    db.exec(begin)
  } catch (err) {
    throw fail(err)
  }
  try {
    db.exec(text)
    db.exec('COMMIT')
  } catch (err) {
    // rolled back before the error is mapped: the manager must not see it as a failure inside a transaction of the caller's
    if (db.inTransaction) {
      try {
        db.exec('ROLLBACK')
      } catch {
        // the pool's release (or the failed connection's discard) rolls back
      }
    }
    throw fail(err)
  }
}

/** `total_changes()` and the schema version, as one string; `null` when they cannot be read. */
function writeMark(db: Database): string | null {
  try {
    return JSON.stringify(db.prepare(WRITE_MARK_SQL).raw().get())
  } catch {
    return null
  }
}
