import { statSync } from 'node:fs'
import { DatabaseError, type HealthCheckDetail } from '@dbpool/core'

/**
 * Which file a connection opened: the (device, inode) pair of its path at open time, as bigints
 * (exact on filesystems with 64-bit inode numbers).
 */
export interface FileIdentity {
  readonly dev: bigint
  readonly ino: bigint
  /**
   * WAL mode: the write-ahead log (`<path>-wal`) is watched too, from the first time it is seen. While
   * a connection is open SQLite never deletes or replaces it (only the last connection to close does),
   * so a different file there means it was deleted or moved from outside: the commits it holds that
   * are not yet checkpointed would be lost at the next crash or close.
   */
  readonly watchWal?: boolean
  /** The write-ahead log's identity, once seen. */
  wal?: { readonly dev: bigint; readonly ino: bigint }
  /** `performance.now()` of the last look at the write-ahead log (writes look at most every {@link WAL_IDENTITY_INTERVAL_MS}). */
  walCheckedAt?: number
}

/**
 * How often (at most) the write path looks at the write-ahead log's identity, in ms. A `stat` of a
 * log that was just fsync'ed waits on the file system's journal (measured: 8 µs, against 2 µs idle;
 * on every COMMIT it cost the 50-writer benchmark 15 to 30%). Commits made in that window are not at
 * risk on a clean close (the writer's closing checkpoint copies the old log's frames through its open
 * descriptor), only on a crash, like every commit not yet checkpointed before the log was deleted.
 * A ping (the health check, validation after idle) always looks.
 */
export const WAL_IDENTITY_INTERVAL_MS = 250

/** How the path no longer names the file a connection opened (or its write-ahead log). */
export type FileIdentityProblem = 'deleted' | 'replaced' | 'wal deleted' | 'wal replaced'

/** The identity of the file at `path` now, or undefined when there is none. */
export function fileIdentityOf(path: string): FileIdentity | undefined {
  const stats = statSync(path, { throwIfNoEntry: false, bigint: true })
  return stats === undefined ? undefined : { dev: stats.dev, ino: stats.ino }
}

/**
 * Compares the file at `path` now with the one a connection opened (one `stat`, about 2 µs):
 * `deleted` when nothing is at the path (deleted, or moved away), `replaced` when another file is
 * (renamed over it, or deleted and recreated), undefined when it is the same file.
 *
 * SQLite keeps writing to the file descriptor it opened: after the path stops naming that file,
 * every write (WAL mode included) succeeds and goes to an unlinked inode that nobody can open again.
 * SQLite's own check (`SQLITE_READONLY_DBMOVED`) only runs when a rollback journal is created, so
 * never in WAL mode.
 */
export function fileIdentityProblem(path: string, opened: FileIdentity, walEveryMs = 0): FileIdentityProblem | undefined {
  const now = fileIdentityOf(path)
  if (now === undefined) return 'deleted'
  if (now.dev !== opened.dev || now.ino !== opened.ino) return 'replaced'
  if (opened.watchWal !== true) return undefined
  if (walEveryMs > 0) {
    const at = performance.now()
    if (opened.walCheckedAt !== undefined && at - opened.walCheckedAt < walEveryMs) return undefined
    opened.walCheckedAt = at
  }
  const wal = fileIdentityOf(`${path}-wal`)
  if (opened.wal === undefined) {
    // first sight: from now on it must stay this file
    if (wal !== undefined) opened.wal = wal
    return undefined
  }
  if (wal === undefined) return 'wal deleted'
  return wal.dev === opened.wal.dev && wal.ino === opened.wal.ino ? undefined : 'wal replaced'
}

/**
 * The error for a connection whose database file went away: CONNECTION_LOST, not retryable on this
 * connection (`retryable: false`; a new connection opens whatever is at the path now, or fails with
 * CONNECTION_FAILED when nothing is). `detail` holds `path` and `reason`.
 */
export function fileIdentityError(path: string, problem: FileIdentityProblem, what: string): DatabaseError {
  const how = problem === 'deleted' || problem === 'wal deleted' ? 'deleted or moved away' : 'replaced by another file'
  const message =
    problem === 'deleted' || problem === 'replaced'
      ? `the database file at ${path} was ${how} after this connection opened it: writes would go to the unlinked file and be lost, so ${what}`
      : `the write-ahead log ${path}-wal was ${how} while the database was open: commits in it would be lost at the next crash or close, so ${what}`
  return new DatabaseError('CONNECTION_LOST', message, { backend: 'sqlite', retryable: false, detail: { path, reason: problem } })
}

/**
 * Health check `file`: unhealthy when the path no longer names the file the connection opened
 * (see {@link fileIdentityProblem}), healthy otherwise.
 */
export function fileIdentityCheck(path: string, opened: FileIdentity): HealthCheckDetail {
  const problem = fileIdentityProblem(path, opened)
  if (problem === undefined) return { name: 'file', status: 'healthy', data: { path } }
  return {
    name: 'file',
    status: 'unhealthy',
    message: fileIdentityError(path, problem, 'the pool refuses writes on its connections').message,
    data: { path, reason: problem },
  }
}
