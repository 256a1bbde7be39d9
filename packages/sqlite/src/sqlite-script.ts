import { DatabaseError, OUTCOME_UNKNOWN, splitSqlStatements } from '@dbpool/core'
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
 * - Inside the caller's transaction it runs as written; a failure aborts that transaction (the
 *   manager's `#fail`), as on Postgres.
 * - A script with its own BEGIN, COMMIT, ROLLBACK, END, SAVEPOINT... (a migration file), or with a
 *   statement SQLite refuses or ignores inside a transaction (VACUUM, ATTACH, DETACH, PRAGMA), runs
 *   as written, as `exec` runs it. When such a script fails (BUSY from another process, a constraint,
 *   a COMMIT or ROLLBACK with no transaction open, ...) outside the caller's transaction after an
 *   earlier statement of it wrote (`total_changes()` or the schema cookie moved), the error is
 *   restated with `retryable: false` and `detail.outcome: 'unknown'`: its first statements may have
 *   been committed (a caller taking the rejection for "nothing happened" would write twice). Not when
 *   the transaction the script opened with its first statement, its only one, is still open after the
 *   failure (`BEGIN; ...; COMMIT` whose COMMIT got BUSY: see {@link ownTransactionOnly}): nothing was
 *   committed; a retryable failure rolls that transaction back at once (so the script can run again
 *   on the same connection) and is thrown as it is.
 *
 * @param begin The statement that opens the implicit transaction (`BEGIN IMMEDIATE` on the writer,
 *   so that the write lock is taken before anything runs; `BEGIN DEFERRED` on a reader).
 * @param fail Maps a native error (the manager's mapping).
 * @throws The mapped error, restated as above when the script may have committed part of its work.
 */
export function runScript(db: Database, text: string, begin: string, fail: (err: unknown) => DatabaseError): void {
  if (!db.inTransaction && runsAtomically(text)) {
    runAtomic(db, text, begin, fail)
    return
  }
  const wasInTransaction = db.inTransaction
  const before = writeMark(db)
  try {
    db.exec(text)
  } catch (err) {
    // still inside the transaction the script's first statement opened, its only one (`BEGIN; ...;
    // COMMIT` whose COMMIT got BUSY in rollback-journal mode, SQLite keeping the transaction): nothing
    // of it committed. A retryable failure rolls it back at once, on a lease as without one, so that
    // running the script again (what `retryable` says) starts afresh instead of meeting the aborted
    // transaction; a failure that is not retryable leaves it aborted for its owner, as Postgres does
    if (!wasInTransaction && db.inTransaction && ownTransactionOnly(text) && mapSqliteError(err).retryable) {
      try {
        db.exec('ROLLBACK')
      } catch {
        // still open: the error below aborts it (the manager's #fail) and is not retryable
      }
      const error = fail(err)
      if (!db.inTransaction) throw error
      throw new DatabaseError(error.code, `${error.message} (the script's transaction could not be rolled back: it is aborted)`, {
        backend: 'sqlite',
        sqliteCode: error.sqliteCode,
        cause: error.cause ?? err,
        retryable: false,
        ...(error.detail === undefined ? {} : { detail: error.detail }),
      })
    }
    const error = fail(err)
    // still inside the caller's transaction: nothing of the script committed (it is rolled back or
    // replayed whole); the failure aborted it, so `retryable` means replaying that transaction whole
    if (wasInTransaction && db.inTransaction) throw error
    // nothing written before the failure
    if (before !== null && writeMark(db) === before) throw error
    throw new DatabaseError(
      error.code,
      `${error.message} (a statement of a multi-statement script failed after earlier ones of it may have been committed: its outcome is unknown, what they wrote may be kept; check before running it again)`,
      {
        backend: 'sqlite',
        sqliteCode: error.sqliteCode,
        cause: error.cause ?? err,
        retryable: false,
        detail: { ...error.detail, outcome: OUTCOME_UNKNOWN },
      },
    )
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
