import { Migrator, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'

jest.setTimeout(60_000)

// A standby whose replay is paused (a replica that lags behind; a real standby: the pool refuses a
// server that is not in recovery as a replica). With readRouting 'auto' every lone read goes there;
// the Migrator must not.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('migrations-replica.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

suite("Migrator with readRouting: 'auto' reads its records on the primary", () => {
  let cluster: PostgresCluster
  let pool: DatabasePool<PostgresConnection>

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
    await cluster.pauseReplay(1)
    pool = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, name: 'migrations-replica', keepaliveIntervalMs: 600_000 },
      { replicas: [cluster.replicaUrls[0]!], readRouting: 'auto', maxReplicaLagMs: 2_147_483_647 },
    )
  }, 180_000)

  afterAll(async () => {
    await pool?.close({ timeoutMs: 5_000 })
    await cluster?.close()
  }, 60_000)

  it('up, status and down see what the primary holds', async () => {
    const migrations = [
      { version: 1, name: 'one', up: 'create table one (id integer)', down: 'drop table one' },
      { version: 2, name: 'two', up: 'create table two (id integer)', down: 'drop table two' },
    ]
    const migrator = new Migrator(pool, { migrations })
    const first = await migrator.up()
    expect(first.migrations.map((m) => m.version)).toEqual([1, 2])
    expect(first.current).toBe(2)
    // the lone read really goes to the lagging replica (nothing there)
    const routed = await pool.query("select relname from pg_class where relname = 'dbpool_migrations'")
    expect(routed.rows).toEqual([])
    expect((await migrator.status()).map((s) => `${s.version}:${s.state}`)).toEqual(['1:applied', '2:applied'])
    const again = await migrator.up()
    expect(again).toMatchObject({ migrations: [], skipped: [], current: 2 })
    const down = await migrator.down()
    expect(down).toMatchObject({ migrations: [{ version: 2 }], current: 1 })
  })
})
