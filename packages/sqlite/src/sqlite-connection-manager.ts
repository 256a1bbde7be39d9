import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import {
  DatabaseError,
  splitSqlStatements,
  type CompiledQuery,
  type ConnectionHooks,
  type ConnectionManager,
  type CursorOptions,
  type ExecuteOptions,
  type HealthCheckDetail,
  type HeldLock,
  type Lane,
  type LaneLayout,
  type QueryResult,
  type RowCursor,
  type SqlStatement,
  type TelemetryTarget,
  type TransactionSettings,
} from '@dbpool/core'
import {
  abortedTransactionError,
  checkStatementText,
  duplicateColumn,
  duplicateColumnError,
  isDuplicateColumnError,
  protoColumnError,
  transactionLeftOpenError,
  type DuplicateColumnContext,
  type ResultColumn,
} from '@dbpool/core/internal'
import Database from 'better-sqlite3'
import { StatementCache } from './statement-cache'
import { rowObjects, rowShape, type RowShape } from './row-objects'
import { allRows, runStatement } from './statement-call'
import { SqliteCursor } from './sqlite-cursor'
import { keptChangesError, rolledBackWhole, wasRolledBackWhole } from './sqlite-kept-changes'
import { WAL_IDENTITY_INTERVAL_MS, fileIdentityError, fileIdentityOf, fileIdentityProblem, type FileIdentity } from './file-identity'
import { DEFAULT_MAX_PARAMETERS, maxParametersOf, sqliteParameters } from './sqlite-params'
import { exactRows, hasUnsafeNumber, MAX_SAFE, narrow, narrowIntegers } from './sqlite-integers'
import {
  abortsTransaction,
  attachedFileOf,
  attachMissingFileError,
  errorName,
  isCorruptionCode,
  isFatalSqliteError,
  mapSqliteError,
  otherDatabaseError,
  severalStatementsInStream,
} from './sqlite-errors'

import { controlsTransaction, runsAtomically, runScript } from './sqlite-script'
import { isLockBusy, NATIVE_BUSY_TIMEOUT_MS, waitForLock } from './sqlite-lock-wait'
import { lockFileNextTo } from './sqlite-file-lock'
import { sqliteHealthChecks, walSizeBytes } from './sqlite-health'
import { firstPlaceholder } from './sqlite-lex'
import { mentionsPragma, scanPragmas, SETS_FOREIGN_KEYS, type PragmaScan } from './sqlite-pragma'
import { readSettings, restoreSettings, type SessionSettings } from './sqlite-session-settings'
import { resolveSqliteOptions, SYNCHRONOUS_LEVELS, TEMP_STORES, type ResolvedSqliteOptions, type SqliteOptions } from './sqlite-options'

/** The native connection: a better-sqlite3 `Database`. */
export type SqliteDatabase = Database.Database
type Statement = Database.Statement<unknown[], unknown>

/** `PRAGMA wal_checkpoint` modes. */
export type CheckpointMode = 'PASSIVE' | 'FULL' | 'RESTART' | 'TRUNCATE'

/** What `PRAGMA wal_checkpoint` reports. */
export interface CheckpointResult {
  /** True when a lock kept the checkpoint from finishing (it then did what it could). */
  readonly busy: boolean
  /** Frames in the WAL. */
  readonly logFrames: number
  /** Frames copied back into the database. */
  readonly checkpointedFrames: number
}

/**
 * What a statement does, read once when it is prepared (each native getter is a C++ call):
 * `read` (read-only, returns rows), `write` (changes the database), `commit` (COMMIT, END, RELEASE:
 * may make a transaction's writes durable), `control` (BEGIN, SAVEPOINT, ROLLBACK).
 */
type StatementKind = 'read' | 'write' | 'commit' | 'control'

/** A prepared statement and what the manager needs to know about it. */
interface CachedStatement {
  readonly stmt: Statement
  /** Returns rows (a SELECT, a PRAGMA that reads, an `INSERT ... RETURNING`). */
  readonly reader: boolean
  /** How its integers are read (see {@link IntegerReading}; `scan` becomes `narrow` when the connection is lent). */
  integers: IntegerReading
  readonly kind: StatementKind
  /**
   * Its text can expand a `*` (`select *`, `t.*`, `returning *`): SQLite re-prepares it silently
   * after a schema change (this connection's or another process's), and the expansion may then
   * gain a column whose name another one has. Its columns are checked after each run (see
   * {@link SqliteConnectionManager.#checkRanColumns}); a statement with explicit columns cannot gain
   * one (an ambiguous name fails the re-prepare).
   */
  readonly star: boolean
  /** Returns rows and writes nothing: it may run again (see {@link IntegerReading}). */
  readonly rereadable: boolean
  /**
   * A result column is named `__proto__` (see {@link prepareChecked}): it runs in better-sqlite3's raw
   * mode and its rows are built by {@link rowObjects} with the names of the plan that ran, read after
   * every run (better-sqlite3's own rows would drop that column: the assignment sets the prototype).
   */
  readonly raw: boolean
  /**
   * The PRAGMA settings its text changes (read once, when it is prepared: see {@link scanPragmas}),
   * undefined when none: the release restores them, and a `foreign_keys` one is refused inside a
   * transaction (see {@link SqliteConnectionManager.executeSync}).
   */
  readonly pragma: PragmaScan | undefined
  /**
   * The connection's schema versions when its columns were last checked after a run (-1: never): main's
   * `PRAGMA schema_version`, or every schema's (see {@link ConnectionState.schemas}) as one string.
   */
  checkedAt: number | string
  /** The statement may still hold a plan older than {@link checkedAt}: check its columns after the next run too. */
  recheck: boolean
}

/**
 * How a statement that returns rows keeps integers exact while `safeIntegers` is off. `scan`: rows
 * are read as numbers and scanned for one beyond ±(2^53 - 1) (better-sqlite3 rounded it); only then
 * is the statement read again with safe integers. Only for a statement that can run twice unseen: it
 * writes nothing (`sqlite3_stmt_readonly`) and runs on a connection the application never took
 * (`conn.native`, see {@link ConnectionState.appCode}: a function it registered there runs inside a
 * read-only SELECT, and a second run would call it again and drop the first call's result).
 * `narrow`: every other statement that returns rows (`INSERT ... RETURNING`, any read on a connection
 * lent through `conn.native`) runs once, reading bigints narrowed to numbers where exact. `plain`:
 * nothing to do (`safeIntegers` on).
 */
type IntegerReading = 'plain' | 'scan' | 'narrow'

/** Per-connection state the manager keeps beside the native handle. */
interface ConnectionState {
  readonly lane: Lane
  readonly statements: StatementCache<string, CachedStatement>
  fatal: DatabaseError | undefined
  lastWalCheck: number
  /** The file this connection opened; undefined for `:memory:`. */
  readonly identity: FileIdentity | undefined
  /** A write ran in the open transaction: COMMIT checks the file identity first. */
  dirty: boolean
  /** `select last_insert_rowid()` with safe integers, prepared when a rowid first exceeds 2^53 - 1. */
  rowid: Statement | undefined
  /** Set when `close()` returned (see {@link ManagedDatabase}). */
  closed: boolean
  /**
   * The pool destroyed it (`destroy()`): a statement still waiting on it, off the thread for a lock,
   * belongs to a lease close() revoked at its deadline, and fails with POOL_CLOSED (it never ran).
   */
  closedByPool: boolean
  /** Cursors open on it (`pool.stream()`): better-sqlite3 refuses its other statements meanwhile. */
  readonly cursors: Set<SqliteCursor<unknown>>
  /**
   * The error of a statement that failed inside the open transaction: the transaction is aborted, as
   * Postgres aborts it, and every statement but ROLLBACK (or ROLLBACK TO SAVEPOINT) is refused until
   * it ends (see {@link SqliteConnectionManager.transactionState}). Cleared when the transaction ends.
   */
  aborted: DatabaseError | undefined
  /**
   * The transaction was open when the statement behind {@link aborted} began, and SQLite ended it by
   * itself at that error (`RAISE(ROLLBACK)`, an `ON CONFLICT ROLLBACK` clause, SQLITE_FULL, an
   * interrupt). Until the transaction's owner answers with ROLLBACK or COMMIT (answered `ROLLBACK`),
   * or the release resets the connection, every other statement is refused: it would run in
   * autocommit and be kept, while the transaction reports that nothing was committed.
   */
  endedByEngine: boolean
  /**
   * The last script run on the connection left a transaction open after it may have committed part
   * of its work (its own COMMIT ran before its BEGIN: see `runScript`); read by
   * {@link SqliteConnectionManager.committedBeforeLeftOpen}, cleared by the next script and the reset.
   */
  committedBeforeLeftOpen: boolean
  /** `PRAGMA query_only` is on for the read-only transaction open on it (see {@link READ_ONLY_BEGIN}). */
  queryOnly: boolean
  /**
   * The writer is lent for read-lane work (see {@link SqliteConnectionManager.lendForRead}): `PRAGMA
   * query_only` is on until the release's `reset`. (A reader is query-only for its whole life.)
   */
  readLaneWork: boolean
  /**
   * The application took `conn.native` (see `nativeLent`): it may have registered a function
   * (`db.function`, `db.aggregate`, `db.table`, an extension) that a statement SQLite calls read-only
   * runs, with effects outside the database. Its statements are then never run twice to re-read an
   * integer (see {@link IntegerReading}). Never cleared (a registration lasts as long as the connection).
   */
  appCode: boolean
  /**
   * The last attempt of a statement that waits for a lock held elsewhere (see
   * {@link SqliteConnectionManager.execute}): a BUSY is then thrown, not answered with undefined.
   */
  lastAttempt: boolean
  /** The error of the last attempt that found a lock held elsewhere (the `cause` of a lock wait's QUERY_TIMEOUT). */
  busy: unknown
  /** `PRAGMA schema_version` (numbers), prepared when a statement that can expand a `*` first runs. */
  schemaVersion: Statement | undefined
  /** `select total_changes()` (numbers), prepared at the first write outside a transaction. */
  totalChanges: Statement | undefined
  /**
   * `total_changes()` read before the last write that began outside a transaction (about 0.1 µs, next
   * to 15 µs or more for the auto-commit write): on its constraint error, what it kept is the difference
   * (its triggers' changes included), see keptChangesError.
   */
  totalBefore: number | undefined
  /**
   * A text prepared or run on it may have attached a database or created a temp object (it contains
   * `temp` or `tach`, see {@link mayAddSchema}), or the application took `conn.native` (see
   * `nativeLent`): the `*` check then reads the schema version of every
   * schema (`PRAGMA database_list`), not main's alone. Never cleared (a false alarm costs a few µs per
   * run of a statement with a `*`, nothing else).
   */
  schemas: boolean
  /** `PRAGMA database_list` and `PRAGMA "<schema>".schema_version` per schema, prepared when {@link schemas} is first needed. */
  schemaStatements: { list: Statement; versions: Map<string, Statement> } | undefined
  /** The connection's settings as configured (see {@link readSettings}), read when it opened. */
  readonly settings: SessionSettings
  /**
   * The settings a PRAGMA run on it changed since it was last given back (`'all'`: the application
   * took `conn.native`): restored at the release, or at once after a lease-free statement (see
   * {@link SqliteConnectionManager.reset}). Undefined when none.
   */
  changedSettings: Set<string> | 'all' | undefined
  /** A failed restore of the `:memory:` connection was reported (once, until a restore succeeds). */
  restoreReported: boolean
  /**
   * A write whose text may create a temp object ran on it (see {@link mayAddSchema}), or the
   * application took `conn.native`: the end of the call (a lease-free statement, the release) drops
   * the temp objects (see {@link SqliteConnectionManager.#dropTempObjects}). Cleared when none is left.
   */
  mayHaveTemp: boolean
}

// how often (at most) a write looks at the -wal size
const WAL_CHECK_INTERVAL_MS = 250
// what #corruptAttached reads at most (quick_check of the files checked, together) on a corruption
// error's path, to tell whether an attached database or the pool's own is corrupt
const CORRUPTION_CHECK_MAX_BYTES = 64 * 1024 * 1024

/**
 * The SQLite {@link ConnectionManager} on better-sqlite3. One write connection (`lanes.writeMax` 1)
 * and `readers` read-only connections over the same WAL file; `:memory:` uses one connection that
 * lives as long as the manager.
 *
 * better-sqlite3 is synchronous: a statement runs to completion on the calling thread, so nothing
 * interleaves with it. Writers therefore wait for the single writer in the pool's async FIFO queue,
 * never in SQLite's busy handler (which would block the event loop). A lock another connection holds
 * (another process, another pool of this one) is waited for off the thread: SQLite's own busy
 * timeout is a few ms ({@link NATIVE_BUSY_TIMEOUT_MS}), then a statement that changed nothing is
 * tried again after a timer, up to `busyTimeoutMs` or the call's deadline (see {@link execute}).
 *
 * ```ts
 * const manager = new SqliteConnectionManager({ path: './data/app.db', readers: 4 })
 * const pool = new DatabasePool(manager, { max: 5 })
 * ```
 */
