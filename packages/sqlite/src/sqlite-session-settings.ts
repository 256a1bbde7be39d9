import { DatabaseError } from '@dbpool/core'
import type { Database } from 'better-sqlite3'
import { isErrorLike } from '@dbpool/core/internal'

/**
 * The connection settings a statement can change with a PRAGMA and that stay on the connection
 * (SQLite keeps them until it closes), read on every new connection once it is configured: a lease
 * that changed one of them gets it restored at its release (see {@link restoreSettings}), and a
 * lease-free `pool.query` is refused from setting one. `journal_mode` is among them: `PRAGMA
 * journal_mode = DELETE` on a lease is put back to the pool's mode (WAL by default) at the release.
 * Settings of the database file itself ({@link FILE_PRAGMAS}) are data, not session state, and are
 * left alone. Deprecated ones a build may omit are skipped when they read nothing. Listed in the
 * order they are restored: `cache_size` before `cache_spill`, which reads back as the larger of the
 * spill threshold and the cache size.
 */
const SESSION_PRAGMAS = [
  'analysis_limit',
  'automatic_index',
  'busy_timeout',
  'cache_size',
  'cache_spill',
  'cell_size_check',
  'checkpoint_fullfsync',
  'count_changes',
  'defer_foreign_keys',
  'empty_result_callbacks',
  'foreign_keys',
  'full_column_names',
  'fullfsync',
  'ignore_check_constraints',
  'journal_mode',
  'journal_size_limit',
  'legacy_alter_table',
  'locking_mode',
  'max_page_count',
  'mmap_size',
  'query_only',
  'read_uncommitted',
  'recursive_triggers',
  'reverse_unordered_selects',
  'secure_delete',
  'short_column_names',
  'synchronous',
  'temp_store',
  'trusted_schema',
  'wal_autocheckpoint',
  'writable_schema',
] as const

/**
 * Settings SQLite can set but not read: restored to SQLite's default, and only after a PRAGMA setting
 * them was seen (restoring `case_sensitive_like` registers SQLite's built-in `like()` again, over one
 * the application registered itself).
 */
const WRITE_ONLY_DEFAULTS: ReadonlyMap<string, string> = new Map([['case_sensitive_like', 'OFF']])

/** Settings SQLite keeps per schema (`PRAGMA temp.cache_size`); every other setting is connection-wide and ignores a schema. */
const PER_SCHEMA: ReadonlySet<string> = new Set([
  'cache_size',
  'cache_spill',
  'journal_mode',
  'journal_size_limit',
  'locking_mode',
  'max_page_count',
  'mmap_size',
  'secure_delete',
  'synchronous',
])

const SETTINGS: ReadonlySet<string> = new Set<string>([...SESSION_PRAGMAS, ...WRITE_ONLY_DEFAULTS.keys()])

/**
 * Settings of the database file (persistent): a change is the application's data, never undone.
 * Process-wide ones (`soft_heap_limit`, `hard_heap_limit`, `temp_store_directory`,
 * `data_store_directory`) and `threads` (a limit on helper threads, no effect on results) are not
 * connection settings either, nor names SQLite does not know (it ignores them).
 */
const FILE_PRAGMAS: ReadonlySet<string> = new Set([
  'user_version',
  'application_id',
  'schema_version',
  'page_size',
  'auto_vacuum',
  'encoding',
])

/**
 * The connection setting `PRAGMA [schema.]name = ...` changes, as the pool tracks it (lower-cased):
 * `name`, or `schema.name` for a per-schema setting of another schema than main (not restorable:
 * see {@link restoreSettings}); a connection-wide flag ignores its schema (`temp.foreign_keys` is
 * `foreign_keys`). Undefined for anything else: file settings, process-wide ones, reading PRAGMAs
 * (`table_info(t)`, `wal_checkpoint(...)`) and unknown names.
 */
