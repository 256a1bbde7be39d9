import { closeSync, existsSync, openSync, readSync, statSync, writeSync } from 'node:fs'
import { resolve } from 'node:path'
import { DatabaseError, sqlitePathFromUrl } from '@dbpool/core'
import { BackupManager, type HiddenProcesses } from '@dbpool/sqlite'
import { EXIT_CODES } from '../output'
import { openPool } from '../pools'
import { selectPool } from '../resolve-config'
import { removeTempFilesOnSignals } from '../signal-cleanup'
import { showProgress, sqlitePool } from './backup'
import type { CommandContext } from './context'

/**
 * Whether a SQLite file's header records a rollback journal (bytes 18-19 are 1; WAL is 2, a
 * persistent setting): `false` for a missing, short or headerless file.
 */
function isRollbackJournalFile(path: string): boolean {
  if (path === ':memory:') return false
  let fd: number
  try {
    fd = openSync(resolve(path), 'r')
  } catch {
    return false
  }
  try {
    const header = Buffer.alloc(20)
    if (readSync(fd, header, 0, 20, 0) < 20 || header.toString('latin1', 0, 16) !== 'SQLite format 3\0') return false
    return header[18] === 1 || header[19] === 1
  } finally {
    closeSync(fd)
  }
}

/** Options of `dbpool restore`. */
export interface RestoreCommandOptions {
  readonly json?: boolean
  /** Restore into a database file that does not exist yet (it was lost). Default is `false`. */
  readonly create?: boolean
  /** Restore even when another process has the database open (it goes on reading the replaced file). Default is `false`. */
  readonly force?: boolean
  /**
   * Reasons for hidden processes the caller vouches for (`--allow-hidden pid-namespace`: a container
   * no other process outside shares the database with), waiving only those; see the sqlite
   * package's `RestoreOptions.allowHidden`. Default is none.
   */
  readonly allowHidden?: readonly HiddenProcesses[]
}

/**
 * Replaces a SQLite database (`--pool`, or the primary) with a backup file (`.db` or `.db.gz`):
 * the file is verified with `integrity_check` first, then swapped in atomically.
 *
 * Throws CONNECTION_FAILED (not retryable) when the database file does not exist, unless
 * `create`: a mistyped path must not receive the backup while the real database stays as it was.
 * Throws BACKUP_FAILED (`detail.reason` `'in-use'`, the pids on Linux) when another process has the
 * database open, even one that has not read it yet, unless `force`: that process would go on reading
 * the replaced file and write old pages into the restored one; `'in-use-unknown'` where that cannot
 * be told (a rollback-journal database, a system without `/proc`, another user's processes whose
 * open files cannot be read, processes hidden from this one: `detail.hidden`, waived one by one by
 * `allowHidden`), unless `force`. A
 * rollback-journal database is opened with `journalMode` DELETE and stays a rollback-journal file.
 */
export async function restoreCommand(ctx: CommandContext, file: string, options: RestoreCommandOptions): Promise<number> {
  const config = await ctx.config()
  const def = selectPool(config, ctx.poolName)
  const source = resolve(ctx.io.cwd, file)
  if (/^sqlite:/i.test(def.url) && !options.create) {
    // the pool resolves a relative path against the process's working directory, as here
    const path = sqlitePathFromUrl(def.url)
    if (path !== ':memory:' && !existsSync(resolve(path)))
      throw new DatabaseError(
        'CONNECTION_FAILED',
        `cannot restore into SQLite database ${path}: the file does not exist (check the path; --create restores into a new file)`,
        { backend: 'sqlite', retryable: false, detail: { path } },
      )
  }
  // a rollback-journal database stays one: the pool (WAL by default) would switch it to WAL when it
  // opens it, before the restore, and the restored file then takes the mode it found
  const rollback = /^sqlite:/i.test(def.url) && isRollbackJournalFile(sqlitePathFromUrl(def.url))
  const pool = sqlitePool(await openPool(rollback ? { ...def, backend: { ...def.backend, journalMode: 'DELETE' } } : def), 'restore')
  const progress = ctx.out.progress('restore')
  const backups = new BackupManager(pool, { directory: resolve(source, '..'), onProgress: (p) => showProgress(progress, p) })
  // a signal after the staged copy was renamed into place ends the command by that signal (exit
  // 128+n), but the database is restored: say so (the file the path leads to is a new one)
  const targetPath = /^sqlite:/i.test(def.url) ? sqlitePathFromUrl(def.url) : ':memory:'
  const before = targetPath === ':memory:' ? undefined : statSync(resolve(targetPath), { throwIfNoEntry: false })
  const stopCleanup = removeTempFilesOnSignals((signal) => {
    if (targetPath === ':memory:') return
    const now = statSync(resolve(targetPath), { throwIfNoEntry: false })
    if (now === undefined || (before !== undefined && now.ino === before.ino && now.dev === before.dev)) return
    writeSync(
      2,
      `${ctx.out.scrub(`dbpool: restore: ${signal} after the database was replaced: ${resolve(targetPath)} is restored from ${source} (verified); only the command's end was cut short`)}\n`,
    )
  })
  try {
    // the handlers stay to the command's end: a signal after the restore (while the result is read
    // and printed, the pools closed) still says the database was restored
    const restored = await backups
      .restore(source, { force: options.force ?? false, allowHidden: options.allowHidden ?? [] })
      .finally(() => progress.finish())
    const { rows } = await restored.query<{ n: number }>('pragma page_count')
    const pages = Number(Object.values(rows[0] ?? {})[0] ?? 0)
    if (options.json) ctx.out.json({ restored: source, target: restored.target, pages })
    else ctx.out.line(`restored ${source} into ${restored.target} (${pages} pages, verified)`)
    return EXIT_CODES.ok
  } finally {
    try {
      await backups.pool.close({ timeoutMs: 5_000 })
      if (pool !== backups.pool) await pool.close({ timeoutMs: 5_000 })
    } finally {
      stopCleanup()
    }
  }
}