export class SqliteConnectionManager implements ConnectionManager<SqliteDatabase> {
  /** Always `'sqlite'`. */
  readonly backend = 'sqlite' as const
  /** `?` placeholders. */
  readonly dialect = 'sqlite' as const
  /** `sqlite:<path>`. */
  readonly target: string
  /** One writer; `readers` read-only connections. */
  readonly lanes: LaneLayout
  /** `db.namespace` of every span and operation metric: the file path. */
  readonly telemetryTarget: TelemetryTarget
  /** The validated options. */
  readonly options: ResolvedSqliteOptions
  readonly #open = new Set<SqliteDatabase>()
  /** SQLITE_MAX_VARIABLE_NUMBER, read from the first connection. */
  #maxParameters = DEFAULT_MAX_PARAMETERS
  #maxParametersRead = false
  readonly #routes: StatementCache<string, Lane>
  readonly #hasReaders: boolean
  #prepared = false
  #memory: SqliteDatabase | undefined
  /**
   * The `:memory:` database was discarded (closed by application code through `conn.native`, or a
   * setting the pool could not put back): its data went with it. Every later connect fails with this
   * CONNECTION_LOST instead of opening a new, empty database in its place (see {@link #connectMemory}).
   */
  #memoryLost: DatabaseError | undefined
  /** A read-only connection route() prepares on before the pool has one (see {@link #prepareBeforeConnections}). */
  #routeOnly: SqliteDatabase | undefined
  /** SQLite's own `busy_timeout`: a few ms at most; a longer wait for a lock happens off the thread (see {@link execute}). */
  readonly #nativeBusyTimeoutMs: number

  constructor(options: SqliteOptions) {
    this.options = resolveSqliteOptions(options)
    this.target = `sqlite:${this.options.path}`
    this.lanes = Object.freeze({ writeMax: 1, readers: this.options.readers })
    this.telemetryTarget = Object.freeze({ namespace: this.options.path })
    this.#hasReaders = this.options.readers > 0
    this.#nativeBusyTimeoutMs = Math.min(this.options.busyTimeoutMs, NATIVE_BUSY_TIMEOUT_MS)
    this.#routes = new StatementCache<string, Lane>(Math.max(100, this.options.statementCacheSize))
  }

  /** Path of the `-wal` file (meaningless for `:memory:`). */
  get walPath(): string {
    return `${this.options.path}-wal`
  }

  /** Connections currently open (the in-memory database counts once). */
  get openConnections(): number {
    return this.#open.size
  }

  /**
   * Opens and configures a connection. Setting the journal mode reads the file, which another
   * connection's exclusive lock (rollback-journal mode) can refuse: the attempt is then made again
   * after a timer, off the thread, for up to `busyTimeoutMs` (then BUSY); the pool's
   * `createTimeoutMs` bounds it too.
   */
  async connect(lane: Lane, hooks: ConnectionHooks): Promise<SqliteDatabase> {
    // SQLite connections are not lost asynchronously (no socket): failures surface on the next statement
    void hooks
    if (this.options.memory) return this.#connectMemory()
    if (this.options.busyTimeoutMs <= NATIVE_BUSY_TIMEOUT_MS) return this.#connectFile(lane)
    let busy: unknown
    const attempt = (): SqliteDatabase | undefined => {
      try {
        return this.#connectFile(lane)
      } catch (err) {
        // opening changes nothing (the journal mode is set to what it already is, or to the option's)
        if (!isLockBusy(this.mapError(err).sqliteCode)) throw err
        busy = err
        return undefined
      }
    }
    return (
      attempt() ??
      waitForLock(
        attempt,
        () => this.#connectFile(lane),
        { busyTimeoutMs: this.options.busyTimeoutMs },
        () => busy,
      )
    )
  }

