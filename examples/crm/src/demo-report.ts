import type { CrmDemoReport, PhaseOutcomes } from './demo'
import { formatMinorUnits } from '@dbpool/example-kit'

/** The demo report as text for a terminal or a log. */
export function formatCrmReport(report: CrmDemoReport): string {
  const { customers, deals, moves, invariants, stats, health, metrics } = report
  const counts = (record: Readonly<Record<string, number>>): string =>
    Object.keys(record).length === 0
      ? 'none'
      : Object.entries(record)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')
  const ms = (n: number): string => `${n.toFixed(2)} ms`
  const phase = (name: string, o: PhaseOutcomes): string =>
    `  ${name.padEnd(10)} ${o.requested} requests in ${(o.durationMs / 1000).toFixed(2)} s = ${o.perSecond}/s: ok ${o.succeeded}, refused ${counts(o.rejected)}, gave up ${counts(o.aborted)}`
  const lines = [
    '',
    '== requests (each phase sent all at once)',
    phase('customers', customers) + ` (${customers.plannedDuplicates} planned duplicate emails)`,
    phase('deals', deals),
    phase('moves', moves),
    `  moves: ${moves.attempts} transactions run, retries ${counts(moves.retries)}`,
    `  contacts ${report.contacts}; pages: ${report.pagination.pages} of ${report.pagination.pageSize} listing ${report.pagination.customers} customers; ${report.deleted} soft-deleted`,
    `  searches: ${report.searches.map((s) => `"${s.term}" ${s.matches} matches`).join(', ')}`,
    '',
    '== pipeline',
    ...report.pipeline.map((p) => `  ${p.stage.padEnd(12)} ${String(p.deals).padStart(4)} deals ${formatMinorUnits(p.amount, 'EUR')}`),
    '',
    `== invariants: ${invariants.ok ? 'all hold' : 'VIOLATED'}`,
    ...invariants.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
    '',
    '== pool',
    `  size ${stats.size}, idle ${stats.idle}, used ${stats.used}, pending ${stats.pending}, max ${stats.max}, min ${stats.min}, utilization ${stats.utilization.toFixed(2)}`,
    '',
    `== health: ${health.status} (${ms(health.latencyMs)})`,
    ...health.checks.map(
      (c) =>
        `  ${c.status.padEnd(9)} ${c.name}${c.latencyMs === undefined ? '' : ` ${ms(c.latencyMs)}`}${c.message ? `: ${c.message}` : ''}`,
    ),
    '',
    `== metrics (${metrics.poolName})`,
    `  connections created ${metrics.created}, closed ${metrics.dropped}, acquired ${metrics.acquired}, returned ${metrics.returned}, timeouts ${metrics.timeouts}`,
    `  wait time avg ${ms(metrics.waitTime.avgMs)}, max ${ms(metrics.waitTime.maxMs)}`,
    `  use time  avg ${ms(metrics.useTime.avgMs)}, max ${ms(metrics.useTime.maxMs)}`,
    `  create    avg ${ms(metrics.createTime.avgMs)}, max ${ms(metrics.createTime.maxMs)}`,
    '',
    `crm demo ${report.ok ? 'passed' : 'FAILED'} on ${report.backend} in ${(report.durationMs / 1000).toFixed(2)} s`,
    '',
  ]
  return lines.join('\n')
}
