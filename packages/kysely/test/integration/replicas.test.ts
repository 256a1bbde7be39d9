import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { DbpoolDialect } from '@dbpool/kysely'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'
import { Kysely } from 'kysely'

jest.setTimeout(60_000)

interface Db {
  t: { v: string }
}

// a real standby (the pool refuses a server that is not in recovery as a replica)
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('kysely replicas.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

/**
 * A Postgres pool with a read replica and the default `readRouting: 'manual'` routes nothing to the
 * replica by itself: Kysely's statements outside a transaction run on the primary, as `pool.query()`
 * does (a replica lags: a select after the app's own write would not see it; a `for update` or a
 * side-effecting function fails there). A read-only transaction asks for the read lane, as
 * `pool.transaction({ readOnly: true })`. The replica is a real standby whose replay is paused after
 * it saw `'replica'`; the primary then changed the row to `'primary'`, so where each statement ran
 * shows in what it reads.
 */
suite('DbpoolDialect on a Postgres pool with a replica', () => {
  let cluster: PostgresCluster
  let pool: DatabasePool
  let db: Kysely<Db>

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
    const seed = await PoolFactory.create(cluster.primaryUrl)
    try {
      await seed.query('create table t (v text)')
      await seed.query("insert into t values ('replica')")
      await cluster.waitForReplay(1)
      await cluster.pauseReplay(1)
      await seed.query("update t set v = 'primary'")
    } finally {
      await seed.close()
    }
    pool = await PoolFactory.create(
      cluster.primaryUrl,
      { max: 2, keepaliveIntervalMs: 600_000 },
      { backend: { replicas: [cluster.replicaUrls[0]!], maxReplicaLagMs: 2_147_483_647 } },
    )
    db = new Kysely<Db>({ dialect: new DbpoolDialect({ pool }) })
  }, 180_000)

  afterAll(async () => {
    await pool?.close()
    await cluster?.close()
  }, 60_000)

  afterEach(() => {
    expect(pool.stats().used).toBe(0)
    expect(pool.stats('read').used).toBe(0)
  })

  it('runs a select outside a transaction on the primary, as pool.query() does', async () => {
    expect((await pool.query('select v from t')).rows).toEqual([{ v: 'primary' }])
    expect(await db.selectFrom('t').select('v').execute()).toEqual([{ v: 'primary' }])
    expect(await db.selectFrom('t').select('v').forUpdate().execute()).toEqual([{ v: 'primary' }])
    const session = await db.connection().execute((conn) => conn.selectFrom('t').select('v').execute())
    expect(session).toEqual([{ v: 'primary' }])
  })

  it('runs a read-only transaction on the replica (the read lane it asks for)', async () => {
    const rows = await db
      .transaction()
      .setAccessMode('read only')
      .execute((trx) => trx.selectFrom('t').select('v').execute())
    expect(rows).toEqual([{ v: 'replica' }])
  })
})
