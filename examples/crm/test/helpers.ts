import { execFile } from 'node:child_process'
import { mkdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
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

/** The repository root. */
export const REPO_ROOT = resolve(__dirname, '..', '..', '..')

/**
 * Runs `tsc -b examples/<name>` from the repository root. The finance and CRM suites may build at the
 * same time in two jest workers, and both builds write the shared packages' dist: a lock directory
 * makes them take turns (a lock older than five minutes is left over from a killed run and removed).
 */
export async function buildExample(name: 'finance' | 'crm'): Promise<void> {
  const lock = join(tmpdir(), 'dbpool-examples-tsc.lock')
  for (let waited = 0; ; waited += 100) {
    try {
      await mkdir(lock)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs
      if (age > 300_000) await rm(lock, { recursive: true, force: true })
      else if (waited > 240_000) throw new Error(`waited 240 s for ${lock}`)
      else await new Promise((r) => setTimeout(r, 100))
    }
  }
  try {
    await promisify(execFile)(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', `examples/${name}`], {
      cwd: REPO_ROOT,
    })
  } finally {
    await rm(lock, { recursive: true, force: true })
  }
}
