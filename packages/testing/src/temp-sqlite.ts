import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A SQLite file path in a fresh temp directory. */
export interface TempSqlite {
  /** Absolute path of the database file (not created: the pool creates it). */
  readonly path: string
  /** `sqlite:<path>`, for `PoolFactory.create`. */
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
 */
export async function createTempSqlite(options: { readonly fileName?: string } = {}): Promise<TempSqlite> {
  const fileName = options.fileName ?? 'test.db'
  if (fileName.includes('/') || fileName.includes('\\') || fileName.length === 0)
    throw new Error(`fileName ${JSON.stringify(fileName)}: must be a plain file name`)
  const dir = await mkdtemp(join(tmpdir(), 'dbpool-sqlite-'))
  const path = join(dir, fileName)
  return { path, url: `sqlite:${path}`, dir, remove: () => rm(dir, { recursive: true, force: true }) }
}
