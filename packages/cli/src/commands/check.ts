import { DatabaseError, HealthChecker, type DatabasePool } from '@dbpool/core'
import { formatMs, formatNumber } from '../format'
import { EXIT_CODES } from '../output'
import { withPools } from '../pools'
import { selectPools } from '../resolve-config'
import { CLOSE_AFTER_CHECK_MS, withinCommandDeadline } from '../deadline'
import type { CommandContext } from './context'

/** Options of `dbpool check`. */
export interface CheckCommandOptions {
  readonly json?: boolean
  /** Deadline per pool in ms. Default is `30000` (an integrity check reads the whole file). */
  readonly timeoutMs?: number
}

/** The outcome for one pool. */
export interface CheckResult {
  readonly ok: boolean
  readonly backend: string
  readonly target: string
  /** What was checked and found (server version, integrity result, ...). */
  readonly facts: Readonly<Record<string, unknown>>
  /** Why it failed, as `CODE: message`. */
  readonly error?: string
}

/**
 * SQLite: `integrity_check` of the whole file. Postgres: connectivity, server version, database,
 * user and TLS. Exit 0 when every pool passes, 2 otherwise. The pools are checked at once, each
 * within `timeoutMs`; the whole command ends within `timeoutMs` plus `COMMAND_MARGIN_MS` (500, `cli/src/deadline.ts`)
 * (else HEALTH_CHECK_FAILED, exit 2).
 */
export async function checkCommand(ctx: CommandContext, options: CheckCommandOptions): Promise<number> {
  const config = await ctx.config()
  const timeoutMs = options.timeoutMs ?? 30_000
  return withPools(
    selectPools(config, ctx.poolName),
    async (manager) => {
      // every pool at once: the command ends within one --timeout, not one per pool
      const names = [...manager.names]
      const checked = await withinCommandDeadline(
        'check',
        timeoutMs,
        Promise.all(names.map((name) => checkPool(manager.get(name), timeoutMs))),
      )
      return report(ctx, options, Object.fromEntries(names.map((name, i) => [name, checked[i] as CheckResult])))
    },
    CLOSE_AFTER_CHECK_MS,
  )
}

/** Prints the results (before the pools close) and returns the exit code. */
function report(ctx: CommandContext, options: CheckCommandOptions, results: Record<string, CheckResult>): number {
  const ok = Object.values(results).every((r) => r.ok)
  if (options.json) {
    ctx.out.json({ ok, pools: results })
  } else {
    for (const [name, r] of Object.entries(results)) {
      ctx.out.line(`${name}: ${r.ok ? 'ok' : 'FAILED'}  ${r.target} (${r.backend})`)
      for (const [key, value] of Object.entries(r.facts))
        ctx.out.line(
          `  ${key.padEnd(16)} ${typeof value === 'string' ? value : typeof value === 'number' ? formatNumber(value) : JSON.stringify(value)}`,
        )
      if (r.error) ctx.out.line(`  error            ${r.error}`)
    }
  }
  return ok ? EXIT_CODES.ok : EXIT_CODES.unhealthy
}

async function checkPool(pool: DatabasePool<unknown>, timeoutMs: number): Promise<CheckResult> {
  const base = { backend: pool.backend, target: pool.target }
  try {
    return { ...base, ...(pool.backend === 'sqlite' ? await checkSqlite(pool, timeoutMs) : await checkPostgres(pool, timeoutMs)) }
  } catch (err) {
    return { ...base, ok: false, facts: {}, error: DatabaseError.is(err) ? `${err.code}: ${err.message}` : String(err) }
  }
}

async function checkSqlite(pool: DatabasePool<unknown>, timeoutMs: number): Promise<Omit<CheckResult, 'backend' | 'target'>> {
  const report = await new HealthChecker({ deep: true, timeoutMs }).check(pool)
  const integrity = report.checks.find((c) => c.name === 'integrity')
  const failed = report.checks.find((c) => c.status === 'unhealthy')
  const facts: Record<string, unknown> = { connect: report.checks.find((c) => c.name === 'ping')?.status === 'healthy' ? 'ok' : 'failed' }
  if (integrity) facts.integrity = integrity.status === 'healthy' ? 'ok' : (integrity.message ?? 'failed')
  if (integrity?.data) facts.integrity_detail = integrity.data
  const { rows } = failed ? { rows: [] } : await pool.query<{ v: string }>('select sqlite_version() as v')
  if (rows[0]) facts.sqlite_version = rows[0].v
  if (failed) return { ok: false, facts, error: `${failed.name}: ${failed.message ?? failed.status}` }
  // a deep check stopped at its deadline is degraded: the integrity is not known, which is no pass
  if (integrity?.status !== 'healthy') return { ok: false, facts, error: `integrity: ${integrity?.message ?? 'not checked'}` }
  return { ok: true, facts }
}

async function checkPostgres(pool: DatabasePool<unknown>, timeoutMs: number): Promise<Omit<CheckResult, 'backend' | 'target'>> {
  const started = performance.now()
  const latency = await pool.ping(timeoutMs)
  // one deadline for the ping and the query
  const left = Math.max(1, Math.round(timeoutMs - (performance.now() - started)))
  const { rows } = await pool.query<Record<string, unknown>>(
    `select current_setting('server_version') as server_version, version() as version, current_database() as database, current_user as "user",
            coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as tls, pg_is_in_recovery() as in_recovery`,
    [],
    { timeoutMs: left },
  )
  const row = rows[0] ?? {}
  return { ok: true, facts: { connect: `ok (${formatMs(latency)})`, ...row } }
}