  #connectFile(lane: Lane): SqliteDatabase {
    this.#prepareFile()
    const readonly = this.options.readonly || lane === 'read'
    // the file exists now (#prepareFile made it, or refused): a file deleted later is an error, never
    // silently recreated empty
    const db = this.#openDatabase(readonly, false)
    this.#configure(db, lane, readonly)
    // the file this connection opened: a write (and a ping) is refused once the path names another file, or none
    const identity = this.#identityOf(db)
    this.#condemnOnOtherFile(identity)
    this.#register(db, lane, identity, readSettings(db))
    return db
  }

  /**
   * A new connection opened another file than the connections already open (the path was replaced
   * while, say, only readers were open, so no write of theirs noticed): they are marked with the
   * `replaced` CONNECTION_LOST and discarded before they serve another statement. Left, a reader kept
   * the old file open while sharing the path's `-wal`/`-shm` with a writer on the new one, and
   * answered with a mix of both files.
   */
  /**
   * A lease changed `journal_mode` (or took `conn.native`): leaving WAL mode deletes the `-wal` and
   * the restore to WAL makes a new one, so the `-wal` each connection recorded is forgotten (the next
   * check records the new one) instead of being reported deleted, a false CONNECTION_LOST.
   */
  #forgetWal(): void {
    for (const other of this.#open) {
      const identity = stateOf(other)?.identity
      if (identity === undefined) continue
      identity.wal = undefined
      identity.walCheckedAt = undefined
    }
  }

  #condemnOnOtherFile(identity: FileIdentity): void {
    let error: DatabaseError | undefined
    for (const other of this.#open) {
      const state = stateOf(other)
      const opened = state?.identity
      if (state === undefined || opened === undefined || (opened.dev === identity.dev && opened.ino === identity.ino)) continue
      error ??= fileIdentityError(
        this.options.path,
        'replaced',
        'this connection (on the old file) is discarded; a new one opens the file the path names now',
      )
      state.fatal ??= error
    }
  }

  /**
   * False once the handle is closed (by the manager, or by user code through `conn.native.close()`)
   * or a fatal error was seen on it. Reads the connection's state, not the native `db.open` getter:
   * the pool asks before every lease-free statement (see {@link ManagedDatabase}).
   */
  isUsable(db: SqliteDatabase): boolean {
    const state = stateOf(db)
    if (state === undefined) return db.open
    return !state.closed && state.fatal === undefined
  }

  /**
   * The application took the `Database` (`conn.native`): a `CREATE TEMP TABLE` or an `ATTACH` it runs
   * there is never seen by {@link mayAddSchema}, so from now on the `*` check of this connection reads
   * every schema's version (a temp table shadowing a main one re-expands a cached `select *`), and its
   * reads are never run twice to re-read an integer (a function registered there may have effects:
   * see {@link ConnectionState.appCode}).
   */
  nativeLent(db: SqliteDatabase): void {
    const state = stateOf(db)
    if (state === undefined) return
    state.schemas = true
    state.mayHaveTemp = true
    // a PRAGMA run there is not seen: every setting is checked at the release
    state.changedSettings = 'all'
    if (!state.appCode) {
      // a function registered there may run inside a read: statements cached to be read twice
      // (`scan`) are read once from now on, with safe integers (see IntegerReading)
      state.appCode = true
      for (const entry of state.statements.values()) {
        if (entry.integers !== 'scan') continue
        entry.integers = 'narrow'
        entry.stmt.safeIntegers(true)
      }
    }
  }

  /**
   * `select 1`, after checking that the path still names the file the connection opened (a deleted,
   * moved or replaced file fails the ping with CONNECTION_LOST and the pool discards the connection).
   */
  async ping(db: SqliteDatabase, timeoutMs: number): Promise<void> {
    void timeoutMs // a synchronous call cannot be bounded; `select 1` needs microseconds
    try {
      const state = this.#state(db)
      this.#checkIdentity(db, state, 0)
      this.#statement(db, state, 'select 1').stmt.get()
    } catch (err) {
      throw this.#fail(db, err)
    }
  }

  /** Rolls back an open transaction, synchronously (the pool's release then stays synchronous); throws if that fails. */
  reset(db: SqliteDatabase): void {
    const state = stateOf(db)
    if (state) {
      state.aborted = undefined
      state.endedByEngine = false
      state.committedBeforeLeftOpen = false
      if (state.queryOnly || state.readLaneWork) {
        state.readLaneWork = false
        this.#setQueryOnly(db, state, false)
      }
      // a reader lent through conn.native may hold a temp object made there with query_only turned off:
      // it would shadow a main table for every later reader of the connection, which is closed instead
      if (state.lane === 'read' && state.changedSettings === 'all') this.#checkNoTempObjects(db, state)
    }
    if (db.inTransaction) {
      if (state) state.dirty = false
      try {
        db.exec('ROLLBACK')
      } catch (err) {
        throw this.#fail(db, err)
      }
      if (db.inTransaction)
        throw new DatabaseError('QUERY_FAILED', 'ROLLBACK left the connection inside a transaction', { backend: 'sqlite' })
    }
    // after the transaction: SQLite ignores `foreign_keys` inside one
    if (state?.changedSettings !== undefined) this.#restoreSettings(db, state)
    // a temp table made on the lease would shadow a main table for every later caller of the writer
    if (state?.mayHaveTemp === true && state.lane === 'write') this.#dropTempObjects(db, state)
  }

  /**
   * Drops every temp table, view and trigger of the writer (or the `:memory:` connection) at the end of
   * the call that made it: a lease-free statement, or the release of a lease or transaction. Left
   * there, `create temp table orders ...` would take every later caller's `insert into orders` (the
   * temp schema is searched before main), acknowledged and gone when the connection closes. A file
   * connection whose drop fails is closed instead (CONFIGURATION); the `:memory:` one is kept and the
   * drop tried again at the next release.
   */
  #dropTempObjects(db: SqliteDatabase, state: ConnectionState): void {
    try {
      const objects = db
        .prepare(
          "select type, name from temp.sqlite_schema where type in ('trigger', 'view', 'table') order by type = 'table', type = 'view'",
        )
        .raw()
        .all() as [string, string][]
      // temp tables that reference each other: a DROP with foreign keys on deletes their rows first and
      // fails on a reference (SQLite's implicit DELETE); off for the drops, outside any transaction
      const foreignKeys = objects.length > 0 && !db.inTransaction && db.pragma('foreign_keys', { simple: true }) === 1
      if (foreignKeys) db.pragma('foreign_keys = OFF')
      try {
        for (const [type, name] of objects) db.exec(`DROP ${type.toUpperCase()} IF EXISTS temp."${name.replaceAll('"', '""')}"`)
      } finally {
        if (foreignKeys) db.pragma('foreign_keys = ON')
      }
      state.mayHaveTemp = false
    } catch (err) {
      if (db === this.#memory) return
      const error = new DatabaseError(
        'CONFIGURATION',
        `a temp object left on the SQLite writer could not be dropped at the end of the call (${this.mapError(err).message}): it would shadow a main table for every later caller, so the connection is closed instead of reused`,
        { backend: 'sqlite', retryable: false, cause: err },
      )
      state.fatal ??= error
      throw error
    }
  }

  /**
   * Restores the settings a lease changed with PRAGMA (`foreign_keys`, `query_only`,
   * `recursive_triggers`, `busy_timeout`, `synchronous`...) to the pool's configuration, so the next
   * caller never runs, say, without foreign-key enforcement. A file connection with a setting that
   * could not be restored (another schema's, or one that did not read back) is closed instead (a fresh
   * one is configured): CONFIGURATION. The in-memory database lives on its one connection and is never
   * closed for this: what could be restored is, the rest is tried again at the next release, and each
   * failure is reported as a process warning (code `DBPOOL_SQLITE_SETTINGS`, once until a restore succeeds).
   *
   * @throws DatabaseError CONFIGURATION (file connections only; the pool then closes the connection).
   */
  #restoreSettings(db: SqliteDatabase, state: ConnectionState): void {
    const changed = state.changedSettings as Set<string> | 'all'
    state.changedSettings = undefined
    const outcome = restoreSettings(db, state.settings, changed)
    if (changed === 'all' || changed.has('journal_mode')) this.#forgetWal()
    if (outcome.error === undefined && outcome.unrestorable.length === 0) {
      state.restoreReported = false
      return
    }
    if (db === this.#memory) {
      // tried again at the next release; a setting of another schema stays as the lease left it
      if (outcome.failed.length > 0) state.changedSettings = changed === 'all' ? 'all' : new Set(outcome.failed)
      if (outcome.error !== undefined && !state.restoreReported) {
        state.restoreReported = true
        process.emitWarning(`${outcome.error.message} (the in-memory database is kept; retried at the next release)`, {
          code: 'DBPOOL_SQLITE_SETTINGS',
        })
      }
      return
    }
    const error =
      outcome.error ??
      new DatabaseError(
        'CONFIGURATION',
        `a PRAGMA changed a setting of this SQLite connection that the pool cannot restore (${outcome.unrestorable.join(', ')}: another schema's): the connection is closed instead of reused`,
        { backend: 'sqlite', detail: { pragmas: outcome.unrestorable } },
      )
    state.fatal ??= error
    throw error
  }

  /**
   * `'open'` while SQLite has a transaction open on the handle (`db.inTransaction`), `'failed'` when a
   * statement failed inside it (aborted as Postgres aborts it: see {@link executeSync}), `'unknown'`
   * for a closed handle (closing rolled a transaction back; its next statement is CONNECTION_LOST),
   * else `'idle'`. Core's transaction() compares it with what it began, to notice a transaction
   * SQLite ended by itself (a conflict clause ROLLBACK, `RAISE(ROLLBACK)`, SQLITE_FULL,
   * SQLITE_INTERRUPT, ...), one that can no longer commit, or one ended through `tx.native` (idle).
   */
  transactionState(db: SqliteDatabase): 'idle' | 'open' | 'failed' | 'unknown' {
    // better-sqlite3's inTransaction is false on a closed handle
    if (!db.inTransaction) {
      const state = stateOf(db)
      return state?.endedByEngine === true ? 'failed' : state?.closed === true ? 'unknown' : 'idle'
    }
    return stateOf(db)?.aborted === undefined ? 'open' : 'failed'
  }

  /** Whether the script just run left a transaction open after it may have committed part of its work (see `runScript`). */
  committedBeforeLeftOpen(db: SqliteDatabase): boolean {
    return stateOf(db)?.committedBeforeLeftOpen === true && db.inTransaction
  }

  async destroy(db: SqliteDatabase): Promise<void> {
    const state = stateOf(db)
    if (state) state.closedByPool = true
    // a cursor still open (close()'s deadline revoked its lease) keeps the handle busy: ROLLBACK and
    // close would both be refused
    if (state) for (const cursor of [...state.cursors]) cursor.close()
    try {
      if (db.open && db.inTransaction) db.exec('ROLLBACK')
    } catch {
      // closing discards the transaction anyway
    }
    // the in-memory database outlives its connections (closing it would drop the data); end() closes it
    if (db === this.#memory) {
      if (state?.fatal === undefined && db.open) return
      // discarded: its data is gone, and the pool is told so at every later connect, never handed an empty one
      this.#memoryLost ??= memoryLostError(state?.fatal)
    }
    try {
      if (db.open && state?.lane === 'write' && !this.options.readonly && !this.options.memory) this.checkpoint(db, 'TRUNCATE')
    } catch {
      // best effort: the last connection to close checkpoints the WAL anyway
    }
    this.#close(db)
  }

  readonly #fairness = new EventLoopFairness(YIELD_AFTER_MS)

  async execute<R = Record<string, unknown>>(db: SqliteDatabase, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    // a statement runs synchronously to its end and cannot be interrupted: an aborted signal is honoured
    // before it starts, `timeoutMs` cannot cut one short (see README)
    if (options.signal?.aborted) {
      throw new DatabaseError('QUERY_CANCELLED', 'the statement was cancelled before it started', {
        backend: 'sqlite',
        cause: options.signal.reason,
      })
    }
    // statements on a lease run back to back in microtasks (no I/O ever yields): let timers, sockets
    // and health probes in while a burst of transactions has held the thread for a while
    if (this.#fairness.due()) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      // aborted while it waited for the event loop: still not started
      if (options.signal?.aborted) {
        throw new DatabaseError('QUERY_CANCELLED', 'the statement was cancelled before it started', {
          backend: 'sqlite',
          retryable: true,
          cause: options.signal.reason,
          detail: { started: false },
        })
      }
    }
    return this.#runSync<R>(db, query) ?? this.#waitForLock<R>(db, query, options)
  }

  /**
   * A statement that found a lock another connection holds, and changed nothing (see
   * {@link #mayWaitForLock}), tried again after a timer until it runs, `busyTimeoutMs` passes (then
   * BUSY, as SQLite's busy handler failed it), or the call's `timeoutMs` or `signal` ends the wait
   * (QUERY_TIMEOUT, retryable, or QUERY_CANCELLED: not run). The lease's later statements wait
   * behind it (core's `Lease.pending`): the order on a connection is kept.
   */
  #waitForLock<R>(db: SqliteDatabase, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    const state = this.#state(db)
    const last = (): QueryResult<R> => {
      state.lastAttempt = true
      try {
        return this.#runSync<R>(db, query)!
      } finally {
        state.lastAttempt = false
      }
    }
    return waitForLock(
      () => this.#runSync<R>(db, query),
      last,
      { busyTimeoutMs: this.options.busyTimeoutMs, timeoutMs: options.timeoutMs, signal: options.signal },
      () => (state.busy === undefined ? undefined : this.mapError(state.busy)),
    )
  }

  /**
   * A leased statement (no deadline, no signal) run now, as {@link execute} would run it, unless the
   * thread has run statements for {@link YIELD_AFTER_MS} without the event loop turning, or the
   * statement found a lock another connection holds and changed nothing: then undefined, and the pool
   * calls `execute`, which lets the event loop in first, or waits for the lock off the thread.
   */
  executeNow<R = Record<string, unknown>>(db: SqliteDatabase, query: CompiledQuery): QueryResult<R> | undefined {
    if (this.#fairness.due()) return undefined
    return this.#runSync<R>(db, query)
  }

  /**
   * Runs one statement to completion before returning (the pool's lease-free path for `pool.query`).
   *
   * Inside a transaction a failed statement aborts the transaction, as on Postgres (SQLite itself
   * only undoes the statement and would commit the rest): until ROLLBACK every statement is refused
   * without running, with TRANSACTION_ROLLED_BACK whose `cause` is the first error; a COMMIT (or END)
   * rolls back and resolves with `command: 'ROLLBACK'`, as Postgres answers it; ROLLBACK TO SAVEPOINT
   * undoes the failure and the transaction goes on.
   *
   * Undefined when the statement found a lock another connection holds (SQLITE_BUSY after SQLite's
   * short busy timeout) and changed nothing: the caller waits off the thread and runs it again
   * ({@link execute}; the pool does that on a lease).
   *
   * A lease-free statement is followed by no release, so one that sets a connection setting with
   * PRAGMA is refused before it is prepared or run (CONFIGURATION: the change would not last; see
   * {@link checkLeaseFree}). A setting left to restore from an earlier lease (`:memory:` after a failed
   * restore) is restored again after it.
   */
  executeSync<R = Record<string, unknown>>(db: SqliteDatabase, query: CompiledQuery): QueryResult<R> | undefined {
    const result = this.#runSync<R>(db, query, true)
    const state = stateOf(db)
    if (state?.changedSettings !== undefined && !db.inTransaction) this.#restoreSettings(db, state)
    // a lease-free CREATE TEMP on the writer would shadow a main table for every later caller
    if (state?.mayHaveTemp === true && state.lane === 'write' && !db.inTransaction) {
      try {
        this.#dropTempObjects(db, state)
      } catch {
        // the statement ran: its result stands, and the connection is discarded (state.fatal)
      }
    }
    return result
  }

  /**
   * Runs one statement (see {@link executeSync}). A statement that sets `PRAGMA foreign_keys` (any
   * spelling) inside a transaction is refused with CONFIGURATION and not run: SQLite ignores it there
   * silently, and a table rebuild written for it (`DROP TABLE` of a parent) would then run its
   * `ON DELETE CASCADE` and delete every child row. The refusal aborts the transaction (only
   * ROLLBACK runs), so nothing written after it can be committed.
   */
  #runSync<R>(db: SqliteDatabase, query: CompiledQuery, leaseFree = false): QueryResult<R> | undefined {
    const state = this.#state(db)
    // no upfront `db.open` (a native call per statement): a closed connection throws, and #fail reports it as CONNECTION_LOST
    const { text } = query
    if (state.aborted !== undefined) {
      const answered = this.#whileAborted<R>(db, state, text)
      if (answered !== undefined) return answered
    }
    // SQLite rolls back by itself on some errors (BUSY, FULL, IOERR): a later ROLLBACK is then a no-op, not a failure
    const inTransaction = db.inTransaction
    if (!inTransaction && text === 'ROLLBACK') return { rows: [], rowCount: 0 }
    let result: QueryResult<R>
    let cached: CachedStatement | undefined
    try {
      const params = sqliteParameters(query.params, this.#maxParameters)
      // one lookup for a statement run again (the cache answers its newest entry without a map lookup)
      cached = state.statements.get(text) ?? this.#prepareOrExec(db, state, text, params, leaseFree)
      if (cached === undefined) {
        result = { rows: [], rowCount: 0 }
      } else {
        if (cached.pragma !== undefined) this.#beforePragma(db, state, cached.pragma, leaseFree)
        const kind = cached.kind
        if (kind !== 'read') this.#beforeChange(db, state, kind)
        if (kind === 'control' && text === READ_ONLY_BEGIN) this.#setQueryOnly(db, state, true)
        if (cached.reader) {
          let rows: R[]
          if (cached.raw) {
            const integers = cached.integers
            const values = allRows(cached.stmt, params)
            // the names of the plan that just ran (SQLite may have re-prepared it at this run)
            const shape = readShape(db, cached)
            if (integers === 'narrow') narrowIntegers(values)
            rows = (rowObjects(values, shape, integers === 'scan') ?? exactRows(cached.stmt, params, shape)) as R[]
          } else {
            rows = (cached.star ? this.#allChecked(db, state, cached, params) : allRows(cached.stmt, params)) as R[]
            if (cached.integers === 'scan') {
              if (hasUnsafeNumber(rows)) rows = exactRows(cached.stmt, params)
            } else if (cached.integers === 'narrow') narrowIntegers(rows)
            rows = sameRealm(rows)
          }
          // a write returning rows (`INSERT ... RETURNING`) reports the rowid as run() does (one more statement, on this path only)
          result = cached.rereadable
            ? { rows, rowCount: rows.length }
            : { rows, rowCount: rows.length, lastInsertRowid: this.#rowidOf(db, state) }
        } else {
          // `VACUUM INTO` on read-only work (a backup's `vacuum` copy) writes another file, never this database
          const info =
            kind === 'write' && (state.lane === 'read' || state.readLaneWork) && VACUUM_INTO.test(text)
              ? this.#copyInto(db, state, cached.stmt, params)
              : runStatement(cached.stmt, params)
          let rowid = info.lastInsertRowid
          if (typeof rowid === 'number' && (rowid > MAX_SAFE || rowid < -MAX_SAFE)) rowid = this.#exactRowid(db, state)
          result = { rows: [], rowCount: info.changes, lastInsertRowid: rowid }
        }
        if (kind === 'write' && state.schemas && !state.mayHaveTemp && mayAddSchema(text)) state.mayHaveTemp = true
        if ((kind === 'commit' || kind === 'control') && (state.dirty || state.queryOnly) && !db.inTransaction) {
          // a finished transaction has nothing left to check at COMMIT, and its read-only mode ends with it
          state.dirty = false
          if (state.queryOnly) this.#setQueryOnly(db, state, false)
        }
      }
    } catch (err) {
      // a read-only BEGIN that failed, or a transaction SQLite ended at an error: writes are allowed again
      if (state.queryOnly && db.open && !db.inTransaction) this.#setQueryOnly(db, state, false)
      if (!state.lastAttempt && this.#mayWaitForLock(db, err, inTransaction, text, cached?.kind)) {
        state.busy = err
        return undefined
      }
      throw this.#fail(db, err, inTransaction, text, cached?.kind)
    }
    if (state.lane === 'write') this.#maybeCheckpoint(db, state)
    // a reader's lease-free BEGIN, SAVEPOINT or script that left a transaction open would keep the
    // reader on its snapshot (stale reads, the WAL never checkpointed): the pool rolls it back (see
    // ConnectionManager.executeSync); a cached read is not asked (no native call on the hot path)
    else if (leaseFree && (cached === undefined || cached.kind !== 'read') && db.inTransaction)
      throw transactionLeftOpenError('sqlite', 'query', state.committedBeforeLeftOpen)
    return result
  }

  /**
   * Whether a statement that failed may wait for the lock and run again: the error is SQLITE_BUSY (or
   * BUSY_RECOVERY: a lock another connection holds) and the attempt changed nothing, by SQLite's rules
   * (https://www.sqlite.org/rescode.html#busy, lang_transaction.html):
   * - it was refused while being prepared (the schema could not be read);
   * - no transaction was open before it and none is after: an auto-commit statement that fails is
   *   rolled back whole (also when its own commit got BUSY, in rollback-journal mode), a
   *   `BEGIN IMMEDIATE` that got BUSY did not begin; a multi-statement text only when it ran as one
   *   transaction, rolled back whole (see runScript);
   * - a COMMIT, END or RELEASE that got BUSY with the transaction still open (rollback-journal mode:
   *   readers kept it from the exclusive lock): SQLite kept the transaction, nothing was committed;
   * - a read-only statement inside a transaction still open: it could not take its read lock.
   * Never a write inside a transaction (SQLite itself does not wait there: the connection may hold a
   * lock the other one waits for, or a snapshot that is already stale), and never with `busyTimeoutMs`
   * at most SQLite's own short wait. Runs only on the failure path. `kind`: undefined when the
   * statement was not prepared (a script, or a prepare that failed).
   */
  #mayWaitForLock(db: SqliteDatabase, err: unknown, inTransaction: boolean, text: string, kind: StatementKind | undefined): boolean {
    if (this.options.busyTimeoutMs <= NATIVE_BUSY_TIMEOUT_MS || !db.open) return false
    if (DatabaseError.is(err)) {
      // a multi-statement script's error, from runScript (a restated one, whose outcome is unknown, is not retryable)
      return (
        isLockBusy(err.sqliteCode) && err.retryable && !inTransaction && !db.inTransaction && kind === undefined && runsAtomically(text)
      )
    }
    if (!isLockBusy(this.mapError(err).sqliteCode)) return false
    if (kind === undefined) return true
    if (!inTransaction) return !db.inTransaction
    return db.inTransaction && (kind === 'commit' || kind === 'read')
  }

  /**
   * A cursor over `query`'s rows for `pool.stream()` (see {@link SqliteCursor}): better-sqlite3's
   * `iterate()` on a statement prepared for it, read in batches with a `setImmediate` between them.
   * The text and parameters are checked as in `execute` (SYNTAX_ERROR, INVALID_PARAMETER, nothing
   * run). Integers follow `execute`'s rule: with `safeIntegers` off every INTEGER is read as a bigint
   * and narrowed to a number where exact (a row cannot be read twice, so nothing is rounded first).
   */
  openCursor<R = Record<string, unknown>>(db: SqliteDatabase, query: CompiledQuery, options: CursorOptions): RowCursor<R> {
    const state = this.#state(db)
    // an aborted transaction refuses the stream's statement too (see executeSync)
    if (state.aborted !== undefined && (db.inTransaction || state.endedByEngine)) throw abortedTransactionError('sqlite', state.aborted)
    let stmt: Statement
    let params: readonly unknown[]
    let star = false
    let raw = false
    try {
      params = sqliteParameters(query.params, this.#maxParameters)
      checkStatementText(query.text, 'sqlite')
      if (!state.schemas && mayAddSchema(query.text)) state.schemas = true
      ;({ stmt, star, raw } = prepareChecked(db, query.text))
      // a write returning a `__proto__` column makes its changes at the first step, before its
      // columns could be checked: refused before it runs (pool.query() returns it)
      if (raw && !stmt.readonly) {
        const at = stmt.columns().findIndex((c) => c.name === '__proto__')
        throw protoColumnError(at + 1, 'sqlite')
      }
    } catch (err) {
      throw this.#fail(db, severalStatementsInStream(err))
    }
    const kind = statementKind(query.text, stmt.readonly)
    const pragma = pragmaOf(query.text)
    if (pragma !== undefined) {
      try {
        this.#beforePragma(db, state, pragma)
      } catch (err) {
        throw this.#fail(db, err)
      }
    }
    // nothing else runs on the connection while its cursor is open: a transaction gone at the cursor's
    // error was ended by SQLite (see ConnectionState.endedByEngine)
    const inTransaction = db.inTransaction
    const narrowing = stmt.reader && !this.options.safeIntegers
    if (narrowing) stmt.safeIntegers(true)
    const cursor = new SqliteCursor<R>(stmt, params, options.batchSize, {
      narrowing,
      // raw rows: keyed by the columns of the plan that ran, read after the first batch
      ...(raw ? { shapeAfterFirstBatch: () => shapeOf(stmt, db.inTransaction ? { ran: true, aborted: true } : { ran: true }) } : {}),
      // a read: its columns checked after the first batch, before any row is handed out
      ...(star && stmt.readonly && !raw ? { checkColumns: () => void checkColumns(stmt, true, true) } : {}),
      // a write returning rows: SQLite makes every change at the first step; run whole, checked (see #allChecked)
      ...(star && !stmt.readonly
        ? {
            materialize: () =>
              this.#allChecked(
                db,
                state,
                {
                  stmt,
                  reader: true,
                  integers: 'plain',
                  kind,
                  star,
                  rereadable: false,
                  raw: false,
                  checkedAt: -1,
                  recheck: true,
                  pragma: undefined,
                },
                params,
              ),
          }
        : {}),
      busyTimeoutMs: this.options.busyTimeoutMs,
      // its first batch, before any row: the statement changed nothing (see executeSync)
      mayWaitForLock: (err) => this.#mayWaitForLock(db, err, inTransaction, query.text, kind),
      before: () => {
        if (kind !== 'read') this.#beforeChange(db, state, kind)
      },
      fail: (err) => this.#fail(db, err, inTransaction, query.text, kind),
      ended: () => {
        state.cursors.delete(cursor)
      },
    })
    state.cursors.add(cursor)
    return cursor
  }

  /**
   * Before a statement whose PRAGMAs change settings: refuses one sent without a lease (`leaseFree`:
   * the change would not last, see {@link checkLeaseFree}); refuses one that sets `foreign_keys` inside a
   * transaction (open before it, or opened by the text itself), which SQLite would ignore, aborting
   * the open transaction; otherwise notes the settings for the release to restore.
   */
  #beforePragma(db: SqliteDatabase, state: ConnectionState, scan: PragmaScan, leaseFree = false): void {
    if (leaseFree) throw leaseFreeSettingError(scan.names)
    // read-only work (a reader, the writer lent for read-lane work, a read-only transaction) stays read-only
    if ((state.lane === 'read' || state.readLaneWork || state.queryOnly) && scan.names.includes('query_only')) {
      const error = queryOnlyChangeError()
      if (db.inTransaction) state.aborted ??= error
      throw error
    }
    if (scan.effect === SETS_FOREIGN_KEYS && (scan.foreignKeysInOwnTransaction || db.inTransaction)) {
      const error = foreignKeysInTransactionError()
      if (db.inTransaction) state.aborted ??= error
      throw error
    }
    if (state.changedSettings === 'all') return
    state.changedSettings ??= new Set()
    for (const name of scan.names) state.changedSettings.add(name)
  }

  /**
   * A statement sent while the open transaction is aborted ({@link ConnectionState.aborted}): the
   * answer for a COMMIT or END (the transaction is rolled back instead, command `'ROLLBACK'`);
   * undefined for ROLLBACK and ROLLBACK TO, which run (the latter ends the aborted state); throws
   * TRANSACTION_ROLLED_BACK for anything else, which is not run. A text of several statements that
   * would get such an answer for its first one (`commit; insert ...`) is refused whole, nothing run,
   * the transaction left as it was ({@link abortedScriptError}): the answer stands for one statement.
   */
  #whileAborted<R>(db: SqliteDatabase, state: ConnectionState, text: string): QueryResult<R> | undefined {
    const first = state.aborted
    if (!db.inTransaction) {
      // (a savepoint went with the transaction: ROLLBACK TO is refused too)
      if (state.endedByEngine && (ROLLBACK_TO.test(text) || (!ROLLBACK.test(text) && !COMMITS_TRANSACTION.test(text))))
        throw abortedTransactionError('sqlite', first)
      if (state.endedByEngine && severalStatements(text)) throw abortedScriptError(first)
      // the owner ends the transaction SQLite already ended: ROLLBACK (in any spelling) is a no-op,
      // COMMIT answers ROLLBACK
      const ended = state.endedByEngine
      state.aborted = undefined
      state.endedByEngine = false
      if (!ended) return undefined
      return COMMITS_TRANSACTION.test(text) ? { rows: [], rowCount: 0, command: 'ROLLBACK' } : { rows: [], rowCount: 0 }
    }
    if (ROLLBACK_TO.test(text)) {
      // the savepoint undoes the failed statement: the transaction may go on (a failing ROLLBACK TO aborts it again)
      state.aborted = undefined
      return undefined
    }
    if (ROLLBACK.test(text)) return undefined
    if (COMMITS_TRANSACTION.test(text)) {
      if (severalStatements(text)) throw abortedScriptError(first)
      state.dirty = false
      try {
        db.exec('ROLLBACK')
      } catch (err) {
        throw this.#fail(db, err)
      }
      state.aborted = undefined
      if (state.queryOnly) this.#setQueryOnly(db, state, false)
      return { rows: [], rowCount: 0, command: 'ROLLBACK' }
    }
    throw abortedTransactionError('sqlite', first)
  }

  beginStatement(settings: TransactionSettings): string {
    // every isolation level is satisfied: SQLite transactions are serializable. A read-write
    // transaction takes the write lock at BEGIN so it can never fail later on a lock upgrade.
    if (settings.readOnly || this.options.readonly) return READ_ONLY_BEGIN
    return 'BEGIN IMMEDIATE'
  }

  /**
   * `PRAGMA query_only` on for a read-only transaction (from its BEGIN until it ends), off after: a
   * write of any kind, a temporary table's too, is then READ_ONLY (SQLITE_READONLY), as Postgres
   * refuses it (25006) in a `READ ONLY` transaction. A reader's read-only file alone still let
   * `CREATE TEMP TABLE` through. Throws when the pragma cannot be set (the connection is discarded).
   */
  #setQueryOnly(db: SqliteDatabase, state: ConnectionState, on: boolean): void {
    state.queryOnly = on
    // a reader is query-only for its whole life (set when it opens), the writer for a read-lane lease
    if (state.lane === 'read' || state.readLaneWork) return
    db.pragma(on ? 'query_only = ON' : 'query_only = OFF')
  }

  /**
   * Runs `VACUUM INTO` with `query_only` off for the statement alone (SQLite refuses it under
   * query_only, though it writes only the new file): the read lane copies one snapshot while writers
   * go on (`BackupManager`'s `vacuum` method). On again after it, whatever its outcome.
   */
  #copyInto(db: SqliteDatabase, state: ConnectionState, stmt: Statement, params: readonly unknown[]): Database.RunResult {
    db.pragma('query_only = OFF')
    try {
      return runStatement(stmt, params)
    } finally {
      try {
        db.pragma('query_only = ON')
      } catch (err) {
        // never reused writable: the pool closes it
        state.fatal ??= this.mapError(err)
      }
    }
  }

  /**
   * The pool lends the writer for read-lane work (`{ lane: 'read' }` on a pool without readers:
   * `readers: 0`, a rollback-journal file, `:memory:`): `PRAGMA query_only` on until the release, so a
   * write there is READ_ONLY (SQLITE_READONLY) as on a reader. A connection whose pragma fails is
   * marked unusable (the pool closes it at the release) and its writes are refused by
   * {@link #beforeChange}.
   */
  lendForRead(db: SqliteDatabase): void {
    const state = stateOf(db)
    if (state === undefined || state.lane === 'read') return
    state.readLaneWork = true
    try {
      db.pragma('query_only = ON')
    } catch (err) {
      state.fatal ??= this.mapError(err)
    }
  }

  /** CONFIGURATION (and the connection closed) when the reader holds a temp table, view, index or trigger. */
  #checkNoTempObjects(db: SqliteDatabase, state: ConnectionState): void {
    let count: number
    try {
      count = Number(db.prepare('select count(*) from temp.sqlite_schema').pluck().get())
    } catch (err) {
      throw this.#fail(db, err)
    }
    if (count === 0) return
    const error = new DatabaseError(
      'CONFIGURATION',
      `a temp object (${count}) was created on a SQLite reader through conn.native: it would shadow a main table for every later read on that reader, so the reader is closed instead of reused`,
      { backend: 'sqlite', retryable: false },
    )
    state.fatal ??= error
    throw error
  }

  /** `phase` `'run'`: the statement was prepared and failed while it ran (see `sqliteErrorCodeOf`). */
  mapError(err: unknown, phase?: 'run'): DatabaseError {
    return mapSqliteError(err, phase === undefined ? { path: this.options.path } : { path: this.options.path, phase })
  }

  /**
   * A lock held across connections, pools and processes on this database until `release()`: an
   * exclusive SQLite lock on `<database>-<name>.lock` next to the file (see `lockFileNextTo`), freed
   * by the operating system if the process dies. An in-memory database lives in this process only,
   * and a pool opened `readonly` writes nothing (its work cannot interleave with a writer's run; a
   * read-only deployment's directory need not be writable): nothing to lock, no file made.
   *
   * @throws DatabaseError BUSY when another holder kept it past `timeoutMs`; CONFIGURATION
   *   (`detail.lockFile`, `detail.reason`) when the lock file cannot be created or opened;
   *   QUERY_CANCELLED when `signal` (the pool's close()) aborts the wait.
   */
  async exclusiveLock(name: string, timeoutMs: number, signal?: AbortSignal): Promise<HeldLock> {
    // nothing to keep apart: no other process opens an in-memory database; a read-only pool writes nothing
    if (this.options.memory || this.options.readonly) return { release: () => undefined }
    return lockFileNextTo(this.options.path, name, timeoutMs, signal)
  }

  /**
   * A `pool.query` that waits for a lease of its own (no idle connection): refused, as on the idle
   * connection, when it sets a connection setting with PRAGMA (see {@link leaseFreeSettingError}).
   *
   * @throws DatabaseError CONFIGURATION, before anything runs.
   */
  checkLeaseFree(query: CompiledQuery): void {
    const scan = scanPragmas(query.text, false)
    if (scan.effect !== 0) throw leaseFreeSettingError(scan.names)
  }

  /**
   * `read` for a statement better-sqlite3 reports as a read-only query (`reader && readonly`),
   * `write` otherwise. Classified by preparing it on the writer (cached by text), never run there; a
   * text holding a PRAGMA (`EXPLAIN PRAGMA` too) goes to the writer without being prepared.
   */
  route(query: CompiledQuery): Lane {
    if (!this.#hasReaders) return 'write'
    const known = this.#routes.get(query.text)
    if (known !== undefined) return known
    // never prepared here: SQLite applies a flag PRAGMA (`foreign_keys = OFF`, `EXPLAIN PRAGMA ...`)
    // when it prepares it, and the writer may be held by another lease
    if (mentionsPragma(query.text)) {
      this.#routes.set(query.text, 'write')
      return 'write'
    }
    const db = this.#classifier()
    let lane: Lane
    try {
      // before the pool's first connection exists: prepared on a private read-only one (a stream of a
      // SELECT routed to the writer would hold it, and a write in its loop would wait for it forever)
      const stmt = db === undefined ? this.#prepareBeforeConnections(query.text) : this.#statement(db, this.#state(db), query.text).stmt
      if (stmt === undefined) return 'write'
      lane = stmt.reader && stmt.readonly ? 'read' : 'write'
    } catch {
      // an error (unknown table, syntax) is reported by the writer when the statement runs
      return 'write'
    }
    this.#routes.set(query.text, lane)
    return lane
  }

  async healthChecks(db: SqliteDatabase, options: { readonly deep: boolean; readonly timeoutMs: number }): Promise<HealthCheckDetail[]> {
    const identity = stateOf(db)?.identity
    return sqliteHealthChecks(db, options.deep, {
      path: this.options.path,
      timeoutMs: options.timeoutMs,
      walCheckpointThresholdBytes: this.options.walCheckpointThresholdBytes,
      ...(identity === undefined ? {} : { identity }),
    })
  }

  async end(): Promise<void> {
    for (const db of [...this.#open]) this.#close(db)
    this.#memory = undefined
    this.#closeRouteOnly()
    this.#routes.clear()
  }

  /**
   * Runs `PRAGMA wal_checkpoint(mode)` on a write connection without waiting in the busy handler
   * (busy_timeout is set to 0 for the call) and skips it while one of this manager's readers is in
   * a read transaction, whose snapshot a RESTART or TRUNCATE would have to wait for.
   */
  checkpoint(db: SqliteDatabase, mode: CheckpointMode = 'TRUNCATE'): CheckpointResult {
    if (mode !== 'PASSIVE' && this.#readerInTransaction()) return { busy: true, logFrames: -1, checkpointedFrames: -1 }
    db.pragma('busy_timeout = 0')
    try {
      const row = db.pragma(`wal_checkpoint(${checkMode(mode)})`, { simple: false }) as {
        busy: number
        log: number
        checkpointed: number
      }[]
      const first = row[0] ?? { busy: 0, log: 0, checkpointed: 0 }
      return { busy: Number(first.busy) !== 0, logFrames: Number(first.log), checkpointedFrames: Number(first.checkpointed) }
    } finally {
      db.pragma(`busy_timeout = ${this.#nativeBusyTimeoutMs}`)
    }
  }

  // ---- internals ----

  /** Once per manager: the directory and file exist, and the file is in the journal mode (readers can't set it). */
  #prepareFile(): void {
    if (this.#prepared) return
    const { path, createIfMissing, readonly } = this.options
    const dir = dirname(path)
    // the option that keeps it from being created, as the user set it: readonly wins over createIfMissing
    const notCreated = readonly ? 'a read-only pool never creates it' : 'createIfMissing is false'
    if (!existsSync(dir)) {
      if (!createIfMissing || readonly) throw this.#cantOpen(`directory ${dir} does not exist, and ${notCreated}`)
      try {
        makeDirectoryLevels(dir)
      } catch (err) {
        throw this.#cantOpen(`directory ${dir} cannot be created: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
      }
    }
    if (!existsSync(path) && (!createIfMissing || readonly)) throw this.#cantOpen(`the file does not exist, and ${notCreated}`)
    if (!readonly) {
      const db = this.#openDatabase(false, createIfMissing)
      try {
        this.#applyJournalMode(db)
      } finally {
        db.close()
      }
    }
    this.#prepared = true
  }

  #openDatabase(readonly: boolean, create: boolean): SqliteDatabase {
    const { path } = this.options
    let db: SqliteDatabase
    try {
      db = new ManagedDatabase(path, { readonly, fileMustExist: !create || readonly, timeout: this.#nativeBusyTimeoutMs })
    } catch (err) {
      const mapped = this.mapError(err)
      if (mapped.code === 'CONNECTION_FAILED' || !mapped.sqliteCode) throw this.#cantOpen(mapped.message, err)
      throw mapped
    }
    return db
  }

  #connectMemory(): SqliteDatabase {
    if (this.#memory?.open && stateOf(this.#memory)?.fatal === undefined) return this.#memory
    // its rows went with the discarded connection: a new `:memory:` would be an empty database in its place
    if (this.#memoryLost !== undefined) throw this.#memoryLost
    if (this.#memory !== undefined) {
      // closed by application code (conn.native.close()) and not destroyed yet
      this.#memoryLost = memoryLostError(stateOf(this.#memory)?.fatal)
      throw this.#memoryLost
    }
    const db = new ManagedDatabase(':memory:', { timeout: this.#nativeBusyTimeoutMs })
    this.#configure(db, 'write', false)
    this.#register(db, 'write', undefined, readSettings(db))
    this.#memory = db
    return db
  }

  #register(db: SqliteDatabase, lane: Lane, identity: FileIdentity | undefined, settings: SessionSettings): void {
    db.defaultSafeIntegers(this.options.safeIntegers)
    if (!this.#maxParametersRead) {
      this.#maxParameters = maxParametersOf(db)
      this.#maxParametersRead = true
    }
    setState(db, {
      lane,
      statements: new StatementCache<string, CachedStatement>(this.options.statementCacheSize),
      fatal: undefined,
      lastWalCheck: 0,
      identity,
      dirty: false,
      rowid: undefined,
      closed: false,
      closedByPool: false,
      cursors: new Set(),
      aborted: undefined,
      endedByEngine: false,
      committedBeforeLeftOpen: false,
      queryOnly: false,
      readLaneWork: false,
      appCode: false,
      lastAttempt: false,
      busy: undefined,
      schemaVersion: undefined,
      totalChanges: undefined,
      totalBefore: undefined,
      schemas: false,
      schemaStatements: undefined,
      settings,
      changedSettings: undefined,
      restoreReported: false,
      mayHaveTemp: false,
    })
    this.#open.add(db)
    if (this.#routeOnly !== undefined) this.#closeRouteOnly()
  }

  /** The identity of the file `db` just opened (and, in WAL mode, of its write-ahead log); closes `db` when the file is gone already. */
  #identityOf(db: SqliteDatabase): FileIdentity {
    const { path } = this.options
    const identity = fileIdentityOf(path)
    if (identity !== undefined) {
      const watchWal = String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal'
      const wal = watchWal ? fileIdentityOf(`${path}-wal`) : undefined
      return { ...identity, watchWal, ...(wal === undefined ? {} : { wal }) }
    }
    db.close()
    throw this.#cantOpen('the file was deleted while it was being opened')
  }

  #close(db: SqliteDatabase): void {
    this.#open.delete(db)
    if (db === this.#memory) this.#memory = undefined
    try {
      if (db.open) db.close()
    } catch {
      // close never throws to the pool
    }
    const state = stateOf(db)
    if (this.#open.size === 0 && state?.lane === 'read' && state.fatal === undefined) this.#tidyAfterReaders()
  }

  /**
   * The last of this manager's connections to close was a reader: a read-only connection cannot
   * checkpoint the WAL and delete `-wal`/`-shm` when it closes, as SQLite's last connection does. A
   * writable connection that reads the header and closes does it (when no other process has the file open).
   * Rare path: the pool closing, or its last reader retired with no writer open.
   */
  #tidyAfterReaders(): void {
    if (this.options.readonly || this.options.memory || !this.#prepared) return
    try {
      const db = new Database(this.options.path, { fileMustExist: true, timeout: this.#nativeBusyTimeoutMs })
      try {
        // SQLite opens the WAL at the first read: only then does its close checkpoint and delete it
        db.pragma('schema_version')
      } finally {
        db.close()
      }
    } catch {
      // best effort: the WAL is checkpointed by the next writer anyway
    }
  }

  /** Applies every pragma and reads it back; a value SQLite did not take is an error. Closes `db` on failure. */
  #configure(db: SqliteDatabase, lane: Lane, readonly: boolean): void {
    const o = this.options
    try {
      expectPragma(db, 'busy_timeout', this.#nativeBusyTimeoutMs, Number(db.pragma('busy_timeout', { simple: true })))
      if (o.memory) {
        expectPragma(
          db,
          'journal_mode',
          o.journalMode.toLowerCase(),
          String(db.pragma(`journal_mode = ${o.journalMode}`, { simple: true })),
        )
      } else if (!readonly && lane === 'write') {
        this.#applyJournalMode(db)
      } else if (!o.readonly || o.journalModeExplicit) {
        expectPragma(db, 'journal_mode', o.journalMode.toLowerCase(), String(db.pragma('journal_mode', { simple: true })))
      }
      db.pragma(`synchronous = ${o.synchronous}`)
      expectPragma(db, 'synchronous', o.synchronous, SYNCHRONOUS_LEVELS[Number(db.pragma('synchronous', { simple: true }))])
      db.pragma(`foreign_keys = ${o.foreignKeys ? 'ON' : 'OFF'}`)
      expectPragma(db, 'foreign_keys', o.foreignKeys ? 1 : 0, Number(db.pragma('foreign_keys', { simple: true })))
      if (o.cacheSizeKiB !== undefined) {
        db.pragma(`cache_size = ${-o.cacheSizeKiB}`)
        expectPragma(db, 'cache_size', -o.cacheSizeKiB, Number(db.pragma('cache_size', { simple: true })))
      }
      if (o.mmapSizeBytes !== undefined) {
        db.pragma(`mmap_size = ${o.mmapSizeBytes}`)
        expectPragma(db, 'mmap_size', o.mmapSizeBytes, Number(db.pragma('mmap_size', { simple: true })))
      }
      if (o.tempStore !== undefined) {
        db.pragma(`temp_store = ${o.tempStore}`)
        expectPragma(db, 'temp_store', o.tempStore, TEMP_STORES[Number(db.pragma('temp_store', { simple: true }))])
      }
      // a reader writes nothing, a temp table included (the read-only file alone let CREATE TEMP TABLE
      // through, shadowing a main table for every later read on it): READ_ONLY, as a write on the read lane
      if (lane === 'read' && !o.memory) {
        db.pragma('query_only = ON')
        expectPragma(db, 'query_only', 1, Number(db.pragma('query_only', { simple: true })))
      }
    } catch (err) {
      db.close()
      throw DatabaseError.is(err) ? err : this.mapError(err)
    }
  }

  #applyJournalMode(db: SqliteDatabase): void {
    const mode = this.options.journalMode
    // `mode` is one of JOURNAL_MODES (validated), never user text
    expectPragma(db, 'journal_mode', mode.toLowerCase(), String(db.pragma(`journal_mode = ${mode}`, { simple: true })))
  }

  #state(db: SqliteDatabase): ConnectionState {
    const state = stateOf(db)
    if (!state)
      throw new DatabaseError('QUERY_FAILED', 'this Database was not opened by this SqliteConnectionManager', { backend: 'sqlite' })
    return state
  }

  #statement(db: SqliteDatabase, state: ConnectionState, text: string): CachedStatement {
    return state.statements.get(text) ?? this.#prepare(db, state, text)
  }

  /** Prepares `text`, classifies it and caches it (a cache miss). */
  #prepare(db: SqliteDatabase, state: ConnectionState, text: string): CachedStatement {
    // checked once per text, when it is first prepared: SQLite would ignore everything after a NUL
    checkStatementText(text, 'sqlite')
    if (!state.schemas && mayAddSchema(text)) state.schemas = true
    // once per text, before it ever runs: a statement whose columns share a name is never cached
    const { stmt, star, raw } = prepareChecked(db, text)
    const { reader, readonly } = stmt
    const rereadable = reader && readonly
    let integers: IntegerReading = 'plain'
    if (reader && !this.options.safeIntegers) {
      integers = rereadable && !state.appCode ? 'scan' : 'narrow'
      // a statement that writes, or may call the application's code, is never run twice: it reads every integer exactly, always
      if (integers === 'narrow') stmt.safeIntegers(true)
    }
    const entry: CachedStatement = {
      stmt,
      reader,
      integers,
      kind: statementKind(text, readonly),
      star,
      rereadable,
      raw,
      checkedAt: -1,
      recheck: true,
      pragma: pragmaOf(text),
    }
    state.statements.set(text, entry)
    return entry
  }

  /**
   * `allRows` for a statement whose text can expand a `*` ({@link CachedStatement.star}), with its
   * result columns checked for a shared name after the run (SQLite may have re-prepared it against a
   * newer schema): SYNTAX_ERROR naming the column, as at prepare. A statement that writes and returns
   * rows (`INSERT ... RETURNING *`) outside a transaction runs inside a savepoint of its own, rolled
   * back when its columns are refused, so nothing it wrote is kept; inside a transaction the refusal
   * aborts the transaction (see {@link #fail}).
   */
  #allChecked(db: SqliteDatabase, state: ConnectionState, entry: CachedStatement, params: readonly unknown[]): unknown[] {
    if (entry.rereadable || db.inTransaction) {
      const rows = allRows(entry.stmt, params)
      this.#checkRanColumns(db, state, entry)
      return rows
    }
    db.exec('SAVEPOINT dbpool_columns')
    let ran = false
    try {
      const rows = allRows(entry.stmt, params)
      ran = true
      this.#checkRanColumns(db, state, entry, true)
      db.exec('RELEASE dbpool_columns')
      return rows
    } catch (statementError) {
      let err = statementError
      // the statement itself failed and SQLite kept its earlier changes (its FAIL conflict resolution):
      // they are committed, as without the savepoint (see keptChangesError)
      if (!ran && db.inTransaction && String((err as { code?: unknown } | null)?.code).startsWith('SQLITE_CONSTRAINT')) {
        try {
          db.exec('RELEASE dbpool_columns')
        } catch (releaseError) {
          // the kept changes' commit failed (a deferred foreign key): that is the error, as SQLite
          // reports it for the statement run alone; rolled back below
          err = releaseError
        }
        if (err === statementError) throw err
      }
      // the savepoint began the transaction: nothing of it is kept (a RELEASE that failed, BUSY in
      // rollback-journal mode, too), whatever changes() still says of the statement
      try {
        if (db.inTransaction) db.exec('ROLLBACK')
      } catch {
        // closing a broken connection discards it anyway
      }
      throw rolledBackWhole(err)
    }
  }

  /**
   * After a run of a statement that can expand a `*`: when the schema changed since its columns were
   * last checked (`PRAGMA schema_version`, read after the run: it is at least the version the run
   * used), reads `stmt.columns()` (the plan that just ran) and refuses two columns of one name. One
   * pragma per run (about 0.1 µs inside a transaction, 1.8 µs outside on a file, where it starts a read
   * transaction; 3.5 to 4.5 µs per point read through the pool, measured); `stmt.columns()`,
   * about 6 µs for 7 columns, only after a schema change. The plan may be older than the version
   * read (a change between the run and the pragma): the next run is checked too. On a connection
   * that may have an attached database or temp objects ({@link ConnectionState.schemas}) every
   * schema's version is read ({@link everySchemaVersion}): main's alone misses a change there.
   *
   * @param ownSavepoint It ran in {@link #allChecked}'s savepoint (outside a transaction): the error
   *   says it was rolled back, nothing kept, no transaction open (not "aborted").
   */
  #checkRanColumns(db: SqliteDatabase, state: ConnectionState, entry: CachedStatement, ownSavepoint = false): void {
    let version: number | string
    if (state.schemas) version = everySchemaVersion(db, state)
    else {
      state.schemaVersion ??= db.prepare('PRAGMA schema_version').pluck().safeIntegers(false)
      version = state.schemaVersion.get() as number
    }
    if (version === entry.checkedAt && !entry.recheck) return
    entry.recheck = version !== entry.checkedAt
    entry.checkedAt = version
    const columns = entry.stmt.columns()
    const duplicate = duplicateColumn(columns)
    const proto = duplicate === undefined && columns.some((c) => c.name === '__proto__')
    if (duplicate === undefined && !proto) return
    // checked again on every run until its columns can all be returned
    entry.checkedAt = -1
    // in the savepoint #allChecked opened: rolled back by its caller, no transaction left open
    const context = ownSavepoint ? { rolledBack: true } : db.inTransaction ? { aborted: true } : entry.rereadable ? { ran: true } : {}
    if (duplicate !== undefined) throw duplicateColumnError(duplicate, 'sqlite', context)
    checkNativeColumns(columns, context)
  }

  /**
   * Before a statement that writes (outside a transaction) or commits (a transaction that wrote):
   * refuses it when the path no longer names the file this connection opened.
   */
  #beforeChange(db: SqliteDatabase, state: ConnectionState, kind: StatementKind): void {
    if (kind === 'write') {
      // read-only work whose `query_only` conn.native may have turned off (a PRAGMA through the pool is refused)
      if (state.changedSettings === 'all' && (state.lane === 'read' || state.readLaneWork || state.queryOnly)) throw readOnlyWorkError()
      if (db.inTransaction) {
        // inside a transaction only COMMIT checks: one stat per transaction, not one per statement
        if (state.identity !== undefined) state.dirty = true
        return
      }
      // what a FAIL conflict resolution keeps, triggers included, is told by the difference (keptChangesError)
      state.totalBefore = (state.totalChanges ??= db.prepare('select total_changes()').pluck().safeIntegers(false)).get() as number
      this.#checkIdentity(db, state)
      return
    }
    if (kind === 'commit' && state.dirty) this.#checkIdentity(db, state)
  }

  /** Throws CONNECTION_LOST (and marks the connection fatal, rolling back its transaction) when the file is gone. */
  #checkIdentity(db: SqliteDatabase, state: ConnectionState, walEveryMs = WAL_IDENTITY_INTERVAL_MS): void {
    const identity = state.identity
    if (identity === undefined) return
    const problem = fileIdentityProblem(this.options.path, identity, walEveryMs)
    if (problem === undefined) return
    const inTransaction = db.inTransaction
    const error = fileIdentityError(
      this.options.path,
      problem,
      inTransaction ? 'the transaction was rolled back instead of committed' : 'the statement was not run',
    )
    // every connection of this manager opened the same file: readers would go on answering from it
    for (const other of this.#open) {
      const otherState = stateOf(other)
      if (otherState) otherState.fatal ??= error
    }
    state.fatal ??= error
    if (inTransaction) {
      try {
        db.exec('ROLLBACK')
      } catch {
        // the connection is discarded either way
      }
    }
    throw error
  }

  /** `last_insert_rowid()` as `run()` reports it: a bigint with `safeIntegers`, else a number where exact. */
  #rowidOf(db: SqliteDatabase, state: ConnectionState): number | bigint {
    const rowid = this.#exactRowid(db, state)
    return this.options.safeIntegers ? BigInt(rowid) : rowid
  }

  /**
   * `last_insert_rowid()` read exactly: for a rowid beyond ±(2^53 - 1) that better-sqlite3 rounded,
   * and for a write that returns rows (run through `all()`, which reports no rowid).
   */
  #exactRowid(db: SqliteDatabase, state: ConnectionState): number | bigint {
    state.rowid ??= db.prepare('select last_insert_rowid()').pluck().safeIntegers(true)
    return narrow(state.rowid.get() as bigint)
  }

  /**
   * Prepares and caches `text` (not cached yet), or runs it as a multi-statement script without
   * parameters (then undefined). A script holding a placeholder (`?`, `?5`, `:x`, `@x`, `$x`, outside
   * strings, quoted names and comments) is refused with INVALID_PARAMETER before anything runs
   * ({@link scriptPlaceholderError}); one sent with parameters is SYNTAX_ERROR (`mapSqliteError`).
   */
  #prepareOrExec(
    db: SqliteDatabase,
    state: ConnectionState,
    text: string,
    params: readonly unknown[],
    leaseFree: boolean,
  ): CachedStatement | undefined {
    // before preparing: SQLite applies a flag PRAGMA (`foreign_keys = OFF`) when it prepares it
    if (leaseFree && pragmaOf(text) !== undefined) throw leaseFreeSettingError(pragmaOf(text)!.names)
    try {
      return this.#prepare(db, state, text)
    } catch (err) {
      // better-sqlite3 prepares one statement at a time (RangeError otherwise); a script without
      // parameters (a migration, a schema) runs through exec()
      if (errorName(err) === 'RangeError' && params.length === 0) {
        // exec() binds nothing: every placeholder of a script would run as NULL (refused before anything runs)
        const placeholder = firstPlaceholder(text)
        if (placeholder !== undefined) throw scriptPlaceholderError(placeholder)
        // a script may write and commit: it is checked whatever the transaction state
        this.#checkIdentity(db, state)
        // read-lane work on the writer (query_only on: `readers: 0`, `:memory:`) may not take the write
        // lock: SQLite refuses BEGIN IMMEDIATE there ("attempt to write a readonly database")
        const writes = state.lane === 'write' && !this.options.readonly && !state.readLaneWork && !state.queryOnly
        const begin = writes ? 'BEGIN IMMEDIATE' : 'BEGIN DEFERRED'
        const pragma = scanPragmas(text, db.inTransaction)
        if (pragma.effect !== 0) this.#beforePragma(db, state, pragma, leaseFree)
        try {
          state.committedBeforeLeftOpen = false
          state.committedBeforeLeftOpen = runScript(db, text, begin, (scriptError) => this.#fail(db, scriptError, false, text))
        } finally {
          // a transaction still open after the script (the caller's, or one the script began) may hold
          // its writes: its COMMIT checks the file identity, as after a prepared write (#beforeChange)
          if (state.identity !== undefined && db.open && db.inTransaction) state.dirty = true
          if (mayAddSchema(text)) state.mayHaveTemp = true
        }
        return undefined
      }
      throw err
    }
  }

  /** Maps an error and remembers a fatal one, so the pool discards the connection. */
  #fail(db: SqliteDatabase, err: unknown, inTransaction = false, text?: string, kind?: StatementKind): DatabaseError {
    // a kind: the statement was prepared, the error came while it ran
    let error = this.mapError(err, kind === undefined ? undefined : 'run')
    if (!DatabaseError.is(err) && db.open) error = this.#aboutAnotherFile(db, error, text)
    const state = stateOf(db)
    // a statement's error never condemns the `:memory:` database, while its handle is open: discarding
    // it would drop every row (its statements keep failing with their own errors instead)
    if (state && isFatalSqliteError(error) && db !== this.#memory) state.fatal ??= error
    // a statement SQLite refused or failed inside a transaction aborts it, as the server aborts it on
    // Postgres, and so does a result of two columns of one name (see abortsTransaction); dbpool's check
    // of a value before anything ran does not. `inTransaction`: one was open when the statement
    // began; if it is gone now, SQLite ended it at this error (see ConnectionState.endedByEngine)
    if (state && state.aborted === undefined && abortsTransaction(error) && db.open) {
      if (db.inTransaction) state.aborted = error
      // a text that commits or rolls back itself (a script `...; COMMIT; ...` failing after its COMMIT) ended it, not SQLite
      else if (inTransaction && (text === undefined || !controlsTransaction(text))) {
        state.aborted = error
        state.endedByEngine = true
      }
    }
    if (!db.open) {
      // (rare path) closed under a statement waiting for a lock: close() revoked the lease at its deadline
      if (state?.closedByPool === true)
        return new DatabaseError(
          'POOL_CLOSED',
          'the pool closed this SQLite connection (close() revoked its lease at its deadline) before the statement ran (it was waiting for a lock)',
          { backend: 'sqlite', cause: err, retryable: false },
        )
      return new DatabaseError('CONNECTION_LOST', `the SQLite connection is closed: ${error.message}`, { backend: 'sqlite', cause: err })
    }
    // (rare path) a write outside a transaction whose FAIL conflict resolution kept its earlier changes
    if (kind === 'write' && !inTransaction && text !== undefined && !db.inTransaction && !wasRolledBackWhole(err))
      return keptChangesError(db, error, text, state?.totalBefore)
    return error
  }

  /**
   * A native error that concerns another file than the connection's database, restated. A corruption
   * error (`SQLITE_NOTADB`, `SQLITE_CORRUPT`) with a database attached, or of a text holding an ATTACH,
   * the main database's schema still reading: the main database runs `quick_check(1)` first
   * ({@link #corruptionCheck}); failing it, the error is CORRUPT of the pool's database (fatal), in
   * every case. Otherwise it is {@link otherDatabaseError} (not fatal, the pool's path not named) when
   * the text is one ATTACH statement, or an attached schema fails to read, or (see
   * {@link #corruptAttached}) the main database passes the check, or the error is `SQLITE_NOTADB` of a
   * text holding an ATTACH (a header error: the main database's header just read). Otherwise it stays
   * CORRUPT of the pool's database. A `SQLITE_CANTOPEN` of an ATTACH of a missing file says that
   * attached files must exist ({@link attachMissingFileError}). Runs only on the failure path.
   */
  #aboutAnotherFile(db: SqliteDatabase, error: DatabaseError, text: string | undefined): DatabaseError {
    const attaches = (): SqlStatement[] =>
      text === undefined || !/attach/i.test(text) ? [] : splitSqlStatements(text, 'sqlite').filter(({ head }) => head[0] === 'ATTACH')
    const file = error.detail?.file
    if (error.sqliteCode?.startsWith('SQLITE_CANTOPEN') && typeof file === 'string') {
      return attaches().length > 0 && !existsSync(file) ? attachMissingFileError(error) : error
    }
    if (!isCorruptionCode(error.sqliteCode)) return error
    try {
      db.prepare('select count(*) from main.sqlite_schema').pluck().get()
    } catch {
      return error
    }
    let schemas: { name: string; file: string }[]
    try {
      schemas = db.prepare('select name, file from pragma_database_list').all() as { name: string; file: string }[]
    } catch {
      return error
    }
    const attached = schemas.filter(({ name }) => name !== 'main' && name !== 'temp')
    const attach = attaches()
    // no other file: the error is the pool's database's, as mapped (nothing read to tell)
    if (attached.length === 0 && attach.length === 0) return error
    const check = this.#corruptionCheck(db)
    const mainFile = schemas.find(({ name }) => name === 'main')?.file ?? ''
    const main = check('main')
    if (main === false) return withNote(error, "the pool's database fails its quick_check")
    // the text is one ATTACH statement: it read only the file it names
    if (attach.length === 1 && splitSqlStatements(text!, 'sqlite').length === 1)
      return otherDatabaseError(error, { file: attachedFileOf(attach[0]!.text) })
    for (const { name, file: path } of attached) {
      try {
        db.prepare(`select count(*) from "${name.replace(/"/g, '""')}".sqlite_schema`)
          .pluck()
          .get()
      } catch (err) {
        if (isCorruptionCode(this.mapError(err).sqliteCode)) return otherDatabaseError(error, { file: path, schema: name })
      }
    }
    return this.#corruptAttached(error, attached, attach, main, mainFile, check)
  }

  /**
   * A check of a schema for {@link #aboutAnotherFile}: whether it passes `quick_check(1)`, undefined
   * when it is too large to check within what is left of {@link CORRUPTION_CHECK_MAX_BYTES} (the files
   * checked hold at most that much together: the check reads every page of them, on the event loop).
   */
  #corruptionCheck(db: SqliteDatabase): (name: string) => boolean | undefined {
    let budget = CORRUPTION_CHECK_MAX_BYTES
    const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`
    return (name) => {
      try {
        const size =
          (db
            .prepare(`pragma ${quote(name)}.page_count`)
            .pluck()
            .get() as number) *
          (db
            .prepare(`pragma ${quote(name)}.page_size`)
            .pluck()
            .get() as number)
        if (size > budget) return undefined
        budget -= size
        const result = db
          .prepare(`pragma ${quote(name)}.quick_check(1)`)
          .pluck()
          .all()
        return result.length === 1 && result[0] === 'ok'
      } catch (err) {
        return isCorruptionCode(this.mapError(err).sqliteCode) ? false : undefined
      }
    }
  }

  /**
   * A corruption error whose file no schema read tells (a corrupt table page, the schemas reading; an
   * ATTACH of a script failing), the main database passing `quick_check(1)` or too large to check
   * (`main` undefined). Main passing: {@link otherDatabaseError}, blaming the attached database that
   * fails the check, else the file of the text's ATTACH (when it holds exactly one; none named with
   * several), else the one database attached (several: none named), the message saying it is not
   * proven (too large to check, or it passes too). Main too large: a `SQLITE_NOTADB` of a text holding
   * an ATTACH is blamed on the ATTACH (a header error; an attached schema's would have failed to read);
   * anything else stays CORRUPT of the pool's database, its message naming the attached database found
   * corrupt or not checked, undecided.
   */
  #corruptAttached(
    error: DatabaseError,
    attached: readonly { name: string; file: string }[],
    attach: readonly SqlStatement[],
    main: boolean | undefined,
    mainFile: string,
    check: (name: string) => boolean | undefined,
  ): DatabaseError {
    const checked = attached.map((schema) => ({ ...schema, passes: check(schema.name) }))
    const failing = checked.find(({ passes }) => passes === false)
    const named = (schema: { name: string; file: string }): string => `'${schema.name}'${schema.file === '' ? '' : ` (${schema.file})`}`
    if (main === undefined) {
      if (failing === undefined && attach.length > 0 && error.sqliteCode?.startsWith('SQLITE_NOTADB'))
        return attach.length === 1
          ? otherDatabaseError(error, { file: attachedFileOf(attach[0]!.text) })
          : otherDatabaseError(error, { what: 'a file the ATTACH statements of the text name' })
      const others =
        failing !== undefined
          ? `the attached database ${named(failing)} fails its quick_check too`
          : `the attached database${checked.length === 1 ? '' : 's'} ${checked.map(named).join(', ')} ${checked.some(({ passes }) => passes === undefined) ? 'not checked either' : checked.length === 1 ? 'passing its quick_check' : 'passing their quick_check'}`
      return withNote(
        error,
        `${checked.length === 0 ? '' : `${others}; `}the pool's database${mainFile === '' ? '' : ` (${mainFile})`} is too large to check here: check it with pragma quick_check before trusting it`,
      )
    }
    if (failing !== undefined) return otherDatabaseError(error, { file: failing.file, schema: failing.name })
    const unproven = (schema: { passes: boolean | undefined }): string =>
      schema.passes === undefined ? 'too large to check here: not proven corrupt' : 'it passes its quick_check too: not proven corrupt'
    if (attach.length > 0) {
      const path = attach.length === 1 ? attachedFileOf(attach[0]!.text) : undefined
      const schema = path === undefined ? undefined : checked.find(({ file }) => file !== '' && file === resolve(path))
      if (schema !== undefined) return otherDatabaseError(error, { file: schema.file, schema: schema.name, unproven: unproven(schema) })
      // the ATTACH failed (its schema is not attached): the script ran in order and stopped there
      return path === undefined
        ? otherDatabaseError(error, { what: 'a file the ATTACH statements of the text name' })
        : otherDatabaseError(error, { file: path })
    }
    if (checked.length === 1)
      return otherDatabaseError(error, { file: checked[0]!.file, schema: checked[0]!.name, unproven: unproven(checked[0]!) })
    return otherDatabaseError(error, {
      what: `one of the attached databases ${checked.map(named).join(', ')}`,
      unproven: checked.some(({ passes }) => passes === undefined)
        ? 'too large to check here: none proven corrupt'
        : 'they pass their quick_check too: none proven corrupt',
    })
  }

  #maybeCheckpoint(db: SqliteDatabase, state: ConnectionState): void {
    const threshold = this.options.walCheckpointThresholdBytes
    if (threshold === 0 || this.options.memory || this.options.readonly) return
    const now = Date.now()
    // the clock first: inTransaction is a native call, and this runs after every write statement
    if (now - state.lastWalCheck < WAL_CHECK_INTERVAL_MS || db.inTransaction) return
    state.lastWalCheck = now
    try {
      if (walSizeBytes(this.options.path) > threshold) this.checkpoint(db, 'TRUNCATE')
    } catch {
      // a failed checkpoint is retried on a later write; health reports a WAL that keeps growing
    }
  }

  #readerInTransaction(): boolean {
    for (const db of this.#open) {
      const state = stateOf(db)
      // an open cursor holds its read snapshot like a transaction does
      if (state?.lane === 'read' && db.open && (db.inTransaction || state.cursors.size > 0)) return true
    }
    return false
  }

  /**
   * `text` prepared (never run) on a private read-only connection, for {@link route} before any of the
   * pool's connections is open; undefined when the file cannot be opened yet (it does not exist: the
   * writer creates it). The connection is closed when the pool's first connection opens, or at `end()`.
   */
  #prepareBeforeConnections(text: string): Statement | undefined {
    let db = this.#routeOnly
    if (db === undefined || !db.open) {
      if (this.options.memory || !existsSync(this.options.path)) return undefined
      db = this.#routeOnly = new Database(this.options.path, { readonly: true, fileMustExist: true, timeout: this.#nativeBusyTimeoutMs })
    }
    checkStatementText(text, 'sqlite')
    return db.prepare(text)
  }

  #closeRouteOnly(): void {
    const db = this.#routeOnly
    this.#routeOnly = undefined
    try {
      db?.close()
    } catch {
      // nothing ran on it
    }
  }

  /** The connection route() prepares on: the writer (its schema is the newest), else any open one. */
  #classifier(): SqliteDatabase | undefined {
    let fallback: SqliteDatabase | undefined
    for (const db of this.#open) {
      // a connection reading a stream refuses to prepare anything until the stream ends
      if (!db.open || stateOf(db)?.cursors.size) continue
      if (stateOf(db)?.lane === 'write') return db
      fallback ??= db
    }
    return fallback
  }

  #cantOpen(reason: string, cause?: unknown): DatabaseError {
    const { path } = this.options
    return new DatabaseError('CONNECTION_FAILED', `cannot open SQLite database ${path}: ${reason}`, {
      backend: 'sqlite',
      retryable: false,
      cause,
      detail: { path },
      ...(cause && mapSqliteError(cause).sqliteCode ? { sqliteCode: mapSqliteError(cause).sqliteCode } : {}),
    })
  }
}

