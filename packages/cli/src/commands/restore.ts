import { resolve } from 'node:path'
import { BackupManager } from '@dbpool/sqlite'
import { EXIT_CODES } from '../output'
import { openPool } from '../pools'
import { selectPool } from '../resolve-config'
import { showProgress, sqlitePool } from './backup'
import type { CommandContext } from './context'

/** Options of `dbpool restore`. */
export interface RestoreCommandOptions {
  readonly json?: boolean
}

/**
 * Replaces a SQLite database (`--pool`, or the primary) with a backup file (`.db` or `.db.gz`):
 * the file is verified with `integrity_check` first, then swapped in atomically.
 */
export async function restoreCommand(ctx: CommandContext, file: string, options: RestoreCommandOptions): Promise<number> {
  const config = await ctx.config()
  const def = selectPool(config, ctx.poolName)
  const source = resolve(ctx.io.cwd, file)
  const pool = sqlitePool(await openPool(def), 'restore')
  const progress = ctx.out.progress('restore')
  const backups = new BackupManager(pool, { directory: resolve(source, '..'), onProgress: (p) => showProgress(progress, p) })
  try {
    const restored = await backups.restore(source).finally(() => progress.finish())
    const { rows } = await restored.query<{ n: number }>('pragma page_count')
    const pages = Number(Object.values(rows[0] ?? {})[0] ?? 0)
    if (options.json) ctx.out.json({ restored: source, target: restored.target, pages })
    else ctx.out.line(`restored ${source} into ${restored.target} (${pages} pages, verified)`)
    return EXIT_CODES.ok
  } finally {
    await backups.pool.close({ timeoutMs: 5_000 })
    if (pool !== backups.pool) await pool.close({ timeoutMs: 5_000 })
  }
}
