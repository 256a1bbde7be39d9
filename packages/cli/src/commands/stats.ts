import { statSync } from 'node:fs'
import { sqlitePathFromUrl, type DatabasePool } from '@dbpool/core'
import { formatMs, formatNumber } from '../format'
import { EXIT_CODES } from '../output'
import { withPools } from '../pools'
import { selectPools } from '../resolve-config'
import type { CommandContext } from './context'

/** Options of `dbpool stats`. */
export interface StatsCommandOptions {
  /** Print JSON. */
  readonly json?: boolean
}

/** What `dbpool stats` reports per pool. */
export interface PoolStatsReport {
  readonly backend: string
  readonly target: string
  readonly pool: ReturnType<DatabasePool<unknown>['stats']>
  readonly settings: Readonly<Record<string, unknown>>
  /** How long the first connection took to open, in ms (unrounded). */
  readonly connectMs: number
  readonly database: Readonly<Record<string, unknown>>
}

/** Pool counters and settings, plus what the database says about itself (size, connections, pages). */
export async function statsCommand(ctx: CommandContext, options: StatsCommandOptions): Promise<number> {
  const config = await ctx.config()
  const pools = await withPools(selectPools(config, ctx.poolName), async (manager) => {
    const out: Record<string, PoolStatsReport> = {}
    for (const name of manager.names) out[name] = await poolStats(manager.get(name))
    return out
  })
  if (options.json) {
    ctx.out.json({ pools })
    return EXIT_CODES.ok
  }
  for (const [name, report] of Object.entries(pools)) {
    const { size, idle, used, pending, max, min } = report.pool
    ctx.out.line(`${name}: ${report.target} (${report.backend})`)
    ctx.out.line(`  pool      size ${size}, idle ${idle}, used ${used}, pending ${pending}, min ${min}, max ${max}`)
    ctx.out.line(
      `  settings  ${(['acquireTimeoutMs', 'idleTimeoutMs', 'maxLifetimeMs'] as const).map((k) => `${k} ${human(report.settings[k])}`).join(', ')}`,
    )
    ctx.out.line(`  connect   ${formatMs(report.connectMs)}`)
    ctx.out.line(
      `  database  ${Object.entries(report.database)
        .map(([k, v]) => `${k} ${human(v)}`)
        .join(', ')}`,
    )
  }
  return EXIT_CODES.ok
}

async function poolStats(pool: DatabasePool<unknown>): Promise<PoolStatsReport> {
  await pool.ping()
  const database = pool.backend === 'postgres' ? await postgresFacts(pool) : await sqliteFacts(pool)
  return {
    backend: pool.backend,
    target: pool.target,
    pool: pool.stats(),
    settings: pool.config.toJSON(),
    connectMs: pool.metrics.snapshot().createTime.maxMs,
    database,
  }
}

async function postgresFacts(pool: DatabasePool<unknown>): Promise<Record<string, unknown>> {
  const { rows } = await pool.query<Record<string, unknown>>(
    `select current_database() as name, current_setting('server_version') as server_version, pg_database_size(current_database())::bigint as size_bytes,
            current_setting('max_connections')::int as max_connections,
            (select count(*) from pg_stat_activity where datname = current_database())::int as connections,
            (select count(*) from pg_stat_activity where datname = current_database() and state = 'active')::int as active`,
  )
  const row = rows[0] ?? {}
  return { ...row, size_bytes: Number(row.size_bytes) }
}

async function sqliteFacts(pool: DatabasePool<unknown>): Promise<Record<string, unknown>> {
  const pragma = async (name: string): Promise<unknown> => {
    const { rows } = await pool.query<Record<string, unknown>>(`pragma ${name}`)
    return rows[0] ? Object.values(rows[0])[0] : undefined
  }
  const path = sqlitePathFromUrl(pool.target)
  const pageCount = Number(await pragma('page_count'))
  const pageSize = Number(await pragma('page_size'))
  return {
    path,
    journal_mode: await pragma('journal_mode'),
    page_size: pageSize,
    page_count: pageCount,
    freelist_count: Number(await pragma('freelist_count')),
    size_bytes: pageCount * pageSize,
    wal_bytes: path === ':memory:' ? 0 : fileSize(`${path}-wal`),
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

/** A setting or database fact for people: numbers to at most 2 decimals. */
function human(value: unknown): string {
  return typeof value === 'number' ? formatNumber(value) : String(value)
}
