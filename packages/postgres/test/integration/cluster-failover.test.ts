import { DatabaseConfig, type DatabaseError, type DatabasePool, type FailoverInfo } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { startPostgresCluster, type PostgresCluster } from '@dbpool/testing'
import { admin, sleep, uniqueAppName, watchProcess } from './helpers'

// A real cluster (a primary and a streaming standby made with pg_basebackup -R, see
// startPostgresCluster): libpq's target_session_attrs against a server in recovery, and a failover
// under load. Each describe has a cluster of its own: the failover promotes its standby.
// servers and connects are slow when the machine is busy: no test here is about speed under jest's 5 s default
jest.setTimeout(60_000)
const pools: DatabasePool<PostgresConnection>[] = []

function poolOn(url: string, max: number, poolOptions: Record<string, number> = {}): DatabasePool<PostgresConnection> {
  const pool = createPostgresPool(DatabaseConfig.fromUrl(url, { sslMode: 'disable', applicationName: uniqueAppName('cluster') }), {
    min: 0,
    max,
    name: 'cluster',
    ...poolOptions,
  })
  pools.push(pool)
  return pool
}

async function whereAmI(pool: DatabasePool<PostgresConnection>): Promise<{ port: number; inRecovery: boolean }> {
  const { rows } = await pool.query<{ port: string; r: boolean }>("select current_setting('port') as port, pg_is_in_recovery() as r")
  return { port: Number(rows[0]!.port), inRecovery: rows[0]!.r }
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
})

describe('multi-host on a primary and a standby', () => {
  let cluster: PostgresCluster

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
  }, 240_000)

  afterAll(async () => {
    await cluster?.close()
  }, 60_000)

  it('a standby listed first with read-write (or primary) connects to the primary', async () => {
    for (const attrs of ['read-write', 'primary']) {
      const pool = poolOn(cluster.hostsUrl({ indices: [1, 0], params: { target_session_attrs: attrs } }), 2)
      expect(await whereAmI(pool)).toEqual({ port: cluster.members[0]!.port, inRecovery: false })
    }
    // any takes the first host, the standby; read-only and standby pick it listed second
    expect(await whereAmI(poolOn(cluster.hostsUrl({ indices: [1, 0] }), 1))).toEqual({ port: cluster.members[1]!.port, inRecovery: true })
    for (const attrs of ['read-only', 'standby']) {
      const pool = poolOn(cluster.hostsUrl({ indices: [0, 1], params: { target_session_attrs: attrs } }), 1)
      expect(await whereAmI(pool)).toEqual({ port: cluster.members[1]!.port, inRecovery: true })
    }
  })

  it('prefer-standby picks the standby, and falls back to the primary when the standby is down', async () => {
    const url = cluster.hostsUrl({ indices: [0, 1], params: { target_session_attrs: 'prefer-standby' } })
    expect(await whereAmI(poolOn(url, 1))).toEqual({ port: cluster.members[1]!.port, inRecovery: true })
    await cluster.stop(1)
    try {
      expect(await whereAmI(poolOn(url, 1))).toEqual({ port: cluster.members[0]!.port, inRecovery: false })
      // standby alone has nothing left: the error names both hosts
      const err = await poolOn(cluster.hostsUrl({ indices: [0, 1], params: { target_session_attrs: 'standby' } }), 1)
        .query('select 1')
        .then(
          () => undefined,
          (e: DatabaseError) => e,
        )
      expect(err?.code).toBe('CONNECTION_FAILED')
      expect(err?.message).toContain(`127.0.0.1:${cluster.members[0]!.port} is not a standby`)
      expect(err?.message).toContain(`127.0.0.1:${cluster.members[1]!.port} CONNECTION_FAILED`)
    } finally {
      await cluster.start(1)
    }
  })
})

