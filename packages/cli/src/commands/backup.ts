import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { configError, type DatabasePool } from '@dbpool/core'
import { BackupManager, type BackupMethod, type BackupProgress, type SqliteDatabase } from '@dbpool/sqlite'
import { formatMs } from '../format'
import { EXIT_CODES, type ProgressDisplay } from '../output'
import { withPools } from '../pools'
import { selectPool } from '../resolve-config'
import { removeTempFilesOnSignals } from '../signal-cleanup'
import type { CommandContext } from './context'

/** Options of `dbpool backup`. */
export interface BackupCommandOptions {
  /** The directory backups are written to. */
  readonly out: string
  readonly gzip?: boolean
  readonly method?: BackupMethod
  /** Keep only the newest N backups of this database in the directory afterwards (see the SQLite RetentionPolicy: backups of other databases are never counted nor deleted). */
  readonly keepLast?: number
  readonly json?: boolean
}

/**
 * An online, verified backup of a SQLite pool (`--pool`, or the primary) into `--out`. The JSON
 * output is the `BackupResult` plus `exists`: `false` when a concurrent run's `--keep-last`, whose
 * snapshot is newer, deleted this backup before it was reported.
 */
export async function backupCommand(ctx: CommandContext, options: BackupCommandOptions): Promise<number> {
  const config = await ctx.config()
  const def = selectPool(config, ctx.poolName)
  return withPools([def], async (manager) => {
    const pool = sqlitePool(manager.get(def.name), 'backup')
    const progress = ctx.out.progress('backup')
    const backups = new BackupManager(pool, {
      directory: resolve(ctx.io.cwd, options.out),
      gzip: options.gzip ?? false,
      method: options.method ?? 'backup',
      ...(options.keepLast === undefined ? {} : { retention: { keepLast: options.keepLast } }),
      onProgress: (p) => showProgress(progress, p),
    })
    const stopCleanup = removeTempFilesOnSignals()
    const result = await backups
      .backup()
      .finally(() => progress.finish())
      .finally(stopCleanup)
    if (options.keepLast !== undefined) {
      // retention counts only this database's backups: say so when others share the name
      const all = await backups.list()
      const mine = all.find((b) => b.file === result.file)
      const others = all.filter((b) => b.source !== mine?.source || (b.host !== undefined && b.host !== mine?.host)).length
      if (others > 0)
        ctx.out.note(
          `backup: ${others} other backup(s) in ${backups.directory} with the same name are of another database, of another host or unrecorded; --keep-last leaves them (a directory per database keeps them apart)`,
        )
    }
    // a concurrent run's --keep-last may have deleted it already (its snapshot was newer): say so
    const exists = existsSync(result.file)
    if (options.json) ctx.out.json({ ...result, exists })
    else {
      ctx.out.line(`backup written: ${result.file}`)
      if (!exists) ctx.out.line('  deleted since by the --keep-last of a newer backup that another run took meanwhile')
      ctx.out.line(
        `  ${result.pages} pages, ${result.bytes} bytes${result.gzip ? ' (gzip)' : ''}, verified with integrity_check, ${formatMs(result.durationMs)}`,
      )
      for (const deleted of result.deleted) ctx.out.line(`  deleted old backup ${deleted}`)
    }
    return EXIT_CODES.ok
  })
}

/** Progress of a backup or restore on the display. */
export function showProgress(display: ProgressDisplay, p: BackupProgress): void {
  if (p.phase === 'copy') display.update(p.totalPages - p.remainingPages, p.totalPages, 'pages')
  else if (p.phase === 'verify') display.phase('verifying (integrity_check)')
  else if (p.phase === 'compress') display.phase('compressing')
}

/** The pool as a SQLite pool, or CONFIGURATION naming the command. */
export function sqlitePool(pool: DatabasePool<unknown>, command: string): DatabasePool<SqliteDatabase> {
  if (pool.backend !== 'sqlite') {
    throw configError(
      `${command} target`,
      pool.target,
      `dbpool ${command} works on SQLite databases; use pg_dump / pg_restore for Postgres`,
    )
  }
  return pool as unknown as DatabasePool<SqliteDatabase>
}
