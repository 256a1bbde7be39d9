import { DatabaseError, type ErrorCode } from '@dbpool/core'
import { isDuplicateColumnError } from '@dbpool/core/internal'

/** How one SQLite result code maps: the DatabaseError code, and whether the connection is done for. */
export interface SqliteErrorMapping {
  readonly code: ErrorCode
  /** The connection must not be reused (corruption, I/O failure, out of memory). */
  readonly fatal?: boolean
  /** Overrides the code's default retryability. */
  readonly retryable?: boolean
}

/**
 * SQLite result codes (extended first, then primary) to DatabaseError codes. A code missing here
 * falls back to its primary code (`SQLITE_IOERR_READ` → `SQLITE_IOERR`), then to QUERY_FAILED.
 *
 * SQLite reports syntax errors, unknown tables, columns and functions, ambiguous and already existing
 * names and misuse with the generic `SQLITE_ERROR`, which maps to SYNTAX_ERROR: the code Postgres gives
 * the same statements (42601, 42P01, 42703, 42883, 42P07...; see SQLSTATE_CODES in @dbpool/postgres).
 * The same `SQLITE_ERROR` also reports errors of a statement while it runs (an integer overflow, too
 * many levels of trigger recursion, malformed JSON, a function's error raised with
 * `sqlite3_result_error`): those are QUERY_FAILED, as Postgres gives them (22003, 54001, 22P02...),
 * see {@link sqliteErrorCodeOf}.
 */
export const SQLITE_ERROR_CODES: Readonly<Record<string, SqliteErrorMapping>> = Object.freeze({
  SQLITE_CONSTRAINT_UNIQUE: { code: 'UNIQUE_VIOLATION' },
  SQLITE_CONSTRAINT_PRIMARYKEY: { code: 'UNIQUE_VIOLATION' },
  SQLITE_CONSTRAINT_ROWID: { code: 'UNIQUE_VIOLATION' },
  SQLITE_CONSTRAINT_FOREIGNKEY: { code: 'FOREIGN_KEY_VIOLATION' },
  SQLITE_CONSTRAINT_NOTNULL: { code: 'NOT_NULL_VIOLATION' },
  SQLITE_CONSTRAINT_CHECK: { code: 'CHECK_VIOLATION' },
  SQLITE_CONSTRAINT_DATATYPE: { code: 'CHECK_VIOLATION' },
  SQLITE_CONSTRAINT: { code: 'QUERY_FAILED' },
  SQLITE_ERROR: { code: 'SYNTAX_ERROR' },
  SQLITE_BUSY: { code: 'BUSY' },
  SQLITE_BUSY_RECOVERY: { code: 'BUSY' },
  SQLITE_BUSY_SNAPSHOT: { code: 'BUSY' },
  SQLITE_BUSY_TIMEOUT: { code: 'BUSY' },
  SQLITE_LOCKED: { code: 'BUSY' },
  SQLITE_LOCKED_SHAREDCACHE: { code: 'BUSY' },
  SQLITE_READONLY: { code: 'READ_ONLY' },
  SQLITE_READONLY_RECOVERY: { code: 'READ_ONLY' },
  SQLITE_READONLY_CANTLOCK: { code: 'READ_ONLY' },
  SQLITE_READONLY_ROLLBACK: { code: 'READ_ONLY' },
  SQLITE_READONLY_DBMOVED: { code: 'READ_ONLY', fatal: true },
  SQLITE_READONLY_CANTINIT: { code: 'READ_ONLY' },
  SQLITE_READONLY_DIRECTORY: { code: 'READ_ONLY' },
  SQLITE_CANTOPEN: { code: 'CONNECTION_FAILED', fatal: true, retryable: false },
  SQLITE_NOTADB: { code: 'CORRUPT', fatal: true },
  SQLITE_CORRUPT: { code: 'CORRUPT', fatal: true },
  SQLITE_CORRUPT_VTAB: { code: 'CORRUPT' },
  SQLITE_CORRUPT_SEQUENCE: { code: 'CORRUPT', fatal: true },
  SQLITE_CORRUPT_INDEX: { code: 'CORRUPT', fatal: true },
  SQLITE_IOERR: { code: 'QUERY_FAILED', fatal: true },
  SQLITE_NOMEM: { code: 'QUERY_FAILED', fatal: true },
  SQLITE_FULL: { code: 'QUERY_FAILED' },
  SQLITE_INTERRUPT: { code: 'QUERY_CANCELLED' },
  SQLITE_ABORT: { code: 'QUERY_CANCELLED' },
  SQLITE_ABORT_ROLLBACK: { code: 'QUERY_CANCELLED' },
  SQLITE_PERM: { code: 'READ_ONLY' },
  SQLITE_AUTH: { code: 'QUERY_FAILED' },
  SQLITE_MISMATCH: { code: 'QUERY_FAILED' },
  SQLITE_RANGE: { code: 'QUERY_FAILED' },
  SQLITE_TOOBIG: { code: 'QUERY_FAILED' },
  SQLITE_SCHEMA: { code: 'QUERY_FAILED', retryable: true },
  SQLITE_MISUSE: { code: 'QUERY_FAILED' },
  SQLITE_PROTOCOL: { code: 'BUSY' },
})

