import { statSync } from 'node:fs'
import type { HealthCheckDetail } from '@dbpool/core'
import type BetterSqlite3 from 'better-sqlite3'
import { mapSqliteError } from './sqlite-errors'
import { fileIdentityCheck, type FileIdentity } from './file-identity'

/** What the SQLite health checks need besides the connection. */
export interface SqliteHealthContext {
  /** The database path (`:memory:` has no WAL file). */
  readonly path: string
  /** `-wal` size above which checkpoints count as starved; `0` disables the size verdict. */
  readonly walCheckpointThresholdBytes: number
  /** Most integrity problems listed in a detail. Default is `10`. */
  readonly maxErrors?: number
  /** The file the connection opened; given, the `file` check compares the path with it. */
  readonly identity?: FileIdentity
}

/**
 * Runs the SQLite checks on one connection and never throws: `integrity` (`quick_check`, or
 * `integrity_check` when `deep`), `wal` (the `-wal` file size), `pages` (page and freelist counts)
 * and, when `context.identity` is given, `file` (unhealthy when the path no longer names the file
 * the connection opened: deleted, moved or replaced; see fileIdentityProblem).
 */
export function sqliteHealthChecks(db: BetterSqlite3.Database, deep: boolean, context: SqliteHealthContext): HealthCheckDetail[] {
  const checks = [integrityCheck(db, deep, context), walCheck(context), pageCheck(db)]
  if (context.identity !== undefined) checks.push(fileIdentityCheck(context.path, context.identity))
  return checks
}

/** `PRAGMA quick_check` / `integrity_check`: healthy only when SQLite answers exactly `ok`. */
export function integrityCheck(db: BetterSqlite3.Database, deep: boolean, context: SqliteHealthContext): HealthCheckDetail {
  const mode = deep ? 'integrity_check' : 'quick_check'
  const maxErrors = context.maxErrors ?? 10
  const started = performance.now()
  try {
    // the pragma argument is an integer we own, never user text
    const lines = db.pragma(`${mode}(${Math.trunc(maxErrors)})`, { simple: false }) as Record<string, unknown>[]
    const messages = lines.map((row) => String(Object.values(row)[0]))
    const ok = messages.length === 1 && messages[0] === 'ok'
    return {
      name: 'integrity',
      status: ok ? 'healthy' : 'unhealthy',
      latencyMs: elapsed(started),
      ...(ok ? {} : { message: `${mode} found ${messages.length} problem(s): ${messages[0] ?? ''}` }),
      data: { mode, ok, errors: ok ? [] : messages },
    }
  } catch (err) {
    const error = mapSqliteError(err, { path: context.path })
    return {
      name: 'integrity',
      status: 'unhealthy',
      latencyMs: elapsed(started),
      message: `${mode} failed: ${error.code}: ${error.message}`,
      data: { mode, ok: false, code: error.code, sqliteCode: error.sqliteCode, errors: [error.message] },
    }
  }
}

/** The `-wal` file size; degraded when it is more than twice the checkpoint threshold (checkpoints starved). */
export function walCheck(context: SqliteHealthContext): HealthCheckDetail {
  const bytes = walSizeBytes(context.path)
  const threshold = context.walCheckpointThresholdBytes
  const starved = threshold > 0 && bytes > 2 * threshold
  return {
    name: 'wal',
    status: starved ? 'degraded' : 'healthy',
    data: { bytes, thresholdBytes: threshold },
    ...(starved
      ? { message: `WAL is ${bytes} bytes, over twice the checkpoint threshold: long read transactions may be starving checkpoints` }
      : {}),
  }
}

/** `page_count`, `freelist_count` and `page_size`. */
export function pageCheck(db: BetterSqlite3.Database): HealthCheckDetail {
  try {
    const pageCount = Number(db.pragma('page_count', { simple: true }))
    const freelistCount = Number(db.pragma('freelist_count', { simple: true }))
    const pageSize = Number(db.pragma('page_size', { simple: true }))
    return { name: 'pages', status: 'healthy', data: { pageCount, freelistCount, pageSize, bytes: pageCount * pageSize } }
  } catch (err) {
    const error = mapSqliteError(err)
    return { name: 'pages', status: 'unhealthy', message: `${error.code}: ${error.message}`, data: { code: error.code } }
  }
}

/** Size of `<path>-wal` in bytes (`0` when there is none). */
export function walSizeBytes(path: string): number {
  if (path === ':memory:') return 0
  return statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100
}