/** The PRAGMA settings `text` changes, undefined when none (once per prepared text: see {@link scanPragmas}). */
function pragmaOf(text: string): PragmaScan | undefined {
  const scan = scanPragmas(text, false)
  return scan.effect === 0 ? undefined : scan
}

/**
 * The refusal of a `pool.query` or `pool.stream` (not on the caller's lease: on an idle connection,
 * or on one it takes for itself, as read-lane work with `readers: 0` does) that sets a connection
 * setting with PRAGMA: the pool gives the connection back at the statement's end and restores what it
 * changed (a foreign_keys change undone without a word was how a table rebuild deleted every child
 * row), so the change would not last.
 */
function leaseFreeSettingError(names: readonly string[]): DatabaseError {
  const list = [...new Set(names)].join(', ')
  return new DatabaseError(
    'CONFIGURATION',
    `PRAGMA ${list} through pool.query or pool.stream is refused and was not run: such a call has its connection (an idle one, or one it takes for itself) only for that statement, and the pool restores the connection's settings as soon as the statement ends, so the change would not last. Set it on a lease of your own (pool.withConnection(async (conn) => { await conn.query('PRAGMA ...'); ... }), restored at its release), for every connection with the pool's sqlite options (foreignKeys, busyTimeoutMs, synchronous, cacheSizeKiB, ...), or for a table rebuild mark the migration foreign_keys:off (core Migrator)`,
    { backend: 'sqlite', retryable: false, detail: { pragma: names[0], pragmas: [...new Set(names)] } },
  )
}

