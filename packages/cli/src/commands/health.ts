import { worstStatus, type HealthReport, type HealthStatus, type ManagerHealthReport } from '@dbpool/core'
import { formatMs } from '../format'
import { EXIT_CODES, type Output } from '../output'
import { withPools } from '../pools'
import { selectPools } from '../resolve-config'
import { CLOSE_AFTER_CHECK_MS, withinCommandDeadline } from '../deadline'
import type { CommandContext } from './context'

/** Options of `dbpool health`. */
export interface HealthCommandOptions {
  /** Print the report as JSON. */
  readonly json?: boolean
  /** Deadline of each pool's check in ms. Default is `5000`. */
  readonly timeoutMs?: number
  /** Run the deep backend checks (SQLite `integrity_check`). */
  readonly deep?: boolean
}

/**
 * Checks every configured pool (or `--pool`); exit 0 healthy, 1 degraded, 2 unhealthy. The report is
 * printed as soon as the checks end, before the pools close; the whole command ends within
 * `timeoutMs` plus `COMMAND_MARGIN_MS` (500, `cli/src/deadline.ts`) (else HEALTH_CHECK_FAILED, exit 2), a connection attempt
 * still pending (a server that never answers) included.
 */
export async function healthCommand(ctx: CommandContext, options: HealthCommandOptions): Promise<number> {
  const timeoutMs = options.timeoutMs ?? 5_000
  const config = await ctx.config()
  return withPools(
    selectPools(config, ctx.poolName),
    async (manager) => {
      const report = await withinCommandDeadline('health', timeoutMs, manager.healthCheckAll({ timeoutMs, deep: options.deep ?? false }))
      if (options.json) ctx.out.json(report)
      else printHealth(ctx.out, report)
      return exitCodeFor(report.status)
    },
    CLOSE_AFTER_CHECK_MS,
  )
}

/** The exit code of a health status. */
export function exitCodeFor(status: HealthStatus): number {
  return status === 'healthy' ? EXIT_CODES.ok : status === 'degraded' ? EXIT_CODES.degraded : EXIT_CODES.unhealthy
}

/** Prints a report for people: one block per pool, then the overall status (times to at most 2 decimals). */
export function printHealth(out: Output, report: ManagerHealthReport): void {
  for (const [name, pool] of Object.entries(report.pools)) printPool(out, name, pool)
  out.line(`overall: ${worstStatus(Object.values(report.pools).map((p) => p.status))}`)
}

function printPool(out: Output, name: string, report: HealthReport): void {
  const { used, max } = report.stats
  out.line(
    `${name}: ${report.status}  ${report.target}  (${report.backend}, checked in ${formatMs(report.latencyMs)}, ${used}/${max} connections in use)`,
  )
  for (const check of report.checks) {
    const latency = check.latencyMs === undefined ? '' : ` ${formatMs(check.latencyMs)}`
    const message = check.message ? `  ${check.message}` : ''
    out.line(`  ${check.name.padEnd(12)} ${check.status.padEnd(9)}${latency}${message}`.trimEnd())
  }
}
