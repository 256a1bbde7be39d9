import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configError } from '@dbpool/core'

/** A SQLite file path in a fresh temp directory. */
export interface TempSqlite {
  /** Absolute path of the database file (not created: the pool creates it). */
  readonly path: string
  /** `sqlite:<path>`, for `PoolFactory.create`, with `%`, `?` and `#` percent-encoded: it opens {@link path}. */
  readonly url: string
  /** The temp directory (WAL and SHM files and backups land here too). */
  readonly dir: string
  /** Removes the directory and everything in it. Idempotent. */
  remove(): Promise<void>
}

/**
 * A path for a SQLite database in a new temp directory, removed by `remove()`.
 *
 * ```ts
 * const file = await createTempSqlite()
 * const pool = await PoolFactory.create(file.url)
 * ...
 * await pool.close(); await file.remove()
 * ```
 *
 * `fileName` (default `'test.db'`) must be a plain file name: a non-empty string without `/`, `\` or
 * NUL, and not `.` or `..` (those name the temp directory or its parent, never a file in it); anything
 * else throws a CONFIGURATION `DatabaseError` (from `@dbpool/core`) naming `createTempSqlite fileName`, before any
 * directory is made.
 */
export async function createTempSqlite(options: { readonly fileName?: string } = {}): Promise<TempSqlite> {
  const fileName = options.fileName ?? 'test.db'
  if (!isPlainFileName(fileName))
    throw configError('createTempSqlite fileName', fileName, 'must be a plain file name (no / or \\, not . or ..)')
  const dir = await mkdtemp(join(tmpdir(), 'dbpool-sqlite-'))
  const path = join(dir, fileName)
  // a sqlite: URL is percent-decoded and `?` starts its query: `%`, `?` and `#` of the path escaped,
  // or a TMPDIR holding `%41` names another file (left behind by remove()) and one holding `?` is refused
  const url = `sqlite:${path.replace(/[%?#]/g, (c) => encodeURIComponent(c))}`
  return { path, url, dir, remove: () => rm(dir, { recursive: true, force: true }) }
}

function isPlainFileName(name: unknown): boolean {
  return typeof name === 'string' && name.length > 0 && name !== '.' && name !== '..' && !/[/\\\0]/.test(name)
}
