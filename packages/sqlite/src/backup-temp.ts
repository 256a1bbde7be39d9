import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, readlinkSync, unlinkSync, utimesSync } from 'node:fs'
import { readdir, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { threadId } from 'node:worker_threads'
import { configError } from '@dbpool/core'
import { checkString } from '@dbpool/core/internal'

/**
 * Temp files of backups and restores: `.<name>.tmp-<space>-<pid>-<start>-<thread>-<random>` beside
 * their final place, with SQLite's `-journal`/`-wal`/`-shm` and a `.gz` beside them. `<space>`: 8 hex
 * digits of a hash of the host name, the boot id and the PID namespace ({@link processSpaceTag}: a
 * pid means the same process only within one); `<start>`: the process's start time (clock ticks
 * since boot, `/proc/self/stat`; 0 where unknown), so that a later process given the same pid (pid 1
 * of a container) is told apart; `<thread>`: the worker thread id. Every one this thread creates is
 * tracked until it is renamed or removed, so that a signal handler can remove them
 * ({@link removeBackupTempFilesSync}), and its modification time is refreshed every
 * {@link TEMP_HEARTBEAT_MS} while it is tracked, so that a cleanup elsewhere can tell it in progress
 * ({@link removeStaleTempFiles}).
 */
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8)
const SPACE = createHash('sha256')
  .update(`${hostname()}\n${readQuietly('/proc/sys/kernel/random/boot_id').trim()}\n${linkQuietly('/proc/self/ns/pid')}`)
  .digest('hex')
  .slice(0, 8)
const START = startTimeOf('self') ?? '0'
const SIDE_SUFFIXES = ['', '-journal', '-wal', '-shm', '.gz'] as const
const TEMP_PATTERN = /^\.(.+)\.tmp-(?:([0-9a-f]{8})-)?(\d+)-(?:(\d+)-(\d+)-)?[0-9a-f]{8}(?:-journal|-wal|-shm|\.gz)?$/
/**
 * A temp file not provably dead by its name (another PID namespace or host, another thread of this
 * process, an older version's name) is stale once unmodified for this long (ms): a live one is
 * touched every {@link TEMP_HEARTBEAT_MS}.
 */
export const STALE_TEMP_MS = 3_600_000
/** @deprecated the same as {@link STALE_TEMP_MS}. */
export const STALE_UNTAGGED_TEMP_MS = STALE_TEMP_MS
/** How often (ms) the temp files in progress have their modification time refreshed. */
export const TEMP_HEARTBEAT_MS = 60_000

/**
 * This host's identity in backup records: 8 hex digits of a SHA-256 of the host name (the name
 * itself is not written to a shared directory).
 */
export function hostTag(): string {
  return HOST
}

/** The identity of the space a pid means one process in: host name, boot id and PID namespace, hashed (8 hex digits). */
export function processSpaceTag(): string {
  return SPACE
}

const live = new Set<string>()
let heartbeat: NodeJS.Timeout | undefined

/** A new temp file name in `directory` for `name`, tracked until {@link forgetTemp} / {@link removeTemp}. */
export function tempName(directory: string, name: string): string {
  const file = join(directory, `.${name}.tmp-${SPACE}-${process.pid}-${START}-${threadId}-${randomBytes(4).toString('hex')}`)
  live.add(file)
  heartbeat ??= setInterval(touchLive, TEMP_HEARTBEAT_MS).unref()
  return file
}

/** Refreshes the modification time of every temp file in progress (and of those beside it); stops when none is left. */
function touchLive(): void {
  if (live.size === 0) {
    clearInterval(heartbeat)
    heartbeat = undefined
    return
  }
  const now = new Date()
  for (const file of live)
    for (const suffix of SIDE_SUFFIXES) {
      try {
        utimesSync(`${file}${suffix}`, now, now)
      } catch {
        // not there (yet, or any more)
      }
    }
}

/** The temp file was renamed into place: no longer ours to remove. */
export function forgetTemp(file: string): void {
  live.delete(file)
}

/** Removes a temp file and the files SQLite or gzip put beside it; never throws. */
export async function removeTemp(file: string): Promise<void> {
  for (const suffix of SIDE_SUFFIXES) await unlink(`${file}${suffix}`).catch(() => undefined)
  live.delete(file)
}

/**
 * Removes, synchronously, every temp file of a backup, restore or verification this process has in
 * progress (and SQLite's `-journal` beside it): for a SIGINT/SIGTERM handler (the CLI's), which
 * then ends the process. A backup or restore still running afterwards fails. Returns the files
 * removed.
 */
export function removeBackupTempFilesSync(): string[] {
  const removed: string[] = []
  for (const file of live) {
    for (const suffix of SIDE_SUFFIXES) {
      try {
        unlinkSync(`${file}${suffix}`)
        removed.push(`${file}${suffix}`)
      } catch {
        // not there
      }
    }
  }
  live.clear()
  return removed
}

/**
 * Removes the stale temp files in `directory` whose name (after the leading dot) starts with
 * `namePrefix`. A file is stale when its name proves its process gone: the same host, boot and PID
 * namespace ({@link processSpaceTag}) and a pid that is no longer running, or running with another
 * start time (a later process given the same pid); or this thread's, no longer in progress. Any
 * other (another host or PID namespace sharing the volume, such as two containers of one pod;
 * another worker thread of this process; an older version's name) is stale only once unmodified
 * for {@link STALE_TEMP_MS}: one in progress is touched every {@link TEMP_HEARTBEAT_MS}. Returns the
 * files removed; never rejects but with CONFIGURATION for a `directory` that is not a non-empty
 * string or a `namePrefix` that is not a string.
 */
export async function removeStaleTempFiles(directory: string, namePrefix: string): Promise<string[]> {
  checkString('removeStaleTempFiles.directory', directory)
  if (typeof namePrefix !== 'string') throw configError('removeStaleTempFiles.namePrefix', namePrefix, 'must be a string')
  let names: string[]
  try {
    names = await readdir(directory)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    const match = TEMP_PATTERN.exec(name)
    if (!match?.[1]?.startsWith(namePrefix)) continue
    const file = join(directory, name)
    if ([...live].some((own) => file.startsWith(own))) continue
    const [, , space, pidText, start, thread] = match
    if (!provablyDead(space, Number(pidText), start, thread)) {
      const info = await stat(file).catch(() => undefined)
      if (info === undefined || Date.now() - info.mtimeMs <= STALE_TEMP_MS) continue
    }
    try {
      await unlink(file)
      removed.push(file)
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed
}

/** Whether a temp name's process (and thread) is gone for sure; `false` when that cannot be told. */
function provablyDead(space: string | undefined, pid: number, start: string | undefined, thread: string | undefined): boolean {
  // an older name, or another host / boot / PID namespace: its pid means nothing here
  if (space !== SPACE || start === undefined || thread === undefined || START === '0') return false
  if (pid === process.pid && start === START) return thread === String(threadId) // this thread's, not in progress
  if (!processAlive(pid)) return true
  const running = startTimeOf(String(pid))
  return running !== undefined && running !== start
}

/** The start time of a process (field 22 of `/proc/<pid>/stat`, clock ticks since boot), or `undefined` where unknown. */
function startTimeOf(pid: string): string | undefined {
  const text = readQuietly(`/proc/${pid}/stat`)
  // the command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const start = fields[19]
  return start !== undefined && /^\d+$/.test(start) ? start : undefined
}

function readQuietly(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function linkQuietly(file: string): string {
  try {
    return readlinkSync(file)
  } catch {
    return ''
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
