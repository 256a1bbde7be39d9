import { closeSync, existsSync, openSync, readSync } from 'node:fs'
import Database from 'better-sqlite3'
import { DatabaseError } from '@dbpool/core'
import { type HiddenProcesses, type OpenFileScan, processName, processesWithFileOpen } from './open-file-scan'
import { mapSqliteError } from './sqlite-errors'

/**
 * What a probe can tell about other connections to a SQLite database file:
 * - `unused`: none (a WAL file that no process has open and no connection locks, or a missing file);
 * - `in-use`: another connection has it open (a process with the file open, or a lock held);
 * - `unknown`: it cannot be told: a rollback-journal file (`journal_mode` DELETE, TRUNCATE, PERSIST,
 *   MEMORY, OFF) where no process is seen with it open but an idle connection holds no lock; on a
 *   system without Linux's `/proc` (macOS, Windows), any file nobody locks right now; processes
 *   whose open files this one may not read could write it (another user's, or a non-dumpable one of
 *   this user); or processes may be hidden from this one (`/proc` mounted `hidepid`, or this process
 *   in a PID namespace of its own: a container). Such a connection keeps the old file open and
 *   writes its pages (or, WAL, its frames through the new `-wal`) into a replaced file.
 */
export type DatabaseUse = 'unused' | 'in-use' | 'unknown'

/** What {@link databaseUse} found, with the processes it saw. */
interface UseFinding {
  readonly use: DatabaseUse
  /** Processes seen with the file open (Linux). */
  readonly pids?: readonly number[]
  /** Why `unknown`. */
  readonly why?: 'rollback-journal' | 'no-proc' | 'unreadable' | 'hidden'
  /** The scan, for `why` `unreadable` and `hidden`. */
  readonly scan?: OpenFileScan
  /** For `why` `hidden`: the first reason not waived. */
  readonly hidden?: HiddenProcesses
}

/**
 * Whether another connection (of any process, this one included) has the SQLite database at `path`
 * open. Two tests, since SQLite's locks alone miss a connection that has opened a WAL file but never
 * read it (no SHARED lock yet, `-shm` not mapped), which keeps the old file open after a restore's
 * rename and then writes its frames through the new `-wal` on top of the restored file:
 * - on Linux, every process's open files (`/proc/<pid>/fd`, see `processesWithFileOpen`): one with
 *   the file, its `-wal` or its `-shm` open is `in-use`; a process whose open files cannot be read
 *   that could write the file makes it `unknown`: another user's (root's processes are seen only
 *   when this one runs as root), or a non-dumpable one of this user (an agent such as ssh-agent
 *   cannot be told from an application that dropped root to this user); so do processes hidden from
 *   this one (`/proc` mounted `hidepid`, unless root; this process in a PID namespace other than the
 *   initial one: a container, `unshare --pid`). No lock is ever taken as evidence that such a
 *   process does not have the file: a connection that opened it and has not read holds none (nor
 *   does it appear in `/proc/locks`, which moreover lists only this PID namespace's locks);
 * - a lock probe, the way SQLite decides it may act alone: on a WAL file a connection that has read
 *   holds a SHARED lock for as long as it is open (busy or idle), and leaving WAL mode needs an
 *   EXCLUSIVE one, so `PRAGMA journal_mode = DELETE` on a private connection (busy timeout 0) fails
 *   with SQLITE_BUSY when someone else holds it; when it succeeds (the WAL is checkpointed into the
 *   file first) the mode is set back to WAL. On a rollback-journal file an idle connection holds no
 *   lock: only one inside a transaction is seen (`BEGIN EXCLUSIVE` fails), else the answer is
 *   `unknown` (unless a process is seen with it open).
 * Without `/proc` (macOS, Windows) a file nobody locks is `unknown`. A missing file is `unused`.
 * The caller must have closed its own connections first. Throws a {@link DatabaseError} when the
 * probe cannot run, as the pool reports the same file (CORRUPT for a file that is not a database,
 * CONNECTION_FAILED for one that cannot be opened, e.g. a directory; `cause` SQLite's error).
 */
export function databaseUse(path: string): DatabaseUse {
  try {
    return examineUse(path).use
  } catch (err) {
    throw mapSqliteError(err, { path })
  }
}

function examineUse(path: string, allowHidden: readonly HiddenProcesses[] = []): UseFinding {
  if (!existsSync(path)) return { use: 'unused' }
  const scan = processesWithFileOpen(path)
  if (scan !== undefined && scan.pids.length > 0) return { use: 'in-use', pids: scan.pids }
  const locked = lockProbe(path)
  if (locked === 'in-use') return { use: 'in-use' }
  if (locked === 'unknown') return { use: 'unknown', why: 'rollback-journal' }
  if (scan === undefined) return { use: 'unknown', why: 'no-proc' }
  // the reasons the caller vouches for are waived (restore's `allowHidden`); every other check stays
  const hidden = scan.hiddenBy?.find((reason) => !allowHidden.includes(reason))
  if (hidden !== undefined) return { use: 'unknown', why: 'hidden', scan, hidden }
  if (scan.unreadable.length > 0) return { use: 'unknown', why: 'unreadable', scan }
  return { use: 'unused' }
}

