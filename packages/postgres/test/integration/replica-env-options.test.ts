import { DatabaseConfig, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'

// PGOPTIONS reached the primary's sessions (pg sent it by itself for a target without options) but not a
// replica's: the replica's startup options held only the read-only switch, so with
// PGOPTIONS='-c search_path=app' writes went to app.notes and read-lane reads came from public.notes.
// With CI set, missing PostgreSQL binaries fail this test instead of skipping it.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('replica-env-options.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
const pools: DatabasePool<PostgresConnection>[] = []

suite('PGOPTIONS on the read lane', () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
    const setup = createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 })
    await setup.query(`create schema app; create table app.notes (body text); create table public.notes (body text)`)
    await setup.query(`insert into app.notes values ('app'); insert into public.notes values ('public')`)
    await setup.close()
    await cluster.waitForReplay(1)
  }, 180_000)

  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  })

  afterAll(async () => {
    await cluster?.close()
  }, 60_000)

  it.each([
    ['a replica URL', () => cluster.replicaUrls[0]!],
    ['a replica DatabaseConfig without options', () => DatabaseConfig.fromUrl(cluster.replicaUrls[0]!)],
  ])('%s takes PGOPTIONS as the primary does: reads and writes see the same schema', async (_, replica) => {
    const saved = process.env.PGOPTIONS
    process.env.PGOPTIONS = '-c search_path=app'
    let pool: DatabasePool<PostgresConnection>
    try {
      pool = createPostgresPool(cluster.primaryUrl, { min: 0, max: 2 }, { replicas: [replica()] })
      pools.push(pool)
    } finally {
      if (saved === undefined) delete process.env.PGOPTIONS
      else process.env.PGOPTIONS = saved
    }
    const read = await pool.query<{ sp: string; body: string; standby: boolean }>(
      `select current_setting('search_path') as sp, (select body from notes) as body, pg_is_in_recovery() as standby`,
      [],
      { lane: 'read' },
    )
    expect(read.rows[0]).toEqual({ sp: 'app', body: 'app', standby: true })
    const write = await pool.query<{ body: string }>('select body from notes')
    expect(write.rows[0]!.body).toBe('app')
  })
})
