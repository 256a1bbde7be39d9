import dns from 'node:dns'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { DatabaseConfig, type DatabasePool, type TargetSessionAttrs } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { rejection, uniqueAppName } from './helpers'

// A multi-host target without connect_timeout: the connect deadline (createTimeoutMs) is shared among
// the attempts (each address of each host), so a first host or address that accepts TCP and never
// answers (a hung old primary) leaves time for the next one. Silent TCP servers stand for the hung
// hosts; the shared test server (directly, or behind a forwarder on another port) is the good one.
let db: TestDatabase
const pools: DatabasePool<PostgresConnection>[] = []
const servers: { server: Server; sockets: Set<Socket> }[] = []
jest.setTimeout(60_000)

beforeAll(async () => {
  db = await createTestDatabase()
}, 60_000)

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  for (const { server, sockets } of servers.splice(0)) {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})

afterAll(async () => {
  await db?.drop()
})

/** A host that completes the TCP handshake and never sends a byte: its port. */
async function silentHost(address = '127.0.0.1', port = 0): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
  })
  servers.push({ server, sockets })
  await new Promise<void>((resolve) => server.listen(port, address, resolve))
  return (server.address() as { port: number }).port
}

/** The test server behind a forwarder on 127.0.0.1: its port (free on the other loopback addresses too, for silent hosts there). */
async function liveForwarder(): Promise<number> {
  const u = new URL(db.url)
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(Number(u.port || 5432), u.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => undefined)
    }
    client.pipe(upstream).pipe(client)
  })
  servers.push({ server, sockets })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

/** Runs `fn` with dns.lookup resolving each name of `names` to its addresses, in that order (DNS-based HA). */
async function withNames<T>(names: Record<string, string[]>, fn: () => Promise<T>): Promise<T> {
  const real = dns.lookup
  const fake = (host: string, options: unknown, callback?: unknown): void => {
    const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
    const opts = (typeof options === 'object' && options !== null ? options : {}) as { all?: boolean }
    const addresses = names[host]
    if (addresses === undefined) return void (real as (...args: unknown[]) => void)(host, options, callback)
    if (opts.all)
      cb(
        null,
        addresses.map((address) => ({ address, family: 4 })),
      )
    else cb(null, addresses[0], 4)
  }
  ;(dns as { lookup: unknown }).lookup = fake
  try {
    return await fn()
  } finally {
    ;(dns as { lookup: unknown }).lookup = real
  }
}

function poolOver(
  hosts: { host: string; port: number }[],
  createTimeoutMs: number,
  targetSessionAttrs: TargetSessionAttrs = 'any',
): DatabasePool<PostgresConnection> {
  const u = new URL(db.url)
  const config = new DatabaseConfig({
    hosts,
    targetSessionAttrs,
    database: db.name,
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    sslMode: 'disable',
    applicationName: uniqueAppName('deadline'),
  })
  const p = createPostgresPool(config, { min: 0, max: 1, name: 'deadline', createTimeoutMs, acquireTimeoutMs: 30_000 })
  pools.push(p)
  return p
}

