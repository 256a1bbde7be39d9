import type { DatabasePool, ReadFallbackInfo, ReplicaStateInfo } from '@dbpool/core'
import { copyFrom, createPostgresPool, type PostgresConnection, type PostgresPoolOptions } from '@dbpool/postgres'
import { findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'
import { corkAtCursorCommandComplete, within } from './helpers'

// A primary and one streaming standby (startPostgresCluster: Debian's PostgreSQL binaries, which .ci/run
// installs); with CI set missing binaries fail these tests instead of skipping them.
const available = findPostgresBinDir() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('replicas.test.ts: no PostgreSQL binaries with pg_basebackup: skipped')

let cluster: PostgresCluster
const pools: DatabasePool<PostgresConnection>[] = []

function pool(options: PostgresPoolOptions = {}, keepaliveIntervalMs = 60_000): DatabasePool<PostgresConnection> {
  const created = createPostgresPool(
    cluster.primaryUrl,
    { min: 0, max: 4, name: 'replicas', keepaliveIntervalMs },
    { replicas: cluster.replicaUrls, ...options },
  )
  pools.push(created)
  return created
}

async function inRecovery(p: DatabasePool<PostgresConnection>, options?: { lane?: 'read' | 'write' }): Promise<boolean> {
  const { rows } = await p.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], options)
  return rows[0]?.r === true
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

