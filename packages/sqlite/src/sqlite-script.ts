import { DatabaseError, OUTCOME_UNKNOWN } from '@dbpool/core'
import type { Database } from 'better-sqlite3'

// what moves when a statement writes: rows changed (committed or not) and the schema cookie (DDL)
const WRITE_MARK_SQL = 'select total_changes() as c, schema_version as s from pragma_schema_version'

/**
 * Runs a multi-statement script (better-sqlite3's `exec`). A single SQLite statement has no
 * commit-unknown window: it runs in process and has finished or failed when the call returns. A
 * script outside a transaction is different: `exec` runs its statements one by one, each committed
 * on its own (auto-commit), so a failure of a later one (BUSY from another process, ...) comes after
 * earlier ones committed. When such a failure is retryable, the script did not stay inside a
 * transaction the caller had open, and it wrote something before failing (`total_changes()` or the
 * schema cookie moved), it is restated with `retryable: false` and
 * `detail.outcome: 'unknown'`: running the script again would apply its first statements twice.
 *
 * @param fail Maps a native error (the manager's mapping).
 * @throws The mapped error, restated as above when the script may have committed part of its work.
 */
export function runScript(db: Database, text: string, fail: (err: unknown) => DatabaseError): void {
  const wasInTransaction = db.inTransaction
  const before = writeMark(db)
  try {
    db.exec(text)
  } catch (err) {
    const error = fail(err)
    if (!error.retryable) throw error
    // still inside the caller's transaction: nothing of the script committed (it is rolled back or replayed whole)
    if (wasInTransaction && db.inTransaction) throw error
    // nothing written before the failure
    if (before !== null && writeMark(db) === before) throw error
    throw new DatabaseError(
      error.code,
      `${error.message} (a statement of a multi-statement script failed after earlier ones of it were committed: its outcome is unknown; check before running it again)`,
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

/** `total_changes()` and the schema version, as one string; `null` when they cannot be read. */
function writeMark(db: Database): string | null {
  try {
    return JSON.stringify(db.prepare(WRITE_MARK_SQL).raw().get())
  } catch {
    return null
  }
}
