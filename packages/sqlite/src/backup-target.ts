import { lstatSync, statSync } from 'node:fs'
import { lstat, open, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { configError, DatabaseError } from '@dbpool/core'

/** The files SQLite keeps beside a database file: a copy written there would be read with them. */
export const SIDE_FILE_SUFFIXES = ['-journal', '-wal', '-shm'] as const

/** A new file created by {@link createNewTarget}: its path and identity (device and inode). */
export interface NewTarget {
  readonly path: string
  readonly dev: bigint
  readonly ino: bigint
}

/**
 * Creates `target` empty with mode 0600, exclusively (`O_CREAT | O_EXCL`: no check-then-create race,
 * a symlink at `target` is not followed): the file a copy is then written into, never one that
 * existed. Throws CONFIGURATION naming `option` when `target` exists (any file, directory or symlink:
 * nothing is overwritten) or when SQLite's `-journal`, `-wal` or `-shm` exists beside it (SQLite would
 * delete a stale `-journal`, or replay a foreign `-wal` onto the copy; the new file is removed again);
 * BACKUP_FAILED naming `target` and the system's code (`detail.reason`: `ENOENT` for a missing
 * directory, `EACCES`, `ENOTDIR`, ...) when it cannot be created.
 */
export async function createNewTarget(option: string, target: string): Promise<NewTarget> {
  let handle
  try {
    handle = await open(target, 'wx', 0o600)
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'failed'
    if (reason === 'EEXIST') throw configError(option, target, 'exists: a copy is written into a new file, never over an existing one')
    throw new DatabaseError('BACKUP_FAILED', `cannot create ${target} to copy into: ${reason}`, {
      backend: 'sqlite',
      cause: err,
      detail: { target, reason },
    })
  }
  let made: NewTarget
  try {
    const info = await handle.stat({ bigint: true })
    made = { path: target, dev: info.dev, ino: info.ino }
  } finally {
    await handle.close()
  }
  const side = SIDE_FILE_SUFFIXES.find((suffix) => lstatSync(`${target}${suffix}`, { throwIfNoEntry: false }) !== undefined)
  if (side !== undefined) {
    await removeNewTarget(made, [])
    throw configError(
      option,
      target,
      `has a ${side} beside it (${target}${side}): SQLite would read it with the copy; remove it or choose another target`,
    )
  }
  return made
}

/**
 * Removes a target {@link createNewTarget} made, when the file at its path is still that one (same
 * device and inode: never a file someone put there meanwhile), and the given side files SQLite
 * created beside it. Never throws.
 */
export async function removeNewTarget(made: NewTarget, sideSuffixes: readonly string[] = SIDE_FILE_SUFFIXES): Promise<void> {
  const now = await lstat(made.path, { bigint: true }).catch(() => undefined)
  if (now === undefined || now.dev !== made.dev || now.ino !== made.ino) return
  await unlink(made.path).catch(() => undefined)
  for (const suffix of sideSuffixes) await unlink(`${made.path}${suffix}`).catch(() => undefined)
}

/**
 * Throws before a restore touches anything when `target` (the real database file) cannot be
 * replaced: CONFIGURATION naming `option` when it exists and is not a regular file (a directory, a
 * device); BACKUP_FAILED naming it (`detail.reason` `'no-directory'`) when its directory does not
 * exist or is not a directory.
 */
export function checkReplaceTarget(option: string, target: string): void {
  const info = statSync(target, { throwIfNoEntry: false })
  if (info !== undefined && !info.isFile())
    throw configError(option, target, `is not a regular file (${kindOf(info)}): a database file is replaced`)
  if (statSync(dirname(target), { throwIfNoEntry: false })?.isDirectory() !== true)
    throw new DatabaseError('BACKUP_FAILED', `cannot restore ${target}: its directory ${dirname(target)} does not exist`, {
      backend: 'sqlite',
      retryable: false,
      detail: { target, reason: 'no-directory' },
    })
}

/**
 * Throws BACKUP_FAILED naming `target` (`detail.reason` `'other-filesystem'`) when `staged` is not on
 * the filesystem of `target`'s directory: the rename that replaces `target` would fail (EXDEV) after
 * the old `-wal` and `-shm` were removed, and the commits in that `-wal` with them.
 */
export function checkSameFilesystem(staged: string, target: string): void {
  const from = statSync(staged, { bigint: true })
  const into = statSync(dirname(target), { bigint: true })
  if (from.dev !== into.dev)
    throw new DatabaseError(
      'BACKUP_FAILED',
      `cannot replace ${target} with ${staged}: they are on different filesystems (a rename cannot replace it atomically); stage the file in ${dirname(target)}`,
      { backend: 'sqlite', retryable: false, detail: { target, staged, reason: 'other-filesystem' } },
    )
}

function kindOf(info: { isDirectory(): boolean; isSymbolicLink(): boolean }): string {
  return info.isDirectory() ? 'a directory' : 'not a file'
}
