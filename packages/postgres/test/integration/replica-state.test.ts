import type { DatabasePool, ReplicaStateInfo } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'
import { admin, eventually, sleep } from './helpers'

// A primary and one streaming standby of their own: the tests restart the standby, then promote it
// (the old primary keeps running). A restarted standby that replayed everything is caught up; the
// promoted server must leave the read lane at once, and no read-lane work may write on it.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('replica-state.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
const pools: DatabasePool<PostgresConnection>[] = []

suite("a replica's state (restarted, promoted)", () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
  }, 180_000)

  afterAll(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
    await cluster?.close()
  }, 60_000)

  it('a standby restarted while the primary is idle (receive position behind replay) is caught up, not lagging', async () => {
    await admin(cluster.primaryUrl, (c) => c.query('create table restarted (i int); insert into restarted values (1)'))
    await cluster.waitForReplay(1)
    await cluster.stop(1, 'fast')
    await cluster.start(1)
    const receiving = (): Promise<boolean> =>
      admin(
        cluster.replicaUrls[0]!,
        async (c) => (await c.query("select 1 from pg_stat_wal_receiver where status = 'streaming'")).rowCount === 1,
      )
    await eventually(receiving, 20_000, 'the standby streaming again')
    // the last replayed commit is now older than maxReplicaLagMs: the old measure called that lag
    await sleep(1_200)
    const p = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, keepaliveIntervalMs: 200 },
      { replicas: [cluster.replicaUrls[0]!], maxReplicaLagMs: 1_000 },
    )
    pools.push(p)
    const states: ReplicaStateInfo[] = []
    p.on('replica', (info) => states.push(info))
    const { rows } = await p.query<{ r: boolean; behind: boolean }>(
      'select pg_is_in_recovery() as r, pg_last_wal_receive_lsn() < pg_last_wal_replay_lsn() as behind',
      [],
      { lane: 'read' },
    )
    expect(rows[0]).toEqual({ r: true, behind: true })
    await eventually(() => p.replicaStats()?.replicas[0]?.lagMs !== undefined, 10_000, 'a keepalive pass')
    await sleep(600) // a few more passes
    expect(states).toEqual([])
    expect(p.replicaStats()?.replicas[0]).toMatchObject({ usable: true, lagMs: 0 })
    expect((await p.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read' })).rows[0]?.r).toBe(true)
  }, 60_000)

  it('is refused on the read lane (READ_ONLY before the status query sees it), taken out as not-standby, and nothing commits on it', async () => {
    const replicas = [cluster.replicaUrls[0]!]
    // no keepalive pass during the test: only the session and connect checks guard it
    const quiet = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, keepaliveIntervalMs: 600_000 },
      { replicas, readRouting: 'auto' },
    )
    // a keepalive pass every 200 ms: the status query takes it out
    const probed = createPostgresPool(cluster.primaryUrl, { min: 0, max: 2, keepaliveIntervalMs: 200 }, { replicas })
    pools.push(quiet, probed)
    const quietStates: ReplicaStateInfo[] = []
    const probedStates: ReplicaStateInfo[] = []
    quiet.on('replica', (info) => quietStates.push(info))
    probed.on('replica', (info) => probedStates.push(info))
    await quiet.query('create table acct (id int primary key, owner text)')
    await quiet.query(`create function open_acct(i int) returns int language sql as $$ insert into acct values (i, 'fn') returning i $$`)
    await quiet.query('create view new_acct as select open_acct(42) as id')
    await cluster.waitForReplay(1)
    // an idle connection to the standby in each pool
    const standby = async (p: DatabasePool<PostgresConnection>) =>
      (await p.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read' })).rows[0]?.r
    expect(await standby(quiet)).toBe(true)
    expect(await standby(probed)).toBe(true)

    await cluster.promote(1)
    expect(await cluster.isInRecovery(1)).toBe(false)

    // the idle read-lane connection reaches the promoted server: its session is read-only, the write fails there
    await expect(quiet.query("insert into acct values (1, 'ada')", [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
    // the server reported in_hot_standby = off with that statement's ReadyForQuery: its connection is
    // evicted (a statement issued before that message was read may still share it); a new one finds no standby
    const primaryPort = Number(new URL(cluster.primaryUrl).port)
    const served = async () =>
      (await quiet.query<{ port: number }>('select inet_server_port() as port', [], { lane: 'read' })).rows[0]?.port
    await eventually(async () => (await served()) === primaryPort, 5_000, 'read-lane reads on the primary')
    expect(quietStates).toEqual([expect.objectContaining({ usable: false, reason: 'not-standby' })])
    expect(quiet.replicaStats()?.replicas[0]).toMatchObject({ usable: false, reason: 'not-standby' })
    // an auto-routed statement that writes through a view runs on the primary, not on the promoted server
    await quiet.query('select * from new_acct')

    // the keepalive pass takes it out and closes its connections, without any read-lane work
    await eventually(() => probedStates.length > 0, 10_000, 'the replica event')
    expect(probedStates[0]).toMatchObject({ usable: false, reason: 'not-standby' })
    expect(probed.replicaStats()?.replicas[0]).toMatchObject({ usable: false, reason: 'not-standby' })
    // its connections are closed (destroying one settles after the event: on a loaded machine it was still counted)
    await eventually(() => probed.replicaStats()?.replicas[0]?.size === 0, 5_000, "the replica's connections closed")
    // read-lane work on the primary is read-only too: the same write fails the same way
    await expect(probed.query("insert into acct values (2, 'bob')", [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })

    // nothing was written on the promoted server; the view's write went to the primary
    const onPromoted = await admin(cluster.replicaUrls[0]!, async (c) => (await c.query<{ id: number }>('select id from acct')).rows)
    expect(onPromoted).toEqual([])
    expect((await quiet.query<{ id: number }>('select id from acct order by id')).rows).toEqual([{ id: 42 }])
  }, 60_000)
})
