import { PoolFactory, type DatabasePool, type PoolOptions } from '@dbpool/core'
import { createTempSqlite, createTestDatabase } from '@dbpool/testing'

/** The backends every suite runs on. */
export const BACKENDS = ['sqlite', 'postgres'] as const
/** One of {@link BACKENDS}. */
export type BackendName = (typeof BACKENDS)[number]

/** A fresh database of one backend, with a pool on it. */
export interface TestDb {
  readonly backend: BackendName
  readonly url: string
  readonly pool: DatabasePool<unknown>
  /** Closes the pool, then removes the database. */
  close(): Promise<void>
}

/**
 * A new, empty database: a temp SQLite file, or a database of its own on the test Postgres
 * (@dbpool/testing). Postgres never skips: when no server can be started this throws.
 */
export async function openTestDb(backend: BackendName, pool: PoolOptions = {}): Promise<TestDb> {
  const db = backend === 'sqlite' ? await createTempSqlite({ fileName: 'crm.db' }) : await createTestDatabase()
  const url = db.url
  const opened = await PoolFactory.create(url, { name: `crm-test-${backend}`, ...pool })
  return {
    backend,
    url,
    pool: opened,
    close: async () => {
      await opened.close({ timeoutMs: 10_000 })
      if ('remove' in db) await db.remove()
      else await db.drop()
    },
  }
}

/** The error a promise rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection, but it resolved')
}
