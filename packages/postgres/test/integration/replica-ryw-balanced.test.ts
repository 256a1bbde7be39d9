import * as net from 'node:net'
import type { DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'

// readYourWrites behind one replica URL that reaches two standbys (a TCP balancer alternating between
// them, as a cloud reader endpoint or a multi-host URL does): one standby's replay is paused, so the
// replay position learnt on one connection says nothing of the other's.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('replica-ryw-balanced.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
let balancer: net.Server
const pools: DatabasePool<PostgresConnection>[] = []
const sockets = new Set<net.Socket>()

suite('readYourWrites behind a load-balanced replica URL', () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 2 })
    const ports = cluster.replicaUrls.map((u) => Number(new URL(u).port))
    let next = 0
    balancer = net.createServer((client) => {
      const upstream = net.connect(ports[next++ % ports.length]!, '127.0.0.1')
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
      }
      client.pipe(upstream).pipe(client)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
    })
    await new Promise<void>((resolve) => balancer.listen(0, '127.0.0.1', resolve))
  }, 180_000)

  afterAll(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => balancer?.close(resolve))
    await cluster?.close()
  }, 60_000)

  it('a read-lane read after a committed write sees it, whichever standby the serving connection reached', async () => {
    const port = (balancer.address() as net.AddressInfo).port
    const replicaUrl = cluster.replicaUrls[0]!.replace(/:\d+\//, `:${port}/`)
    const p = createPostgresPool(
      cluster.primaryUrl,
      { min: 0, max: 2, keepaliveIntervalMs: 600_000 },
      { replicas: [replicaUrl], readYourWrites: true },
    )
    pools.push(p)
    await p.query('create table balanced (id int primary key)')
    await cluster.waitForReplay(1)
    await cluster.waitForReplay(2)
    const standbyPorts = cluster.replicaUrls.map((u) => Number(new URL(u).port))
    // two read-lane connections held at once: one to each standby
    const read = (sql: string) =>
      p.withConnection(async (c) => (await c.query<{ port: number; n: number }>(sql)).rows[0]!, { lane: 'read' })
    const first = await Promise.all([0, 1].map(() => read('select inet_server_port() as port, 0 as n from pg_sleep(0.2)')))
    expect(first.map((r) => r.port).sort()).toEqual([...standbyPorts].sort())
    await cluster.pauseReplay(2)
    let misses = 0
    let onPaused = 0
    for (let i = 0; i < 20; i++) {
      await p.query(`insert into balanced values (${i})`)
      // both connections in use at once: each read is served by its own connection
      const rows = await Promise.all(
        [0, 1].map(() => read(`select inet_server_port() as port, count(*)::int as n from balanced, pg_sleep(0.02) where id = ${i}`)),
      )
      for (const r of rows) {
        if (r.n !== 1) misses++
        if (r.port === standbyPorts[1]) onPaused++
      }
      // a lone statement too
      if ((await p.query<{ n: number }>(`select count(*)::int as n from balanced where id = ${i}`, [], { lane: 'read' })).rows[0]?.n !== 1)
        misses++
    }
    expect(misses).toBe(0)
    // the paused standby served none of them; the reads it would have served ran elsewhere
    expect(onPaused).toBe(0)
    expect(p.replicaStats()?.readsOnPrimaryForWrites).toBeGreaterThan(0)
    await cluster.resumeReplay(2)
  }, 120_000)
})
