import { createHash } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { Client, type ClientConfig } from 'pg'
import { DatabaseConfig } from '@dbpool/core'
import { fallsBackToPlain, isTlsRefusal, tlsOptions } from '@dbpool/postgres'
import { randomSuffix } from './shared-postgres'
import { testPostgresUrl } from './shared-postgres'
import { untilSuccess } from './until-success'
import { rewritePostgresUrl } from './url'

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
 * @internal This process's host as a test database's name holds it: `tag`, a hash of the host name,
 * the boot id and the pid namespace (Linux), so a pid in a database name is read only where it means
 * the same process (another machine, container or boot never matches); `sweeps`, whether the host is
 * told apart well enough to drop another process's databases: only with a boot id (random per boot).
 * Without one (macOS, Windows) the tag is the host name alone, which two machines sharing a server may
 * have alike (`MacBook-Pro`): a pid gone here may be a live process there, so nothing is swept.
 */
export function hostIdentity(read: (path: string, link?: boolean) => string = readOr): { tag: string; sweeps: boolean } {
  const bootId = read('/proc/sys/kernel/random/boot_id')
  const tag = createHash('sha256')
    .update([hostname(), bootId, read('/proc/self/ns/pid', true)].join('\n'))
    .digest('hex')
    .slice(0, 8)
  return { tag, sweeps: bootId !== '' }
}

const HOST = hostIdentity()
const HOST_TAG = HOST.tag

/** `dbpool_test_<pid>_<host tag>_<n>_<random>`: a database of {@link createTestDatabase}. */
const NAME = /^dbpool_test_(\d+)_([0-9a-f]{8})_\d+_[0-9a-f]+$/

/** Servers this process already swept (see {@link dropStaleDatabases}). */
const swept = new Set<string>()

/**
 * Creates a fresh database (`CREATE DATABASE ... TEMPLATE ...`) on the test Postgres and returns its
 * URL and a `drop()`. Use one per test file; copy a migrated template to skip migrations per file.
 * Its name is `dbpool_test_<pid>_<host>_<n>_<random>` (`<host>`: a hash of the host name, boot id and
 * pid namespace). The first call of a process on a server drops the databases left there by processes
 * that died before `drop()` (a crash, SIGKILL, a jest timeout): those of this host whose pid is gone,
 * with no session on them. Another host's databases, a live process's, and names of any other form
 * are never touched; on a system without a boot id (`/proc/sys/kernel/random/boot_id`: macOS,
 * Windows), where two machines may have the same host name, nothing is swept.
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
  const name = `dbpool_test_${process.pid}_${HOST_TAG}_${++counter}_${randomSuffix()}`
  // before CREATE DATABASE: a URL that cannot be rewritten fails here, leaving nothing on the server
  const url = withDatabase(serverUrl, name)
  await withAdmin(serverUrl, async (client) => {
    if (!swept.has(serverUrl)) {
      swept.add(serverUrl)
      await dropStaleDatabases(client)
    }
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
    url,
    name,
    // a drop that failed (server unreachable, connect timeout) is tried again by the next call
    drop: untilSuccess(() =>
      withAdmin(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`).then(() => undefined)),
    ),
  }
}

/**
 * Runs `fn` on a short-lived admin connection. `serverUrl` is read as dbpool reads it
 * (`DatabaseConfig.fromUrl`: libpq's `sslmode` meanings, `sslrootcert` read as a file, multi-host
 * lists walked in order), never with pg's own connection-string rules: `sslmode=require` encrypts
 * without verifying the chain (pg verified it and failed with UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
export async function withAdmin<T>(serverUrl: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await adminClient(serverUrl)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** A connected pg.Client on the first host of `serverUrl` that accepts it, with dbpool's TLS settings. */
async function adminClient(serverUrl: string): Promise<Client> {
  const config = DatabaseConfig.fromUrl(serverUrl, { applicationName: 'dbpool-testing' })
  const password = await config.resolvePassword()
  let last: unknown
  for (const { host, port } of config.hosts) {
    const ssl = tlsOptions({ host, sslMode: config.sslMode, sslRootCert: config.sslRootCert })
    // allow: plain TCP first; prefer: TLS first, plain TCP when the server refuses TLS (libpq)
    const attempts =
      config.sslMode === 'allow' ? [false, ssl] : fallsBackToPlain(config.sslMode) && ssl !== false ? [ssl, false as const] : [ssl]
    for (const [i, attempt] of attempts.entries()) {
      const options: ClientConfig = {
        host,
        port,
        user: config.username,
        database: config.database,
        ...(password === undefined ? {} : { password }),
        ...(config.options === undefined ? {} : { options: config.options }),
        application_name: config.applicationName,
        connectionTimeoutMillis: config.connectTimeoutMs || 15_000,
        ssl: attempt,
      }
      const client = new Client(options)
      client.on('error', () => undefined)
      try {
        await client.connect()
        return client
      } catch (err) {
        last = err
        await client.end().catch(() => undefined)
        // prefer goes without TLS only when the server refused TLS; allow tries TLS after any refusal
        if (!(config.sslMode === 'allow' || (i === 0 && isTlsRefusal(err)))) break
      }
    }
  }
  throw last
}

/**
 * Drops the databases of {@link createTestDatabase} whose process is provably gone: made on this host
 * (same host tag: host name, boot id, pid namespace) by a pid that no longer exists. Without FORCE:
 * a database someone is still connected to is left (55006), as is any error (another process
 * sweeping at the same time).
 */
async function dropStaleDatabases(client: Client): Promise<void> {
  if (!HOST.sweeps) return
  const { rows } = await client.query<{ datname: string }>(`select datname from pg_database where datname like 'dbpool\\_test\\_%'`)
  for (const { datname } of rows) {
    const match = NAME.exec(datname)
    if (!match || match[2] !== HOST_TAG || processExists(Number(match[1]))) continue
    await client.query(`DROP DATABASE IF EXISTS ${quote(datname)}`).catch(() => undefined)
  }
}

/** Whether a process `pid` exists on this host (EPERM: it does, someone else's). */
function processExists(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

function readOr(path: string, link = false): string {
  try {
    return link ? readlinkSync(path) : readFileSync(path, 'utf8').trim()
  } catch {
    return ''
  }
}

/**
 * The same URL with another database (a `dbname=` in the query too), everything else as written: a
 * host list (`h1:p1,h2:p2`) is kept. A URL dbpool refuses is a CONFIGURATION `DatabaseError` with
 * the URL redacted.
 */
export function withDatabase(url: string, database: string): string {
  return rewritePostgresUrl(url, { database }, 'withDatabase')
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`
}