/** Whether `text` holds more than one statement (SQLite's rules: strings, names, comments, trigger bodies). */
function severalStatements(text: string): boolean {
  return splitSqlStatements(text, 'sqlite').length > 1
}

/**
 * The refusal of a text of several statements whose first ends an aborted transaction (`commit;
 * insert ...`, or `rollback; ...` after SQLite ended it): the pool answers that first statement
 * without running it (COMMIT answers ROLLBACK), which would drop the rest of the text unseen. Nothing
 * ran; the transaction is as it was (aborted), and still needs a ROLLBACK or COMMIT of its own.
 */
function abortedScriptError(first: DatabaseError | undefined): DatabaseError {
  const aborted = abortedTransactionError('sqlite', first)
  return new DatabaseError(
    'TRANSACTION_ROLLED_BACK',
    `a text of several statements that begins by ending the aborted transaction (COMMIT, END or ROLLBACK) was refused whole and nothing of it ran: send the ROLLBACK (or COMMIT, answered ROLLBACK) on its own, then the rest. ${aborted.message}`,
    {
      backend: 'sqlite',
      cause: first,
      retryable: false,
      detail: { severalStatements: true },
      ...(first?.sqliteCode === undefined ? {} : { sqliteCode: first.sqliteCode }),
    },
  )
}

