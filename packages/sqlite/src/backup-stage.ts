import { createReadStream, createWriteStream, realpathSync, statSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { configError, DatabaseError } from '@dbpool/core'
import { copyDatabaseFile } from './backup-copy'

/**
 * Writes the database a backup file holds into `staged` (a new file, created 0600 and refused if it
 * exists; the caller removes it on failure): gunzipped when `source` ends in `.gz`; read through
 * SQLite (its online backup API on a read-only connection, one snapshot) when a non-empty `-wal` or
 * `-journal` lies beside `source`, so that commits still in its write-ahead log are part of the copy
 * (a byte copy of the main file alone drops them) and a hot journal is never copied half-applied
 * (SQLite refuses to open it read-only: BACKUP_FAILED); else a byte copy. The `-wal` and
 * `-journal` are looked for beside the file `source` leads to ({@link realSourcePath}): SQLite
 * follows a symlink and uses the `-wal` beside the real file, not the one beside the link.
 * Rejects with BACKUP_FAILED when `source` cannot be read.
 */
export async function stageBackupFile(given: string, staged: string): Promise<void> {
  const source = realSourcePath(given)
  if (!given.endsWith('.gz') && (sizeOf(`${source}-wal`) > 0 || sizeOf(`${source}-journal`) > 0)) {
    try {
      // copyDatabaseFile creates `staged` itself (0600, exclusively)
      await copyDatabaseFile({
        source,
        target: staged,
        pagesPerStep: 1024,
        timeoutMs: undefined,
        onStep: () => undefined,
        abortReason: () => undefined,
      })
    } catch (err) {
      throw new DatabaseError(
        'BACKUP_FAILED',
        `cannot read backup file ${given}${given === source ? '' : ` (${source})`} with the -wal or -journal beside it (it holds commits not in the file): ${(err as Error).message}`,
        { backend: 'sqlite', cause: err, detail: { file: given } },
      )
    }
    return
  }
  try {
    const read = createReadStream(source)
    const write = createWriteStream(staged, { mode: 0o600, flags: 'wx' })
    if (given.endsWith('.gz')) await pipeline(read, createGunzip(), write)
    else await pipeline(read, write)
  } catch (err) {
    throw new DatabaseError('BACKUP_FAILED', `cannot read backup file ${given}: ${(err as Error).message}`, {
      backend: 'sqlite',
      cause: err,
      detail: { file: given },
    })
  }
}

/**
 * Throws CONFIGURATION naming `option` when `source` is the database file `target` itself (same
 * device and inode: the same path, a symlink or a hard link to it): its own file holds only the
 * checkpointed part of the database (commits in its `-wal`, which the restore removes, would be
 * lost), and a restore onto itself restores nothing.
 */
export function refuseSameFile(option: string, source: string, target: string): void {
  const a = statSync(source, { throwIfNoEntry: false, bigint: true })
  const b = statSync(target, { throwIfNoEntry: false, bigint: true })
  if (a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino)
    throw configError(option, source, `is the database being restored (${target}): restore from a backup, not from the database itself`)
}

/** Creates `file` empty with mode 0600 (refused if it exists): what a temp copy is written into. */
export async function createEmpty(file: string): Promise<void> {
  const handle = await open(file, 'wx', 0o600)
  await handle.close()
}

/**
 * The real path of a backup file (symlinks followed, as SQLite follows them when it opens the file
 * and looks for its `-wal` and `-journal`), or `source` itself when it cannot be resolved (missing:
 * the read then fails naming it).
 */
export function realSourcePath(source: string): string {
  try {
    return realpathSync(source)
  } catch {
    return source
  }
}

function sizeOf(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? 0
}
