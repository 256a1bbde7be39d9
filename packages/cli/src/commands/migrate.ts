import { resolve } from 'node:path'
import {
  DatabaseError,
  Migrator,
  sqlitePathFromUrl,
  type MigrationEvent,
  type MigrationRunResult,
  type MigrationRunStep,
  type MigrationStatus,
} from '@dbpool/core'
import { formatMs } from '../format'
import { EXIT_CODES, type Output } from '../output'
import { makeDatabaseDirectory } from '../database-directory'
import { withPools } from '../pools'
import { selectPool } from '../resolve-config'
import type { CommandContext } from './context'

/** Options of `dbpool migrate up|down|status`. */
export interface MigrateCommandOptions {
  /** The migrations folder. Default is `./migrations`. */
  readonly dir?: string
  /** The table recording applied migrations. Default is `dbpool_migrations`. */
  readonly table?: string
  /** `up`: apply up to and including this version. */
  readonly to?: number
  /** `down`: how many to revert. Default is `1`. */
  readonly steps?: number
  /** `down`: revert everything. */
  readonly all?: boolean
  /** How long to wait for another process's migration. Default is `60000`. */
  readonly lockTimeoutMs?: number
  readonly json?: boolean
}

/**
 * Runs the Migrator on one pool (`--pool`, or the primary). With `json`, a failing `up`/`down` still
 * prints on stdout what it did before the failure: `{ direction, migrations, skipped, failed: {
 * version, name, code } }` (the error itself on stderr, exit 1). Exit code: 0; `status` 1 when a
 * migration is `changed` (edited since applied) or `missing` (applied, not among the files). `up`
 * and `down` on `sqlite::memory:` are refused (CONFIGURATION): that database ends with the command.
 */
export async function migrateCommand(
  ctx: CommandContext,
  action: 'up' | 'down' | 'status',
  options: MigrateCommandOptions,
): Promise<number> {
  const config = await ctx.config()
  const def = selectPool(config, ctx.poolName)
  const directory = resolve(ctx.io.cwd, options.dir ?? 'migrations')
  if (action !== 'status' && isSqliteMemory(def.url))
    throw new DatabaseError(
      'CONFIGURATION',
      `migrate ${action} on sqlite::memory: would change a database that disappears when this command exits (nothing persists): give a file, e.g. --url sqlite:./app.db`,
      { detail: { option: 'url', pool: def.name } },
    )
  // the one command that creates a database: its directory is made here, safely (see makeDatabaseDirectory)
  if (action === 'up' && /^sqlite:/i.test(def.url) && def.backend.createIfMissing !== false && !isSqliteMemory(def.url))
    makeDatabaseDirectory(sqlitePathFromUrl(def.url))
  return withPools([def], async (manager) => {
    const pool = manager.get(def.name)
    // what this run did so far: a failing --json run prints it (stdout had nothing about the migrations applied before the failure)
    const done: MigrationRunStep[] = []
    const skipped: number[] = []
    let running: MigrationEvent | undefined
    const migrator = new Migrator(pool, {
      directory,
      ...(options.table === undefined ? {} : { table: options.table }),
      ...(options.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: options.lockTimeoutMs }),
      onEvent: (event: MigrationEvent) => {
        if (event.type === 'start') running = event
        else if (event.type === 'done') {
          running = undefined
          done.push({ version: event.version, name: event.name, durationMs: event.durationMs ?? 0 })
        } else skipped.push(event.version)
        if (!options.json) printEvent(ctx.out, event)
      },
    })
    if (action === 'status') {
      const status = await migrator.status()
      if (options.json) ctx.out.json(status)
      else printStatus(ctx.out, def.name, pool.target, status)
      // a changed or missing migration needs someone's attention (scripts and CI see it)
      return status.some((m) => m.state === 'changed' || m.state === 'missing') ? EXIT_CODES.error : EXIT_CODES.ok
    }
    if (!options.json) ctx.out.line(`${action === 'up' ? 'migrating' : 'reverting'} ${def.name} (${pool.target}) with ${directory}`)
    let result: MigrationRunResult
    try {
      result = action === 'up' ? await migrator.up(options.to) : await migrator.down(options.all ? Infinity : (options.steps ?? 1))
    } catch (err) {
      if (options.json) {
        const failed = running === undefined ? {} : { version: running.version, name: running.name }
        ctx.out.json({
          direction: action,
          migrations: done,
          skipped,
          failed: { ...failed, code: DatabaseError.is(err) ? err.code : 'ERROR' },
        })
      }
      throw err
    }
    if (options.json) ctx.out.json(result)
    else printResult(ctx.out, result)
    return EXIT_CODES.ok
  })
}

function printEvent(out: Output, event: MigrationEvent): void {
  const verb = event.direction === 'up' ? 'applied' : 'reverted'
  if (event.type === 'done') {
    const took = event.durationMs === undefined ? '' : ` (${formatMs(event.durationMs)})`
    out.line(`  ${verb} ${event.version} ${event.name}${took}`)
  } else if (event.type === 'skip') out.line(`  skipped ${event.version} ${event.name} (another process ${verb} it)`)
}

function printResult(out: Output, result: MigrationRunResult): void {
  const count = result.migrations.length
  const at = result.current === null ? 'no migration applied' : `at version ${result.current}`
  if (count === 0 && result.skipped.length === 0) out.line(`nothing to ${result.direction === 'up' ? 'apply' : 'revert'}: ${at}`)
  else out.line(`${result.direction === 'up' ? 'applied' : 'reverted'} ${count} migration${count === 1 ? '' : 's'}: ${at}`)
}

function printStatus(out: Output, name: string, target: string, status: readonly MigrationStatus[]): void {
  out.line(`${name} (${target})`)
  if (status.length === 0) {
    out.line('  no migrations')
    return
  }
  const width = Math.max(7, ...status.map((s) => String(s.version).length))
  const nameWidth = Math.max(4, ...status.map((s) => s.name.length))
  out.line(`  ${'version'.padEnd(width)}  ${'state'.padEnd(8)}  ${'name'.padEnd(nameWidth)}  applied at`)
  for (const s of status) {
    out.line(
      `  ${String(s.version).padEnd(width)}  ${s.state.padEnd(8)}  ${s.name.padEnd(nameWidth)}  ${s.appliedAt ? s.appliedAt.toISOString() : '-'}`,
    )
  }
  const pending = status.filter((s) => s.state === 'pending').length
  const changed = status.filter((s) => s.state === 'changed').length
  const missing = status.filter((s) => s.state === 'missing').length
  out.line(
    `  ${pending} pending${changed > 0 ? `, ${changed} changed since applied (refused until restored)` : ''}${
      missing > 0 ? `, ${missing} missing (applied, not among the files: a newer release, or a deleted file)` : ''
    }`,
  )
}

/** `sqlite::memory:` (a private database that ends with the process). */
function isSqliteMemory(url: string): boolean {
  if (!/^sqlite:/i.test(url)) return false
  try {
    return sqlitePathFromUrl(url) === ':memory:'
  } catch {
    return false
  }
}
