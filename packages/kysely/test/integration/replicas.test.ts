import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { DbpoolDialect } from '@dbpool/kysely'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { Kysely } from 'kysely'

jest.setTimeout(60_000)

interface Db {
  t: { v: string }
}

/**
 * A Postgres pool with a read replica and the default `readRouting: 'manual'` routes nothing to the
 * replica by itself: Kysely's statements outside a transaction run on the primary, as `pool.query()`
 * does (a replica lags: a select after the app's own write would not see it; a `for update` or a
 * side-effecting function fails there). A read-only transaction asks for the read lane, as
 * `pool.transaction({ readOnly: true })`. The "replica" here is a second database on the test server
 * holding other rows, so where each statement ran shows in what it reads.
 */
describe('DbpoolDialect on a Postgres pool with a replica', () => {
  let primary: TestDatabase
  let replica: TestDatabase
  let pool: DatabasePool
  let db: Kysely<Db>

  beforeAll(async () => {
    primary = await createTestDatabase()
    replica = await createTestDatabase()
    const seed = await PoolFactory.create(replica.url)
    try {
      await seed.query('create table t (v text)')
      await seed.query("insert into t values ('replica')")
    } finally {
      await seed.close()
    }
    pool = await PoolFactory.create(primary.url, { max: 2 }, { backend: { replicas: [replica.url] } })
    await pool.query('create table t (v text)')
    await pool.query("insert into t values ('primary')")
    db = new Kysely<Db>({ dialect: new DbpoolDialect({ pool }) })
  })

  afterAll(async () => {
    await pool?.close()
    await primary?.drop()
    await replica?.drop()
  })

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
