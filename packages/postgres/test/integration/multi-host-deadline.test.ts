import { createServer, type Server, type Socket } from 'node:net'
import { DatabaseConfig, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { rejection, uniqueAppName } from './helpers'

// A multi-host target without connect_timeout: the connect deadline (createTimeoutMs) is split among
// the hosts, so a first host that accepts TCP and never answers (a hung old primary) leaves time
// for the next one. Silent TCP servers stand for the hung hosts; the shared test server is the good one.
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
async function silentHost(): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
  })
  servers.push({ server, sockets })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

function poolOver(hosts: { host: string; port: number }[], createTimeoutMs: number): DatabasePool<PostgresConnection> {
  const u = new URL(db.url)
  const config = new DatabaseConfig({
    hosts,
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
  it('a first host that never answers leaves time for the second: each host gets createTimeoutMs ÷ hosts (at least 2 s)', async () => {
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
    // the first host's share ran out (2000 ms), then the second was tried: named, whichever deadline came first
    expect(err.message).toMatch(
      new RegExp(`tried 127\\.0\\.0\\.1:${first} CONNECTION_FAILED: timed out after 2000 ms[^;]*; 127\\.0\\.0\\.1:${second} `),
    )
    expect(err.message).not.toContain(decodeURIComponent(new URL(db.url).password))
  })
})
