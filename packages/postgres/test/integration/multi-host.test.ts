import dns from 'node:dns'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { inspect } from 'node:util'
import { DatabaseConfig, DatabaseError, type DatabasePool, type FailoverInfo } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startEmbeddedPostgres, type EmbeddedPostgresServer, type TestDatabase } from '@dbpool/testing'
import { admin, rejection, sleep, uniqueAppName } from './helpers'

// Two real servers: the shared test server (a primary) and an embedded one of this file's own, which
// the tests fence as a read-only server (`default_transaction_read_only = on`, what failover tools do
// to an old primary) and unfence. Same user, password and database name on both, so one host list
// reaches either. The standby cases (in recovery) are in cluster tests.
let db: TestDatabase
let other: EmbeddedPostgresServer
let otherUrl: string
/** The embedded server's `postgres` database, with the shared password. */
let otherAdmin: string
let closedPort: number
// servers and connects are slow when the machine is busy: no test here is about speed under jest's 5 s default
jest.setTimeout(60_000)
const pools: DatabasePool<PostgresConnection>[] = []

const primary = (): { host: string; port: number } => {
  const u = new URL(db.url)
  return { host: u.hostname, port: Number(u.port || 5432) }
}
const fenced = (): { host: string; port: number } => ({ host: '127.0.0.1', port: other.port })

function pool(
  hosts: readonly { host: string; port: number }[],
  targetSessionAttrs: DatabaseConfig['targetSessionAttrs'],
  max = 2,
): DatabasePool<PostgresConnection> {
  const u = new URL(db.url)
  const config = new DatabaseConfig({
    hosts,
    targetSessionAttrs,
    database: db.name,
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    sslMode: 'disable',
    applicationName: uniqueAppName('hosts'),
  })
  const p = createPostgresPool(config, { min: 0, max, name: 'hosts', acquireTimeoutMs: 10_000, createTimeoutMs: 10_000 })
  pools.push(p)
  return p
}

async function setFenced(on: boolean): Promise<void> {
  await admin(otherAdmin, async (c) => {
    await c.query(`alter system set default_transaction_read_only = ${on ? 'on' : 'off'}`)
    await c.query('select pg_reload_conf()')
  })
  // pg_reload_conf() only signals the postmaster: once a new session sees the value, the postmaster
  // has reloaded and signalled the running sessions, which take it at their next statement
  const want = on ? 'on' : 'off'
  for (let i = 0; i < 100; i++) {
    const seen = await admin(otherAdmin, async (c) => (await c.query<{ v: string }>('show default_transaction_read_only')).rows[0]!.v)
    if (seen === want) break
    await sleep(20)
  }
  await sleep(100)
}

/** Which server a pool's connection is on: the port the server listens on. */
async function serverPort(p: DatabasePool<PostgresConnection>): Promise<number> {
  const { rows } = await p.query<{ port: string }>("select current_setting('port') as port")
  return Number(rows[0]!.port)
}

function freeClosedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

beforeAll(async () => {
  db = await createTestDatabase()
  other = await startEmbeddedPostgres()
  closedPort = await freeClosedPort()
  const password = decodeURIComponent(new URL(db.url).password)
  await admin(other.url, async (c) => {
    await c.query(`alter role ${decodeURIComponent(new URL(db.url).username)} password '${password.replace(/'/g, "''")}'`)
    await c.query(`create database ${db.name}`)
  })
  const u = new URL(other.url)
  u.password = encodeURIComponent(password)
  otherAdmin = u.toString()
  u.pathname = `/${db.name}`
  otherUrl = u.toString()
  for (const url of [db.url, otherUrl]) await admin(url, (c) => c.query('create table t (id int primary key, at text)'))
}, 180_000)

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  await setFenced(false)
})

afterAll(async () => {
  await other?.stop()
  await db?.drop()
}, 60_000)

