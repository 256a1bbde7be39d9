import { mkdir, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { DatabaseError } from '@dbpool/core'

/**
 * Makes `directory` (and its missing parents) one level at a time, instead of Node's
 * `mkdir({ recursive: true })`, which loops forever, spinning a core, where a filesystem answers
 * ENOENT to creating a directory whose parent exists (`/proc/x`, `/sys/x`). Rejects with BACKUP_FAILED
 * naming `directory` and the system's code when a level cannot be made or an existing one is not a
 * directory. `what` names its use in the message (`backup directory`).
 */
export async function ensureDirectory(directory: string, what: string): Promise<void> {
  const target = resolve(directory)
  const missing: string[] = []
  for (let current = target; ;) {
    let isDirectory: boolean
    try {
      isDirectory = (await stat(current)).isDirectory()
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // ENOTDIR: a file on the way, named below
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw failed(what, target, err)
      missing.unshift(current)
      const parent = dirname(current)
      if (parent === current) break
      current = parent
      continue
    }
    if (!isDirectory) throw failed(what, target, undefined, `${current} is not a directory`)
    break
  }
  for (const level of missing) {
    try {
      await mkdir(level)
    } catch (err) {
      // made meanwhile by another process: fine when it is a directory
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(level).catch(() => undefined))?.isDirectory()) continue
      throw failed(what, target, err)
    }
  }
}

function failed(what: string, directory: string, cause: unknown, reason?: string): DatabaseError {
  const why = reason ?? ((cause as NodeJS.ErrnoException | undefined)?.code || (cause as Error | undefined)?.message || 'failed')
  return new DatabaseError('BACKUP_FAILED', `cannot create the ${what} ${directory}: ${why}`, {
    backend: 'sqlite',
    retryable: false,
    ...(cause === undefined ? {} : { cause }),
    detail: { directory },
  })
}