/**
 * The in-memory database was discarded: CONNECTION_LOST, not retryable (a new connection would be a
 * new, empty database), `cause` the error that condemned it, if any.
 */
function memoryLostError(cause: DatabaseError | undefined): DatabaseError {
  return new DatabaseError(
    'CONNECTION_LOST',
    `the in-memory SQLite database (:memory:) was discarded${cause === undefined ? ' (its connection was closed)' : `: ${cause.message}`}, and every row in it is gone; the pool does not open an empty one in its place. Close the pool and open a new one`,
    { backend: 'sqlite', retryable: false, cause, detail: { reason: 'memory-lost' } },
  )
}

/**
 * The refusal of a multi-statement text (a script: better-sqlite3's `exec()`, which binds nothing)
 * that holds a placeholder: SQLite would run every placeholder as NULL. Postgres refuses the same
 * text (42P02, "there is no parameter $1"), and, as there, the refusal aborts an open transaction
 * (`detail.severalStatements`, see abortsTransaction). Nothing ran.
 */
function scriptPlaceholderError(placeholder: string): DatabaseError {
  return new DatabaseError(
    'INVALID_PARAMETER',
    `a text of several statements runs as a script, which takes no parameters, and this one holds the placeholder ${placeholder}: SQLite would run it as NULL, so nothing was run. Send each statement with its parameters on its own (inside pool.transaction() for all or nothing)`,
    { backend: 'sqlite', retryable: false, detail: { severalStatements: true, placeholder } },
  )
}

