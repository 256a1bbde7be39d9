import { PoolFactory } from '@dbpool/core'
import { defineConformanceSuite } from '@dbpool/core/testing'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
let files = 0

afterAll(() => tmp.cleanup())

defineConformanceSuite(
  { describe, it, beforeAll, afterAll },
  {
    name: 'sqlite file (WAL, 2 readers)',
    createPool: async () => createSqlitePool(tmp.file(`conformance-${++files}.db`), { name: 'conformance-file' }),
  },
)

defineConformanceSuite(
  { describe, it, beforeAll, afterAll },
  {
    name: 'sqlite :memory:',
    createPool: async () => createSqlitePool(':memory:', { name: 'conformance-memory' }),
  },
)

defineConformanceSuite(
  { describe, it, beforeAll, afterAll },
  {
    name: 'sqlite through PoolFactory.create("sqlite:...")',
    createPool: async () =>
      PoolFactory.create(`sqlite:${tmp.file(`factory-${++files}.db`)}`, { name: 'conformance-factory' }, { backend: { readers: 1 } }),
  },
)