/**
 * Messages SQLite reports with `SQLITE_ERROR` while a statement runs, never while it is prepared:
 * errors of built-in functions (`sqlite3_result_error`: `abs()`/`sum()` overflow, JSON, LIKE/GLOB,
 * `unistr()`, window functions' arguments, `ATTACH`/`DETACH`, `load_extension()`, time functions) and
 * of the VDBE (trigger recursion, transaction and savepoint state, `VACUUM`).
 */
const RUN_TIME_MESSAGES: readonly RegExp[] = [
  /^integer overflow$/,
  /^too many levels of trigger recursion$/,
  /^malformed JSON$/,
  /^JSON cannot hold BLOB values$/,
  /^JSON nested too deep$/,
  /^bad JSON path: /,
  /^json_\w+\(\) (requires|needs|labels)/,
  /^FLAGS parameter to json_valid\(\)/,
  /^LIKE or GLOB pattern too complex$/,
  /^ESCAPE expression must be a single character$/,
  /^invalid Unicode escape$/,
  /^local time unavailable$/,
  /^(second )?argument (of|to) (ntile|nth_value) must be a positive integer$/,
  /^frame (starting|ending) offset must be a non-negative (integer|number)$/,
  /^non-deterministic use of /,
  /^no such savepoint: /,
  /^cannot (start a transaction within a transaction|commit - no transaction is active|rollback - no transaction is active)$/,
  /^cannot (commit transaction|open savepoint|release savepoint|VACUUM) - SQL statements in progress$/,
  /^cannot VACUUM from within a transaction$/,
  /^cannot change (into|out of) wal mode from within a transaction$/,
  /^output file already exists$/,
  /^too many attached databases - max \d+$/,
  /^database (\S+ is already in use|is already attached)$/,
  /^cannot (ATTACH|DETACH) database within transaction$/,
  /^no such database: /,
  /^cannot detach database /,
  /^database \S+ is locked$/,
  /^unable to open database: /,
  /^not authorized$/,
]

/**
 * Messages SQLite reports with `SQLITE_ERROR` while it prepares a statement (also when a statement
 * already prepared is prepared again at its run, the schema having changed): syntax, unknown,
 * ambiguous or already taken names, misuse. Such an error stays SYNTAX_ERROR whenever it comes.
 */
const PREPARE_MESSAGES: readonly RegExp[] = [
  /: syntax error$/,
  /^incomplete input$/,
  /^unrecognized token: /,
  /^no such (table|column|function|index|view|trigger|module|collation sequence): /,
  /^ambiguous column name: /,
  /already exists$/,
  /has no column named /,
  /^wrong number of arguments to function /,
  /^misuse of /,
  /has \d+ columns but \d+ values were supplied$/,
  /^\d+ values for \d+ columns$/,
]

