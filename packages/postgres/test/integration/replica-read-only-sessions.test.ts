import type { DatabasePool, ReplicaStateInfo } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import {
  createTestDatabase,
  findPgBouncer,
  startPgBouncer,
  startPostgresCluster,
  type PgBouncer,
  type PostgresCluster,
  type TestDatabase,
} from '@dbpool/testing'
import { admin } from './helpers'

// The read lane's sessions are read-only wherever it runs (a replica reached directly or through
// PgBouncer in session mode, the primary's read-only pool), whatever the primary's PgBouncer option
// says, and stay read-only for the next borrower; the primary's read-only pool follows the write
// lane to a new primary after a failover that fences the old one.
jest.setTimeout(60_000)
const bouncerAvailable = findPgBouncer() !== undefined || Boolean(process.env.CI)
if (!bouncerAvailable) console.warn('replica-read-only-sessions.test.ts: no pgbouncer binary: the PgBouncer cases are skipped')
const withBouncer = bouncerAvailable ? describe : describe.skip

const pools: DatabasePool<PostgresConnection>[] = []

function track(pool: DatabasePool<PostgresConnection>): DatabasePool<PostgresConnection> {
  pools.push(pool)
  return pool
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
})

/** A replica URL nothing listens on: read-lane work then runs on the primary's read-only pool. */
function downReplica(url: string): string {
  const u = new URL(url)
  u.port = '1'
  return u.toString()
}

async function readOnlySetting(pool: DatabasePool<PostgresConnection>): Promise<string | undefined> {
  const { rows } = await pool.query<{ v: string }>("select current_setting('default_transaction_read_only') as v", [], { lane: 'read' })
  return rows[0]?.v
}

