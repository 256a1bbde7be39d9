import { closeSync, existsSync, openSync, readSync } from 'node:fs'
import Database from 'better-sqlite3'
import { DatabaseError } from '@dbpool/core'

/**
 * What a probe can tell about other connections to a SQLite database file:
 * - `unused`: none (a WAL file no other connection holds, or a missing file);
 * - `in-use`: another connection has it open (a WAL file's SHARED lock, or a lock held right now);
 * - `unknown`: a rollback-journal file (`journal_mode` DELETE, TRUNCATE, PERSIST, MEMORY, OFF) that
 *   nobody locks right now: an idle connection holds no lock there, so whether one is open cannot be
 *   told. Such a connection keeps pages in its cache and writes them into a replaced file.
 */
export type DatabaseUse = 'unused' | 'in-use' | 'unknown'

/**
 * Whether another connection (of any process) has the SQLite database at `path` open, tested the
 * way SQLite itself decides it may act alone: on a WAL file, every open connection holds a SHARED
 * lock on the database file for as long as it is open (busy or idle), and leaving WAL mode needs an
 * EXCLUSIVE one, so `PRAGMA journal_mode = DELETE` on a private connection (busy timeout 0) fails
 * with SQLITE_BUSY exactly when someone else has the file open; when it succeeds (the WAL is
 * checkpointed into the file first) the mode is set back to WAL. On a rollback-journal file an idle
 * connection holds no lock: only one inside a transaction is seen (`BEGIN EXCLUSIVE` fails), else
 * the answer is `unknown`. A missing file is `unused`. The caller must have closed its own
 * connections first. Throws what SQLite throws when the probe cannot run (e.g. a read-only file).
 */
export function databaseUse(path: string): DatabaseUse {
  if (!existsSync(path)) return 'unused'
  let db: Database.Database
  try {
    db = new Database(path, { fileMustExist: true, timeout: 0 })
  } catch (err) {
    if (isBusy(err)) return 'in-use'
    throw err
  }
  try {
    let mode: string
    try {
      mode = String(db.pragma('journal_mode', { simple: true })).toLowerCase()
    } catch (err) {
      if (isBusy(err)) return 'in-use'
      throw err
    }
    if (mode === 'wal') {
      try {
        if (String(db.pragma('journal_mode = DELETE', { simple: true })).toLowerCase() !== 'delete') return 'in-use'
      } catch (err) {
        if (isBusy(err)) return 'in-use'
        throw err
      }
      db.pragma('journal_mode = WAL')
      return 'unused'
    }
    try {
      db.exec('BEGIN EXCLUSIVE')
      db.exec('ROLLBACK')
      return 'unknown'
    } catch (err) {
      if (isBusy(err)) return 'in-use'
      throw err
    }
  } finally {
    db.close()
  }
}

/**
 * `true` when {@link databaseUse} sees another connection (`in-use`). A rollback-journal file nobody
 * locks right now answers `false` although an idle connection may have it open: {@link refuseInUse}
 * refuses that case too.
 */
export function databaseInUse(path: string): boolean {
  return databaseUse(path) === 'in-use'
}

/**
 * Throws BACKUP_FAILED (not retryable) unless {@link databaseUse} is `unused`: `detail.reason`
 * `'in-use'` when another connection has the database open, `'in-use-unknown'` when it cannot be
 * told: a rollback-journal database (an idle connection of another process holds no lock, and its
 * next write would put its cached pages into the restored file, corrupting it), or a probe that
 * failed (e.g. a read-only file; the cause is kept). A database replaced under another process's
 * open connection leaves that process reading (and writing) the old or a mixed file. Only `force`
 * restores such a database.
 */
export function refuseInUse(path: string): void {
  let use: DatabaseUse
  try {
    use = databaseUse(path)
  } catch (err) {
    // e.g. a read-only database file: the probe cannot take the lock it needs
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: cannot tell whether another connection has the database open (${(err as Error).message}). Stop every process using it and force the restore`,
      { backend: 'sqlite', retryable: false, cause: err, detail: { path, reason: 'in-use-unknown' } },
    )
  }
  if (use === 'unused') return
  if (use === 'unknown') throw useUnknown(path)
  throw new DatabaseError(
    'BACKUP_FAILED',
    `cannot restore ${path}: another connection has the database open (another process, or another pool in this one); it would go on reading the replaced file. Stop it first, or force the restore`,
    { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use' } },
  )
}

/**
 * Throws {@link refuseInUse}'s `'in-use-unknown'` BACKUP_FAILED when the file's header says it is a
 * rollback-journal database (header bytes 18-19 are 1, 2 for WAL; see SQLite's file format). Read
 * from the file, without opening it: a connection opened with `journal_mode = WAL` (a pool's default)
 * switches an idle-held rollback-journal file to WAL unseen by its holder, and the probe would then
 * find nobody. So a restore checks this before its pool touches the file.
 */
export function refuseRollbackJournal(path: string): void {
  if (rollbackJournalFile(path)) throw useUnknown(path)
}

/** The database file's header says rollback journal (not WAL); false for a missing or headerless file. */
export function rollbackJournalFile(path: string): boolean {
  return journalKindOf(path) === 'rollback'
}

/**
 * The journal kind the database file's header records (bytes 18-19: 1 rollback journal, 2 WAL, a
 * persistent setting), or `undefined` for a missing, short or headerless file.
 */
export function journalKindOf(path: string): 'wal' | 'rollback' | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return undefined
  }
  try {
    const header = Buffer.alloc(20)
    if (readSync(fd, header, 0, 20, 0) < 20 || header.toString('latin1', 0, 16) !== 'SQLite format 3\0') return undefined
    if (header[18] === 2 && header[19] === 2) return 'wal'
    return header[18] === 1 || header[19] === 1 ? 'rollback' : undefined
  } finally {
    closeSync(fd)
  }
}

function useUnknown(path: string): DatabaseError {
  return new DatabaseError(
    'BACKUP_FAILED',
    `cannot restore ${path}: it is a rollback-journal database (not WAL), where an idle connection of another process holds no lock and cannot be seen; such a connection's next write would corrupt the restored file. Stop every process using it, then force the restore`,
    { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use-unknown' } },
  )
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || (typeof code === 'string' && code.startsWith('SQLITE_BUSY_'))
}
