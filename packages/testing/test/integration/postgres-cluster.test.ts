import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { Client } from 'pg'
import { findPgBouncer, findPostgresBinDir, startPostgresCluster, type PostgresCluster } from '@dbpool/testing'

// The cluster needs initdb/pg_ctl/pg_basebackup of one version (Debian's PostgreSQL packages here; .ci/run
// has them) and PgBouncer; with CI set a missing binary fails these tests instead of skipping them.
const available = (findPostgresBinDir() !== undefined && findPgBouncer() !== undefined) || Boolean(process.env.CI)
const describeCluster = available ? describe : describe.skip

async function query<T extends object>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url })
  client.on('error', () => undefined)
  await client.connect()
  try {
    return (await client.query<T>(text, params)).rows
  } finally {
    await client.end().catch(() => undefined)
  }
}

describeCluster('startPostgresCluster (asynchronous, with PgBouncer)', () => {
  let cluster: PostgresCluster

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1, pgbouncer: 'transaction' })
  }, 180_000)

  afterAll(async () => {
    const root = cluster?.members[0]?.dataDir
    await cluster?.close()
    if (root) expect(existsSync(root)).toBe(false)
  }, 60_000)

  it('streams a write on the primary to the standby, which is in recovery and read-only', async () => {
    expect(cluster.members.map((m) => m.name)).toEqual(['primary', 'standby1'])
    expect(await cluster.isInRecovery(0)).toBe(false)
    expect(await cluster.isInRecovery(1)).toBe(true)
    await query(cluster.primaryUrl, 'create table seen (id int primary key)')
    await query(cluster.primaryUrl, 'insert into seen values (1)')
    await cluster.waitForReplay(1)
    expect(await query(cluster.replicaUrls[0] as string, 'select id from seen')).toEqual([{ id: 1 }])
    await expect(query(cluster.replicaUrls[0] as string, 'insert into seen values (2)')).rejects.toMatchObject({ code: '25006' })
  }, 60_000)

  it('serves the primary through PgBouncer in transaction mode', async () => {
    const rows = await query<{ r: boolean; port: number }>(
      cluster.pgbouncerUrl as string,
      "select pg_is_in_recovery() r, current_setting('port')::int port",
    )
    expect(rows).toEqual([{ r: false, port: cluster.members[0]?.port }])
  })

  it('pauseReplay holds the standby at its old state until resumeReplay', async () => {
    await query(cluster.primaryUrl, 'create table paused (id int)')
    await cluster.waitForReplay(1)
    await cluster.pauseReplay(1)
    try {
      await query(cluster.primaryUrl, 'insert into paused values (1)')
      // the WAL arrives (receive LSN passes the insert) but is not applied
      const [inserted] = await query<{ lsn: string }>(cluster.primaryUrl, 'select pg_current_wal_insert_lsn()::text lsn')
      for (;;) {
        const [row] = await query<{ received: boolean }>(
          cluster.replicaUrls[0] as string,
          'select pg_last_wal_receive_lsn() >= $1::pg_lsn received',
          [inserted?.lsn],
        )
        if (row?.received) break
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(await query(cluster.replicaUrls[0] as string, 'select id from paused')).toEqual([])
    } finally {
      await cluster.resumeReplay(1)
    }
    await cluster.waitForReplay(1)
    expect(await query(cluster.replicaUrls[0] as string, 'select id from paused')).toEqual([{ id: 1 }])
  }, 60_000)

  it('a multi-host URL lists every member', () => {
    const url = cluster.hostsUrl({ params: { target_session_attrs: 'read-write' } })
    expect(url).toBe(
      `postgres://postgres:${new URL(cluster.primaryUrl).password}@127.0.0.1:${cluster.members[0]?.port},127.0.0.1:${cluster.members[1]?.port}/postgres?target_session_attrs=read-write`,
    )
  })
})

describeCluster('startPostgresCluster (synchronous)', () => {
  let cluster: PostgresCluster

  beforeAll(async () => {
    cluster = await startPostgresCluster({ replicas: 1, synchronous: true })
  }, 180_000)

  afterAll(() => cluster?.close(), 60_000)

  it('a commit waits for the standby: with it stopped the commit hangs in SyncRep, and completes once it is back', async () => {
    await query(cluster.primaryUrl, 'create table sync_writes (id int)')
    await cluster.stop(1)
    const writer = new Client({ connectionString: cluster.primaryUrl, application_name: 'sync-writer' })
    writer.on('error', () => undefined)
    await writer.connect()
    try {
      let done = false
      const insert = writer.query('insert into sync_writes values (1)').then(() => {
        done = true
      })
      for (;;) {
        const rows = await query<{ w: string | null }>(
          cluster.primaryUrl,
          "select wait_event w from pg_stat_activity where application_name = 'sync-writer'",
        )
        if (rows[0]?.w === 'SyncRep') break
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(done).toBe(false)
      await cluster.start(1)
      await insert
      expect(await query(cluster.replicaUrls[0] as string, 'select id from sync_writes')).toEqual([{ id: 1 }])
    } finally {
      await writer.end().catch(() => undefined)
    }
  }, 90_000)

  it('promote makes the standby writable; stopping the primary leaves it serving', async () => {
    await query(cluster.primaryUrl, 'create table promoted (id int)')
    await cluster.waitForReplay(1)
    await cluster.stop(0)
    await expect(query(cluster.primaryUrl, 'select 1')).rejects.toThrow()
    await cluster.promote(1)
    expect(await cluster.isInRecovery(1)).toBe(false)
    await query(cluster.replicaUrls[0] as string, 'insert into promoted values (1)')
    expect(await query(cluster.replicaUrls[0] as string, 'select id from promoted')).toEqual([{ id: 1 }])
  }, 90_000)
})

describeCluster('startPostgresCluster cleanup', () => {
  it('stops the servers and removes the data when the process that started the cluster is killed', async () => {
    // the built package (npm test builds first): a plain node child, SIGKILLed once the cluster is up
    const dist = resolve(__dirname, '..', '..', 'dist', 'index.js')
    const script = `require(${JSON.stringify(dist)}).startPostgresCluster({ replicas: 1 }).then((c) => { process.stdout.write(JSON.stringify({ url: c.primaryUrl, dir: c.members[0].dataDir }) + '\\n') }, (e) => { console.error(e); process.exit(1) })`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const started = await new Promise<{ url: string; dir: string }>((resolveStarted, reject) => {
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('\n')) resolveStarted(JSON.parse(out) as { url: string; dir: string })
      })
      child.once('exit', (code) => reject(new Error(`the child exited with ${code}`)))
    })
    expect(await query(started.url, 'select 1 as n')).toEqual([{ n: 1 }])
    child.kill('SIGKILL')
    for (let k = 0; existsSync(started.dir); k++) {
      if (k > 300) throw new Error(`${started.dir} is still there 30 s after the owner died`)
      await new Promise((r) => setTimeout(r, 100))
    }
    await expect(query(started.url, 'select 1')).rejects.toThrow()
  }, 120_000)
})

describe('startPostgresCluster input', () => {
  it('refuses a bad replica count before starting anything', async () => {
    await expect(startPostgresCluster({ replicas: -1 })).rejects.toThrow(/replicas must be an integer/)
    await expect(startPostgresCluster({ binDir: '/nonexistent' })).rejects.toThrow(/has no initdb/)
  })
})
