import { Client } from 'pg'
import { randomSuffix } from './shared-postgres'
import { testPostgresUrl } from './shared-postgres'
import { untilSuccess } from './until-success'

/** A database of its own for one test file. */
export interface TestDatabase {
  /** URL with credentials to the new database. */
  readonly url: string
  /** The database name (`dbpool_test_...`). */
  readonly name: string
  /**
   * Drops the database (`DROP DATABASE IF EXISTS ... WITH (FORCE)`, terminating sessions still
   * connected). Idempotent: calls during a drop share it, calls after a success resolve at once, and
   * a call after a failure (the server unreachable...) tries again; rejects with pg's error.
   */
  drop(): Promise<void>
}

/** Options of {@link createTestDatabase}. */
export interface CreateTestDatabaseOptions {
  /** The database to copy. Default is `'template1'` (an empty database). */
  readonly template?: string
  /** The server to create it on (a superuser URL). Default is {@link testPostgresUrl}. */
  readonly serverUrl?: string
}

let counter = 0

/**
 * Creates a fresh database (`CREATE DATABASE ... TEMPLATE ...`) on the test Postgres and returns its
 * URL and a `drop()`. Use one per test file; copy a migrated template to skip migrations per file.
 *
 * ```ts
 * let db: TestDatabase
 * beforeAll(async () => { db = await createTestDatabase() }, 120_000)
 * afterAll(() => db.drop())
 * ```
 */
export async function createTestDatabase(options: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const serverUrl = options.serverUrl ?? (await testPostgresUrl())
  const template = options.template ?? 'template1'
  const name = `dbpool_test_${process.pid}_${++counter}_${randomSuffix()}`
  await withAdmin(serverUrl, async (client) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(template)}`)
        return
      } catch (err) {
        // 55006: the template is in use (another CREATE DATABASE copying it, or a session on it)
        if ((err as { code?: string }).code !== '55006' || attempt >= 20) throw err
        await new Promise((r) => setTimeout(r, 100 * attempt))
      }
    }
  })
  return {
    url: withDatabase(serverUrl, name),
    name,
    // a drop that failed (server unreachable, connect timeout) is tried again by the next call
    drop: untilSuccess(() =>
      withAdmin(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`).then(() => undefined)),
    ),
  }
}

/** Runs `fn` on a short-lived admin connection. */
export async function withAdmin<T>(serverUrl: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: serverUrl, connectionTimeoutMillis: 15_000, application_name: 'dbpool-testing' })
  client.on('error', () => undefined)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** The same URL with another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${encodeURIComponent(database)}`
  return parsed.toString()
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`
}
