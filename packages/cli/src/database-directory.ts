import { mkdirSync, statSync, type Stats } from 'node:fs'
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
    const info = statOf(directory, current)
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
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && statOf(directory, level)?.isDirectory()) continue
      throw failed(directory, (err as NodeJS.ErrnoException).code ?? (err as Error).message, err)
    }
  }
}

/**
 * `stat` of one level, `undefined` when it is missing; CONNECTION_FAILED naming `directory` when it
 * cannot be told (a file on the way above it: ENOTDIR; a symlink loop: ELOOP; EACCES).
 */
function statOf(directory: string, level: string): Stats | undefined {
  try {
    return statSync(level, { throwIfNoEntry: false })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOTDIR' ? 'a file is on the way' : code === 'ELOOP' ? 'a symlink loop is on the way' : 'it cannot be read'
    throw failed(directory, `${why} (${level}: ${code ?? (err as Error).message})`, err)
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
