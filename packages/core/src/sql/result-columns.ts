import { DatabaseError, type ErrorBackend } from '../errors/database-error'
import { OUTCOME_COMMITTED, OUTCOME_UNKNOWN } from '../errors/error-outcome'

/** A result column as the drivers describe it: pg's `fields`, better-sqlite3's `stmt.columns()`. */
export interface ResultColumn {
  readonly name: string
}

/** Where a name is used twice: the name and its first two 1-based positions. */
export interface DuplicateColumn {
  readonly name: string
  readonly positions: readonly [number, number]
}

/**
 * The first column name that two columns of a result share, or `undefined`. Rows are objects keyed by
 * column name (pg and better-sqlite3 build them so), so of two columns named alike only the last value
 * reaches the row: `select 1 as a, 2 as a` gives `{ a: 2 }`. Compares exactly (case-sensitive, as the
 * row keys are). Allocates nothing for results of up to 16 columns.
 */
export function duplicateColumn(columns: readonly ResultColumn[]): DuplicateColumn | undefined {
  const count = columns.length
  if (count < 2) return undefined
  if (count <= 16) {
    for (let i = 1; i < count; i++) {
      const name = columns[i]!.name
      for (let j = 0; j < i; j++) if (columns[j]!.name === name) return { name, positions: [j + 1, i + 1] }
    }
    return undefined
  }
  const seen = new Map<string, number>()
  for (let i = 0; i < count; i++) {
    const name = columns[i]!.name
    const first = seen.get(name)
    if (first !== undefined) return { name, positions: [first + 1, i + 1] }
    seen.set(name, i)
  }
  return undefined
}

/** What the statement had done when its result was refused (Postgres: it already ran). */
export interface DuplicateColumnContext {
  /**
   * It ran outside a transaction and may have written (a write with RETURNING, a function call):
   * the error then says it may have committed, with `detail.outcome: 'unknown'`.
   */
  readonly mayHaveCommitted?: boolean
  /**
   * It ran outside a transaction and the server reported the session idle after it (Postgres
   * ReadyForQuery `I`): a write it made is committed. The error says so, with `detail.outcome: 'committed'`.
   */
  readonly committed?: boolean
  /**
   * It ran inside a transaction, which the refusal aborts (Postgres: the pool makes the server abort
   * it, as a statement the server refused would): nothing of the transaction commits.
   */
  readonly aborted?: boolean
  /** It already ran (Postgres); SQLite refuses it when it is prepared, before it runs. */
  readonly ran?: boolean
  /**
   * It ran outside a transaction inside a savepoint of the pool's own (SQLite, a write with
   * `RETURNING *`), rolled back with the refusal: nothing it wrote is kept, no transaction is open,
   * and later statements run as usual (nothing to ROLLBACK).
   */
  readonly rolledBack?: boolean
  /**
   * With `aborted`: a COMMIT of the text (`insert ...; commit; begin; select 1 as a, 2 as a`) had
   * committed the work before the transaction that is now aborted: the error says so, with
   * `detail.outcome: 'unknown'`.
   */
  readonly committedBefore?: boolean
}

/**
 * The error for a result with two columns of the same name: code `SYNTAX_ERROR` (fix the text: alias
 * the columns), not retryable, `detail: { column, positions }` (1-based). The message names the column
 * and says to alias it; Postgres names every unnamed expression `?column?`, which the message says
 * too. With `mayHaveCommitted` it adds that the statement may have committed and sets
 * `detail.outcome: 'unknown'` (see `isOutcomeUnknown`), so nobody runs a committed write again; with
 * `committed`, that it committed (`detail.outcome: 'committed'`); with `aborted`, that the
 * transaction it ran in is aborted and commits nothing; with `rolledBack`, that it ran in the pool's
 * own savepoint outside a transaction, rolled back: nothing kept, no transaction open.
 */
export function duplicateColumnError(
  duplicate: DuplicateColumn,
  backend: ErrorBackend,
  context: DuplicateColumnContext = {},
): DatabaseError {
  const { name, positions } = duplicate
  const unnamed = name === '?column?' ? ' (Postgres names every expression without an alias "?column?")' : ''
  return refusedResult(
    `the result has two columns named ${JSON.stringify(name)} (columns ${positions[0]} and ${positions[1]})${unnamed}: ` +
      `rows are keyed by column name, so one value would be lost. Give each column its own name with AS`,
    name,
    [...positions],
    backend,
    context,
  )
}

/**
 * The error for a result column named `__proto__` that the driver's own row objects would drop (an
 * assignment of that key sets the prototype instead: better-sqlite3's rows, used by SQLite statements
 * whose text has a `*` or names a rowid alias). Same code, context and `detail` shape as {@link duplicateColumnError}
 * (`positions` holds the one column), so it is handled the same way (see {@link isDuplicateColumnError}).
 */
export function protoColumnError(position: number, backend: ErrorBackend, context: DuplicateColumnContext = {}): DatabaseError {
  return refusedResult(
    `result column ${position} is named "__proto__", which the driver's own rows, used for this statement, would drop (the value would be lost). ` +
      `Give that column another name with AS (SQLite keeps a "__proto__" column when the text has no \`*\` and names no rowid, oid or _rowid_)`,
    '__proto__',
    [position],
    backend,
    context,
  )
}

function refusedResult(
  what: string,
  column: string,
  positions: number[],
  backend: ErrorBackend,
  context: DuplicateColumnContext,
): DatabaseError {
  let message = what
  let outcome: string | undefined
  if (context.committed) {
    message += '. The statement already ran outside a transaction and committed: do not run it again as is'
    outcome = OUTCOME_COMMITTED
  } else if (context.mayHaveCommitted) {
    message +=
      '. The statement already ran outside a transaction and may have committed: its outcome is unknown, check before running it again'
    outcome = OUTCOME_UNKNOWN
  } else if (context.rolledBack) {
    message +=
      ". The statement ran outside a transaction, in a savepoint of the pool's own that was rolled back: nothing it wrote was kept, no transaction is open, and later statements run as usual"
  } else if (context.aborted && context.committedBefore) {
    message +=
      '. The statement already ran inside a transaction that its text opened after a COMMIT of its own had committed the work before it: that transaction is now aborted as if the server had refused the statement (nothing of it commits, every later statement is refused until ROLLBACK), what the text committed before it is kept: its outcome is unknown, check before running it again'
    outcome = OUTCOME_UNKNOWN
  } else if (context.aborted)
    message +=
      '. The statement already ran inside a transaction, which is now aborted as if the server had refused the statement: nothing of it commits, and every later statement is refused until ROLLBACK (or ROLLBACK TO SAVEPOINT)'
  else if (context.ran) message += '. The statement already ran'
  else message += '. The statement was not run'
  return new DatabaseError('SYNTAX_ERROR', message, {
    backend,
    retryable: false,
    detail: { column, positions, ...(outcome === undefined ? {} : { outcome }) },
  })
}

/**
 * Whether `err` is the refusal {@link duplicateColumnError} or {@link protoColumnError} builds (SYNTAX_ERROR with `detail.column`
 * and `detail.positions`): inside a transaction it aborts the transaction on both backends, as the
 * server's own refusal of a statement would (Postgres: the statement already ran in it).
 */
export function isDuplicateColumnError(err: unknown): boolean {
  return DatabaseError.is(err, 'SYNTAX_ERROR') && Array.isArray(err.detail?.positions) && typeof err.detail?.column === 'string'
}
