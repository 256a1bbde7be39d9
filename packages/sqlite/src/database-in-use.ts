import { existsSync } from 'node:fs'
import Database from 'better-sqlite3'
import { DatabaseError } from '@dbpool/core'

/**
 * Whether another connection (of any process) has the SQLite database at `path` open, tested the
 * way SQLite itself decides it may act alone: on a WAL file, every open connection holds a SHARED
 * lock on the database file for as long as it is open (busy or idle), and leaving WAL mode needs an
 * EXCLUSIVE one, so `PRAGMA journal_mode = DELETE` on a private connection (busy timeout 0) fails
 * with SQLITE_BUSY exactly when someone else has the file open; when it succeeds (the WAL is
 * checkpointed into the file first) the mode is set back to WAL. On a rollback-journal file an idle
 * connection holds no lock: only one inside a transaction is seen (`BEGIN EXCLUSIVE` fails).
 * A missing file is not in use. The caller must have closed its own connections first.
 */
export function databaseInUse(path: string): boolean {
  if (!existsSync(path)) return false
  let db: Database.Database
  try {
    db = new Database(path, { fileMustExist: true, timeout: 0 })
  } catch (err) {
    if (isBusy(err)) return true
    throw err
  }
  try {
    if (String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal') {
      try {
        if (String(db.pragma('journal_mode = DELETE', { simple: true })).toLowerCase() !== 'delete') return true
      } catch (err) {
        if (isBusy(err)) return true
        throw err
      }
      db.pragma('journal_mode = WAL')
      return false
    }
    try {
      db.exec('BEGIN EXCLUSIVE')
      db.exec('ROLLBACK')
      return false
    } catch (err) {
      if (isBusy(err)) return true
      throw err
    }
  } finally {
    db.close()
  }
}

/**
 * Throws BACKUP_FAILED (`detail.reason` `'in-use'`, not retryable) when {@link databaseInUse}, or when
 * it cannot tell (the probe failed, e.g. on a read-only file; the cause is kept): a database replaced
 * under another process's open connection leaves that process reading (and writing) the deleted file.
 */
export function refuseInUse(path: string): void {
  let inUse: boolean
  try {
    inUse = databaseInUse(path)
  } catch (err) {
    // e.g. a read-only database file: the probe cannot take the lock it needs
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: cannot tell whether another connection has the database open (${(err as Error).message}). Check the file, or force the restore`,
      { backend: 'sqlite', retryable: false, cause: err, detail: { path, reason: 'in-use' } },
    )
  }
  if (!inUse) return
  throw new DatabaseError(
    'BACKUP_FAILED',
    `cannot restore ${path}: another connection has the database open (another process, or another pool in this one); it would go on reading the replaced file. Stop it first, or force the restore`,
    { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use' } },
  )
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || (typeof code === 'string' && code.startsWith('SQLITE_BUSY_'))
}