suite('read replicas as the read lane', () => {
  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1 })
    const setup = createPostgresPool(cluster.primaryUrl, { min: 0, max: 1 })
    await setup.query('create table notes (id int primary key, body text not null)')
    await setup.close()
    await cluster.waitForReplay(1)
  }, 180_000)

  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  })

  afterAll(async () => {
    await cluster?.close()
  }, 60_000)

  it('runs read-lane work on the standby and everything else on the primary', async () => {
    const p = pool()
    expect(await inRecovery(p, { lane: 'read' })).toBe(true)
    expect(await inRecovery(p)).toBe(false)
    expect(await inRecovery(p, { lane: 'write' })).toBe(false)
    expect(
      await p.withConnection(async (c) => (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r, { lane: 'read' }),
    ).toBe(true)
    expect(
      await p.transaction(async (tx) => (await tx.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r, { readOnly: true }),
    ).toBe(true)
    expect(await p.transaction(async (tx) => (await tx.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r)).toBe(false)
    // a write sent to the read lane fails on the standby as the application's own error (not a failover)
    await expect(p.query("insert into notes values (0, 'x')", [], { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
      retryable: false,
    })
    expect(p.replicaStats()).toMatchObject({ replicas: [{ replica: `127.0.0.1:${cluster.members[1]?.port}`, usable: true }] })
    expect(p.stats('read').size).toBeGreaterThan(0)
  })

  it("transaction({ readOnly: true, isolation: 'serializable' }) runs read-only on the primary (a standby refuses serializable), other read-only ones on the standby", async () => {
    const p = pool()
    let lost = 0
    p.on('connectionLost', () => lost++)
    const settingsSql =
      "select pg_is_in_recovery() as r, current_setting('transaction_isolation') as iso, current_setting('transaction_read_only') as ro"
    for (const options of [
      { readOnly: true, isolation: 'serializable' },
      { readOnly: true, isolation: 'serializable', deferrable: true },
      { readOnly: true, isolation: 'serializable', retry: true },
    ] as const) {
      const row = await p.transaction(async (tx) => (await tx.query(settingsSql)).rows[0], options)
      expect(row).toEqual({ r: false, iso: 'serializable', ro: 'on' })
    }
    expect(
      await p.transaction(async (tx) => (await tx.query(settingsSql)).rows[0], { readOnly: true, isolation: 'repeatable read' }),
    ).toEqual({
      r: true,
      iso: 'repeatable read',
      ro: 'on',
    })
    expect(lost).toBe(0)
  })

  it("readRouting: 'auto' sends lone read-only statements to the standby, anything doubtful to the primary", async () => {
    const p = pool({ readRouting: 'auto' })
    expect(await inRecovery(p)).toBe(true)
    // nextval() writes: not known read-only, so the primary
    const { rows } = await p.query<{ r: boolean }>("select pg_is_in_recovery() as r, nextval('notes_seq') as n", []).catch(async () => {
      await p.query('create sequence notes_seq')
      return p.query<{ r: boolean }>("select pg_is_in_recovery() as r, nextval('notes_seq') as n", [])
    })
    expect(rows[0]?.r).toBe(false)
    expect(await inRecovery(p, { lane: 'write' })).toBe(false)
  })

  it("readRouting: 'auto': a SELECT that writes through what the text does not show (a view, functional notation) runs on the primary, not READ_ONLY", async () => {
    const setup = pool()
    await setup.query('create table counters (id int primary key, v int not null)')
    await setup.query('insert into counters values (1, 0)')
    await setup.query(
      'create function bump(counters) returns int language sql as $$ update counters set v = v + 1 where id = $1.id returning v $$',
    )
    await setup.query('create view bumped as select id, bump(c) as v from counters c')
    await cluster.waitForReplay(1)
    const p = pool({ readRouting: 'auto' })
    expect(await inRecovery(p)).toBe(true)
    // both look like plain reads (no call the text shows); the standby refuses them (25006) before
    // anything ran, and the pool runs them again on the primary
    expect((await p.query('select x.bump as v from counters x')).rows).toEqual([{ v: 1 }])
    expect((await p.query('select v from bumped')).rows).toEqual([{ v: 2 }])
    expect((await p.query('select v from counters', [], { lane: 'write' })).rows).toEqual([{ v: 2 }])
    // asked for the read lane explicitly, a write is the caller's error
    await expect(p.query('select v from bumped', [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY', retryable: false })
    // with readYourWrites, the write it made on the primary is read back on the read lane
    const ryw = pool({ readRouting: 'auto', readYourWrites: true })
    await cluster.waitForReplay(1)
    expect(await inRecovery(ryw)).toBe(true)
    await cluster.pauseReplay(1)
    try {
      expect((await ryw.query('select x.bump as v from counters x')).rows).toEqual([{ v: 3 }])
      expect((await ryw.query('select v from counters', [], { lane: 'read' })).rows).toEqual([{ v: 3 }])
    } finally {
      await cluster.resumeReplay(1)
    }
  })

  it('readYourWrites: with replay paused on the standby, a write followed by a read returns the write', async () => {
    const ryw = pool({ readYourWrites: true })
    const plain = pool()
    // both pools have a standby connection before the pause (a read that used it)
    expect(await inRecovery(ryw, { lane: 'read' })).toBe(true)
    await cluster.pauseReplay(1)
    try {
      await ryw.query("insert into notes values (1, 'written')")
      const read = await ryw.query<{ body: string }>('select body from notes where id = 1', [], { lane: 'read' })
      expect(read.rows).toEqual([{ body: 'written' }])
      // the same read without readYourWrites is served by the paused standby, which does not have it
      // (what the test would see on the old code)
      const stale = await plain.query<{ body: string }>('select body from notes where id = 1', [], { lane: 'read' })
      expect(stale.rows).toEqual([])
      expect(ryw.replicaStats()?.readsOnPrimaryForWrites).toBeGreaterThan(0)
      expect(ryw.replicaStats()?.positionsRecorded).toBe(1)
      // a transaction's write too
      await ryw.transaction(async (tx) => {
        await tx.query("insert into notes values (2, 'in a transaction')")
      })
      const second = await ryw.transaction(async (tx) => (await tx.query('select body from notes where id = 2')).rows, { readOnly: true })
      expect(second).toEqual([{ body: 'in a transaction' }])
    } finally {
      await cluster.resumeReplay(1)
    }
    // once the standby has replayed the writes, reads go back to it
    await cluster.waitForReplay(1)
    await until('a read served by the standby again', async () => inRecovery(ryw, { lane: 'read' }))
    const after = await ryw.query<{ n: number }>('select count(*)::int as n from notes where id in (1, 2)', [], { lane: 'read' })
    expect(after.rows).toEqual([{ n: 2 }])
    // a write streamed through a cursor (INSERT ... RETURNING, which does not pass a statement's path)
    // while the standby, caught up with every earlier write, is paused again
    await cluster.pauseReplay(1)
    try {
      for await (const row of ryw.stream("insert into notes values (4, 'streamed') returning id")) expect(row).toEqual({ id: 4 })
      const streamed = await ryw.query('select body from notes where id = 4', [], { lane: 'read' })
      expect(streamed.rows).toEqual([{ body: 'streamed' }])
    } finally {
      await cluster.resumeReplay(1)
    }
  }, 60_000)

  it('readYourWrites: a copyFrom() and a write made on conn.native inside withConnection are read back on the read lane', async () => {
    const ryw = pool({ readYourWrites: true })
    await cluster.waitForReplay(1)
    expect(await inRecovery(ryw, { lane: 'read' })).toBe(true)
    await cluster.pauseReplay(1)
    try {
      // COPY runs on the pg.Client itself (pg-copy-streams), not through the pool's statement path
      expect(await copyFrom(ryw, 'copy notes (id, body) from stdin', [[10, 'copied']])).toBe(1)
      const copied = await ryw.query('select body from notes where id = 10', [], { lane: 'read' })
      expect(copied.rows).toEqual([{ body: 'copied' }])
      await ryw.withConnection(async (conn) => {
        await conn.native.client.query("insert into notes values (11, 'native')")
      })
      const native = await ryw.query('select body from notes where id = 11', [], { lane: 'read' })
      expect(native.rows).toEqual([{ body: 'native' }])
    } finally {
      await cluster.resumeReplay(1)
    }
  }, 60_000)

  it('readYourWrites inside one withConnection callback: a read-lane read after a committed auto-commit write, conn.transaction(), a BEGIN ... COMMIT by hand or a streamed write sees it', async () => {
    const ryw = pool({ readYourWrites: true })
    await cluster.waitForReplay(1)
    expect(await inRecovery(ryw, { lane: 'read' })).toBe(true)
    const bodyOf = async (id: number): Promise<unknown[]> =>
      (await ryw.query('select body from notes where id = $1', [id], { lane: 'read' })).rows
    await cluster.pauseReplay(1)
    try {
      await ryw.withConnection(async (conn) => {
        await conn.query("insert into notes values (20, 'auto-commit')")
        expect(await bodyOf(20)).toEqual([{ body: 'auto-commit' }])
        await conn.transaction(async (tx) => {
          await tx.query("insert into notes values (21, 'conn.transaction')")
          // not committed yet: nothing to record inside the transaction
          expect(await bodyOf(21)).toEqual([])
        })
        expect(await bodyOf(21)).toEqual([{ body: 'conn.transaction' }])
        await conn.query('begin')
        await conn.query("insert into notes values (22, 'by hand')")
        await conn.query('commit')
        expect(await bodyOf(22)).toEqual([{ body: 'by hand' }])
        for await (const row of conn.stream("insert into notes values (23, 'streamed') returning id")) expect(row).toEqual({ id: 23 })
        expect(await bodyOf(23)).toEqual([{ body: 'streamed' }])
      })
      // one position per committed write, none more at the release
      expect(ryw.replicaStats()?.positionsRecorded).toBe(4)
      // a read-only statement on the held connection records nothing
      await ryw.withConnection(async (conn) => void (await conn.query('select 1')))
      expect(ryw.replicaStats()?.positionsRecorded).toBe(4)
    } finally {
      await cluster.resumeReplay(1)
    }
  }, 60_000)

  it('a standby lagging more than maxReplicaLagMs is taken out in the keepalive pass and comes back', async () => {
    const p = pool({ maxReplicaLagMs: 200 }, 100)
    const states: ReplicaStateInfo[] = []
    p.on('replica', (info) => states.push(info))
    expect(await inRecovery(p, { lane: 'read' })).toBe(true)
    await cluster.pauseReplay(1)
    try {
      await p.query("insert into notes values (3, 'lagging')")
      await until('the standby taken out', () => states.some((s) => !s.usable))
      expect(states[0]).toMatchObject({ usable: false, reason: 'lagging' })
      expect(await inRecovery(p, { lane: 'read' })).toBe(false)
    } finally {
      await cluster.resumeReplay(1)
    }
    await until('the standby back', () => states.some((s) => s.usable))
    expect(await inRecovery(p, { lane: 'read' })).toBe(true)
  }, 60_000)

  it('a standby that is down: reads run on the primary, with a replica and a readFallback event; it comes back', async () => {
    const logged: { level: string; event: unknown }[] = []
    const at = (level: string) => (obj: { event?: unknown }) => void logged.push({ level, event: obj.event })
    const logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
    const p = pool({ logger }, 100)
    const states: ReplicaStateInfo[] = []
    const fallbacks: ReadFallbackInfo[] = []
    p.on('replica', (info) => states.push(info))
    p.on('readFallback', (info) => fallbacks.push(info))
    expect(await inRecovery(p, { lane: 'read' })).toBe(true)
    await cluster.stop(1)
    try {
      expect(await inRecovery(p, { lane: 'read' })).toBe(false)
      expect(states[0]).toMatchObject({ usable: false, reason: 'unreachable' })
      expect(fallbacks).toHaveLength(1)
      expect(await inRecovery(p, { lane: 'read' })).toBe(false)
      expect(fallbacks).toHaveLength(1)
      expect(p.replicaStats()?.readsOnPrimaryFallback).toBeGreaterThanOrEqual(1)
    } finally {
      await cluster.start(1)
    }
    await until('the standby back', () => states.some((s) => s.usable))
    expect(await inRecovery(p, { lane: 'read' })).toBe(true)
    // the same changes as log lines
    expect(logged.filter((l) => l.event === 'replica' || l.event === 'readFallback')).toEqual([
      { level: 'warn', event: 'replica' },
      { level: 'warn', event: 'readFallback' },
      { level: 'info', event: 'replica' },
    ])
  }, 60_000)

  it("a read-lane stream whose standby stops ('immediate') before the rows' ReadyForQuery fails with CONNECTION_LOST and releases its lease", async () => {
    // review 12: such a stream waited on its first next() forever, holding its standby connection.
    // The window is opened on purpose: the socket's writes held at the cursor's CommandComplete, so
    // the Sync that the rows wait for never leaves (see stream-connection-lost.test.ts)
    const p = pool()
    p.on('error', () => undefined)
    const client = await p.withConnection(async (c) => c.native.client, { lane: 'read' })
    const corked = corkAtCursorCommandComplete(client)
    const it = p.stream('select generate_series(1, 50) as n', [], { lane: 'read', batchSize: 100 })[Symbol.asyncIterator]()
    const first = it.next()
    first.catch(() => undefined)
    expect(await within(corked, 5_000)).toEqual({ value: undefined })
    await cluster.stop(1, 'immediate')
    try {
      const outcome = await within(first, 10_000)
      if (outcome === 'pending') throw new Error('the read-lane stream was still pending 10 s after its standby stopped')
      expect('error' in outcome && (outcome.error as { code?: unknown }).code).toBe('CONNECTION_LOST')
      await until('the stream to give its lease back', () => p.stats('read').used === 0, 10_000)
      expect(await inRecovery(p, { lane: 'read' })).toBe(false)
    } finally {
      await cluster.start(1)
    }
  }, 60_000)
})
