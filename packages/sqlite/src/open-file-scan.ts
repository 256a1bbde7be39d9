import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'

/**
 * `/proc/self/ns/pid` of a process in the initial PID namespace (the kernel's `PROC_PID_INIT_INO`,
 * 0xEFFFFFFC, fixed since Linux 3.8).
 */
const INIT_PID_NAMESPACE = 'pid:[4026531836]'

/**
 * Why processes may be missing from `/proc` for this process (see {@link OpenFileScan.hidden}):
 * `'pid-namespace'` (a PID namespace other than the initial one: a container, `unshare --pid`) or
 * `'hidepid'` (`/proc` mounted with `hidepid`, this process neither root nor in its `gid=` group).
 */
export type HiddenProcesses = 'pid-namespace' | 'hidepid'

/** Every {@link HiddenProcesses} value, in the order they are checked. */
export const HIDDEN_PROCESSES: readonly HiddenProcesses[] = ['pid-namespace', 'hidepid']

/** What {@link processesWithFileOpen} found. */
export interface OpenFileScan {
  /** Processes (this one included) with one of the files open, ascending. */
  readonly pids: readonly number[]
  /**
   * Processes whose open files this one may not read (`/proc/<pid>/fd`) and that could write the
   * database, ascending: whether they have it open cannot be told. A process counts when its
   * file-system uid (the one file access is checked with) is the database's owner (who may always
   * chmod it), is in its group when it is group-writable, or any uid when it is world-writable; and
   * when even its `/proc/<pid>/status` cannot be read (`/proc` mounted `hidepid=1`). Root (fs uid 0)
   * processes are not counted: they could open any file, and counting them would refuse every
   * restore not run as root (run it as root to see them). Includes {@link nonDumpable}.
   */
  readonly unreadable: readonly number[]
  /**
   * Those of {@link unreadable} running entirely as this process's user (real, effective, saved and
   * file-system uid): non-dumpable ones (`prctl(PR_SET_DUMPABLE, 0)`, or made so by the kernel when
   * they changed credentials): an agent (ssh-agent, gpg-agent), a program started from a setuid
   * binary, or an application started as root that dropped to this user (`process.setuid`). Which
   * one cannot be told from `/proc`, so they count as possible holders like any other unreadable
   * process (see `databaseUse`).
   */
  readonly nonDumpable: readonly number[]
  /**
   * Set when processes that could have the file open cannot even be listed, so an empty
   * {@link pids} proves nothing: `'hidepid'` when `/proc` is mounted with `hidepid` (1, 2, 4 or
   * `noaccess`, `invisible`, `ptraceable`) and this process is neither root nor in the mount's
   * `gid=` group; `'pid-namespace'` when this process is not in the initial PID namespace (a
   * container, `unshare --pid`): processes outside it, such as another container sharing the
   * volume, are not in its `/proc`. The first of {@link hiddenBy}.
   */
  readonly hidden?: HiddenProcesses
  /**
   * Every reason processes may be hidden, in {@link HIDDEN_PROCESSES}'s order (a container whose
   * `/proc` is also mounted `hidepid` has both); set with {@link hidden}.
   */
  readonly hiddenBy?: readonly HiddenProcesses[]
}

/**
 * Which processes have the file at `path` (or its `-wal` / `-shm`) open, read from Linux's
 * `/proc/<pid>/fd` (each descriptor's device and inode, so a symlink, hard link or deleted name is
 * still the same file). `undefined` where there is no `/proc/self/fd` to read (macOS, Windows): no
 * other process's open files can be listed there. A process that exits while it is read is skipped.
 * One `stat` per open descriptor of every readable process: meant for a restore, not a hot path.
 *
 * This is what SQLite's locks cannot tell: a connection that has opened a WAL database but has not
 * run a statement yet holds no lock (none in `/proc/locks` either) and has not mapped `-shm`, yet
 * keeps the old file open and writes through the new `-wal` once the file is replaced. So a process
 * that cannot be looked at ({@link OpenFileScan.unreadable}, {@link OpenFileScan.hidden}) is never
 * taken as not holding the file: no lock is evidence that it has not opened it.
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
  const hidden = hiddenProcesses()
  const found = (): OpenFileScan => {
    const ascending = (a: number, b: number): number => a - b
    return {
      pids: pids.sort(ascending),
      unreadable: unreadable.sort(ascending),
      nonDumpable: nonDumpable.sort(ascending),
      ...(hidden.length > 0 ? { hidden: hidden[0], hiddenBy: hidden } : {}),
    }
  }
  if (wanted.size === 0 || db === undefined) return found()
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
      if (gone(err)) continue
      // not ours to read (EACCES, EPERM): judged by its uids, when those can be read
      const uids = processUids(pid)
      if (uids === 'gone') continue
      if (uids === 'unreadable') unreadable.push(pid)
      else if (mayWrite(pid, uids[3] ?? Number.NaN, db)) {
        unreadable.push(pid)
        if (self !== undefined && uids.every((u) => u === self)) nonDumpable.push(pid)
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
  return found()
}

/**
 * The short command name of `pid` (`/proc/<pid>/comm`, readable for any visible process), undefined
 * when it cannot be read.
 */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim() || undefined
  } catch {
    return undefined
  }
}

