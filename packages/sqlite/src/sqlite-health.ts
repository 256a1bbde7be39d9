import { statSync } from 'node:fs'
import type { HealthCheckDetail } from '@dbpool/core'
import BetterSqlite3 from 'better-sqlite3'
import { pragmaCheckOffThread } from './backup-verify'
import { mapSqliteError, messageOf } from './sqlite-errors'
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
  /**
   * Longest a deep check waits for the `integrity_check`, in ms (then degraded; the check goes on in
   * its worker, see {@link deepIntegrityCheck}). Default is `5000`.
   */
  readonly timeoutMs?: number
}

/**
 * Runs the SQLite checks on one connection and never rejects: `wal` (the `-wal` file size), `pages`
 * (page and freelist counts), when `context.identity` is given `file` (unhealthy when the path no
 * longer names the file the connection opened: deleted, moved or replaced; see fileIdentityProblem),
 * and when `deep` `integrity` (`integrity_check`, off the event loop: see {@link deepIntegrityCheck}).
 *
 * A check that is not deep (`/ready`, the HealthChecker's default) scans nothing: `quick_check` reads
 * every page (140 to 200 ms on a 210 MB file, seconds on a large one) and ran on the event loop at
 * every probe, stalling the process; on a thread it would still cost that I/O per probe and fail
 * every probe whose deadline is shorter than the scan (a readiness flapping with the database's size).
 * Corruption is found by deep checks (`dbpool check`, `HealthChecker({ deep: true })`) and by each
 * backup's verification.
 */
export async function sqliteHealthChecks(
  db: BetterSqlite3.Database,
  deep: boolean,
  context: SqliteHealthContext,
): Promise<HealthCheckDetail[]> {
  const started = performance.now()
  const checks = deep ? [await deepIntegrityCheck(db, context)] : []
  const left = Math.max(1, Math.trunc(context.timeoutMs ?? 5_000) - (performance.now() - started))
  checks.push(walCheck(context), await pageCheckWithin(db, left))
  if (context.identity !== undefined) checks.push(fileIdentityCheck(context.path, context.identity))
  return checks
}

/**
 * `integrity_check` of the database file in the backup verification's worker thread (its own
 * read-only connection, `pragmaCheckOffThread`), so the event loop keeps running. At most one runs
 * per database file: a deep check arriving while one runs joins it. Past `context.timeoutMs` (default
 * 5000) it is degraded (`data.timedOut`: the integrity is not known yet); the scan cannot be
 * interrupted and goes on in its thread (which no longer holds the process open), and the next deep
 * check joins it, or, when it finished meanwhile (within a minute), is answered from it
 * (`data.ageMs`). An in-memory
 * database, or a process where no worker can load better-sqlite3, is checked on `db` on the calling
 * thread ({@link integrityCheck}). Never rejects.
 */
export async function deepIntegrityCheck(db: BetterSqlite3.Database, context: SqliteHealthContext): Promise<HealthCheckDetail> {
  if (context.path === ':memory:') return integrityCheck(db, true, context)
  const mode = 'integrity_check'
  const maxErrors = Math.max(1, Math.trunc(context.maxErrors ?? 10))
  const timeoutMs = Math.max(1, Math.trunc(context.timeoutMs ?? 5_000))
  const started = performance.now()
  let answer: Awaited<ReturnType<typeof pragmaCheckOffThread>>
  try {
    answer = await pragmaCheckOffThread(context.path, `${mode}(${maxErrors})`, timeoutMs)
  } catch (err) {
    // the worker failed or exited before answering
    return {
      name: 'integrity',
      status: 'degraded',
      latencyMs: elapsed(started),
      message: `${mode} could not run: ${messageOf(err)}`,
      data: { mode, ok: false, errors: [] },
    }
  }
  if (answer?.kind === 'running') {
    return {
      name: 'integrity',
      status: 'degraded',
      latencyMs: elapsed(started),
      message: `${mode} did not finish within timeoutMs ${timeoutMs}: the integrity is not known yet; the check goes on in its worker thread (${answer.runningMs} ms so far; SQLite cannot interrupt it), a later deep check joins it or is answered from it (raise timeoutMs for deep checks)`,
      data: { mode, ok: false, timedOut: true, runningMs: answer.runningMs, errors: [] },
    }
  }
  if (answer === undefined || answer.kind === 'unavailable') return integrityCheck(db, true, context)
  if (answer.kind === 'failed') {
    const error = mapSqliteError(new BetterSqlite3.SqliteError(answer.message, answer.code ?? 'SQLITE_ERROR'), { path: context.path })
    return {
      name: 'integrity',
      status: 'unhealthy',
      latencyMs: elapsed(started),
      message: `${mode} failed: ${error.code}: ${error.message}`,
      data: { mode, ok: false, code: error.code, sqliteCode: error.sqliteCode, errors: [error.message] },
    }
  }
  const messages = answer.messages
  const ok = messages.length === 1 && messages[0] === 'ok'
  return {
    name: 'integrity',
    status: ok ? 'healthy' : 'unhealthy',
    latencyMs: elapsed(started),
    ...(ok ? {} : { message: `${mode} found ${messages.length} problem(s): ${messages[0] ?? ''}` }),
    data: { mode, ok, errors: ok ? [] : messages, ...(answer.ageMs === undefined ? {} : { ageMs: answer.ageMs }) },
  }
}

/**
 * `PRAGMA quick_check` / `integrity_check` on `db`, on the calling thread (it blocks the event loop
 * for a scan of the whole file): healthy only when SQLite answers exactly `ok`. The health checks use
 * it only where no worker can ({@link deepIntegrityCheck}).
 */
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

/**
 * {@link pageCheck} waiting for a lock another connection holds (BUSY: a writer of another process
 * in DELETE journal mode holds the file): tried again after 1 ms, doubling up to 50 ms, on timers
 * (the event loop runs meanwhile), within `timeoutMs`; still BUSY then: degraded (the database is
 * busy, not down; `data.code` BUSY). Other errors are unhealthy.
 */
export async function pageCheckWithin(db: BetterSqlite3.Database, timeoutMs: number): Promise<HealthCheckDetail> {
  const deadline = performance.now() + timeoutMs
  let delay = 1
  for (;;) {
    const check = pageCheck(db)
    if (check.status === 'healthy' || (check.data as { code?: string } | undefined)?.code !== 'BUSY') return check
    const left = deadline - performance.now()
    if (left <= 0)
      return {
        name: 'pages',
        status: 'degraded',
        message: `the database stayed locked by another connection for the check's ${Math.round(timeoutMs)} ms (busy, not down): ${check.message ?? ''}`,
        data: { code: 'BUSY' },
      }
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(delay, Math.ceil(left)))))
    delay = Math.min(50, delay * 2)
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