/**
 * The DatabaseError code of a SQLite error: {@link lookupSqliteCode}, except for `SQLITE_ERROR`,
 * SYNTAX_ERROR for an error of preparing the statement (its syntax, its names), QUERY_FAILED for
 * one of running it, as Postgres tells them (42xxx against 22003 numeric_value_out_of_range, 54001
 * for trigger recursion, 22P02 malformed JSON, 3B001 savepoint...). A run-time message
 * ({@link RUN_TIME_MESSAGES}) is QUERY_FAILED wherever it comes from; any other message of a
 * statement that was prepared and failed while it ran (`phase` `'run'`: a function's own error
 * raised with `sqlite3_result_error`, an extension's) is QUERY_FAILED too unless it is a prepare
 * message (the statement prepared again at its run); the rest is SYNTAX_ERROR.
 */
export function sqliteErrorCodeOf(sqliteCode: string, message: string, phase?: 'run'): ErrorCode | undefined {
  const mapped = lookupSqliteCode(sqliteCode)?.code
  if (sqliteCode !== 'SQLITE_ERROR') return mapped
  if (RUN_TIME_MESSAGES.some((pattern) => pattern.test(message))) return 'QUERY_FAILED'
  if (phase === 'run' && !PREPARE_MESSAGES.some((pattern) => pattern.test(message))) return 'QUERY_FAILED'
  return mapped
}

/** Finds the mapping for a SQLite result code name, falling back to the primary code. */
export function lookupSqliteCode(sqliteCode: string): SqliteErrorMapping | undefined {
  const exact = SQLITE_ERROR_CODES[sqliteCode]
  if (exact) return exact
  const primary = /^SQLITE_[A-Z]+/.exec(sqliteCode)?.[0]
  return primary ? SQLITE_ERROR_CODES[primary] : undefined
}

/** True when an error of this SQLite code means the connection must be discarded. */
export function isFatalSqliteCode(sqliteCode: string | undefined): boolean {
  return sqliteCode !== undefined && lookupSqliteCode(sqliteCode)?.fatal === true
}

/**
 * True when a mapped error means the connection must be discarded: {@link isFatalSqliteCode}, except
 * for an error about another file than the connection's own database: a statement that could not
 * open another file (`ATTACH`, `VACUUM INTO`: `detail.file`, see {@link mapSqliteError}), or an
 * attached file that is not a database or is corrupt ({@link otherDatabaseError}: `detail.otherDatabase`).
 */
export function isFatalSqliteError(error: DatabaseError): boolean {
  return isFatalSqliteCode(error.sqliteCode) && typeof error.detail?.file !== 'string' && error.detail?.otherDatabase !== true
}

/** Whether a SQLite code says a database file is not a database or is corrupt (CORRUPT, fatal). */
export function isCorruptionCode(sqliteCode: string | undefined): boolean {
  return sqliteCode !== undefined && (sqliteCode.startsWith('SQLITE_NOTADB') || sqliteCode.startsWith('SQLITE_CORRUPT'))
}

/** Another database than the connection's main one: an attached schema, or the file an ATTACH names. */
export interface OtherDatabase {
  /** Its file, when known (an ATTACH of a string literal; `PRAGMA database_list`). */
  readonly file?: string
  /** Its schema name, for an attached database. */
  readonly schema?: string
  /** What names it in the message when neither file nor schema is known (default: "the file ATTACH names"). */
  readonly what?: string
  /**
   * Why it is blamed without proof (it was too large to check, or it passes `quick_check` too): said in
   * the message, after its name. Only the main database is then known to pass `quick_check`.
   */
  readonly unproven?: string
}

/**
 * A corruption error (`SQLITE_NOTADB`, `SQLITE_CORRUPT`) that concerns another database than the
 * connection's own (`ATTACH` of a file that is not a database, a read of an attached schema whose
 * file is not one or has a corrupt page; the connection's own passing `quick_check`): QUERY_FAILED, `detail.otherDatabase`, `detail.file` (and `detail.schema`) where
 * known, not retryable, not fatal, and never naming the pool's file. CORRUPT with the pool's path
 * would send an operator to restore the pool's healthy database, and the pool would discard a
 * healthy connection.
 */
