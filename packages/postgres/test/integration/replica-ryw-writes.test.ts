import { isOutcomeUnknown, type DatabasePool } from '@dbpool/core'
import { copyFrom, copyTo, createPostgresPool, type PostgresConnection, type PostgresPoolOptions } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, startTcpProxy, type PostgresCluster, type TcpProxy } from '@dbpool/testing'

// readYourWrites and the writes it must not miss: a write whose outcome is unknown, a text of several
// statements that starts with transaction control. A primary and one streaming standby whose replay is
// paused, so a read served by the standby does not see the write.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('replica-ryw-writes.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
const pools: DatabasePool<PostgresConnection>[] = []
const proxies: TcpProxy[] = []

function pool(url: string = cluster.primaryUrl, options: PostgresPoolOptions = {}): DatabasePool<PostgresConnection> {
  const created = createPostgresPool(
    url,
    { min: 0, max: 3, name: 'ryw-writes', keepaliveIntervalMs: 60_000 },
    {
      replicas: cluster.replicaUrls,
      readYourWrites: true,
      ...options,
    },
  )
  pools.push(created)
  return created
}

/** The standby has replayed everything so far, then stops replaying (a lagging replica). */
async function lagFromNow(p: DatabasePool<PostgresConnection>): Promise<void> {
  await cluster.resumeReplay(1)
  await cluster.waitForReplay(1)
  // the pool has a standby connection that knows how far it replayed
  await p.query('select 1', [], { lane: 'read' })
  await cluster.pauseReplay(1)
}

async function countRead(p: DatabasePool<PostgresConnection>, v: string): Promise<number> {
  const { rows } = await p.query<{ n: number }>('select count(*)::int as n from ryw_w where v = $1', [v], { lane: 'read' })
  return rows[0]!.n
}

suite('readYourWrites: writes it must not miss', () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
    const setup = createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 })
    await setup.query('create table ryw_w (id serial primary key, v text not null)')
    await setup.close()
    await cluster.waitForReplay(1)
  }, 180_000)

  afterEach(async () => {
    await cluster.resumeReplay(1)
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
    await Promise.all(proxies.splice(0).map((p) => p.close()))
  })

  afterAll(async () => {
    await cluster?.close()
  }, 60_000)

  it('a write whose outcome is unknown (its answer lost at the deadline) sends the check read to the primary, not to a lagging standby', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(cluster.primaryUrl).port) })
    proxies.push(proxy)
    const p = pool(proxy.urlFor(cluster.primaryUrl), { readRouting: 'auto', cancelTimeoutMs: 500 })
    await lagFromNow(p)
    // the INSERT reaches the server and commits after ~0.5 s; its answer is lost, the deadline ends it
    const write = p.query("insert into ryw_w (v) select 'unknown' from (select pg_sleep(0.5)) s", [], { timeoutMs: 1_500 })
    await new Promise((r) => setTimeout(r, 200))
    proxy.blackhole()
    const error = await write.then(
      () => undefined,
      (err: unknown) => err,
    )
    proxy.resume()
    expect(isOutcomeUnknown(error)).toBe(true)
    // the caller checks before running it again: the check sees the committed row
    const primary = createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 })
    pools.push(primary)
    const committed = await primary.query<{ n: number }>("select count(*)::int as n from ryw_w where v = 'unknown'")
    expect(committed.rows[0]!.n).toBe(1)
    const check = await p.query<{ n: number }>("select count(*)::int as n from ryw_w where v = 'unknown'")
    expect(check.rows[0]!.n).toBe(1)
    expect(await countRead(p, 'unknown')).toBe(1)
  }, 60_000)

  it('a text of several statements that starts with transaction control records its write (pool.query and conn.query)', async () => {
    const p = pool()
    const cases: [string, () => Promise<unknown>][] = [
      ['begin-commit', () => p.query("begin; insert into ryw_w (v) values ('begin-commit'); commit")],
      ['start-transaction', () => p.query("START TRANSACTION; insert into ryw_w (v) values ('start-transaction'); COMMIT")],
      ['commit-first', () => p.query("commit; insert into ryw_w (v) values ('commit-first')")],
      ['rollback-first', () => p.query("rollback; insert into ryw_w (v) values ('rollback-first')")],
      [
        'held',
        () =>
          p.withConnection(async (conn) => {
            await conn.query("begin; insert into ryw_w (v) values ('held'); commit")
            // recorded when the statement resolved: a read later in the same callback sees it
            expect(await countRead(p, 'held')).toBe(1)
          }),
      ],
    ]
    for (const [v, write] of cases) {
      await lagFromNow(p)
      await write()
      expect([v, await countRead(p, v)]).toEqual([v, 1])
    }
  }, 90_000)

  it('a COPY that writes is recorded when it completes: copyTo(pool) of COPY (INSERT ... RETURNING) before its stream ends, copyFrom(conn) before it resolves', async () => {
    const p = pool()
    await lagFromNow(p)
    const chunks: Buffer[] = []
    for await (const chunk of copyTo(p, "copy (insert into ryw_w (v) values ('copy-to') returning v) to stdout"))
      chunks.push(chunk as Buffer)
    expect(Buffer.concat(chunks).toString()).toBe('copy-to\n')
    // read right after the stream's end (the lease's release may still be under way)
    expect(await countRead(p, 'copy-to')).toBe(1)
    await lagFromNow(p)
    await p.withConnection(async (conn) => {
      expect(await copyFrom(conn, 'copy ryw_w (v) from stdin', ['copy-from\n'])).toBe(1)
      expect(await countRead(p, 'copy-from')).toBe(1)
      // inside a transaction nothing is committed yet: nothing recorded until the COMMIT
      const recorded = p.replicaStats()!.positionsRecorded
      await conn.transaction(async (tx) => {
        await copyFrom(tx, 'copy ryw_w (v) from stdin', ['copy-in-tx\n'])
        expect(p.replicaStats()!.positionsRecorded).toBe(recorded)
      })
      expect(await countRead(p, 'copy-in-tx')).toBe(1)
    })
  }, 60_000)
})
