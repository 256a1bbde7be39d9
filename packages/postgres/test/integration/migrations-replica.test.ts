import { Migrator, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

jest.setTimeout(60_000)

// A "replica" that never replays: another, empty database on the same server stands in for a standby
// that lags behind. With readRouting 'auto' every lone read goes there; the Migrator must not.
describe("Migrator with readRouting: 'auto' reads its records on the primary", () => {
  let primary: TestDatabase
  let lagging: TestDatabase
  let pool: DatabasePool<PostgresConnection>

  beforeAll(async () => {
    primary = await createTestDatabase()
    lagging = await createTestDatabase()
    pool = createPostgresPool(primary.url, { min: 0, max: 2, name: 'migrations-replica' }, { replicas: [lagging.url], readRouting: 'auto' })
  })

  afterAll(async () => {
    await pool?.close({ timeoutMs: 5_000 })
    await primary?.drop()
    await lagging?.drop()
  })

  it('up, status and down see what the primary holds', async () => {
    const migrations = [
      { version: 1, name: 'one', up: 'create table one (id integer)', down: 'drop table one' },
      { version: 2, name: 'two', up: 'create table two (id integer)', down: 'drop table two' },
    ]
    const migrator = new Migrator(pool, { migrations })
    const first = await migrator.up()
    expect(first.migrations.map((m) => m.version)).toEqual([1, 2])
    expect(first.current).toBe(2)
    // the lone read really goes to the lagging "replica" (nothing there)
    const routed = await pool.query("select relname from pg_class where relname = 'dbpool_migrations'")
    expect(routed.rows).toEqual([])
    expect((await migrator.status()).map((s) => `${s.version}:${s.state}`)).toEqual(['1:applied', '2:applied'])
    const again = await migrator.up()
    expect(again).toMatchObject({ migrations: [], skipped: [], current: 2 })
    const down = await migrator.down()
    expect(down).toMatchObject({ migrations: [{ version: 2 }], current: 1 })
  })
})
