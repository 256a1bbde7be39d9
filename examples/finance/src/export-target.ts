import { realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { configError, DatabasePool } from '@dbpool/core'
import type { Db } from './db'

/** The files SQLite keeps beside a database file. */
const SIDE_SUFFIXES = ['', '-wal', '-shm', '-journal'] as const

/**
 * Throws CONFIGURATION naming `option` when `path` is a file of the database `db` runs on: on
 * SQLite, the main database file or any attached one (`pragma database_list`), or the `-wal`,
 * `-shm` or `-journal` beside one; the same path (symlinks of the directories followed) or the same
 * file (device and inode: a symlink or hard link to it). An export renamed over it would replace the
 * live database (or its log) with CSV. Postgres keeps its files on the server: nothing to check.
 */
export async function refuseDatabaseFile(option: string, db: Db, path: string): Promise<void> {
  const files = await databaseFilesOf(db)
  if (files.length === 0) return
  const target = comparablePath(path)
  const info = statSync(path, { throwIfNoEntry: false, bigint: true })
  for (const file of files) {
    for (const suffix of SIDE_SUFFIXES) {
      const name = `${comparablePath(file)}${suffix}`
      const other = info === undefined ? undefined : statSync(name, { throwIfNoEntry: false, bigint: true })
      if (name === target || (other !== undefined && info !== undefined && other.dev === info.dev && other.ino === info.ino))
        throw configError(
          option,
          path,
          `is ${suffix === '' ? 'the database file' : `the database's ${suffix} file`} (${name}): the export would replace it; write it elsewhere`,
        )
    }
  }
}

/** The files of a SQLite database `db` runs on (main and attached; none for a temporary or in-memory one); none on Postgres. */
async function databaseFilesOf(db: Db): Promise<string[]> {
  if (!onSqlite(db)) return []
  const { rows } = await db.query<{ file: unknown }>('pragma database_list')
  return rows.map((row) => row.file).filter((file): file is string => typeof file === 'string' && file !== '')
}

/** A pool of the SQLite backend, or a transaction whose connection is better-sqlite3's (it has `pragma()`). */
function onSqlite(db: Db): boolean {
  if (db instanceof DatabasePool) return db.backend === 'sqlite'
  const native = (db as { native?: { pragma?: unknown; prepare?: unknown } }).native
  return typeof native?.pragma === 'function' && typeof native.prepare === 'function'
}

/** `path` absolute, its directory's symlinks followed (the file itself may not exist yet, or be a link). */
function comparablePath(path: string): string {
  const absolute = resolve(path)
  try {
    return join(realpathSync(dirname(absolute)), basename(absolute))
  } catch {
    return absolute
  }
}