/** The lock probe of {@link databaseUse}: `unknown` for a rollback-journal file nobody locks. */
function lockProbe(path: string): DatabaseUse {
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
 * `true` when {@link databaseUse} sees another connection (`in-use`). A file where that cannot be
 * told (`unknown`: rollback journal, no `/proc`, unreadable or hidden processes) answers `false` although an
 * idle connection may have it open: {@link refuseInUse} refuses that case too. Throws as
 * {@link databaseUse}.
 */
export function databaseInUse(path: string): boolean {
  return databaseUse(path) === 'in-use'
}

/**
 * Throws BACKUP_FAILED (not retryable) unless {@link databaseUse} is `unused`: `detail.reason`
 * `'in-use'` when another connection has the database open (`detail.pids`: the processes seen with
 * it open, on Linux), `'in-use-unknown'` when it cannot be told: a rollback-journal database (an
 * idle connection of another process holds no lock), a system without `/proc` (a WAL connection
 * that has not read yet holds no lock), processes whose open files may not be read that could write
 * it (`detail.pids`; another user's, or non-dumpable ones of this user), processes hidden from this
 * one (`detail.hidden`: `'hidepid'`, `'pid-namespace'`; each reason in `allowHidden` is waived, the
 * caller vouching that no process hidden that way has the database open, and the other checks still
 * run), or a probe that failed (e.g. a read-only file; the cause is kept). A database replaced under
 * another process's open connection leaves that process reading the old file, and its next write
 * puts old pages (or WAL frames) into the restored file. Only `force` restores such a database.
 */
export function refuseInUse(path: string, allowHidden: readonly HiddenProcesses[] = []): void {
  let found: UseFinding
  try {
    found = examineUse(path, allowHidden)
  } catch (err) {
    // e.g. a read-only database file: the probe cannot take the lock it needs
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: cannot tell whether another connection has the database open (${(err as Error).message}). Stop every process using it and force the restore`,
      { backend: 'sqlite', retryable: false, cause: err, detail: { path, reason: 'in-use-unknown' } },
    )
  }
  if (found.use === 'unused') return
  if (found.why === 'rollback-journal') throw useUnknown(path)
  if (found.why === 'no-proc')
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: no process holds a lock on it, but on this system (no /proc) a connection that has opened the database and not read it yet cannot be seen; its next write would put the old file's pages into the restored one. Stop every process using it, then force the restore`,
      { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use-unknown' } },
    )
  if (found.why === 'hidden' && found.hidden === 'pid-namespace')
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: this process runs in a PID namespace of its own (a container, unshare --pid), so processes outside it (another container sharing the volume) cannot be seen, and one that has opened the database and not read it yet holds no lock. When no process outside this namespace can have it open, pass the restore option allowHidden: ['pid-namespace'] (CLI: --allow-hidden pid-namespace), which keeps every other check; or run it in the host's PID namespace, or stop every process using it and force the restore`,
      { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use-unknown', hidden: 'pid-namespace' } },
    )
  if (found.why === 'hidden')
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: /proc is mounted with hidepid, so other users' processes (and non-dumpable ones of this user) cannot be listed, and whether one has the database open cannot be told. Run the restore as root (or in /proc's gid= group); or, when no hidden process can have it open, pass the restore option allowHidden: ['hidepid'] (CLI: --allow-hidden hidepid), which keeps every other check; or stop every process using it and force the restore`,
      { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use-unknown', hidden: 'hidepid' } },
    )
  if (found.why === 'unreadable') {
    const unreadable = found.scan?.unreadable ?? []
    const own = found.scan?.nonDumpable ?? []
    const whose =
      own.length === unreadable.length
        ? 'non-dumpable processes of this user: an agent such as ssh-agent, or an application started as root that switched to this user'
        : own.length === 0
          ? "another user's, able to write the database"
          : "another user's able to write the database, or non-dumpable ones of this user: an agent such as ssh-agent, or an application that switched to this user"
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot restore ${path}: the open files of process${plural(unreadable)} ${namedPidList(unreadable)} (${whose}) cannot be read, so whether they have it open cannot be told. Run the restore as root, or stop them and force the restore`,
      { backend: 'sqlite', retryable: false, detail: { path, reason: 'in-use-unknown', pids: unreadable } },
    )
  }
  const pids = found.pids ?? []
  const who =
    pids.length === 0
      ? 'another connection has the database open (another process, or another pool in this one)'
      : pids.length === 1 && pids[0] === process.pid
        ? `this process (pid ${process.pid}) still has the database open (another pool or connection)`
        : `process${plural(pids)} ${pidList(pids)} ${pids.length === 1 ? 'has' : 'have'} the database open${pids.includes(process.pid) ? ` (${process.pid} is this one: another pool or connection)` : ''}`
  throw new DatabaseError(
    'BACKUP_FAILED',
    `cannot restore ${path}: ${who}; it would go on reading the replaced file, and its next write would put old pages into the restored one. Stop it first, or force the restore`,
    { backend: 'sqlite', retryable: false, detail: pids.length > 0 ? { path, reason: 'in-use', pids } : { path, reason: 'in-use' } },
  )
}

function plural(pids: readonly number[] | undefined): string {
  return (pids?.length ?? 0) === 1 ? '' : 'es'
}

/** Like {@link pidList}, each pid with its command name when it can be read: `812 (ssh-agent)`. */
function namedPidList(pids: readonly number[]): string {
  const named = pids.slice(0, 8).map((pid) => {
    const name = processName(pid)
    return name === undefined ? String(pid) : `${pid} (${name})`
  })
  return pids.length > 8 ? `${named.join(', ')} and ${pids.length - 8} more` : named.join(', ')
}

function pidList(pids: readonly number[] | undefined): string {
  const list = pids ?? []
  return list.length > 8 ? `${list.slice(0, 8).join(', ')} and ${list.length - 8} more` : list.join(', ')
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