export function otherDatabaseError(error: DatabaseError, other: OtherDatabase): DatabaseError {
  const what = other.schema === undefined ? (other.what ?? 'the file ATTACH names') : `the attached database '${other.schema}'`
  const file = other.file === undefined || other.file === '' ? '' : `: ${other.file}`
  const unproven = other.unproven === undefined ? '' : ` (${other.unproven})`
  const kept = other.unproven === undefined ? 'which is kept' : 'which passes its quick_check and is kept'
  return new DatabaseError('QUERY_FAILED', `${messageOf(error.cause)} (${what}${file}${unproven}; not the pool's database, ${kept})`, {
    backend: 'sqlite',
    sqliteCode: error.sqliteCode,
    cause: error.cause,
    retryable: false,
    detail: {
      otherDatabase: true,
      ...(other.file === undefined || other.file === '' ? {} : { file: other.file }),
      ...(other.schema === undefined ? {} : { schema: other.schema }),
    },
  })
}

/**
 * `SQLITE_CANTOPEN` of an ATTACH naming a file that does not exist: the pool's connections open
 * without SQLITE_OPEN_CREATE (a deleted database file must never be recreated empty), which attached
 * databases inherit, so ATTACH cannot create a file as it does elsewhere. Restated with a message that
 * says so (QUERY_FAILED, `detail.file`, not fatal, as {@link mapSqliteError} maps it).
 */
export function attachMissingFileError(error: DatabaseError): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `${error.message} (the file does not exist: the pool's connections never create a database file, so an attached file must exist before ATTACH; an empty file is an empty database)`,
    {
      backend: 'sqlite',
      sqliteCode: error.sqliteCode,
      cause: error.cause,
      retryable: false,
      ...(error.detail === undefined ? {} : { detail: error.detail }),
    },
  )
}

const ATTACH_LITERAL = /^ATTACH\s+(?:DATABASE\s+)?'((?:[^']|'')*)'/i

/** The file an `ATTACH 'file' AS name` statement names; undefined when it is not a string literal. */
export function attachedFileOf(statement: string): string | undefined {
  return ATTACH_LITERAL.exec(statement)?.[1]?.replace(/''/g, "'")
}

// SQLITE_CANTOPEN of a statement naming the file it could not open (ATTACH, VACUUM INTO); the
// connection's own file is reported as "unable to open database file"
const OTHER_FILE_CANTOPEN = /^unable to open database: ([\s\S]+)$/

/**
 * Whether a mapped error came from SQLite itself (it has a `sqliteCode`), is better-sqlite3's refusal
 * of several statements with parameters (Postgres's server refuses the same text, 42601), or dbpool's
 * refusal of a result with two columns of one name (on Postgres the statement already ran when it is
 * refused, and the pool aborts the transaction there: the same here, though SQLite refused it before
 * it ran): what aborts the open transaction, as on Postgres. dbpool's check of values before running
 * (INVALID_PARAMETER) does not, on either backend.
 */
export function abortsTransaction(error: DatabaseError): boolean {
  return error.sqliteCode !== undefined || error.detail?.severalStatements === true || isDuplicateColumnError(error)
}

/** What {@link mapSqliteError} adds to messages and details. */
export interface SqliteErrorContext {
  /** The database path, named in CONNECTION_FAILED and CORRUPT messages. */
  readonly path?: string
  /**
   * `'run'`: the statement was prepared and failed while it ran (a step), so that a `SQLITE_ERROR`
   * not known as a prepare error is QUERY_FAILED (see {@link sqliteErrorCodeOf}).
   */
  readonly phase?: 'run'
}

/**
 * Maps anything better-sqlite3 throws to a {@link DatabaseError}: `SqliteError` through
 * {@link SQLITE_ERROR_CODES} (`SQLITE_ERROR` of a statement that ran: see {@link sqliteErrorCodeOf};
 * `SQLITE_CANTOPEN` naming another file, from `ATTACH` or `VACUUM INTO`: QUERY_FAILED, `detail.file`
 * that file, not fatal); better-sqlite3's own check of values against placeholders (too many, too
 * few, a missing named parameter) to INVALID_PARAMETER; its refusal of a text of several statements
 * with parameters to SYNTAX_ERROR (Postgres 42601); anything else (a TypeError) to QUERY_FAILED.
 */
