import type { DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresPoolOptions } from '@dbpool/postgres'
import {
  createTestDatabase,
  findPgBouncer,
  findPostgresBinDir,
  startPostgresCluster,
  type PostgresCluster,
  type TestDatabase,
} from '@dbpool/testing'
import { runFinanceDemo, type FinanceDemoReport } from '../src'

jest.setTimeout(300_000)

// The finance demo on a replicated cluster (a primary and one streaming standby, startPostgresCluster:
// Debian's PostgreSQL binaries and PgBouncer, which .ci/run installs; with CI set missing binaries fail
// these tests instead of skipping them): reads on the standby with readYourWrites, directly and through
// PgBouncer in transaction mode.
const available = (findPostgresBinDir() !== undefined && findPgBouncer() !== undefined) || Boolean(process.env.CI)
const suite = available ? describe : describe.skip

const DEMO = { accounts: 30, transfers: 300, replays: 10 }

suite('the finance demo on a primary with a streaming standby', () => {
  let cluster: PostgresCluster
  let db: TestDatabase
  const pools: DatabasePool<unknown>[] = []

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1, pgbouncer: 'transaction', pgbouncerPoolSize: 6 })
    db = await createTestDatabase({ serverUrl: cluster.primaryUrl })
    await cluster.waitForReplay(1)
  }, 180_000)

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close({ timeoutMs: 10_000 })))
    await cluster?.close()
  }, 60_000)

  /** A pool on `primaryUrl` whose read lane is the standby (same database), every read-only statement routed there. */
  function clusterPool(primaryUrl: string, options: PostgresPoolOptions = {}): DatabasePool<unknown> {
    const pool = createPostgresPool(
      primaryUrl,
      { min: 0, max: 8, name: 'finance-cluster' },
      { replicas: [cluster.url(1, db.name)], readYourWrites: true, readRouting: 'auto', ...options },
    )
    pools.push(pool)
    return pool
  }

  function expectPassed(report: FinanceDemoReport, pool: DatabasePool<unknown>): void {
    expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
    expect(report.ok).toBe(true)
    expect(report.storm.outcomes.unexpected).toEqual([])
    const stats = pool.replicaStats()
    // the demo's reads (balances, statements, the invariant check: read-only transactions) ran on the
    // standby whenever it had replayed the demo's last write, on the primary otherwise
    expect(stats?.readsOnReplicas).toBeGreaterThan(0)
    expect(stats?.positionsRecorded).toBeGreaterThan(0)
    expect(stats?.readsOnPrimaryFallback).toBe(0)
  }

  it('holds every invariant with reads on the standby and readYourWrites', async () => {
    const pool = clusterPool(cluster.url(0, db.name))
    const report = await runFinanceDemo(pool, { ...DEMO, sink: { write: () => true } })
    expectPassed(report, pool)
  })

  it('holds every invariant through PgBouncer in transaction mode, reads on the standby', async () => {
    const viaBouncer = `${cluster.pgbouncer!.urlFor(cluster.url(0, db.name))}?pgbouncer=true`
    const pool = clusterPool(viaBouncer)
    const report = await runFinanceDemo(pool, { ...DEMO, seed: 7, sink: { write: () => true } })
    expectPassed(report, pool)
    expect(pool.sessionFeatures).toMatchObject({ pgbouncer: 'transaction', sessions: false })
  })

  it('with replay paused on the standby, readYourWrites still reads every write (and without it the demo fails)', async () => {
    await cluster.pauseReplay(1)
    try {
      const pool = clusterPool(cluster.url(0, db.name))
      const report = await runFinanceDemo(pool, { ...DEMO, seed: 11, sink: { write: () => true } })
      expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
      expect(report.ok).toBe(true)
      // every read came after a write the standby had not replayed: all on the primary
      expect(pool.replicaStats()).toMatchObject({ readsOnPrimaryForWrites: expect.any(Number) as number, readsOnPrimaryFallback: 0 })
      expect(pool.replicaStats()!.readsOnPrimaryForWrites).toBeGreaterThan(0)
      // the control: the same run without readYourWrites reads the paused standby and does not pass
      const stale = clusterPool(cluster.url(0, db.name), { readYourWrites: false })
      const passed = await runFinanceDemo(stale, { ...DEMO, seed: 12, sink: { write: () => true } }).then(
        (r) => r.ok,
        () => false,
      )
      expect(passed).toBe(false)
    } finally {
      await cluster.resumeReplay(1)
    }
  })
})