async function isStandby(pool: DatabasePool<PostgresConnection>): Promise<boolean | undefined> {
  return (await pool.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read' })).rows[0]?.r
}

withBouncer("a replica's PgBouncer setting is its own, not the primary's", () => {
  let cluster: PostgresCluster
  let sessionBouncer: PgBouncer
  let replicaBouncer: PgBouncer
  let strictReplicaBouncer: PgBouncer

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1, pgbouncer: 'transaction' })
    sessionBouncer = await startPgBouncer(cluster.primaryUrl, { poolMode: 'session', poolSize: 4, ignoreStartupParameters: [] })
    replicaBouncer = await startPgBouncer(cluster.replicaUrls[0]!, { poolMode: 'session', poolSize: 4, ignoreStartupParameters: [] })
    strictReplicaBouncer = await startPgBouncer(cluster.replicaUrls[0]!, {
      poolMode: 'transaction',
      poolSize: 2,
      ignoreStartupParameters: [],
    })
  }, 240_000)

  afterAll(async () => {
    await replicaBouncer?.stop()
    await strictReplicaBouncer?.stop()
    await sessionBouncer?.stop()
    await cluster?.close()
  }, 60_000)

  it("pgbouncer: 'session' on the primary: a replica reached directly is read-only, and the primary's read-only pool exists", async () => {
    const pool = track(
      createPostgresPool(
        sessionBouncer.urlFor(cluster.primaryUrl),
        { min: 0, max: 1 },
        { pgbouncer: 'session', replicas: [...cluster.replicaUrls] },
      ),
    )
    expect(await isStandby(pool)).toBe(true)
    expect(await readOnlySetting(pool)).toBe('on')
    expect(pool.replicaStats()?.primary).toBeDefined()
    // through the session-mode PgBouncer, read-lane work on the primary is read-only too
    const down = track(
      createPostgresPool(
        sessionBouncer.urlFor(cluster.primaryUrl),
        { min: 0, max: 1 },
        { pgbouncer: 'session', replicas: [downReplica(cluster.replicaUrls[0]!)] },
      ),
    )
    await down.query('create table if not exists bouncer_rows (v text)')
    await expect(down.query("insert into bouncer_rows values ('read lane')", [], { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    // a lease that turns it off hands the next borrower a read-only session again (not reported through PgBouncer: read from the text)
    await down.withConnection((conn) => conn.query('set default_transaction_read_only = off'), { lane: 'read' })
    await expect(down.query("insert into bouncer_rows values ('after off')", [], { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    expect((await down.query<{ n: number }>('select count(*)::int as n from bouncer_rows')).rows).toEqual([{ n: 0 }])
  })

  it('a replica behind PgBouncer in session mode (?pgbouncer=true on its URL) is read-only, and stays so for the next borrower', async () => {
    const pool = track(
      createPostgresPool(
        cluster.primaryUrl,
        { min: 0, max: 1 },
        { pgbouncer: 'session', replicas: [`${replicaBouncer.urlFor(cluster.replicaUrls[0]!)}?pgbouncer=true`] },
      ),
    )
    expect(await isStandby(pool)).toBe(true)
    expect(await readOnlySetting(pool)).toBe('on')
    await pool.withConnection((conn) => conn.query('set default_transaction_read_only = off'), { lane: 'read' })
    expect(await readOnlySetting(pool)).toBe('on')
  })

  it("a replica reached directly keeps its read-only session after a lease turned it off, with sessionReset 'none' and 'clean'", async () => {
    for (const sessionReset of ['none', 'clean'] as const) {
      const pool = track(createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 }, { sessionReset, replicas: [...cluster.replicaUrls] }))
      for (const text of [
        'set default_transaction_read_only = off',
        'set session characteristics as transaction read write',
        "select set_config('default_transaction_read_only', 'off', false)",
      ]) {
        await pool.withConnection((conn) => conn.query(text), { lane: 'read' })
        expect(await readOnlySetting(pool)).toBe('on')
      }
    }
  })

  it('a replica behind PgBouncer in transaction mode: ?pgbouncer=true on its URL reaches it; without, the refusal says to add it', async () => {
    const viaBouncer = strictReplicaBouncer.urlFor(cluster.replicaUrls[0]!)
    const marked = track(
      createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 }, { pgbouncer: 'transaction', replicas: [`${viaBouncer}?pgbouncer=true`] }),
    )
    expect(await isStandby(marked)).toBe(true)
    const unmarked = track(createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 }, { replicas: [viaBouncer] }))
    const states: ReplicaStateInfo[] = []
    unmarked.on('replica', (info) => states.push(info))
    // refused by PgBouncer: taken out, the read runs on the primary
    expect(await isStandby(unmarked)).toBe(false)
    expect(states[0]?.error?.message).toMatch(/unsupported startup parameter: options .*add \?pgbouncer=true to its URL/)
  })

  // last: it promotes the standby
  it("pgbouncer: 'transaction' on the primary: a write on the read lane fails on a replica promoted since, and writes nothing there", async () => {
    const pool = track(
      createPostgresPool(
        cluster.pgbouncerUrl!,
        { min: 0, max: 2, keepaliveIntervalMs: 600_000 },
        { pgbouncer: 'transaction', replicas: [...cluster.replicaUrls] },
      ),
    )
    await pool.query('create table promoted_rows (v text)')
    await cluster.waitForReplay(1)
    expect(await readOnlySetting(pool)).toBe('on')
    await cluster.promote(1)
    await expect(pool.query("insert into promoted_rows values ('read lane')", [], { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    const onPromoted = await admin(
      cluster.replicaUrls[0]!,
      async (c) => (await c.query<{ n: number }>('select count(*)::int as n from promoted_rows')).rows,
    )
    expect(onPromoted).toEqual([{ n: 0 }])
  })
})

describe('the primary read-only pool after a failover that fences the old primary', () => {
  let cluster: PostgresCluster

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
  }, 240_000)

  afterAll(async () => {
    await cluster?.close()
  }, 60_000)

  it('follows the write lane to the new primary: its connections to the old one are evicted, new ones skip the fenced server', async () => {
    const url = cluster.hostsUrl({ params: { target_session_attrs: 'read-write', connect_timeout: '2' } })
    const options = { replicas: [downReplica(cluster.primaryUrl)], readYourWrites: true }
    const [oldPort, newPort] = [cluster.members[0]!.port, cluster.members[1]!.port]
    const pool = track(createPostgresPool(url, { min: 0, max: 2 }, options))
    await pool.query('create table fenced_rows (v text)')
    await cluster.waitForReplay(1)
    const served = async (p: DatabasePool<PostgresConnection>) =>
      (
        await p.query<{ port: number; n: number }>('select inet_server_port() as port, (select count(*)::int from fenced_rows) as n', [], {
          lane: 'read',
        })
      ).rows[0]
    expect(await served(pool)).toEqual({ port: oldPort, n: 0 })

    // the failover: the old primary is fenced (read-only for every session) and stays up; the standby is promoted
    await admin(cluster.url(0), (c) => c.query('alter system set default_transaction_read_only = on'))
    await admin(cluster.url(0), (c) => c.query('select pg_reload_conf()'))
    await cluster.promote(1)
    await pool.transaction((tx) => tx.query("insert into fenced_rows values ('after')"), {
      retry: { maxAttempts: 20, baseDelayMs: 100, maxDelayMs: 500 },
    })
    expect(await served(pool)).toEqual({ port: newPort, n: 1 })

    // a new pool's read-only connections choose the new primary as the write lane does
    const fresh = track(createPostgresPool(url, { min: 0, max: 2 }, options))
    expect(await served(fresh)).toEqual({ port: newPort, n: 1 })
  })
})

describe("the primary read-only pool's sessions stay read-only for the next borrower", () => {
  let db: TestDatabase

  beforeAll(async () => {
    db = await createTestDatabase()
  }, 120_000)

  afterAll(async () => {
    await db?.drop()
  }, 60_000)

  it.each(['none', 'clean'] as const)(
    "sessionReset '%s': a lease that turned read-only off does not let a later read-lane write commit",
    async (sessionReset) => {
      const pool = track(createPostgresPool(db.url, { min: 0, max: 1 }, { sessionReset, replicas: [downReplica(db.url)] }))
      await pool.query(`create table if not exists kept_${sessionReset} (v text)`)
      for (const text of [
        'set default_transaction_read_only = off',
        'set session characteristics as transaction read write',
        "select set_config('default_transaction_read_only', 'off', false)",
        'reset all',
        'discard all',
      ]) {
        await pool.withConnection((conn) => conn.query(text), { lane: 'read' })
        await expect(pool.query(`insert into kept_${sessionReset} values ($1)`, [text], { lane: 'read' })).rejects.toMatchObject({
          code: 'READ_ONLY',
        })
      }
      expect((await pool.query<{ n: number }>(`select count(*)::int as n from kept_${sessionReset}`)).rows).toEqual([{ n: 0 }])
    },
  )
})