/**
 * Why processes may be missing from `/proc` for this process ({@link OpenFileScan.hiddenBy}): each
 * reason is checked on its own, so that waiving one (a restore's `allowHidden`) leaves the other.
 */
function hiddenProcesses(): HiddenProcesses[] {
  const hidden: HiddenProcesses[] = []
  let ns: string | undefined
  try {
    ns = readlinkSync('/proc/self/ns/pid')
  } catch {
    ns = undefined
  }
  // unreadable (an old kernel, a sandbox): whether others are hidden cannot be told either
  if (ns !== INIT_PID_NAMESPACE) hidden.push('pid-namespace')
  if (hidepidHides()) hidden.push('hidepid')
  return hidden
}

/** `/proc` is mounted with `hidepid` and hides processes from this one (or its options cannot be read). */
function hidepidHides(): boolean {
  const hide = procMountOptions()
  if (hide === undefined) return true
  const level = /(?:^|,)hidepid=([^,]*)/.exec(hide)?.[1]
  if (level === undefined || level === '0' || level === 'off') return false
  // root (CAP_SYS_PTRACE) and members of the gid= group see every process
  if (process.geteuid?.() === 0) return false
  const gid = /(?:^|,)gid=(\d+)/.exec(hide)?.[1]
  if (gid !== undefined) {
    const mine = [process.getegid?.(), ...(process.getgroups?.() ?? [])]
    if (mine.includes(Number(gid))) return false
  }
  return true
}

/**
 * The super-block options of the `proc` file system mounted at `/proc` (the last such mount in
 * `/proc/self/mountinfo`: `... /proc ... - proc proc rw,hidepid=2,gid=...`), `''` when there are
 * none, undefined when mountinfo cannot be read or names no proc mount at `/proc`.
 */
function procMountOptions(): string | undefined {
  let info: string
  try {
    info = readFileSync('/proc/self/mountinfo', 'latin1')
  } catch {
    return undefined
  }
  let options: string | undefined
  for (const line of info.split('\n')) {
    const [mount, fs] = line.split(' - ')
    if (mount?.split(' ')[4] !== '/proc') continue
    const [type, , superOptions] = fs?.split(' ') ?? []
    if (type === 'proc') options = superOptions ?? ''
  }
  return options
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

/** The process exited (or was never there) while it was read. */
function gone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ESRCH'
}

/**
 * Real, effective, saved and file-system uid of `pid` (`Uid:` of `/proc/<pid>/status`); `'gone'`
 * when it exited, `'unreadable'` when its status may not be read (`hidepid=1`) or is malformed.
 */
function processUids(pid: number): number[] | 'gone' | 'unreadable' {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1')
  } catch (err) {
    return gone(err) ? 'gone' : 'unreadable'
  }
  const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number)
  return uids !== undefined && uids.length === 4 && uids.every(Number.isFinite) ? uids : 'unreadable'
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
  } catch (err) {
    // exited meanwhile: not a holder; otherwise its groups cannot be told
    return !gone(err)
  }
  const gids = [/^Gid:\s+\d+\s+(\d+)/m.exec(status)?.[1], ...(/^Groups:(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [])]
  if (gids.some((g) => g !== undefined && g !== '' && Number(g) === db.gid)) return (db.mode & 0o020) !== 0
  return (db.mode & 0o002) !== 0
}
