import { readdirSync, readFileSync, statSync } from 'node:fs'

/** What {@link processesWithFileOpen} found. */
export interface OpenFileScan {
  /** Processes (this one included) with one of the files open, ascending. */
  readonly pids: readonly number[]
  /**
   * Another user's processes whose open files this one may not read and that could write the
   * database: running (by their file-system uid) as its owner (who may always chmod it), in its group
   * when it is group-writable, or any user when it is world-writable. Root (uid 0) processes are not
   * counted: they could open any file, and counting them would refuse every restore not run as root
   * (run it as root to see them).
   */
  readonly unreadable: readonly number[]
  /**
   * Processes running entirely as this process's user whose open files still cannot be read: they
   * are non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`: ssh-agent, gpg-agent, programs started from a
   * setuid/setgid binary). Not counted as possible holders (not in `unreadable`): whether they have
   * the file open cannot be told, but such processes are agents, and counting them would refuse every
   * restore on a developer's machine. The gap: a database user that made itself non-dumpable is not
   * seen (root sees it).
   */
  readonly nonDumpable: readonly number[]
}

/**
 * Which processes have the file at `path` (or its `-wal` / `-shm`) open, read from Linux's
 * `/proc/<pid>/fd` (each descriptor's device and inode, so a symlink, hard link or deleted name is
 * still the same file). `undefined` where there is no `/proc/self/fd` to read (macOS, Windows): no
 * other process's open files can be listed there. A process that exits while it is read is skipped.
 * One `stat` per open descriptor of every readable process: meant for a restore, not a hot path.
 *
 * This is what SQLite's locks cannot tell: a connection that has opened a WAL database but has not
 * run a statement yet holds no lock and has not mapped `-shm`, yet keeps the old file open and writes
 * through the new `-wal` once the file is replaced.
 */
export function processesWithFileOpen(path: string): OpenFileScan | undefined {
  let own: string[]
  try {
    own = readdirSync('/proc/self/fd')
  } catch {
    return undefined
  }
  if (own.length === 0) return undefined
  const wanted = new Set<string>()
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    const id = identity(file)
    if (id !== undefined) wanted.add(id)
  }
  const db = statSync(path, { throwIfNoEntry: false })
  const pids: number[] = []
  const unreadable: number[] = []
  const nonDumpable: number[] = []
  if (wanted.size === 0 || db === undefined) return { pids, unreadable, nonDumpable }
  const self = process.geteuid?.()
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return undefined
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch (err) {
      // gone (ENOENT, ESRCH), or not ours to read (EACCES, EPERM)
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EACCES' || code === 'EPERM') {
        const uids = processUids(pid)
        if (uids === undefined) continue
        if (self !== undefined && uids.every((u) => u === self)) nonDumpable.push(pid)
        else if (mayWrite(pid, uids[3] ?? Number.NaN, db)) unreadable.push(pid)
      }
      continue
    }
    for (const fd of fds) {
      const id = identity(`/proc/${pid}/fd/${fd}`)
      if (id !== undefined && wanted.has(id)) {
        pids.push(pid)
        break
      }
    }
  }
  const ascending = (a: number, b: number): number => a - b
  return { pids: pids.sort(ascending), unreadable: unreadable.sort(ascending), nonDumpable: nonDumpable.sort(ascending) }
}

/** `dev:ino` of the file at `path` (a `/proc` fd link: of the open file), undefined when there is none. */
function identity(path: string): string | undefined {
  try {
    const stats = statSync(path, { throwIfNoEntry: false, bigint: true })
    return stats === undefined ? undefined : `${stats.dev}:${stats.ino}`
  } catch {
    return undefined
  }
}

/** Real, effective, saved and file-system uid of `pid` (`Uid:` of `/proc/<pid>/status`), undefined when gone. */
function processUids(pid: number): number[] | undefined {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1')
  } catch {
    return undefined
  }
  const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number)
  return uids !== undefined && uids.length === 4 && uids.every(Number.isFinite) ? uids : undefined
}

/**
 * Whether the process `pid`, with file-system uid `fsuid` (the one file access is checked with), could
 * open the database for writing, by its groups in `/proc/<pid>/status`. Root (fsuid 0) is not counted.
 */
function mayWrite(pid: number, fsuid: number, db: { readonly uid: number; readonly gid: number; readonly mode: number }): boolean {
  if (!Number.isFinite(fsuid) || fsuid === 0) return false
  // the owner may always chmod the file
  if (fsuid === db.uid) return true
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1')
  } catch {
    return false
  }
  const gids = [/^Gid:\s+\d+\s+(\d+)/m.exec(status)?.[1], ...(/^Groups:(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [])]
  if (gids.some((g) => g !== undefined && g !== '' && Number(g) === db.gid)) return (db.mode & 0o020) !== 0
  return (db.mode & 0o002) !== 0
}
