import { HealthChecker, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'

// A write pool pointed at a standby fails every write with READ_ONLY, yet /ready said 200 healthy
// (the postgres.server check said "(standby, read-only)" and healthy). Unhealthy now, unless the pool
// is meant to be on a standby.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('standby-ready.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
const pools: DatabasePool<PostgresConnection>[] = []

function on(url: string, sessionInit?: string): DatabasePool<PostgresConnection> {
  const pool = createPostgresPool(url, { min: 0, max: 2, name: 'standby-ready' }, sessionInit === undefined ? {} : { sessionInit })
  pools.push(pool)
  return pool
}

function withAttrs(url: string, attrs: string): string {
  const u = new URL(url)
  u.searchParams.set('target_session_attrs', attrs)
  return u.toString()
}

suite('/ready of a pool connected to a standby', () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
  }, 180_000)

  afterAll(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
    await cluster?.close()
  }, 60_000)

  it('a write pool on a standby is unhealthy, naming the standby and READ_ONLY', async () => {
    const pool = on(cluster.replicaUrls[0]!)
    await expect(pool.query('create table w (a int)')).rejects.toMatchObject({ code: 'READ_ONLY' })
    const report = await new HealthChecker({ timeoutMs: 5_000 }).check(pool)
    expect(report.status).toBe('unhealthy')
    const server = report.checks.find((c) => c.name === 'postgres.server')
    expect(server).toMatchObject({ status: 'unhealthy', data: { inRecovery: true, standbyIntended: false } })
    expect(server?.message).toMatch(/standby, read-only.*READ_ONLY/)
  })

  it.each([
    ['target_session_attrs=standby', () => on(withAttrs(cluster.replicaUrls[0]!, 'standby'))],
    ['target_session_attrs=prefer-standby', () => on(withAttrs(cluster.replicaUrls[0]!, 'prefer-standby'))],
    ['a read-only session (sessionInit)', () => on(cluster.replicaUrls[0]!, 'SET default_transaction_read_only = on')],
  ])('a pool meant for a standby (%s) stays healthy there', async (_what, make) => {
    const report = await new HealthChecker({ timeoutMs: 5_000 }).check(make())
    expect(report.checks.find((c) => c.name === 'postgres.server')).toMatchObject({
      status: 'healthy',
      data: { inRecovery: true, standbyIntended: true },
    })
    expect(report.status).not.toBe('unhealthy')
  })

  it('the primary stays healthy', async () => {
    const report = await new HealthChecker({ timeoutMs: 5_000 }).check(on(cluster.primaryUrl))
    expect(report.checks.find((c) => c.name === 'postgres.server')).toMatchObject({ status: 'healthy', data: { inRecovery: false } })
  })
})
