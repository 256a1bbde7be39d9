import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { defineConformanceSuite } from '@dbpool/core/testing'
import { createTestDatabase, findPgBouncer, startPgBouncer, type PgBouncer, type TestDatabase } from '@dbpool/testing'

// The suite every backend runs, through a real PgBouncer (1.18, Debian's package) in transaction
// pooling mode with ?pgbouncer=true: each transaction may run on another server connection. .ci/run
// installs PgBouncer; with CI set a missing binary fails this file instead of skipping it.
const available = findPgBouncer() !== undefined || Boolean(process.env.CI)
if (!available) console.warn('conformance-pgbouncer.test.ts: no pgbouncer binary (apt-get install pgbouncer): skipped')

let db: TestDatabase | undefined
let bouncer: PgBouncer | undefined
const pools: DatabasePool<unknown>[] = []

async function url(): Promise<string> {
  db ??= await createTestDatabase()
  // PgBouncer's own default: any startup parameter it does not track is refused, so none may be sent
  bouncer ??= await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 3, ignoreStartupParameters: [] })
  const target = new URL(bouncer.urlFor(db.url))
  target.searchParams.set('pgbouncer', 'true')
  target.searchParams.set('sslmode', 'disable')
  return target.toString()
}

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.close({ timeoutMs: 5_000 })))
  await bouncer?.stop()
  await db?.drop()
}, 60_000)

if (available)
  defineConformanceSuite(
    { describe, it, beforeAll, afterAll },
    {
      name: 'postgres through PgBouncer (transaction mode)',
      createPool: async () => {
        const pool = await PoolFactory.create(await url(), { max: 5, name: 'conformance-pgbouncer' })
        pools.push(pool)
        return pool
      },
    },
  )
else it.skip('conformance through PgBouncer (no pgbouncer binary)', () => undefined)