export function settingOf(schema: string | undefined, name: string): string | undefined {
  if (!SETTINGS.has(name) || FILE_PRAGMAS.has(name)) return undefined
  return schema === undefined || schema === 'main' || !PER_SCHEMA.has(name) ? name : `${schema}.${name}`
}

/** A connection's settings as configured: name to value (`PRAGMA name` read back). */
export type SessionSettings = ReadonlyMap<string, unknown>

/** Reads every {@link SESSION_PRAGMAS} setting of a freshly configured connection (about 30 pragma reads, at connect only). */
export function readSettings(db: Database): SessionSettings {
  const settings = new Map<string, unknown>()
  for (const name of SESSION_PRAGMAS) {
    const value = readSetting(db, name)
    if (value !== undefined) settings.set(name, value)
  }
  return settings
}

/** What {@link restoreSettings} could not do. */
export interface RestoreOutcome {
  /** A setting of another schema than main was changed: not restored here (a file connection is closed instead). */
  readonly unrestorable: readonly string[]
  /** Settings that failed to restore (a PRAGMA refused, or a value that did not read back), with the first error. */
  readonly failed: readonly string[]
  readonly error: DatabaseError | undefined
}

/**
 * Puts back the settings a lease changed (`changed`: {@link settingOf} names, or `'all'` after
 * `conn.native`: every readable setting), in {@link SESSION_PRAGMAS} order, then reads each back.
 * Runs at the release, after the transaction ended (SQLite ignores `foreign_keys` inside one). Every
 * setting is tried, whatever failed before it; never throws.
 *
 * @returns What was not restored: `error` is a DatabaseError CONFIGURATION naming the failed settings.
 */
export function restoreSettings(db: Database, settings: SessionSettings, changed: ReadonlySet<string> | 'all'): RestoreOutcome {
  const unrestorable: string[] = []
  const failed: string[] = []
  let first: { name: string; expected: unknown; actual: unknown; cause: unknown } | undefined
  const names = changed === 'all' ? [...settings.keys()] : [...SESSION_PRAGMAS, ...WRITE_ONLY_DEFAULTS.keys()].filter((n) => changed.has(n))
  if (changed !== 'all') for (const name of changed) if (name.includes('.')) unrestorable.push(name)
  for (const name of names) {
    try {
      const fallback = WRITE_ONLY_DEFAULTS.get(name)
      if (fallback !== undefined) {
        db.pragma(`${name} = ${fallback}`)
        continue
      }
      if (!settings.has(name)) continue
      const expected = settings.get(name)
      if (readSetting(db, name) === expected) continue
      // values read from SQLite itself (numbers, or a mode word such as 'wal' / 'normal'), never user text
      db.pragma(`${name} = ${String(expected)}`)
      const actual = readSetting(db, name)
      if (actual !== expected) {
        failed.push(name)
        first ??= { name, expected, actual, cause: undefined }
      }
    } catch (err) {
      failed.push(name)
      first ??= { name, expected: settings.get(name), actual: undefined, cause: err }
    }
  }
  const error =
    first === undefined
      ? undefined
      : new DatabaseError(
          'CONFIGURATION',
          `SQLite did not restore PRAGMA ${failed.join(', ')} after a lease changed ${failed.length === 1 ? 'it' : 'them'}: ${first.name} asked for ${String(first.expected)}, ${first.cause === undefined ? `it reports ${String(first.actual)}` : `refused: ${isErrorLike(first.cause) ? first.cause.message : String(first.cause)}`}`,
          {
            backend: 'sqlite',
            cause: first.cause,
            detail: { pragmas: failed, pragma: first.name, expected: first.expected, actual: first.actual },
          },
        )
  return { unrestorable, failed, error }
}
function readSetting(db: Database, name: string): unknown {
  try {
    const value: unknown = db.pragma(name, { simple: true })
    return typeof value === 'string' ? value.toLowerCase() : typeof value === 'bigint' ? Number(value) : value
  } catch {
    return undefined
  }
}
