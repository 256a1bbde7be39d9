import type { FinanceDemoReport } from './demo'
import { formatMoney } from './demo'

/** The demo report as text for a terminal or a log: summary, invariants, pool stats, health, metrics. */
export function formatFinanceReport(report: FinanceDemoReport): string {
  const { storm, balances, invariants, stats, health, metrics, currency } = report
  const money = (minor: number | bigint): string => formatMoney(minor, currency)
  const counts = (record: Readonly<Record<string, number>>): string =>
    Object.keys(record).length === 0
      ? 'none'
      : Object.entries(record)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')
  const ms = (n: number): string => `${n.toFixed(2)} ms`
  const lines = [
    '',
    `== transfers (${report.kinds.random} random, ${report.kinds.hot} between ${balances.hot.length} hot accounts, ${report.kinds.overdraw} over the limit, ${report.kinds.repeat} repeated keys, ${report.kinds['key-reuse']} reused keys)`,
    `  requests          ${storm.outcomes.requested} in ${(storm.durationMs / 1000).toFixed(2)} s = ${storm.perSecond} transfers/s`,
    `  posted            ${storm.outcomes.posted}`,
    `  replayed          ${storm.outcomes.replayed} (same idempotency key: answered with the first posting)`,
    `  refused           ${counts(storm.outcomes.rejected)}`,
    `  gave up           ${counts(storm.outcomes.aborted)}`,
    `  transactions run  ${storm.attempts}, retries ${counts(storm.retries)}, most attempts for one transfer ${storm.maxAttempts}`,
    '',
    '== balances',
    `  ${balances.customers.accounts} customer accounts: total ${money(balances.customers.total)}, lowest ${money(balances.customers.min)}, highest ${money(balances.customers.max)}`,
    `  ${'EQUITY'.padEnd(8)} ${money(balances.equity)} (opening balances were ${money(report.openingTotal)})`,
    ...balances.hot.map((h) => `  ${h.id.padEnd(8)} ${money(h.balance)} (hot)`),
    `  statement ${report.statement.accountId} ${report.statement.from.toISOString()} .. ${report.statement.to.toISOString()}: opening ${money(report.statement.openingBalance)}, ${report.statement.lines} lines, closing ${money(report.statement.closingBalance)}`,
    ...(report.export
      ? [
          `  journal export    ${report.export.lines} lines to ${report.export.path} (${report.export.bytes} bytes, ${report.export.durationMs} ms, streamed)`,
        ]
      : []),
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
    `finance demo ${report.ok ? 'passed' : 'FAILED'} on ${report.backend} in ${(report.durationMs / 1000).toFixed(2)} s`,
    '',
  ]
  return lines.join('\n')
}
