import { DatabaseConfig, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, findPgBouncer, startPgBouncer, type PgBouncer, type TestDatabase } from '@dbpool/testing'
import { admin, rejection, uniqueAppName } from './helpers'

// PgBouncer's own errors (FATAL, SQLSTATE 08P01): a real PgBouncer with one server connection and
// query_wait_timeout = 1 s, so a second client's statement waits for that connection and is ended by
// PgBouncer before it reached PostgreSQL. With CI set a missing binary fails these tests.
const available = findPgBouncer() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('pgbouncer-errors.test.ts: no pgbouncer binary (apt-get install pgbouncer): skipped')

let db: TestDatabase
let bouncer: PgBouncer
const pools: DatabasePool<PostgresConnection>[] = []

function poolThrough(): DatabasePool<PostgresConnection> {
  const pool = createPostgresPool(
    DatabaseConfig.fromUrl(`${bouncer.urlFor(db.url)}?pgbouncer=true`, { sslMode: 'disable', applicationName: uniqueAppName('bouncer') }),
    { min: 0, max: 2, name: 'bouncer-errors' },
  )
  pools.push(pool)
  return pool
}

suite("PgBouncer's own errors", () => {
  beforeAll(async () => {
    db = await createTestDatabase()
    await admin(db.url, (c) => c.query('create table written (id int primary key)'))
    bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 1, settings: { query_wait_timeout: 1 } })
  }, 120_000)

  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  })

  afterAll(async () => {
    await bouncer?.stop()
    await db?.drop()
  }, 60_000)

  it('query_wait_timeout (the statement never reached PostgreSQL) is retryable, a write too, and nothing ran', async () => {
    const holder = poolThrough()
    const waiter = poolThrough()
    // the one server connection stays with the holder's transaction
    let release!: () => void
    const released = new Promise<void>((r) => (release = r))
    let began!: () => void
    const begun = new Promise<void>((r) => (began = r))
    const holding = holder.transaction(async (tx) => {
      await tx.query('select 1')
      began()
      await released
    })
    await begun
    try {
      for (const text of ['select 1', 'insert into written values (1)']) {
        const err = await rejection(waiter.query(text))
        expect(err).toMatchObject({
          code: 'CONNECTION_LOST',
          sqlState: '08P01',
          retryable: true,
          detail: { pgbouncer: 'query_wait_timeout' },
        })
        expect((err as { detail?: { outcome?: unknown } }).detail?.outcome).toBeUndefined()
      }
    } finally {
      release()
      await holding
    }
    // the INSERT did not run
    const { rows } = await waiter.query<{ n: number }>('select count(*)::int as n from written')
    expect(rows).toEqual([{ n: 0 }])
  }, 60_000)
})