describe('multi-host targets (libpq target_session_attrs)', () => {
  it('the first host down (a closed port) still connects, to the next host', async () => {
    const p = pool([{ host: '127.0.0.1', port: closedPort }, primary()], 'any')
    expect(await serverPort(p)).toBe(primary().port)
    const rw = pool([{ host: '127.0.0.1', port: closedPort }, primary()], 'read-write')
    expect(await serverPort(rw)).toBe(primary().port)
  })

  it('a host that accepts TCP but never answers is skipped after the per-host connect timeout', async () => {
    // a black hole: the TCP handshake completes, no startup reply ever comes
    const sockets = new Set<Socket>()
    const silent = createServer((socket) => {
      sockets.add(socket)
      socket.on('error', () => undefined)
    })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const port = (silent.address() as { port: number }).port
      const u = new URL(db.url)
      const config = new DatabaseConfig({
        hosts: [{ host: '127.0.0.1', port }, primary()],
        targetSessionAttrs: 'read-write',
        connectTimeoutMs: 300,
        database: db.name,
        username: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        sslMode: 'disable',
      })
      const p = createPostgresPool(config, { min: 0, max: 1, name: 'hosts', createTimeoutMs: 10_000 })
      pools.push(p)
      expect(await serverPort(p)).toBe(primary().port)
      const alone = createPostgresPool(config.with({ hosts: [{ host: '127.0.0.1', port }] }), { min: 0, max: 1, name: 'hosts' })
      pools.push(alone)
      const err = await rejection(alone.query('select 1'))
      expect(err.code).toBe('CONNECTION_FAILED')
      expect(err.message).toContain('timed out after 300 ms')
    } finally {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }
  })

  it('TLS is decided per host: a socket directory listed first does not turn TLS off for a TCP host (sslmode=require)', async () => {
    // the shared server has ssl off: with require, a TCP connection to it must fail, never go plain
    const u = new URL(db.url)
    const config = new DatabaseConfig({
      hosts: [{ host: '/nonexistent-dbpool-socket-dir', port: 5432 }, primary()],
      database: db.name,
      username: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      sslMode: 'require',
    })
    const p = createPostgresPool(config, { min: 0, max: 1, name: 'hosts' })
    pools.push(p)
    const err = await rejection(p.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toContain(
      `${primary().host}:${primary().port} CONNECTION_FAILED: failed: The server does not support SSL connections`,
    )
  })

  it('a host name with several addresses: each address is tried in order, as libpq does (DNS-based HA)', async () => {
    // the name stands for 127.0.0.2 (the fenced server, behind a forwarder) then 127.0.0.1 (the primary, behind one too), same port
    await setFenced(true)
    const name = 'multi-address.dbpool.test'
    const sockets = new Set<Socket>()
    const forwarder = (to: { host: string; port: number }): Server =>
      createServer((client) => {
        const upstream = connect(to.port, to.host)
        for (const s of [client, upstream]) {
          sockets.add(s)
          s.on('error', () => undefined)
        }
        client.pipe(upstream).pipe(client)
      })
    const toPrimary = forwarder(primary())
    const toFenced = forwarder(fenced())
    await new Promise<void>((resolve) => toPrimary.listen(0, '127.0.0.1', resolve))
    const port = (toPrimary.address() as { port: number }).port
    await new Promise<void>((resolve) => toFenced.listen(port, '127.0.0.2', resolve))
    const real = dns.lookup
    const fake = (host: string, options: unknown, callback?: unknown): void => {
      const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
      const opts = (typeof options === 'object' && options !== null ? options : {}) as { all?: boolean }
      if (host !== name) return void (real as (...args: unknown[]) => void)(host, options, callback)
      const all = [
        { address: '127.0.0.2', family: 4 },
        { address: '127.0.0.1', family: 4 },
      ]
      if (opts.all) cb(null, all)
      else cb(null, all[0]!.address, 4)
    }
    ;(dns as { lookup: unknown }).lookup = fake
    try {
      const target = [{ host: name, port }]
      expect(await serverPort(pool(target, 'read-write'))).toBe(primary().port)
      expect(await serverPort(pool(target, 'read-only'))).toBe(other.port)
      expect(await serverPort(pool(target, 'any'))).toBe(other.port)
      const err = await rejection(pool(target, 'standby').query('select 1'))
      expect(err.message).toContain(`${name}:${port} (127.0.0.2) is not a standby`)
      expect(err.message).toContain(`${name}:${port} (127.0.0.1) is not a standby`)
    } finally {
      ;(dns as { lookup: unknown }).lookup = real
      await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
      for (const socket of sockets) socket.destroy()
      await Promise.all([toPrimary, toFenced].map((server) => new Promise((resolve) => server.close(resolve))))
    }
  })

  it('read-write skips a read-only server listed first; read-only picks it; any takes the first', async () => {
    await setFenced(true)
    expect(await serverPort(pool([fenced(), primary()], 'read-write'))).toBe(primary().port)
    expect(await serverPort(pool([primary(), fenced()], 'read-only'))).toBe(other.port)
    expect(await serverPort(pool([fenced(), primary()], 'any'))).toBe(other.port)
    // neither is in recovery: primary takes the first, prefer-standby finds no standby and takes the first in its second pass
    expect(await serverPort(pool([fenced(), primary()], 'primary'))).toBe(other.port)
    expect(await serverPort(pool([fenced(), primary()], 'prefer-standby'))).toBe(other.port)
  })

  it('when no host fits, the error names every host tried and why, and no password', async () => {
    await setFenced(true)
    const password = decodeURIComponent(new URL(db.url).password)
    const err = await rejection(pool([{ host: '127.0.0.1', port: closedPort }, fenced()], 'read-write').query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.retryable).toBe(true)
    expect(err.message).toContain('target_session_attrs=read-write')
    expect(err.message).toContain(`127.0.0.1:${closedPort} CONNECTION_FAILED`)
    expect(err.message).toContain('ECONNREFUSED')
    expect(err.message).toContain(`127.0.0.1:${other.port} is read-only`)
    const standby = await rejection(pool([fenced(), primary()], 'standby').query('select 1'))
    expect(standby.message).toContain(`127.0.0.1:${other.port} is not a standby`)
    expect(standby.message).toContain(`${primary().host}:${primary().port} is not a standby`)
    for (const e of [err, standby]) expect(e.message + inspect(e) + JSON.stringify(e)).not.toContain(password)
  })

  it('a wrong password on every host is AUTHENTICATION_FAILED (not retryable), naming both hosts', async () => {
    const config = new DatabaseConfig({
      hosts: [fenced(), primary()],
      targetSessionAttrs: 'read-write',
      database: db.name,
      username: decodeURIComponent(new URL(db.url).username),
      password: 'not-the-password',
      sslMode: 'disable',
    })
    const p = createPostgresPool(config, { min: 0, max: 1, name: 'hosts' })
    pools.push(p)
    const err = await rejection(p.query('select 1'))
    expect(err.code).toBe('AUTHENTICATION_FAILED')
    expect(err.retryable).toBe(false)
    expect(err.message).toContain(`127.0.0.1:${other.port} AUTHENTICATION_FAILED`)
    expect(err.message + inspect(err)).not.toContain('not-the-password')
  })

  it('failover by fencing: a write on the now read-only server is READ_ONLY retryable, evicts, replays on the next host, emits failover', async () => {
    const p = pool([fenced(), primary()], 'read-write', 2)
    const failovers: FailoverInfo[] = []
    p.on('failover', (info) => failovers.push(info))
    const destroyed: string[] = []
    p.on('destroy', (info) => destroyed.push(info.reason))
    // both connections on the (not yet fenced) first host
    await Promise.all([1, 2].map((i) => p.transaction((tx) => tx.query('insert into t values ($1, $2)', [i, 'first']))))
    expect(await serverPort(p)).toBe(other.port)
    expect(p.stats().size).toBe(2)
    await setFenced(true)
    // without retry: the caller sees READ_ONLY, retryable, and the connection is gone
    const err = await rejection(p.transaction((tx) => tx.query('insert into t values (3, $1)', ['lost'])))
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('READ_ONLY')
    expect(err.sqlState).toBe('25006')
    expect(err.retryable).toBe(true)
    expect(destroyed.some((r) => r.includes('READ_ONLY'))).toBe(true)
    // with retry: replayed until a new connection reaches the read-write host
    await p.transaction((tx) => tx.query('insert into t values (4, $1)', ['moved']), { retry: true })
    expect(failovers).toEqual([{ from: `127.0.0.1:${other.port}`, to: `${primary().host}:${primary().port}`, lane: 'write' }])
    const onPrimary = await admin(db.url, (c) => c.query<{ id: number }>('select id from t order by id'))
    expect(onPrimary.rows.map((r) => r.id)).toEqual([4])
    // the connection to the old server left the pool: every statement now runs on the primary
    for (let i = 0; i < 5; i++) expect(await serverPort(p)).toBe(primary().port)
  })

  it('a READ_ONLY evicts every connection to that server: a replay is not handed another idle one of it', async () => {
    const p = pool([fenced(), primary()], 'read-write', 4)
    const lost: string[] = []
    p.on('connectionLost', (error) => lost.push(error.code))
    // four idle connections on the first host
    await Promise.all([1, 2, 3, 4].map((i) => p.transaction((tx) => tx.query('select pg_sleep(0.05), $1::int', [i]))))
    expect(p.stats().idle).toBe(4)
    await setFenced(true)
    // two attempts only: the second must reach the read-write host, not another idle connection of the fenced one
    await p.transaction((tx) => tx.query('insert into t values (20, $1)', ['second attempt']), {
      retry: { maxAttempts: 2, baseDelayMs: 0 },
    })
    // all four, the one that saw the error included
    expect(lost.filter((code) => code === 'READ_ONLY')).toHaveLength(4)
    expect(p.stats().size).toBe(1)
    for (let i = 0; i < 4; i++) expect(await serverPort(p)).toBe(primary().port)
  })

  it('a read-only transaction the application opened keeps its connection and is not retryable', async () => {
    const p = pool([primary()], 'read-write', 1)
    let attempts = 0
    const err = await rejection(
      p.transaction(
        async (tx) => {
          attempts++
          await tx.query('insert into t values (9, $1)', ['no'])
        },
        { readOnly: true, retry: true },
      ),
    )
    expect(err.code).toBe('READ_ONLY')
    expect(err.retryable).toBe(false)
    expect(attempts).toBe(1)
    const destroyed: string[] = []
    p.on('destroy', (info) => destroyed.push(info.reason))
    await p.query('select 1')
    expect(destroyed).toEqual([])
  })
})
