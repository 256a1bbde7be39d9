import { DatabaseError } from '@dbpool/core'
import type { Database } from 'better-sqlite3'

/**
 * The connection settings a statement can change with a PRAGMA and that stay on the connection
 * (SQLite keeps them until it closes), read on every new connection once it is configured: a lease
 * that changed one of them gets it restored at its release (see {@link restoreSettings}). Settings
 * of the database file itself (`user_version`, `application_id`, `page_size`, `auto_vacuum`,
 * `journal_mode = WAL`) are data, not session state, and are left alone (journal_mode is read back
 * and restored like the rest). Deprecated ones a build may omit are skipped when they read nothing.
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
  'threads',
  'trusted_schema',
  'wal_autocheckpoint',
  'writable_schema',
] as const

/** Settings SQLite can set but not read: restored to SQLite's default. */
const WRITE_ONLY_DEFAULTS: ReadonlyMap<string, string> = new Map([['case_sensitive_like', 'OFF']])

/** Settings of the database file (persistent): a change is the application's data, never undone. */
const FILE_PRAGMAS: ReadonlySet<string> = new Set([
  'user_version',
  'application_id',
  'schema_version',
  'page_size',
  'auto_vacuum',
  'encoding',
])

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

/**
 * Puts back the settings a lease changed (`changed`: the names its PRAGMAs set, lower-cased, or
 * `'all'` after `conn.native`), then reads them back. Runs at the release, after the transaction
 * ended (SQLite ignores `foreign_keys` inside one).
 *
 * @returns Whether the connection can be reused: false when a setting of another schema than main
 *   (`PRAGMA temp.cache_size = ...`) or an unknown setting was changed, which is not restored here
 *   (the pool then closes a file connection and opens a fresh one).
 * @throws DatabaseError CONFIGURATION when a setting does not read back as configured (the pool
 *   discards the connection).
 */
export function restoreSettings(db: Database, settings: SessionSettings, changed: ReadonlySet<string> | 'all'): boolean {
  let reusable = true
  const names = changed === 'all' ? [...settings.keys(), ...WRITE_ONLY_DEFAULTS.keys()] : changed
  for (const qualified of names) {
    const dot = qualified.indexOf('.')
    const schema = dot < 0 ? 'main' : qualified.slice(0, dot)
    const name = dot < 0 ? qualified : qualified.slice(dot + 1)
    if (FILE_PRAGMAS.has(name)) continue
    const fallback = WRITE_ONLY_DEFAULTS.get(name)
    if (fallback !== undefined) {
      db.pragma(`${name} = ${fallback}`)
      continue
    }
    if (schema !== 'main' || !settings.has(name)) {
      reusable = false
      continue
    }
    const expected = settings.get(name)
    if (readSetting(db, name) === expected) continue
    // values read from SQLite itself (numbers, or a mode word such as 'wal' / 'normal'), never user text
    db.pragma(`${name} = ${String(expected)}`)
    const actual = readSetting(db, name)
    if (actual !== expected)
      throw new DatabaseError(
        'CONFIGURATION',
        `SQLite did not restore PRAGMA ${name} after a lease changed it: asked for ${String(expected)}, it reports ${String(actual)} (the connection is closed)`,
        { backend: 'sqlite', detail: { pragma: name, expected, actual } },
      )
  }
  return reusable
}

function readSetting(db: Database, name: string): unknown {
  try {
    const value: unknown = db.pragma(name, { simple: true })
    return typeof value === 'string' ? value.toLowerCase() : typeof value === 'bigint' ? Number(value) : value
  } catch {
    return undefined
  }
}