/**
 * The refusal of a statement setting `PRAGMA foreign_keys` inside a transaction, where SQLite ignores
 * it (https://www.sqlite.org/pragma.html#pragma_foreign_keys).
 */
function foreignKeysInTransactionError(): DatabaseError {
  return new DatabaseError(
    'CONFIGURATION',
    'PRAGMA foreign_keys inside a transaction is refused and was not run: SQLite ignores it there, so foreign keys would stay enforced and a table rebuild (DROP TABLE of a parent) would run its ON DELETE actions; the transaction is aborted. Set it before BEGIN: core Migrator, mark the migration foreign_keys:off; Kysely, see the @dbpool/kysely README ("Rebuilding a table on SQLite")',
    { backend: 'sqlite', retryable: false, detail: { pragma: 'foreign_keys' } },
  )
}

/**
 * The refusal of a PRAGMA setting `query_only` in read-only work: on a reader, on the writer lent for
 * read-lane work, inside a read-only transaction. Turning it off would let that work write (a temp
 * table on a reader shadows a main table for every later reader of the connection).
 */
function queryOnlyChangeError(): DatabaseError {
  return new DatabaseError(
    'CONFIGURATION',
    'PRAGMA query_only is refused and was not run in read-only work (the read lane, a read-only transaction): it would let that work write; the transaction, if any, is aborted. Write on the write lane',
    { backend: 'sqlite', retryable: false, detail: { pragma: 'query_only' } },
  )
}

