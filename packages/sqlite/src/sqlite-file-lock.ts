import { realpathSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { DatabaseError, type HeldLock } from '@dbpool/core'
import { isErrorLike } from '@dbpool/core/internal'
import Database from 'better-sqlite3'
import { mapSqliteError } from './sqlite-errors'
import { isLockBusy, waitForLock } from './sqlite-lock-wait'

/** A lock name: lower-case letters, digits and dashes (it becomes part of a file name). */
const LOCK_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/

/**
 * The lock file of `name` for the database at `path`: `<database>-<name>.lock` next to the database
 * file, its symbolic links resolved (two processes reaching the file through different links or
 * relative paths lock the same file).
 */
export function lockFilePath(path: string, name: string): string {
  let real = path
  try {
    real = realpathSync(path)
  } catch {
    try {
      // not there yet: its directory's links resolved
      real = join(realpathSync(dirname(path)), basename(path))
    } catch {
      // no directory either: the path as given (opening the lock file will say what is wrong)
    }
  }
  return `${real}-${name}.lock`
}

/**
 * The lock file of `name` could not be created or opened (SQLite's reason, e.g. `unable to open
 * database file` for a directory this process cannot write, as a read-only deployment has): a
 * setup problem of the deployment, not an unreachable database. CONFIGURATION, not retryable,
 * `detail: { lockFile, reason }` (the SQLite error as `cause`, its code as `sqliteCode`).
 */
function lockFileError(file: string, name: string, err: unknown): DatabaseError {
  const mapped = mapSqliteError(err, { path: file })
  const reason = isErrorLike(err) ? err.message : String(err)
  return new DatabaseError(
    'CONFIGURATION',
    `cannot take the lock ${name}: its lock file ${file} cannot be created or opened (${reason}); the directory of the database must be writable by this process (a pool opened with readonly: true takes no such lock)`,
    { backend: 'sqlite', cause: err, retryable: false, sqliteCode: mapped.sqliteCode, detail: { lockFile: file, reason } },
  )
}

/**
 * Takes an exclusive lock that holds across connections, pools and processes on one database until
 * `release()`: SQLite's own `BEGIN EXCLUSIVE` on a small database file of its own next to the database
 * ({@link lockFilePath}), held by a connection opened for it. The operating system frees the lock
 * when the holding process dies (SQLite's POSIX advisory locks), so a crash never leaves it taken;
 * SQLite keeps two connections of one process apart too. The file is left in place (deleting it
 * while another process waits on it would give the two of them different files).
 *
 * While another holder has it, the attempt is repeated off the event loop (1 ms, doubling up to
 * 50 ms) for at most `timeoutMs`; `signal` ends the wait (QUERY_CANCELLED, the lock not taken).
 *
 * @throws DatabaseError CONFIGURATION for a `name` that is not lower-case letters, digits and dashes;
 *   BUSY (retryable) when another holder kept it past `timeoutMs` (`detail.lockFile`, `detail.timeoutMs`);
 *   CONFIGURATION (not retryable, {@link lockFileError}) when the lock file cannot be created or
 *   opened (a directory this process cannot write): never taken as unlocked.
 */
export async function lockFileNextTo(path: string, name: string, timeoutMs: number, signal?: AbortSignal): Promise<HeldLock> {
  if (!LOCK_NAME.test(name))
    throw new DatabaseError('CONFIGURATION', `invalid lock name ${JSON.stringify(name)}: must be lower-case letters, digits and dashes`)
  const file = lockFilePath(path, name)
  let db: Database.Database
  try {
    // timeout 0: SQLite's busy handler would block the event loop; the wait below runs on timers
    db = new Database(file, { timeout: 0 })
  } catch (err) {
    throw lockFileError(file, name, err)
  }
  let busy: unknown
  const attempt = (): true | undefined => {
    try {
      db.exec('BEGIN EXCLUSIVE')
      return true
    } catch (err) {
      if (!isLockBusy((err as { code?: string }).code)) throw err
      busy = err
      return undefined
    }
  }
  try {
    if (attempt() === undefined)
      await waitForLock(
        attempt,
        () => {
          db.exec('BEGIN EXCLUSIVE')
          return true
        },
        { busyTimeoutMs: timeoutMs, signal },
        () => busy,
      )
  } catch (err) {
    db.close()
    // aborted (the pool closes): QUERY_CANCELLED, the lock not taken
    if (DatabaseError.is(err, 'QUERY_CANCELLED')) throw err
    const mapped = mapSqliteError(err, { path: file })
    if (mapped.code !== 'BUSY') throw mapped
    throw new DatabaseError(
      'BUSY',
      `timed out after ${timeoutMs} ms waiting for the lock ${file}: another connection or process holds it (it is freed when that run ends or its process exits)`,
      { backend: 'sqlite', cause: err, retryable: true, sqliteCode: mapped.sqliteCode, detail: { lockFile: file, timeoutMs } },
    )
  }
  let held = true
  return {
    release(): void {
      if (!held) return
      held = false
      try {
        db.exec('ROLLBACK')
      } catch {
        // closing ends the transaction and frees the lock anyway
      }
      try {
        db.close()
      } catch {
        // the handle is gone either way: the operating system frees its lock with it
      }
    },
  }
}
