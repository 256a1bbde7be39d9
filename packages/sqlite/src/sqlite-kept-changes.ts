import { DatabaseError, OUTCOME_COMMITTED, OUTCOME_UNKNOWN } from '@dbpool/core'
import type Database from 'better-sqlite3'

/**
 * A single INSERT, UPDATE, DELETE or REPLACE (a `WITH` before it allowed), after leading comments.
 * Each blank, line comment and block comment is read one way only (`\s+` inside `*` split a run of
 * blanks in exponentially many ways, a lazy comment body a run of comments): linear.
 */
const DML_HEAD = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*(?:insert|update|delete|replace|with)\b/i

/**
 * A constraint error of a data-changing statement run outside a transaction, restated when SQLite
 * kept (and committed) the statement's earlier changes: the `FAIL` conflict resolution (`INSERT OR
 * FAIL`, `UPDATE OR FAIL`, a column's `ON CONFLICT FAIL`, a trigger's `RAISE(FAIL, ...)`) ends the
 * statement at the failing row and keeps the rows it changed before it, where the default `ABORT`
 * undoes them (https://www.sqlite.org/lang_conflict.html). Then `detail.outcome: 'committed'`,
 * `detail.changes` (rows kept) and `retryable: false`; anything else is returned as is.
 *
 * How it knows: `changes()` after a failed auto-commit statement is the count SQLite committed for it
 * (`sqlite3VdbeHalt`: the count of a statement rolled back is 0); it counts only INSERT, UPDATE and
 * DELETE, so other statements (a `CREATE UNIQUE INDEX` refused) are not asked. It leaves out what
 * triggers did: when it is 0, `total_changes()` minus its value before the statement (`totalBefore`,
 * read by the manager before each write outside a transaction) counts the triggers' changes, kept
 * under FAIL, undone under ABORT (SQLite counts them either way, and the error does not say which
 * resolution ran): then `detail.outcome: 'unknown'`, `retryable: false`. Rare path: two statements
 * prepared and run, only after such an error.
 *
 * @param totalBefore `total_changes()` just before the statement ran; without it, trigger changes
 *   are not seen.
 *
 * @param db The connection, open, with no transaction open (the statement began and ended outside one).
 * @param error The mapped error of the statement.
 * @param text The statement's text.
 */
export function keptChangesError(db: Database.Database, error: DatabaseError, text: string, totalBefore?: number): DatabaseError {
  if (error.sqliteCode?.startsWith('SQLITE_CONSTRAINT') !== true || !DML_HEAD.test(text)) return error
  let changes: number
  let kept = 0
  try {
    changes = Number(db.prepare('select changes()').pluck().safeIntegers(false).get())
    if (totalBefore !== undefined) kept = Number(db.prepare('select total_changes()').pluck().safeIntegers(false).get()) - totalBefore
  } catch {
    return error
  }
  // changes() counts the statement's own rows only: a trigger's changes (a BEFORE trigger's row for the
  // failing row itself) show in total_changes() alone, which counts them even when ABORT undid them
  if (!(changes > 0)) return kept > 0 ? triggerChangesError(error, kept) : error
  return new DatabaseError(
    error.code,
    `${error.message} (SQLite kept and committed the ${changes} row change(s) the statement made before the failing row, as its FAIL conflict resolution does: do not run it again as is)`,
    {
      backend: error.backend,
      sqliteCode: error.sqliteCode,
      cause: error.cause ?? error,
      retryable: false,
      detail: { ...error.detail, outcome: OUTCOME_COMMITTED, changes },
    },
  )
}

/**
 * The statement's own rows were all undone (`changes()` 0) but its triggers changed `kept` rows: FAIL
 * keeps (and the auto-commit commits) them, ABORT undoes them, and SQLite does not tell which ran
 * (`total_changes()` counts them either way): `detail.outcome: 'unknown'`, `retryable: false`.
 */
function triggerChangesError(error: DatabaseError, kept: number): DatabaseError {
  return new DatabaseError(
    error.code,
    `${error.message} (its triggers made ${kept} change(s) before it failed: a FAIL conflict resolution keeps and commits them, ABORT undoes them, and SQLite does not tell which: its outcome is unknown, check before running it again)`,
    {
      backend: error.backend,
      sqliteCode: error.sqliteCode,
      cause: error.cause ?? error,
      retryable: false,
      detail: { ...error.detail, outcome: OUTCOME_UNKNOWN },
    },
  )
}

/** Errors of statements known rolled back whole (see {@link rolledBackWhole}). */
const ROLLED_BACK = new WeakSet<object>()

/**
 * @internal Marks `err` (an error of better-sqlite3) as the error of a statement that committed
 * nothing: its savepoint was rolled back (see the manager's `#allChecked`). `changes()` still counts
 * what the statement did before that rollback, so {@link keptChangesError} must not read it.
 * Returns `err`.
 */
export function rolledBackWhole(err: unknown): unknown {
  if (typeof err === 'object' && err !== null) ROLLED_BACK.add(err)
  return err
}

/** @internal Whether `err` was marked by {@link rolledBackWhole}. */
export function wasRolledBackWhole(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ROLLED_BACK.has(err)
}