/** A write refused before it ran in read-only work whose `query_only` was turned off through `conn.native`. */
function readOnlyWorkError(): DatabaseError {
  return new DatabaseError(
    'READ_ONLY',
    'a write in read-only work (the read lane, a read-only transaction) was refused and not run (query_only was turned off through conn.native)',
    { backend: 'sqlite', sqliteCode: 'SQLITE_READONLY', retryable: false },
  )
}

/**
 * The BEGIN of a read-only transaction (`BEGIN DEFERRED`: SQLite has no `READ ONLY` clause); the manager
 * knows it by its text and sets `PRAGMA query_only` for the transaction's duration.
 */
const READ_ONLY_BEGIN = 'BEGIN DEFERRED /* dbpool: read only */'

// leading blanks and comments, then the keyword
// block comments match one way only (SQLite's: to the first "*/"); the lazy [\s\S]*? form let a run of
// comments split in exponentially many ways when the word did not follow
const ROLLBACK_TO = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*rollback(?:\s+transaction)?\s+to\b/i
const ROLLBACK = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*rollback\b/i
const COMMITS_TRANSACTION = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*(?:commit|end)\b/i
const COMMITS = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*(?:commit|end|release)\b/i
const VACUUM_INTO = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*vacuum\s+(?:(?:"[^"]*"|`[^`]*`|\[[^\]]*\]|\w+)\s+)?into\b/i
const CONTROLS = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*(?:begin|rollback|savepoint)\b/i

/** Classifies a statement once, when it is prepared (`readonly` is SQLite's sqlite3_stmt_readonly). */
function statementKind(text: string, readonly: boolean): StatementKind {
  // transaction statements first: SQLite calls BEGIN IMMEDIATE a write, COMMIT read-only
  if (COMMITS.test(text)) return 'commit'
  if (CONTROLS.test(text)) return 'control'
  return readonly ? 'read' : 'write'
}

/**
 * Refuses a statement two of whose result columns share a name (`select 1 as a, 2 as a`, `select a.id,
 * b.id ...`), read from better-sqlite3's `stmt.columns()` when it is prepared, before it runs: rows are
 * objects keyed by column name, so one value would be silently lost. SYNTAX_ERROR naming the column.
 */
function checkColumns(stmt: Statement, ran = false, nativeRows = false): Database.ColumnDefinition[] {
  const columns = stmt.columns()
  const duplicate = duplicateColumn(columns)
  const context = ran ? { ran, aborted: stmt.database.inTransaction } : {}
  if (duplicate !== undefined) throw duplicateColumnError(duplicate, 'sqlite', context)
  if (nativeRows) checkNativeColumns(columns, context)
  return columns
}

/**
 * Makes `directory` and its missing parents one level at a time (synchronously: a pool's first
 * connection), instead of Node's `mkdirSync({ recursive: true })`, which loops forever, spinning a
 * core, where a filesystem answers ENOENT to creating a directory whose parent exists (`/proc/x`).
 * Throws the system error of the level that cannot be made (as backup-directory.ts does for backups).
 */
function makeDirectoryLevels(directory: string): void {
  const missing: string[] = []
  for (let current = resolve(directory); ;) {
    if (statSync(current, { throwIfNoEntry: false }) !== undefined) break
    missing.unshift(current)
    const parent = dirname(current)
    if (parent === current) break
    current = parent
  }
  for (const level of missing) {
    try {
      mkdirSync(level)
    } catch (err) {
      // made meanwhile by another process: fine when it is a directory
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || statSync(level, { throwIfNoEntry: false })?.isDirectory() !== true) throw err
    }
  }
}

/**
 * Prepares `text` and checks its result columns (see {@link checkColumns}). `star`: its result columns
 * can change with the schema (see {@link columnsMayChange}), so they are checked after each run too.
 * `raw`: a result column is named `__proto__`, which better-sqlite3's own rows drop (the assignment
 * sets the prototype): the statement runs in raw mode and its rows are built by {@link rowObjects},
 * with the names of the plan that ran read after every run ({@link readShape}; about 6 µs, for these
 * statements only).
 *
 * SQLite prepares against the schema as this connection last read it, and reads it again only when a
 * statement steps: after a change made by another connection, the columns seen here may be stale. A
 * refusal (two columns of one name) is therefore checked once more after the connection has read the
 * current schema (`select count(*) from sqlite_schema`, on the refusal path only); without that, a
 * statement refused against a stale schema was refused again on every call.
 */
function prepareChecked(db: SqliteDatabase, text: string): { stmt: Statement; star: boolean; raw: boolean } {
  let stmt = db.prepare(text)
  if (!stmt.reader) return { stmt, star: false, raw: false }
  let star = columnsMayChange(text)
  let columns: Database.ColumnDefinition[]
  try {
    columns = checkColumns(stmt)
  } catch (err) {
    if (!isDuplicateColumnError(err)) throw err
    db.prepare('select count(*) from sqlite_schema').pluck().get()
    stmt = db.prepare(text)
    columns = checkColumns(stmt)
  }
  const raw = columns.some((c) => c.name === '__proto__')
  if (raw) stmt.raw(true)
  // names equal but for case (`o.ID, p.id` prepared as `Id` and `id`): a rename of one column in
  // case only (`rename column Id to id`) gives both one name, and SQLite re-prepares with it
  if (!star && columns.length > 1) star = namesDifferOnlyInCase(columns)
  return { stmt, star, raw }
}

/**
 * Whether a statement's result columns can change with the schema without the text failing to prepare
 * (then they are checked after each run when the schema version moved, see `#checkRanColumns`):
 * - a `*` anywhere (`select *`, `t.*`, `returning *`): an expansion can gain or lose columns (a product
 *   or a comment makes the check run needlessly, never miss one);
 * - a rowid alias (`rowid`, `oid`, `_rowid_` as a word): SQLite names that column after the table's
 *   INTEGER PRIMARY KEY, or after a real column of that name, so a rename can give it the name of
 *   another result column (`select o.rowid, c.id`), and one value would be lost.
 * Other statements' columns are fixed by their text: SQLite re-prepares them after a schema change
 * with the same expression at each position, and a name can change only in case; statements with two
 * names equal but for case are checked after each run too (see {@link prepareChecked}).
 */
/** Whether two result columns have names equal but for ASCII case (SQLite compares names that way). */
function namesDifferOnlyInCase(columns: readonly Database.ColumnDefinition[]): boolean {
  const seen = new Set<string>()
  for (const { name } of columns) {
    const key = name.toLowerCase()
    if (seen.has(key)) return true
    seen.add(key)
  }
  return false
}

function columnsMayChange(text: string): boolean {
  return text.includes('*') || ROWID_NAME.test(text)
}

const ROWID_NAME = /(?:^|[^\w$])(?:_rowid_|rowid|oid)(?![\w$])/i

/**
 * The {@link RowShape} of the plan a raw statement just ran (`stmt.columns()`); two columns of one
 * name are refused (SYNTAX_ERROR), saying what the run did: inside a transaction it is aborted, a
 * read ran, a write outside one committed.
 */
function readShape(db: SqliteDatabase, entry: CachedStatement): RowShape {
  const context = db.inTransaction ? { aborted: true } : entry.rereadable ? { ran: true } : { committed: true }
  return shapeOf(entry.stmt, context)
}

/** The {@link RowShape} of the plan `stmt` last ran; two columns of one name refused (SYNTAX_ERROR). */
function shapeOf(stmt: Statement, context: DuplicateColumnContext): RowShape {
  const columns = stmt.columns()
  const duplicate = duplicateColumn(columns)
  if (duplicate !== undefined) throw duplicateColumnError(duplicate, 'sqlite', context)
  return rowShape(columns.map((c) => c.name))
}

/**
 * A statement that is not raw keeps better-sqlite3's own row objects, which drop a column named
 * `__proto__` (the assignment sets the prototype): one whose columns changed after a schema change
 * (see {@link columnsMayChange}) to include it is refused with SYNTAX_ERROR (`protoColumnError`) before
 * any row is handed out, as for two columns of one name.
 */
function checkNativeColumns(columns: readonly ResultColumn[], context: DuplicateColumnContext): void {
  const at = columns.findIndex((c) => c.name === '__proto__')
  if (at >= 0) throw protoColumnError(at + 1, 'sqlite', context)
}

/**
 * Whether a statement's text may attach a database or create an object in the temp schema (`ATTACH`,
 * `CREATE TEMP TABLE`, `create table temp.t`...; `DETACH` too): SQLite keywords and schema names are
 * ASCII, matched case-insensitively, so such a text holds `temp` or `tach` (a column named
 * `temperature` makes the `*` check read every schema needlessly, never miss one). Checked when a
 * text is prepared (a cache miss) or run as a script, never per run.
 */
function mayAddSchema(text: string): boolean {
  return /temp|tach/i.test(text)
}

/**
 * Every schema of the connection (main, temp, attached ones) with its file and `schema_version`, as
 * one string: it changes when any of them changes, or when another file is attached under a name.
 * Statements prepared once per connection and schema name (SQLite's table-valued
 * `pragma_schema_version` reads main only).
 */
function everySchemaVersion(db: SqliteDatabase, state: ConnectionState): string {
  const statements = (state.schemaStatements ??= { list: db.prepare('PRAGMA database_list').raw(), versions: new Map() })
  let key = ''
  for (const [, name, file] of statements.list.all() as [unknown, string, string][]) {
    let version = statements.versions.get(name)
    if (version === undefined) {
      version = db
        .prepare(`PRAGMA "${name.replaceAll('"', '""')}".schema_version`)
        .pluck()
        .safeIntegers(false)
      statements.versions.set(name, version)
    }
    key += `${name.length}:${name}${file.length}:${file}=${String(version.get())};`
  }
  return key
}

function checkMode(mode: string): CheckpointMode {
  if (mode === 'PASSIVE' || mode === 'FULL' || mode === 'RESTART' || mode === 'TRUNCATE') return mode
  throw new DatabaseError('CONFIGURATION', `invalid checkpoint mode ${JSON.stringify(mode)}: must be PASSIVE, FULL, RESTART or TRUNCATE`)
}

function expectPragma(db: SqliteDatabase, pragma: string, expected: unknown, actual: unknown): void {
  if (expected === actual) return
  throw new DatabaseError(
    'CONFIGURATION',
    `SQLite did not accept PRAGMA ${pragma}: asked for ${String(expected)}, it reports ${String(actual)} (${db.name})`,
    {
      backend: 'sqlite',
      detail: { pragma, expected, actual },
    },
  )
}

/**
 * The native addon builds rows with the intrinsics of the realm it was loaded in. Code running in
 * another realm (jest's vm context) would see arrays that fail `instanceof Array` and
 * `deepStrictEqual`; only then are the rows copied into this realm. In a plain process this is one
 * `instanceof` check.
 */
function sameRealm<R>(rows: R[]): R[] {
  if (rows instanceof Array) return rows
  return Array.from(rows as unknown[], (row) => (row !== null && typeof row === 'object' ? { ...row } : row)) as R[]
}

/** Longest stretch of back-to-back statements before a lease's next statement waits for a macrotask. */
const YIELD_AFTER_MS = 10

/**
 * Notices when the event loop has not reached its check phase for `afterMs` while we kept working,
 * and then asks the caller to wait for one `setImmediate` (timers and I/O run first).
 */
class EventLoopFairness {
  #armedAt = 0
  #armed = false

  constructor(private readonly afterMs: number) {}

  /** True when the thread has run statements for `afterMs` since the event loop last turned: time to yield. */
  due(): boolean {
    const now = performance.now()
    if (!this.#armed) {
      this.#armed = true
      this.#armedAt = now
      setImmediate(this.#disarm)
      return false
    }
    return now - this.#armedAt >= this.afterMs
  }

  readonly #disarm = (): void => {
    this.#armed = false
  }
}

/**
 * The handle the manager opens: better-sqlite3's Database, whose `close()` also records in the
 * connection's state that it closed. `isUsable()`, asked before every lease-free statement, then
 * reads a field instead of the native `db.open` getter (a C++ accessor call; about 70 ns of a 3.5 µs
 * point read, measured in the mix), and still sees a handle user code closed (`conn.native.close()`,
 * the only way a better-sqlite3 handle closes while the process runs).
 */
class ManagedDatabase extends Database {
  override close(): this {
    super.close()
    const state = stateOf(this)
    if (state !== undefined) state.closed = true
    return this
  }
}

/** A corruption error of the pool's database (CORRUPT, fatal) with what the failure path's checks found, in its message. */
function withNote(error: DatabaseError, note: string): DatabaseError {
  return new DatabaseError(error.code, `${error.message} (${note})`, {
    backend: 'sqlite',
    sqliteCode: error.sqliteCode,
    cause: error.cause,
    retryable: error.retryable,
    ...(error.detail === undefined ? {} : { detail: error.detail }),
  })
}

// A connection's state lives on the Database object itself: a WeakMap lookup per statement (two with
// isUsable) cost measurably more on the point-read path.
const STATE = Symbol('dbpool.sqlite.state')

function stateOf(db: SqliteDatabase): ConnectionState | undefined {
  return (db as unknown as { [STATE]?: ConnectionState })[STATE]
}

function setState(db: SqliteDatabase, state: ConnectionState): void {
  ;(db as unknown as { [STATE]?: ConnectionState })[STATE] = state
}