describe('multi-host connect deadline without connect_timeout', () => {
  it('a first host that never answers leaves time for the second: each attempt gets what is left ÷ attempts left', async () => {
    const u = new URL(db.url)
    const good = { host: u.hostname, port: Number(u.port || 5432) }
    const p = poolOver([{ host: '127.0.0.1', port: await silentHost() }, good], 4_000)
    // before: the first host's deadline was the whole 4000 ms, the second never tried (CONNECTION_FAILED)
    const { rows } = await p.query<{ port: string }>("select current_setting('port') as port")
    expect(Number(rows[0]!.port)).toBe(good.port)
  })

  it('when every host hangs, the error names each host tried and why (the pool deadline too)', async () => {
    const first = await silentHost()
    const second = await silentHost()
    const p = poolOver(
      [
        { host: '127.0.0.1', port: first },
        { host: '127.0.0.1', port: second },
      ],
      4_000,
    )
    const err = await rejection(p.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    // the first host's share ran out (about 2000 ms), then the second was tried: named, whichever deadline came first
    expect(err.message).toMatch(
      new RegExp(`tried 127\\.0\\.0\\.1:${first} CONNECTION_FAILED: timed out after \\d+ ms[^;]*; 127\\.0\\.0\\.1:${second} `),
    )
    expect(err.message).not.toContain(decodeURIComponent(new URL(db.url).password))
  })

  // before: the deadline was split by host NAMES (config.hosts.length) while the walk tries every
  // ADDRESS, and each share was at least 2000 ms: a hung first address used the whole 4000 ms
  it('one name whose first address hangs: the live second address is reached (DNS-based HA, read-write)', async () => {
    const port = await liveForwarder()
    await silentHost('127.0.0.2', port)
    const name = 'hung-then-live.dbpool.test'
    const p = poolOver([{ host: name, port }], 4_000, 'read-write')
    const { rows } = await withNames({ [name]: ['127.0.0.2', '127.0.0.1'] }, () => p.query<{ one: number }>('select 1 as one'))
    expect(rows[0]!.one).toBe(1)
  })

  it('a name whose two addresses hang, then a live second host: the second host is reached', async () => {
    const port = await liveForwarder()
    await silentHost('127.0.0.2', port)
    await silentHost('127.0.0.3', port)
    const name = 'all-hung.dbpool.test'
    const p = poolOver(
      [
        { host: name, port },
        { host: '127.0.0.1', port },
      ],
      4_000,
    )
    const { rows } = await withNames({ [name]: ['127.0.0.2', '127.0.0.3'] }, () => p.query<{ one: number }>('select 1 as one'))
    expect(rows[0]!.one).toBe(1)
  })

  it('three hosts, the first two hung: the third is reached (no 2 s floor uses up the deadline)', async () => {
    const u = new URL(db.url)
    const good = { host: u.hostname, port: Number(u.port || 5432) }
    const p = poolOver([{ host: '127.0.0.1', port: await silentHost() }, { host: '127.0.0.1', port: await silentHost() }, good], 4_000)
    const { rows } = await p.query<{ port: string }>("select current_setting('port') as port")
    expect(Number(rows[0]!.port)).toBe(good.port)
  })

  // before (35a3c14): every name was looked up before the first attempt, so a live first host waited
  // for a later host's slow resolver (a standby's lookup timing out: 6 s on every new connection)
  it('a later host whose name lookup is slow: the first host is tried as soon as its own lookup is done', async () => {
    const u = new URL(db.url)
    const good = { host: u.hostname, port: Number(u.port || 5432) }
    const slow = 'slow-dns-standby.dbpool.test'
    const real = dns.lookup
    let lookupEnded = false
    let endLookup: (() => void) | undefined
    ;(dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback?: unknown): void => {
      const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
      if (host !== slow) return void (real as (...args: unknown[]) => void)(host, options, callback)
      // held until the test ends it (a resolver timing out): then EAI_AGAIN
      endLookup = () => {
        lookupEnded = true
        cb(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: 'EAI_AGAIN' }))
      }
    }
    const ended = setTimeout(() => endLookup?.(), 20_000)
    try {
      const p = poolOver([good, { host: slow, port: good.port }], 30_000)
      const { rows } = await p.query<{ one: number }>('select 1 as one')
      expect(rows[0]!.one).toBe(1)
      expect(lookupEnded).toBe(false)
    } finally {
      clearTimeout(ended)
      ;(dns as { lookup: unknown }).lookup = real
      endLookup?.()
    }
  })

  // before (r19c): each connect attempt started its own dns.lookup of the slow name and abandoned it at
  // createTimeoutMs: with a dead resolver they piled up (24 in flight within 6 s) past libuv's 4 threads
  it('walks waiting on one slow name share a single lookup, each waiting no longer than its deadline', async () => {
    const slow = 'dead-resolver-standby.dbpool.test'
    const real = dns.lookup
    let started = 0
    const held: (() => void)[] = []
    ;(dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback?: unknown): void => {
      const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
      if (host !== slow) return void (real as (...args: unknown[]) => void)(host, options, callback)
      started++
      // a resolver that does not answer: held until the test ends it
      held.push(() => cb(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: 'EAI_AGAIN' })))
    }
    try {
      // the first host refuses at once; every walk then reaches the slow name
      const u = new URL(db.url)
      const config = new DatabaseConfig({
        hosts: [
          { host: '127.0.0.1', port: 1 },
          { host: slow, port: 5432 },
        ],
        database: db.name,
        username: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        sslMode: 'disable',
        applicationName: uniqueAppName('deadline'),
      })
      const p = createPostgresPool(config, { min: 0, max: 4, name: 'dead-resolver', createTimeoutMs: 600, acquireTimeoutMs: 1_000 })
      pools.push(p)
      for (let round = 0; round < 3; round++) {
        const errors = await Promise.all([1, 2, 3, 4].map(() => rejection(p.query('select 1'))))
        for (const err of errors) expect(err.code).toBe('CONNECTION_FAILED')
      }
      // one lookup for every walk of every round (before: one per connect attempt)
      expect(started).toBe(1)
      // a walk's own error names the lookup that did not answer within its share of the deadline
      const direct = await rejection(p.withConnection(async () => undefined))
      expect(direct.message).toMatch(/name lookup of dead-resolver-standby\.dbpool\.test did not answer|timed out after/)
      expect(started).toBe(1)
    } finally {
      ;(dns as { lookup: unknown }).lookup = real
      for (const end of held) end()
    }
  })

  // before: pg handed the name to net.connect, which started a getaddrinfo per connect attempt, left
  // running after pg's connectionTimeoutMillis destroyed the socket
  it('a single-host target: connects racing on a dead resolver share one lookup; a name that resolves still connects', async () => {
    const slow = 'dead-resolver-single.dbpool.test'
    const real = dns.lookup
    let started = 0
    let answering = false
    const held: (() => void)[] = []
    ;(dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback?: unknown): void => {
      const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
      if (host !== slow) return void (real as (...args: unknown[]) => void)(host, options, callback)
      started++
      const fail = (): void => cb(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: 'EAI_AGAIN' }))
      if (answering) setImmediate(fail)
      else held.push(fail)
    }
    try {
      const u = new URL(db.url)
      const p = poolOver([{ host: slow, port: Number(u.port || 5432) }], 600)
      for (let round = 0; round < 3; round++) {
        const errors = await Promise.all([1, 2, 3].map(() => rejection(p.query('select 1'))))
        for (const err of errors) expect(err.code).toBe('CONNECTION_FAILED')
      }
      expect(started).toBe(1)
      // the resolver answers at last: its error is what a connect reports
      answering = true
      for (const end of held.splice(0)) end()
      const err = await rejection(p.query('select 1'))
      expect(err.message).toContain(`getaddrinfo EAI_AGAIN ${slow}`)
      // a name that resolves (localhost, from /etc/hosts) connects through the shared lookup, cancel included
      const local = poolOver([{ host: 'localhost', port: Number(u.port || 5432) }], 10_000)
      const { rows } = await local.query<{ one: number }>('select 1 as one')
      expect(rows[0]!.one).toBe(1)
      const timedOut = await rejection(local.query('select pg_sleep(30)', [], { timeoutMs: 200 }))
      expect(timedOut.code).toBe('QUERY_TIMEOUT')
      // the cancel request (sent to the name) reached the server: the statement stops
      const sleeping = async (): Promise<number> =>
        Number(
          (
            await local.query<{ n: string }>(
              "select count(*) as n from pg_stat_activity where query = 'select pg_sleep(30)' and application_name = current_setting('application_name') and state = 'active'",
            )
          ).rows[0]!.n,
        )
      for (let i = 0; i < 50 && (await sleeping()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
      expect(await sleeping()).toBe(0)
    } finally {
      ;(dns as { lookup: unknown }).lookup = real
      for (const end of held) end()
    }
  })

  // before (r19c): a failed lookup gave the name itself as the host's address, so net.connect looked it up again
  it('a name whose lookup fails is looked up once per walk, its error reported for that host', async () => {
    const missing = 'no-such-standby.dbpool.test'
    const real = dns.lookup
    let lookups = 0
    ;(dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback?: unknown): void => {
      const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
      if (host !== missing) return void (real as (...args: unknown[]) => void)(host, options, callback)
      lookups++
      setImmediate(() => cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host })))
    }
    try {
      const p = poolOver(
        [
          { host: missing, port: 5432 },
          { host: '127.0.0.1', port: 1 },
        ],
        10_000,
      )
      const err = await rejection(p.query('select 1'))
      expect(err.code).toBe('CONNECTION_FAILED')
      expect(err.message).toContain(`${missing}:5432 CONNECTION_FAILED: failed: getaddrinfo ENOTFOUND ${missing}`)
      expect(lookups).toBe(1)
    } finally {
      ;(dns as { lookup: unknown }).lookup = real
    }
  })

  it('with connect_timeout, each attempt has it whole (libpq), the pool deadline still ends the walk', async () => {
    const first = await silentHost()
    const u = new URL(db.url)
    const config = new DatabaseConfig({
      hosts: [
        { host: '127.0.0.1', port: first },
        { host: u.hostname, port: Number(u.port || 5432) },
      ],
      connectTimeoutMs: 2_000,
      database: db.name,
      username: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      sslMode: 'disable',
      applicationName: uniqueAppName('deadline'),
    })
    const p = createPostgresPool(config, { min: 0, max: 1, name: 'deadline', createTimeoutMs: 20_000, acquireTimeoutMs: 30_000 })
    pools.push(p)
    const { rows } = await p.query<{ one: number }>('select 1 as one')
    expect(rows[0]!.one).toBe(1)
  })
})

