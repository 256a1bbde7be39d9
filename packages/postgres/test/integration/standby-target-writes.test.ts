import type { DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'
import { rejection } from './helpers'

// Review r6 item 6: a pool meant to be read-only (target_session_attrs standby / read-only /
// prefer-standby, or startup options setting default_transaction_read_only) answered a write with
// READ_ONLY retryable: true, "a new one looks for a read-write server", and evicted its connections
// on every attempt: transaction(fn, { retry }) replayed the write on the same kind of server each time
// and reconnected the whole pool. The server is what the pool asked for: not retryable, nothing evicted.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('standby-target-writes.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
const pools: DatabasePool<PostgresConnection>[] = []

function withParam(url: string, name: string, value: string): string {
  const u = new URL(url)
  // percent-encoded as libpq reads it (URLSearchParams would write a space as '+')
  u.search = `${u.search === '' ? '?' : `${u.search}&`}${name}=${encodeURIComponent(value)}`
  return u.toString()
}

/** A pool on `url` with two connections open, and the reasons of the connections it destroys. */
async function warmPool(url: string): Promise<{ pool: DatabasePool<PostgresConnection>; destroyed: string[] }> {
  const pool = createPostgresPool(url, { min: 0, max: 4, name: 'standby-target-writes' })
  pools.push(pool)
  const destroyed: string[] = []
  pool.on('destroy', (event) => destroyed.push(event.reason))
  await Promise.all([1, 2].map(() => pool.withConnection((conn) => conn.query('select 1'))))
  expect(pool.stats().size).toBe(2)
  return { pool, destroyed }
}

suite('a write on a pool meant to be read-only', () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
  }, 180_000)

  afterAll(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
    await cluster?.close()
  }, 60_000)

  it.each(['standby', 'read-only', 'prefer-standby'])(
    'target_session_attrs=%s: READ_ONLY not retryable, saying the pool targets standbys; no connection evicted, no replay',
    async (attrs) => {
      const { pool, destroyed } = await warmPool(withParam(cluster.replicaUrls[0]!, 'target_session_attrs', attrs))
      const err = await rejection(pool.query('create table standby_write (a int)'))
      expect(err).toMatchObject({ code: 'READ_ONLY', retryable: false, sqlState: '25006' })
      expect(err.message).toContain(`the pool targets standbys (target_session_attrs=${attrs})`)
      expect(err.message).not.toMatch(/looks for a read-write server/)
      let attempts = 0
      const failed = await rejection(
        pool.transaction(
          async (tx) => {
            attempts++
            await tx.query('create table standby_write (a int)')
          },
          { retry: 4 },
        ),
      )
      expect(failed.code).toBe('READ_ONLY')
      // before: 5 attempts, each evicting every connection to the standby
      expect(attempts).toBe(1)
      expect(destroyed).toEqual([])
      expect(pool.stats().size).toBe(2)
      // the pool goes on reading there
      const { rows } = await pool.query<{ recovery: boolean }>('select pg_is_in_recovery() as recovery')
      expect(rows[0]!.recovery).toBe(true)
    },
  )

  it('startup options setting default_transaction_read_only (a read pool on the primary): the same', async () => {
    const { pool, destroyed } = await warmPool(withParam(cluster.primaryUrl, 'options', '-c default_transaction_read_only=on'))
    const err = await rejection(pool.query('create table primary_write (a int)'))
    expect(err).toMatchObject({ code: 'READ_ONLY', retryable: false })
    expect(err.message).toContain("the pool's startup options (options, PGOPTIONS) set default_transaction_read_only")
    expect(destroyed).toEqual([])
    expect(pool.stats().size).toBe(2)
  })

  it('a write pool (target_session_attrs any) that reached the standby still treats it as the wrong server', async () => {
    const { pool, destroyed } = await warmPool(cluster.replicaUrls[0]!)
    const err = await rejection(pool.query('create table any_write (a int)'))
    expect(err).toMatchObject({ code: 'READ_ONLY', retryable: true })
    expect(err.message).toMatch(/looks for a read-write server/)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(destroyed.length).toBeGreaterThan(0)
  })
})
