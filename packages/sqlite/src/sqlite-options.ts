import { configError } from '@dbpool/core'
import { checkBoolean, checkEnum, checkInteger, checkString, rejectUnknownKeys, requireObject } from '@dbpool/core/internal'

/**
 * SQLite journal modes (`PRAGMA journal_mode`) dbpool accepts. `OFF` is refused (CONFIGURATION): without
 * a rollback journal SQLite cannot roll back a failed statement or transaction (the database is left
 * half-written, and may be corrupted), and better-sqlite3's defensive mode refuses it anyway.
 */
export const JOURNAL_MODES = ['WAL', 'DELETE', 'TRUNCATE', 'PERSIST', 'MEMORY'] as const
/** One of {@link JOURNAL_MODES}. */
export type JournalMode = (typeof JOURNAL_MODES)[number]

/** SQLite `PRAGMA synchronous` levels, weakest first. */
export const SYNCHRONOUS_LEVELS = ['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const
/** One of {@link SYNCHRONOUS_LEVELS}. */
export type SynchronousLevel = (typeof SYNCHRONOUS_LEVELS)[number]

/** SQLite `PRAGMA temp_store` values. */
export const TEMP_STORES = ['DEFAULT', 'FILE', 'MEMORY'] as const
/** One of {@link TEMP_STORES}. */
export type TempStore = (typeof TEMP_STORES)[number]

/** The path that opens a private in-memory database. */
export const MEMORY_PATH = ':memory:'

/** SQLite's compile-time ceiling on `mmap_size` in the better-sqlite3 build (0x7fff0000). */
export const MAX_MMAP_SIZE_BYTES = 2_147_418_112

/**
 * Options of a SQLite pool. Every field is optional except `path` (which `createSqlitePool` takes as
 * its own argument). Invalid values and unknown keys throw CONFIGURATION naming the option and value.
 *
 * ```ts
 * const options: SqliteOptions = { path: './data/app.db', readers: 4, synchronous: 'NORMAL' }
 * ```
 */
export interface SqliteOptions {
  /** A file path, or `':memory:'` for a private in-memory database. */
  readonly path?: string
  /**
   * Open every connection read-only; writes fail with READ_ONLY. A missing file or directory is
   * CONNECTION_FAILED (a read-only pool never creates it, whatever `createIfMissing` says). Default is `false`.
   */
  readonly readonly?: boolean
  /** Create the file (and its missing parent directories) when absent. Default is `true`. */
  readonly createIfMissing?: boolean
  /**
   * `PRAGMA journal_mode`. Default is `'WAL'` for files, `'MEMORY'` for `:memory:`. `'OFF'` is refused
   * with CONFIGURATION: it loses atomic rollback (see {@link JOURNAL_MODES}).
   */
  readonly journalMode?: JournalMode
  /** `PRAGMA synchronous`. Default is `'FULL'` (a committed transaction survives power loss). */
  readonly synchronous?: SynchronousLevel
  /**
   * The longest wait, in ms, for a lock another connection holds (another process, another pool on the
   * file), 0 to 2^31 - 1. Default is `5000`. SQLite's own `PRAGMA busy_timeout` (which blocks the
   * thread) is set to at most 5 ms; the rest is waited off the event loop, between attempts of a
   * statement that changed nothing (see the package README). Past it: BUSY.
   */
  readonly busyTimeoutMs?: number
  /** `PRAGMA foreign_keys`. Default is `true`. */
  readonly foreignKeys?: boolean
  /** `PRAGMA cache_size` in KiB (sent as `-N`). Default: SQLite's build default. */
  readonly cacheSizeKiB?: number
  /** `PRAGMA mmap_size` in bytes; `0` turns memory mapping off. Default: SQLite's build default. */
  readonly mmapSizeBytes?: number
  /** `PRAGMA temp_store`. Default: SQLite's build default. */
  readonly tempStore?: TempStore
  /** Read-only connections in the read lane (WAL only). Default is `2` for WAL files, `0` otherwise. */
  readonly readers?: number
  /** Prepared statements kept per connection (LRU); `0` disables the cache. Default is `100`. */
  readonly statementCacheSize?: number
  /** Return every INTEGER as a `bigint` (exact beyond 2^53). Default is `false`. */
  readonly safeIntegers?: boolean
  /** Checkpoint with TRUNCATE once the `-wal` file is larger than this; `0` disables. Default is `67108864` (64 MiB). */
  readonly walCheckpointThresholdBytes?: number
}

/** {@link SqliteOptions} after validation, with every default applied. */
export interface ResolvedSqliteOptions {
  readonly path: string
  readonly memory: boolean
  readonly readonly: boolean
  readonly createIfMissing: boolean
  readonly journalMode: JournalMode
  /** Whether `journalMode` was given explicitly (a read-only pool only verifies an explicit mode). */
  readonly journalModeExplicit: boolean
  readonly synchronous: SynchronousLevel
  readonly busyTimeoutMs: number
  readonly foreignKeys: boolean
  readonly cacheSizeKiB: number | undefined
  readonly mmapSizeBytes: number | undefined
  readonly tempStore: TempStore | undefined
  readonly readers: number
  readonly statementCacheSize: number
  readonly safeIntegers: boolean
  readonly walCheckpointThresholdBytes: number
}

/** Option names {@link resolveSqliteOptions} accepts. */
export const SQLITE_OPTION_KEYS = [
  'path',
  'readonly',
  'createIfMissing',
  'journalMode',
  'synchronous',
  'busyTimeoutMs',
  'foreignKeys',
  'cacheSizeKiB',
  'mmapSizeBytes',
  'tempStore',
  'readers',
  'statementCacheSize',
  'safeIntegers',
  'walCheckpointThresholdBytes',
] as const

const MAX_INT32 = 2_147_483_647

/**
 * Validates SQLite options eagerly and completely and applies the defaults. Throws a CONFIGURATION
 * DatabaseError naming the option (`sqlite.<name>`) and the value.
 */
export function resolveSqliteOptions(input: SqliteOptions): ResolvedSqliteOptions {
  const raw = requireObject('sqlite', input)
  rejectUnknownKeys('sqlite', raw, SQLITE_OPTION_KEYS)
  const path = checkPath(raw.path)
  const memory = path === MEMORY_PATH
  const readonly = optional(raw.readonly, false, (v) => checkBoolean('sqlite.readonly', v))
  const createIfMissing = optional(raw.createIfMissing, true, (v) => checkBoolean('sqlite.createIfMissing', v))
  const journalModeExplicit = raw.journalMode !== undefined
  if (typeof raw.journalMode === 'string' && raw.journalMode.toUpperCase() === 'OFF') {
    throw configError(
      'sqlite.journalMode',
      raw.journalMode,
      'OFF is refused: without a rollback journal SQLite cannot roll back a failed statement or transaction (the database is left half-written, possibly corrupt), and better-sqlite3 runs SQLite in defensive mode, which refuses it; use WAL (default), DELETE, TRUNCATE, PERSIST or MEMORY',
    )
  }
  const journalMode = optional(raw.journalMode, memory ? 'MEMORY' : 'WAL', (v) => enumOf('sqlite.journalMode', v, JOURNAL_MODES))
  if (memory && journalMode !== 'MEMORY') {
    throw configError('sqlite.journalMode', raw.journalMode, 'an in-memory database supports only MEMORY')
  }
  const synchronous = optional(raw.synchronous, 'FULL', (v) => enumOf('sqlite.synchronous', v, SYNCHRONOUS_LEVELS))
  const busyTimeoutMs = optional(raw.busyTimeoutMs, 5_000, (v) => checkInteger('sqlite.busyTimeoutMs', v, 0, MAX_INT32))
  const foreignKeys = optional(raw.foreignKeys, true, (v) => checkBoolean('sqlite.foreignKeys', v))
  const cacheSizeKiB = optional(raw.cacheSizeKiB, undefined, (v) => checkInteger('sqlite.cacheSizeKiB', v, 0, MAX_INT32))
  const mmapSizeBytes = optional(raw.mmapSizeBytes, undefined, (v) => checkInteger('sqlite.mmapSizeBytes', v, 0, MAX_MMAP_SIZE_BYTES))
  const tempStore = optional(raw.tempStore, undefined, (v) => enumOf('sqlite.tempStore', v, TEMP_STORES))
  const readersAllowed = !memory && (journalMode === 'WAL' || readonly)
  const readers = optional(raw.readers, readersAllowed ? 2 : 0, (v) => checkInteger('sqlite.readers', v, 0, 64))
  if (readers > 0 && memory) {
    throw configError(
      'sqlite.readers',
      readers,
      'an in-memory database has one connection (readers must be 0): each connection would see a different database',
    )
  }
  if (readers > 0 && !readersAllowed) {
    throw configError(
      'sqlite.readers',
      readers,
      `read-only connections need journalMode WAL (got ${journalMode}): without WAL readers and the writer block each other`,
    )
  }
  const statementCacheSize = optional(raw.statementCacheSize, 100, (v) => checkInteger('sqlite.statementCacheSize', v, 0, 100_000))
  const safeIntegers = optional(raw.safeIntegers, false, (v) => checkBoolean('sqlite.safeIntegers', v))
  const walCheckpointThresholdBytes = optional(raw.walCheckpointThresholdBytes, 64 * 1024 * 1024, (v) =>
    checkInteger('sqlite.walCheckpointThresholdBytes', v, 0),
  )
  return Object.freeze({
    path,
    memory,
    readonly,
    createIfMissing,
    journalMode,
    journalModeExplicit,
    synchronous,
    busyTimeoutMs,
    foreignKeys,
    cacheSizeKiB,
    mmapSizeBytes,
    tempStore,
    readers,
    statementCacheSize,
    safeIntegers,
    walCheckpointThresholdBytes,
  })
}

/**
 * The database path, refused (CONFIGURATION naming `sqlite.path`) where better-sqlite3 or SQLite's
 * VFS would open another file than the one the pool checks (its file identity, `-wal`, backups):
 * better-sqlite3 trims blanks (`./app.db ` or a `DATABASE_URL` read with its newline opened `app.db`,
 * and every statement then failed "the file was deleted while it was being opened"; an all-blank path
 * opened a temporary database), and SQLite drops a trailing `/` or final `.` segment (`./data/`
 * created a database FILE `data`, every statement then failed ENOTDIR). So: no leading or trailing
 * blank, no control character (NUL, a newline, ...), and a last segment that names a file (not empty,
 * `.` or `..`). A `.` or `..` segment inside the path, and `//`, are fine: the OS resolves them as
 * SQLite does.
 */
function checkPath(value: unknown): string {
  return checkDatabasePath('sqlite.path', value)
}

/**
 * @internal A path better-sqlite3 opens as given (the pool's `sqlite.path`, and the files of the
 * backup functions), by the rules of {@link checkPath}; CONFIGURATION naming `option` otherwise.
 */
export function checkDatabasePath(option: string, value: unknown): string {
  const path = checkString(option, value)
  if (path.includes('\u0000')) throw configError(option, value, 'must not contain a NUL character')
  if (/^file:/i.test(path)) throw configError(option, value, 'must be a file path or :memory:, not a file: URI')
  if (path.trim() !== path) {
    throw configError(
      option,
      value,
      'must not begin or end with a blank or line break: better-sqlite3 trims it and would open another file',
    )
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0001-\u001f\u007f]/.test(path)) throw configError(option, value, 'must not contain a control character (a line break, a tab...)')
  if (path !== MEMORY_PATH && /(^|[/\\])\.{0,2}$/.test(path)) {
    throw configError(
      option,
      value,
      'must name a file, not end with "/", "." or "..": SQLite drops that last segment and would open another file (or create a file where a directory was meant)',
    )
  }
  return path
}

function optional<T, D>(value: unknown, fallback: D, check: (v: unknown) => T): T | D {
  return value === undefined ? fallback : check(value)
}

// enums are accepted in any case ('wal' or 'WAL') and stored upper-case; errors show the value as given
function enumOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value.toUpperCase())) return value.toUpperCase() as T
  return checkEnum(option, value, allowed)
}

/** Turns resolved options back into the input form (to open another manager on the same database). */
export function toSqliteOptions(resolved: ResolvedSqliteOptions): SqliteOptions {
  const { memory, journalModeExplicit, cacheSizeKiB, mmapSizeBytes, tempStore, journalMode, ...rest } = resolved
  void memory
  return {
    ...rest,
    ...(journalModeExplicit || !resolved.readonly ? { journalMode } : {}),
    ...(cacheSizeKiB === undefined ? {} : { cacheSizeKiB }),
    ...(mmapSizeBytes === undefined ? {} : { mmapSizeBytes }),
    ...(tempStore === undefined ? {} : { tempStore }),
  }
}