// Review r6 item 4: with connect_timeout (per host, libpq) or a manager connectTimeoutMs at least the
// pool's createTimeoutMs, the pool's deadline ended every walk while it still waited on a first host
// that never answers: the second host was never tried, on every connect (libpq fails over). The pool
// now waits as long as the walk's own deadlines allow (connectDeadlineMs).
describe('multi-host connect deadline longer than createTimeoutMs', () => {
  function configOver(hosts: { host: string; port: number }[], connectTimeoutMs = 0): DatabaseConfig {
    const u = new URL(db.url)
    return new DatabaseConfig({
      hosts,
      connectTimeoutMs,
      database: db.name,
      username: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      sslMode: 'disable',
      applicationName: uniqueAppName('deadline'),
    })
  }

  function good(): { host: string; port: number } {
    const u = new URL(db.url)
    return { host: u.hostname, port: Number(u.port || 5432) }
  }

  it('connect_timeout >= createTimeoutMs: the second host is reached after the first one times out, on every connect', async () => {
    const hung = await silentHost()
    const p = createPostgresPool(configOver([{ host: '127.0.0.1', port: hung }, good()], 2_000), {
      min: 0,
      max: 2,
      name: 'deadline',
      createTimeoutMs: 1_500,
      acquireTimeoutMs: 30_000,
    })
    pools.push(p)
    const started = performance.now()
    // two connects at once: each walks from the first host
    const ports = await Promise.all(
      [1, 2].map(() =>
        p.withConnection(async (conn) =>
          Number((await conn.query<{ port: string }>("select current_setting('port') as port")).rows[0]!.port),
        ),
      ),
    )
    expect(ports).toEqual([good().port, good().port])
    expect(p.stats().size).toBe(2)
    // the first host had its connect_timeout whole (libpq), not a share
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_900)
  })

  it('a URL connect_timeout with three hosts, the first two hung: the third is reached', async () => {
    const [a, b] = [await silentHost(), await silentHost()]
    const u = new URL(db.url)
    const url = `postgres://${u.username}:${u.password}@127.0.0.1:${a},127.0.0.1:${b},${u.hostname}:${good().port}/${db.name}?sslmode=disable&connect_timeout=2`
    const p = createPostgresPool(url, { min: 0, max: 1, name: 'deadline', createTimeoutMs: 3_000, acquireTimeoutMs: 30_000 })
    pools.push(p)
    const { rows } = await p.query<{ port: string }>("select current_setting('port') as port")
    expect(Number(rows[0]!.port)).toBe(good().port)
  })

  it('every host hung: the walk gives each its connect_timeout and names them all (not cut at createTimeoutMs)', async () => {
    const [a, b] = [await silentHost(), await silentHost()]
    const p = createPostgresPool(
      configOver(
        [
          { host: '127.0.0.1', port: a },
          { host: '127.0.0.1', port: b },
        ],
        1_500,
      ),
      { min: 0, max: 1, name: 'deadline', createTimeoutMs: 1_000, acquireTimeoutMs: 30_000 },
    )
    pools.push(p)
    const started = performance.now()
    const err = await rejection(p.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(performance.now() - started).toBeGreaterThanOrEqual(2_900)
    // the walk's error or the pool's, whichever deadline fires first (both at 3000 ms): each host named
    expect(err.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${a} CONNECTION_FAILED: timed out after 1500 ms[^;]*; 127\\.0\\.0\\.1:${b} `))
  })

  it('a manager connectTimeoutMs beyond createTimeoutMs (no connect_timeout): shared by the hosts, the second reached', async () => {
    const hung = await silentHost()
    const p = createPostgresPool(
      configOver([{ host: '127.0.0.1', port: hung }, good()]),
      { min: 0, max: 1, name: 'deadline', createTimeoutMs: 1_000, acquireTimeoutMs: 30_000 },
      { connectTimeoutMs: 3_000 },
    )
    pools.push(p)
    const { rows } = await p.query<{ port: string }>("select current_setting('port') as port")
    expect(Number(rows[0]!.port)).toBe(good().port)
  })
})
