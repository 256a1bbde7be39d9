import { readdirSync, readFileSync, statSync } from 'node:fs'

/** What {@link processesWithFileOpen} found. */
export interface OpenFileScan {
  /** Processes (this one included) with one of the files open, ascending. */
  readonly pids: readonly number[]
  /**
   * Processes whose open files this one may not read (another user's, or not dumpable) and that could
   * write the database: running as its owner (who may always chmod it), in its group when it is group-writable, or any user when
   * it is world-writable. Root (uid 0) processes are not counted: they could open any file, and
   * counting them would refuse every restore not run as root (run it as root to see them).
   */
  readonly unreadable: readonly number[]
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
  if (wanted.size === 0 || db === undefined) return { pids, unreadable }
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
      if ((code === 'EACCES' || code === 'EPERM') && mayWrite(pid, db)) unreadable.push(pid)
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
  return { pids: pids.sort((a, b) => a - b), unreadable: unreadable.sort((a, b) => a - b) }
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

/** Whether the (non-root) process `pid` could open the database for writing, by its uid and groups in `/proc/<pid>/status`. */
function mayWrite(pid: number, db: { readonly uid: number; readonly gid: number; readonly mode: number }): boolean {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1')
  } catch {
    return false
  }
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN)
  if (!Number.isFinite(uid) || uid === 0) return false
  // the owner may always chmod the file
  if (uid === db.uid) return true
  const gids = [/^Gid:\s+(\d+)/m.exec(status)?.[1], ...(/^Groups:(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [])]
  if (gids.some((g) => g !== undefined && g !== '' && Number(g) === db.gid)) return (db.mode & 0o020) !== 0
  return (db.mode & 0o002) !== 0
}