describe.each(['fast', 'immediate'] as const)('failover under load (synchronous replication), the primary stopped in %s mode', (mode) => {
  let cluster: PostgresCluster

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1, synchronous: true })
    await admin(cluster.url(0), (c) => c.query('create table ledger (id bigint primary key, caller int not null)'))
    await cluster.waitForReplay(1)
  }, 240_000)

  afterAll(async () => {
    await cluster?.close()
  }, 60_000)

  it('16 callers writing through transaction(fn, { retry: true }): the primary stops, the standby is promoted; every acknowledged write is on the new primary, no caller hangs, writes resume within 2 s', async () => {
    const watch = watchProcess()
    const url = cluster.hostsUrl({ indices: [0, 1], params: { target_session_attrs: 'read-write', connect_timeout: '2' } })
    const pool = poolOn(url, 16, { acquireTimeoutMs: 5_000, createTimeoutMs: 3_000 })
    const failovers: FailoverInfo[] = []
    pool.on('failover', (info) => failovers.push(info))
    pool.on('error', () => undefined)
    const acknowledged: bigint[] = []
    const errors: DatabaseError[] = []
    const successes: number[] = []
    let longest = 0
    let running = true
    const callers = Array.from({ length: 16 }, async (_, caller) => {
      let seq = 0
      while (running) {
        const id = BigInt(caller) * 1_000_000n + BigInt(++seq)
        const started = performance.now()
        try {
          await pool.transaction(
            async (tx) => {
              await tx.query('insert into ledger (id, caller) values ($1, $2)', [id, caller])
            },
            { retry: true },
          )
          acknowledged.push(id)
          successes.push(performance.now())
        } catch (err) {
          errors.push(err as DatabaseError)
          await sleep(20)
        } finally {
          longest = Math.max(longest, performance.now() - started)
        }
      }
    })
    // load before the stop: every caller has had a write acknowledged (a count, not a time: how many
    // writes a second brings depends on the machine's load); bounded, a hang fails here
    const loadDeadline = performance.now() + 20_000
    const writing = (): number => new Set(acknowledged.map((id) => id / 1_000_000n)).size
    while (performance.now() < loadDeadline && writing() < 16) await sleep(20)
    expect(writing()).toBe(16)
    const before = acknowledged.length
    const stopAt = performance.now()
    await cluster.stop(0, mode)
    const promoteAt = performance.now()
    await cluster.promote(1)
    const promotedAt = performance.now()
    // runs on until writes have resumed for a while (bounded: a hang fails below)
    const deadline = promotedAt + 15_000
    while (performance.now() < deadline && successes.filter((t) => t > promotedAt).length < 200) await sleep(50)
    running = false
    await Promise.all(callers)
    watch.stop()

    // the old primary is down once stop() returned (a commit can still be acknowledged while it shuts
    // down): a write acknowledged after that was made on the promoted standby. pg_ctl promote -w polls
    // (every 100 ms), so the first one may come before it returns
    const firstAfter = successes.filter((t) => t > promoteAt).sort((a, b) => a - b)[0]
    expect(firstAfter).toBeDefined()
    const resumedMs = firstAfter! - promotedAt
    // every error is one a caller can act on (the old primary went away, or no read-write host yet)
    // (or TRANSACTION_ROLLED_BACK caused by one of those: the transaction was cut before its COMMIT)
    const actionable = ['CONNECTION_LOST', 'CONNECTION_FAILED', 'READ_ONLY', 'ACQUIRE_TIMEOUT']
    for (const err of errors) {
      const code = err.code === 'TRANSACTION_ROLLED_BACK' ? (err.cause as DatabaseError | undefined)?.code : err.code
      expect(actionable).toContain(code)
    }
    // every acknowledged write is on the new primary
    const onNew = await admin(cluster.url(1), (c) => c.query<{ id: string }>('select id::text from ledger'))
    const stored = new Set(onNew.rows.map((r) => r.id))
    const missing = acknowledged.filter((id) => !stored.has(String(id)))
    expect(missing).toEqual([])
    expect(await cluster.isInRecovery(1)).toBe(false)
    expect(failovers).toEqual([
      { from: `127.0.0.1:${cluster.members[0]!.port}`, to: `127.0.0.1:${cluster.members[1]!.port}`, lane: 'write' },
    ])
    // no caller hung: every call ended within the acquire deadline plus a connect
    expect(longest).toBeLessThan(10_000)
    expect(resumedMs).toBeLessThan(2_000)
    expect(watch.failures).toEqual([])
    process.stdout.write(
      `failover: ${acknowledged.length} acknowledged writes (${before} before the stop), ${errors.length} errors ` +
        `(${[...new Set(errors.map((e) => e.code))].join(', ')}); stop took ${(promoteAt - stopAt).toFixed(0)} ms, ` +
        `promote ${(promotedAt - promoteAt).toFixed(0)} ms; first write ${(firstAfter! - promoteAt).toFixed(0)} ms after the promotion began ` +
        `(${resumedMs.toFixed(0)} ms from its return); longest call ${longest.toFixed(0)} ms\n`,
    )
  }, 120_000)
})
