import type { DatabasePool, ReplicaStateInfo } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { startPostgresCluster, startTcpProxy, type PostgresCluster, type TcpProxy } from '@dbpool/testing'

// A replica that stops answering while a read runs on it, and one that refuses the pool's password:
// the read lane takes it out and the work does not hang nor fail for lack of that replica.
jest.setTimeout(60_000)
const pools: DatabasePool<PostgresConnection>[] = []
let cluster: PostgresCluster

beforeAll(async () => {
  cluster = await startPostgresCluster({ replicas: 1 })
}, 240_000)

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
})

afterAll(async () => {
  await cluster?.close()
}, 60_000)

/** `work`'s outcome, or `'still running'` after `ms` (the old code waited forever). */
function settledWithin<T>(work: Promise<T>, ms: number): Promise<T | { code: string; retryable?: boolean } | 'still running'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), ms)))
  const outcome = work.then(
    (value) => value,
    (err: { code: string; retryable?: boolean }) => ({ code: err.code, retryable: err.retryable }),
  )
  return Promise.race([outcome, late]).finally(() => clearTimeout(timer))
}

describe('a replica that stops answering with a read in flight', () => {
  let proxy: TcpProxy

  beforeEach(async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: cluster.members[1]!.port })
  })

  afterEach(async () => {
    proxy.resume()
    proxy.resetAll()
    await proxy.close()
  })

  it('the keepalive pass that takes it out ends the work in flight there: CONNECTION_LOST, retryable (a read), instead of waiting forever', async () => {
    const pool = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, keepaliveIntervalMs: 1_000, createTimeoutMs: 2_000 },
      { replicas: [proxy.urlFor(cluster.replicaUrls[0]!)] },
    )
    pools.push(pool)
    const states: ReplicaStateInfo[] = []
    pool.on('replica', (info) => states.push(info))
    expect((await pool.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read' })).rows).toEqual([{ r: true }])
    // a lease of its own (no deadline): the statement is sent, then the replica goes silent
    const leased = pool.withConnection((conn) => conn.query('select pg_sleep(1) as slept'), { lane: 'read' })
    await new Promise((resolve) => setTimeout(resolve, 200))
    proxy.blackhole()
    expect(await settledWithin(leased, 30_000)).toEqual({ code: 'CONNECTION_LOST', retryable: true })
    expect(states[0]).toMatchObject({ usable: false, reason: 'unreachable' })
    // reads go on, on the primary
    expect((await pool.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read' })).rows).toEqual([{ r: false }])
  })

  it('with every connection of the replica stuck there: the keepalive pass asks on a connection of its own, and ends them all', async () => {
    const pool = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, keepaliveIntervalMs: 1_000, createTimeoutMs: 2_000, acquireTimeoutMs: 600_000 },
      { replicas: [proxy.urlFor(cluster.replicaUrls[0]!)] },
    )
    pools.push(pool)
    const reads = [0, 1].map(() => pool.withConnection((conn) => conn.query('select pg_sleep(1) as slept'), { lane: 'read' }))
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(pool.replicaStats()?.replicas[0]).toMatchObject({ used: 2 })
    proxy.blackhole()
    const outcomes = await Promise.all(reads.map((read) => settledWithin(read, 30_000)))
    expect(outcomes).toEqual([
      { code: 'CONNECTION_LOST', retryable: true },
      { code: 'CONNECTION_LOST', retryable: true },
    ])
    expect(pool.replicaStats()?.replicas[0]).toMatchObject({ usable: false, reason: 'unreachable' })
  })
})

describe('a replica that stops answering, its connects hanging (createTimeoutMs far off)', () => {
  let proxy: TcpProxy

  beforeEach(async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: cluster.members[1]!.port })
  })

  afterEach(async () => {
    proxy.resume()
    proxy.resetAll()
    await proxy.close()
  })

  it('is out within keepaliveIntervalMs + min(createTimeoutMs, 5 s), the wait for a connection included, and reads (those waiting there too) run on the primary', async () => {
    const pool = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, keepaliveIntervalMs: 1_000, createTimeoutMs: 40_000 },
      { replicas: [proxy.urlFor(cluster.replicaUrls[0]!)] },
    )
    pools.push(pool)
    const out = new Promise<ReplicaStateInfo>((resolve) => pool.on('replica', (info) => info.usable === false && resolve(info)))
    expect((await pool.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read' })).rows).toEqual([{ r: true }])
    proxy.blackhole()
    // its connection times out and is closed: the keepalive's status query then waits for a connect
    // that hangs (the proxy accepts and says nothing) until createTimeoutMs, 40 s (before: out only then)
    const read = await settledWithin(pool.query('select 1', [], { lane: 'read', timeoutMs: 300 }), 10_000)
    expect(read).toMatchObject({ code: expect.stringMatching(/^(QUERY_TIMEOUT|ACQUIRE_TIMEOUT)$/) })
    // a read without a deadline waits there for a connect that hangs: once the replica is out it runs on the primary
    const waiting = pool.withConnection((conn) => conn.query<{ r: boolean }>('select pg_is_in_recovery() as r'), { lane: 'read' })
    // bound: 1 s + 5 s; slack for a loaded machine, far below the 40 s connect deadline
    expect(await settledWithin(out, 15_000)).toMatchObject({ usable: false, reason: 'unreachable' })
    expect(await settledWithin(waiting, 5_000)).toMatchObject({ rows: [{ r: false }] })
    expect((await pool.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], { lane: 'read', timeoutMs: 5_000 })).rows).toEqual([
      { r: false },
    ])
    expect(pool.replicaStats()?.replicas[0]).toMatchObject({ usable: false, reason: 'unreachable' })
  })
})

describe('a replica that refuses the pool password', () => {
  it('is taken out at once (AUTHENTICATION_FAILED), and the read runs on the next replica or the primary', async () => {
    const port = cluster.members[1]!.port
    const wrong = `postgres://postgres:wrong-password@127.0.0.1:${port}/postgres`
    for (const replicas of [[wrong, cluster.replicaUrls[0]!], [wrong]]) {
      const pool = createPostgresPool(
        cluster.primaryUrl,
        { min: 0, max: 2, keepaliveIntervalMs: 600_000 },
        { replicas, readRouting: 'auto' },
      )
      pools.push(pool)
      const states: ReplicaStateInfo[] = []
      pool.on('replica', (info) => states.push(info))
      for (let i = 0; i < 3; i++) {
        const { rows } = await pool.query<{ r: boolean }>('select pg_is_in_recovery() as r')
        // on the healthy replica when there is one, else on the primary
        expect(rows).toEqual([{ r: replicas.length > 1 }])
      }
      expect(states).toEqual([
        expect.objectContaining({
          usable: false,
          reason: 'unreachable',
          error: expect.objectContaining({ code: 'AUTHENTICATION_FAILED' }),
        }),
      ])
      expect(pool.replicaStats()?.replicas[0]).toMatchObject({ usable: false })
    }
  })
})