export function mapSqliteError(err: unknown, context: SqliteErrorContext = {}): DatabaseError {
  if (DatabaseError.is(err)) return err
  const sqliteCode = nativeCode(err)
  const message = messageOf(err)
  if (sqliteCode !== undefined) {
    const otherFile = sqliteCode.startsWith('SQLITE_CANTOPEN') ? OTHER_FILE_CANTOPEN.exec(message)?.[1] : undefined
    if (otherFile !== undefined)
      // a statement's own failure (a missing directory, a typo in an archive's path): the connection
      // and its database are fine, and the file named is not the pool's
      return new DatabaseError('QUERY_FAILED', message, {
        backend: 'sqlite',
        sqliteCode,
        cause: err,
        retryable: false,
        detail: { file: otherFile },
      })
    const found = lookupSqliteCode(sqliteCode) ?? { code: 'QUERY_FAILED' }
    const code = sqliteErrorCodeOf(sqliteCode, message, context.phase) ?? found.code
    const mapping = code === found.code ? found : { code }
    const where =
      context.path !== undefined && (mapping.code === 'CONNECTION_FAILED' || mapping.code === 'CORRUPT') ? ` (${context.path})` : ''
    return new DatabaseError(mapping.code, `${message}${where}`, {
      backend: 'sqlite',
      sqliteCode,
      cause: err,
      ...(mapping.retryable === undefined ? {} : { retryable: mapping.retryable }),
      ...(where ? { detail: { path: context.path } } : {}),
    })
  }
  const name = errorName(err)
  // better-sqlite3 prepares one statement at a time: a text of several statements with parameters
  // (only a script without them runs, through exec()) is the statement's fault, as Postgres answers
  // it with 42601 ("cannot insert multiple commands into a prepared statement")
  if (name === 'RangeError' && /more than one statement/i.test(message))
    return new DatabaseError(
      'SYNTAX_ERROR',
      `a text of several statements cannot take parameters (only a script without parameters runs as several statements): ${message}`,
      { backend: 'sqlite', cause: err, retryable: false, detail: { severalStatements: true } },
    )
  // better-sqlite3 checks the values against the placeholders before running anything ("Too many
  // parameter values were provided", "Missing named parameter "x"")
  if ((name === 'RangeError' || name === 'TypeError') && /\bparameter/i.test(message))
    return new DatabaseError('INVALID_PARAMETER', `the statement's parameters do not fit its placeholders: ${message}`, {
      backend: 'sqlite',
      cause: err,
      retryable: false,
    })
  return new DatabaseError('QUERY_FAILED', message, { backend: 'sqlite', cause: err, retryable: false })
}

/**
 * better-sqlite3's refusal of a text of several statements given to a stream
 * (`pool.stream('select * from t; drop table t')`), with or without parameters: SYNTAX_ERROR saying
 * that a stream runs one statement (`detail.severalStatements`, as {@link mapSqliteError}, whose
 * message speaks of parameters: what keeps such a text of `query()` from running as a script).
 * Postgres refuses the same stream with 42601. Any other error is returned as it is.
 */
export function severalStatementsInStream(err: unknown): unknown {
  if (errorName(err) !== 'RangeError' || !/more than one statement/i.test(messageOf(err))) return err
  return new DatabaseError(
    'SYNTAX_ERROR',
    `a stream runs one statement and this text holds several: stream each statement on its own (query() runs a text of several statements without parameters as a script): ${messageOf(err)}`,
    { backend: 'sqlite', cause: err, retryable: false, detail: { severalStatements: true } },
  )
}

// duck-typed, not `instanceof`: the native addon may build its errors in another realm (jest's vm
// contexts, worker reloads), where `instanceof Error` is false
function nativeCode(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined
}

/** The message of an Error from any realm, or the value as text. */
export function messageOf(err: unknown): string {
  if (err !== null && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string')
    return (err as { message: string }).message
  return String(err)
}

/** The constructor name of an error from any realm (`RangeError`, `TypeError`, `SqliteError`, ...). */
export function errorName(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return undefined
  const name = (err as { name?: unknown }).name
  return typeof name === 'string' ? name : undefined
}
