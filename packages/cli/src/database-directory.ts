import { mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseError } from '@dbpool/core'

/**
 * Makes the directory of a SQLite database file `dbpool migrate up` is about to create, one level at
 * a time: the SQLite pool makes a missing directory with Node's `mkdirSync({ recursive: true })`,
 * which loops forever, spinning a core, where creating a directory answers ENOENT (`/proc/x`,
 * `/sys/x`). Throws CONNECTION_FAILED (not retryable) naming the directory and the system's code when
 * a level cannot be made or a file is on the way. Nothing when the directory exists.
 */
export function makeDatabaseDirectory(path: string): void {
  const directory = dirname(resolve(path))
  const missing: string[] = []
  for (let current = directory; ;) {
    const info = statSync(current, { throwIfNoEntry: false })
    if (info?.isDirectory()) break
    if (info !== undefined) throw failed(directory, `${current} is not a directory`)
    missing.unshift(current)
    const parent = dirname(current)
    if (parent === current) break
    current = parent
  }
  for (const level of missing) {
    try {
      mkdirSync(level)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && statSync(level, { throwIfNoEntry: false })?.isDirectory()) continue
      throw failed(directory, (err as NodeJS.ErrnoException).code ?? (err as Error).message, err)
    }
  }
}

function failed(directory: string, why: string, cause?: unknown): DatabaseError {
  return new DatabaseError('CONNECTION_FAILED', `cannot create the directory ${directory} of the SQLite database: ${why}`, {
    backend: 'sqlite',
    retryable: false,
    ...(cause === undefined ? {} : { cause }),
    detail: { directory },
  })
}
