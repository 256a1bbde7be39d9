import { PoolFactory } from '@dbpool/core'
import { dropOutputOnClosedPipe } from '@dbpool/example-kit'
import { crmConfigFromEnv } from './config'
import { runCrmDemo } from './demo'
import { formatCrmReport } from './demo-report'

/**
 * `npm run demo:crm`: the CRM demo on `DATABASE_URL` (default: a SQLite file under ./data). Exits 0
 * only when every invariant holds; the pool is closed whatever happens.
 */
async function main(): Promise<number> {
  const config = crmConfigFromEnv()
  const pool = await PoolFactory.create(config.databaseUrl, { name: 'crm', max: config.poolMax })
  try {
    const report = await runCrmDemo(pool, { customers: config.customers, deals: config.deals, moves: config.moves, seed: config.seed })
    process.stdout.write(formatCrmReport(report))
    return report.ok ? 0 : 1
  } finally {
    const closed = await pool.close({ timeoutMs: 10_000 })
    if (closed.outstandingLeases.length > 0) process.stderr.write(`pool closed with ${closed.outstandingLeases.length} leases still out\n`)
  }
}

// `| head`: the output is dropped once the reader is gone, the demo still ends and closes its pool
dropOutputOnClosedPipe()
main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`crm demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
