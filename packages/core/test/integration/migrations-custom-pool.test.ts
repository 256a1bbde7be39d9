import { Migrator, PoolFactory, type DatabaseError, type DatabasePool, type MigrationPool, type PoolConnection } from '@dbpool/core'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

jest.setTimeout(120_000)

describe('Migrator on a custom MigrationPool (postgres): the session reset after a COMMIT', () => {
  let database: TestDatabase
  let pool: DatabasePool<unknown>

  beforeEach(async () => {
    database = await createTestDatabase()
    pool = await PoolFactory.create(database.url, { min: 0, max: 2, name: 'migrations-custom-pool' })
  })

  afterEach(async () => {
    await pool.close({ timeoutMs: 5_000 })
    await database.drop()
  })

  it('a reset failing after migration 2 committed still lists 2 in detail.applied', async () => {
    let resets = 0
    // a pool that cannot close the connection at its release (no discardAtRelease): the Migrator resets
    // the session itself; the second reset fails as a connection lost right after the COMMIT would
    const custom: MigrationPool = {
      backend: pool.backend,
      withConnection: (fn) =>
        pool.withConnection((conn) =>
          fn(
            new Proxy(conn, {
              get(target, prop) {
                if (prop === 'discardAtRelease') return undefined
                if (prop === 'query')
                  return (q: unknown, ...rest: unknown[]) =>
                    q === 'CLOSE ALL' && ++resets === 2
                      ? Promise.reject(new Error('connection lost'))
                      : (target.query as (...a: unknown[]) => Promise<unknown>)(q, ...rest)
                const value: unknown = Reflect.get(target, prop, target)
                return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
              },
            }) as PoolConnection,
          ),
        ),
    }
    const events: string[] = []
    const migrations = [1, 2, 3].map((v) => ({ version: v, name: `m${v}`, up: `create table t${v} (id int)` }))
    const err = (await new Migrator(custom, { migrations, onEvent: (e) => events.push(`${e.type}:${e.version}`) })
      .up()
      .catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'MIGRATION_FAILED', detail: { applied: [1, 2] } })
    expect(err.message).toMatch(/applied 1, 2 /)
    expect(events).toContain('done:2')
    const recorded = await pool.query<{ version: string }>('select version from dbpool_migrations order by 1')
    expect(recorded.rows.map((r) => Number(r.version))).toEqual([1, 2])
  })
})
