import type { DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, findPostgresBinDir, startPostgresCluster, type PostgresCluster, type TestDatabase } from '@dbpool/testing'

jest.setTimeout(60_000)

// DDL run through the pool's write lane reaches the statements of its read lane too: the primary's
// read-only connections share the write lane's statement generation; a replica names nothing (it
// replays DDL at its own pace, unseen), so each statement is parsed against what it replayed.

/** The DDL cases: what a read-lane statement cached before must see after them. */
async function shadowAndType(pool: DatabasePool<PostgresConnection>, replayed: () => Promise<void>) {
  await pool.query('drop schema if exists app cascade; drop table if exists items, ev; create schema app')
  await pool.query("create table public.items (id int, v text); insert into public.items values (1, 'public')")
  await pool.query('create table ev (id int, ts timestamp)')
  await replayed()
  const read = 'select v from items where id = $1'
  const d = new Date('2024-01-01T12:00:00Z')
  const count = 'select count(*)::int as n from ev where ts = $1'
  for (let i = 0; i < 2; i++) {
    await pool.query(read, [1], { lane: 'read' }) // named from the second run, were it named
    await pool.query(count, [d], { lane: 'read' })
  }
  await pool.query("create table app.items (id int, v text); insert into app.items values (1, 'app')")
  await pool.query('alter table ev alter column ts type timestamptz')
  await pool.query('insert into ev values (1, $1)', [d])
  await replayed()
  return {
    shadowing: (await pool.query<{ v: string }>(read, [1], { lane: 'read' })).rows.map((r) => r.v),
    typed: (await pool.query<{ n: number }>(count, [d], { lane: 'read' })).rows[0]!.n,
  }
}

describe("the primary's read-only connections (the replica is no standby: reads fall back to the primary)", () => {
  let db: TestDatabase
  let pool: DatabasePool<PostgresConnection> | undefined

  beforeAll(async () => {
    db = await createTestDatabase()
  }, 120_000)

  afterAll(async () => {
    await pool?.close({ timeoutMs: 5_000 })
    await db?.drop()
  }, 60_000)

  it('see a table created earlier in search_path and a changed column type through the write lane', async () => {
    pool = createPostgresPool(
      db.url,
      { min: 0, max: 2, name: 'read-lane-primary' },
      { replicas: [db.url], sessionInit: "SET search_path TO app, public; SET TimeZone TO 'America/New_York'" },
    )
    // before: { shadowing: ['public'], typed: 0 }: the read lane's cached statements kept public.items and a timestamp parameter
    expect(await shadowAndType(pool, async () => undefined)).toEqual({ shadowing: ['app'], typed: 1 })
    expect(pool.replicaStats()?.readsOnPrimaryFallback).toBeGreaterThan(0)
  })
})

const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('read-lane-statements.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

suite('a standby replica', () => {
  let cluster: PostgresCluster
  let pool: DatabasePool<PostgresConnection> | undefined

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
  }, 180_000)

  afterAll(async () => {
    await pool?.close({ timeoutMs: 5_000 })
    await cluster?.close()
  }, 60_000)

  it('sees, once replayed, a table created earlier in search_path and a changed column type through the write lane', async () => {
    pool = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, name: 'read-lane-standby' },
      {
        replicas: [cluster.replicaUrls[0]!],
        maxReplicaLagMs: 2_147_483_647,
        sessionInit: "SET search_path TO app, public; SET TimeZone TO 'America/New_York'",
      },
    )
    // before: { shadowing: ['public'], typed: 0 }
    expect(await shadowAndType(pool, () => cluster.waitForReplay(1))).toEqual({ shadowing: ['app'], typed: 1 })
    expect(pool.replicaStats()?.readsOnReplicas).toBeGreaterThan(0)
  })
})
