import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { defineConformanceSuite } from '@dbpool/core/testing'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

// The suite every backend runs, against a real server: the embedded PostgreSQL 18 by default, or the
// server in DBPOOL_TEST_PG_URL (.ci/run points it at PostgreSQL 15 for a second run).
let db: TestDatabase | undefined
const pools: DatabasePool<unknown>[] = []

async function database(): Promise<TestDatabase> {
  db ??= await createTestDatabase()
  return db
}

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.close({ timeoutMs: 5_000 })))
  await db?.drop()
}, 60_000)

defineConformanceSuite(
  { describe, it, beforeAll, afterAll },
  {
    name: 'postgres',
    createPool: async () => {
      const { url } = await database()
      const pool = await PoolFactory.create(url, { max: 5, name: 'conformance' })
      pools.push(pool)
      return pool
    },
  },
)
