import { DatabaseConfig, type DatabasePool, type ReadFallbackInfo } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

// Read-lane work that runs on the primary because no replica may serve it (here: the only replica is
// unreachable) is read-only there, as it is on a replica: a write sent to the read lane fails with
// READ_ONLY whatever the replicas' health, and commits nothing.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

function unreachableReplica(url: string): string {
  const u = new URL(url)
  u.port = '1'
  return u.toString()
}

describe('read-lane work on the primary when no replica is usable', () => {
  it('is read-only: a write on the read lane fails with READ_ONLY (query, withConnection, stream, transaction) and commits nothing; reads run', async () => {
    const p = (pool = createPostgresPool(db.url, { min: 0, max: 2 }, { replicas: [unreachableReplica(db.url)], readRouting: 'auto' }))
    const fallbacks: ReadFallbackInfo[] = []
    p.on('readFallback', (info) => fallbacks.push(info))
    await p.query('create table fallback_rows (i int)')
    await expect(p.query('insert into fallback_rows values (1)', [], { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
      retryable: false,
    })
    await expect(p.withConnection((c) => c.query('insert into fallback_rows values (2)'), { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    await expect(
      p.withConnection((c) => c.transaction((tx) => tx.query('insert into fallback_rows values (3)')), { lane: 'read' }),
    ).rejects.toMatchObject({ code: 'READ_ONLY' })
    await expect(p.transaction((tx) => tx.query('insert into fallback_rows values (4)'), { readOnly: true })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    const streamed: unknown[] = []
    await expect(
      (async () => {
        for await (const row of p.stream('insert into fallback_rows values (5) returning i', [], { lane: 'read' })) streamed.push(row)
      })(),
    ).rejects.toMatchObject({ code: 'READ_ONLY' })
    expect(streamed).toEqual([])
    // reads run there, on the primary
    const { rows } = await p.query<{ r: boolean; ro: string }>(
      "select pg_is_in_recovery() as r, current_setting('transaction_read_only') as ro",
      [],
      { lane: 'read' },
    )
    expect(rows[0]).toEqual({ r: false, ro: 'on' })
    expect(fallbacks.length).toBe(1)
    expect(p.replicaStats()?.readsOnPrimaryFallback).toBeGreaterThan(0)
    // the write lane is untouched, and nothing above committed
    await p.query('insert into fallback_rows values (10)')
    expect((await p.query<{ i: number }>('select i from fallback_rows order by i')).rows).toEqual([{ i: 10 }])
    // an auto-routed statement that writes through a function still runs, on the write lane
    await p.query(`create function add_row(v int) returns int language sql as $$ insert into fallback_rows values (v) returning v $$`)
    await p.query('create view added as select add_row(11) as v')
    expect((await p.query<{ v: number }>('select * from added')).rows).toEqual([{ v: 11 }])
  })
})

describe('the primary read-only pool', () => {
  function primaryHost(): { host: string; port: number } {
    const u = new URL(db.url)
    return { host: u.hostname, port: Number(u.port || 5432) }
  }

  it('connects when the primary URL has target_session_attrs=read-write (judged as a primary, not by its own read-only session)', async () => {
    const u = new URL(db.url)
    u.searchParams.set('target_session_attrs', 'read-write')
    const p = (pool = createPostgresPool(u.toString(), { min: 0, max: 2 }, { replicas: [unreachableReplica(db.url)] }))
    const { rows } = await p.query<{ r: boolean; ro: string }>(
      "select pg_is_in_recovery() as r, current_setting('transaction_read_only') as ro",
      [],
      { lane: 'read' },
    )
    expect(rows[0]).toEqual({ r: false, ro: 'on' })
    await expect(p.query('create table tsa_rows (i int)', [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
    // a multi-host primary URL: the first host down, the walk goes on to the primary
    const { host, port } = primaryHost()
    const multi = new DatabaseConfig({
      hosts: [
        { host: '127.0.0.1', port: 1 },
        { host, port },
      ],
      targetSessionAttrs: 'read-write',
      database: db.name,
      username: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      sslMode: 'disable',
    })
    const m = createPostgresPool(multi, { min: 0, max: 1 }, { replicas: [unreachableReplica(db.url)] })
    try {
      const read = await m.query<{ r: boolean; ro: string }>(
        "select pg_is_in_recovery() as r, current_setting('transaction_read_only') as ro",
        [],
        { lane: 'read' },
      )
      expect(read.rows[0]).toEqual({ r: false, ro: 'on' })
    } finally {
      await m.close({ timeoutMs: 5_000 })
    }
  })

  it('names itself in ACQUIRE_TIMEOUT, shows in replicaStats().primary, and a read counts once, where it ran', async () => {
    const p = (pool = createPostgresPool(db.url, { min: 0, max: 1, acquireTimeoutMs: 300 }, { replicas: [unreachableReplica(db.url)] }))
    await p.query('select 1', [], { lane: 'read' })
    expect(p.replicaStats()).toMatchObject({ readsOnReplicas: 0, readsOnPrimaryFallback: 1 })
    await p.withConnection((c) => c.query('select 1'), { lane: 'read' })
    expect(p.replicaStats()).toMatchObject({ readsOnReplicas: 0, readsOnPrimaryFallback: 2 })
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const holding = p.withConnection(
      async (c) => {
        await c.query('select 1')
        await held
      },
      { lane: 'read' },
    )
    for (let i = 0; i < 500 && (p.replicaStats()?.primary?.used ?? 0) < 1; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(p.replicaStats()?.primary).toEqual({ size: 1, used: 1, pending: 0 })
    const err = await p.withConnection((c) => c.query('select 1'), { lane: 'read' }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ACQUIRE_TIMEOUT' })
    expect((err as Error).message).toContain('(read lane, primary read-only)')
    expect((err as Error).message).not.toContain('replica 1')
    release()
    await holding
  })
})
