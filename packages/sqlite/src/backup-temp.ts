import { createHash, randomBytes } from 'node:crypto'
import { unlinkSync } from 'node:fs'
import { readdir, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

/**
 * Temp files of backups and restores: `.<name>.tmp-<host>-<pid>-<random>` beside their final place
 * (`<host>`: 8 hex digits of a hash of the host name), with SQLite's `-journal`/`-wal`/`-shm` and a
 * `.gz` beside them. Every one this process creates is tracked until it is renamed or removed, so
 * that a signal handler can remove them ({@link removeBackupTempFilesSync}) and a later backup can
 * tell a stale one (its process gone) from one in progress ({@link removeStaleTempFiles}).
 */
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8)

/**
 * This host's identity in temp names and backup records: 8 hex digits of a SHA-256 of the host name
 * (the name itself is not written to a shared directory).
 */
export function hostTag(): string {
  return HOST
}
const SIDE_SUFFIXES = ['', '-journal', '-wal', '-shm', '.gz'] as const
const TEMP_PATTERN = /^\.(.+)\.tmp-(?:([0-9a-f]{8})-)?(\d+)-[0-9a-f]{8}(?:-journal|-wal|-shm|\.gz)?$/
/** A temp file of an older version (no host in its name) is stale when its process is gone and it is older than this (ms). */
export const STALE_UNTAGGED_TEMP_MS = 3_600_000

const live = new Set<string>()

/** A new temp file name in `directory` for `name`, tracked until {@link forgetTemp} / {@link removeTemp}. */
export function tempName(directory: string, name: string): string {
  const file = join(directory, `.${name}.tmp-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`)
  live.add(file)
  return file
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
 * `namePrefix`: left by a process of this host that is gone (killed, crashed), or by an older
 * version (no host in the name) whose process is gone and older than {@link STALE_UNTAGGED_TEMP_MS}.
 * Those of another host (a shared volume), of a live process, or of this process's work in progress
 * are left. Returns the files removed; never throws.
 */
export async function removeStaleTempFiles(directory: string, namePrefix: string): Promise<string[]> {
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
    const [, , host, pidText] = match
    const pid = Number(pidText)
    if ([...live].some((own) => file.startsWith(own))) continue
    let stale: boolean
    if (host !== undefined) stale = host === HOST && (pid === process.pid || !processAlive(pid))
    else {
      const info = await stat(file).catch(() => undefined)
      stale = info !== undefined && !processAlive(pid) && Date.now() - info.mtimeMs > STALE_UNTAGGED_TEMP_MS
    }
    if (!stale) continue
    try {
      await unlink(file)
      removed.push(file)
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed
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
