import { statSync } from 'node:fs'
import type { HealthCheckDetail } from '@dbpool/core'
import type BetterSqlite3 from 'better-sqlite3'
import { mapSqliteError } from './sqlite-errors'

/** What the SQLite health checks need besides the connection. */
export interface SqliteHealthContext {
  /** The database path (`:memory:` has no WAL file). */
  readonly path: string
  /** `-wal` size above which checkpoints count as starved; `0` disables the size verdict. */
  readonly walCheckpointThresholdBytes: number
  /** Most integrity problems listed in a detail. Default is `10`. */
  readonly maxErrors?: number
}

/**
 * Runs the SQLite checks on one connection and never throws: `integrity` (`quick_check`, or
 * `integrity_check` when `deep`), `wal` (the `-wal` file size) and `pages` (page and freelist counts).
 * Synchronous, integrity included: the connection manager uses it only for `:memory:` and runs a file's
 * integrity check on a worker thread ({@link IntegrityWorker}).
 */
export function sqliteHealthChecks(db: BetterSqlite3.Database, deep: boolean, context: SqliteHealthContext): HealthCheckDetail[] {
  return [integrityCheck(db, deep, context), walCheck(context), pageCheck(db)]
}

/** The pragma an integrity check runs: `integrity_check` when deep, `quick_check` otherwise. */
export type IntegrityMode = 'quick_check' | 'integrity_check'

/**
 * `PRAGMA quick_check` / `integrity_check` on this connection: healthy only when SQLite answers exactly
 * `ok`. Synchronous: it reads the whole database on the calling thread; the connection manager runs it
 * on a worker thread for a file database (see {@link IntegrityWorker}).
 */
export function integrityCheck(db: BetterSqlite3.Database, deep: boolean, context: SqliteHealthContext): HealthCheckDetail {
  const mode: IntegrityMode = deep ? 'integrity_check' : 'quick_check'
  const started = performance.now()
  let answer: IntegrityAnswer
  try {
    // the pragma argument is an integer we own, never user text
    const lines = db.pragma(`${mode}(${maxErrorsOf(context)})`, { simple: false }) as Record<string, unknown>[]
    answer = { messages: lines.map((row) => String(Object.values(row)[0])) }
  } catch (err) {
    answer = { error: err }
  }
  return integrityDetail(mode, answer, elapsed(started), context.path)
}

/** What the integrity pragma answered (its lines) or threw. */
export type IntegrityAnswer = { readonly messages: readonly string[] } | { readonly error: unknown }

/** The `integrity` detail for an answer of the pragma. */
export function integrityDetail(mode: IntegrityMode, answer: IntegrityAnswer, latencyMs: number, path: string): HealthCheckDetail {
  if ('error' in answer) {
    const error = mapSqliteError(answer.error, { path })
    return {
      name: 'integrity',
      status: 'unhealthy',
      latencyMs,
      message: `${mode} failed: ${error.code}: ${error.message}`,
      data: { mode, ok: false, code: error.code, sqliteCode: error.sqliteCode, errors: [error.message] },
    }
  }
  const messages = [...answer.messages]
  const ok = messages.length === 1 && messages[0] === 'ok'
  return {
    name: 'integrity',
    status: ok ? 'healthy' : 'unhealthy',
    latencyMs,
    ...(ok ? {} : { message: `${mode} found ${messages.length} problem(s): ${messages[0] ?? ''}` }),
    data: { mode, ok, errors: ok ? [] : messages },
  }
}

/** The integer argument of the pragma (at most this many problems listed). */
export function maxErrorsOf(context: Pick<SqliteHealthContext, 'maxErrors'>): number {
  return Math.trunc(context.maxErrors ?? 10)
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

/** Milliseconds since `started`, rounded to 0.01. */
export function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100
}
