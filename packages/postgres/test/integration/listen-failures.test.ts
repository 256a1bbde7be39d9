import { createServer, connect, type Server, type Socket } from 'node:net'
import type { DatabasePool, PoolLogger } from '@dbpool/core'
import { listen, type PostgresConnection, type Subscription } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, sleep } from './helpers'

// How the LISTEN connection reports what goes wrong with it: a failed reconnect attempt is one line on
// the pool's logger per attempt (not one per subscription), and a process warning only without a
// logger, at most one a minute.
let db: TestDatabase
jest.setTimeout(60_000)

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** A TCP forwarder to the test server that can stop accepting (ECONNREFUSED) and start again on its port. */
async function forwarder(): Promise<{ url: string; stop(): Promise<void>; start(): Promise<void> }> {
  const target = new URL(db.url)
  const sockets = new Set<Socket>()
  const make = (): Server =>
    createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('error', () => undefined)
        s.on('close', () => sockets.delete(s))
      }
      client.pipe(upstream).pipe(client)
    })
  let server = make()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const url = new URL(db.url)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return {
    url: url.toString(),
    async stop() {
      const closed = new Promise((resolve) => server.close(resolve))
      for (const s of sockets) s.destroy()
      await closed
    },
    async start() {
      server = make()
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    },
  }
}

interface Line {
  readonly level: string
  readonly obj: Record<string, unknown>
  readonly msg: string
}

function capturingLogger(lines: Line[]): PoolLogger {
  const at =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push({ level, obj, msg })
    }
  return { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

describe('failed LISTEN reconnect attempts', () => {
  let warn: jest.SpyInstance
  let pool: DatabasePool<PostgresConnection> | undefined
  let subs: Subscription[] = []

  beforeEach(() => {
    warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
  })

  afterEach(async () => {
    warn.mockRestore()
    for (const s of subs) await s.unlisten()
    subs = []
    await pool?.close({ timeoutMs: 5_000 })
  })

  const listenWarnings = (): unknown[] => warn.mock.calls.filter((call) => String(call[0]).includes('listen('))

  it('with a logger: one warn line per attempt (not per subscription), no process warning', async () => {
    const proxy = await forwarder()
    const lines: Line[] = []
    pool = poolOn(proxy.url, { min: 0, max: 1, name: 'listen-fail' }, { logger: capturingLogger(lines) })
    subs = await Promise.all(['a', 'b', 'c'].map((channel) => listen(pool!, channel, () => undefined)))
    await proxy.stop()
    const failed = (): Line[] => lines.filter((l) => l.obj.event === 'listen' && l.level === 'warn' && l.obj.attempt !== undefined)
    await eventually(() => failed().length >= 3, 20_000, 'three failed reconnect attempts')
    const attempts = failed().map((l) => l.obj.attempt)
    expect(new Set(attempts).size).toBe(attempts.length) // each attempt once
    expect(failed()[0]!.obj.channels).toEqual(['a', 'b', 'c'])
    expect((failed()[0]!.obj.err as { code: string }).code).toBe('CONNECTION_FAILED')
    expect(listenWarnings()).toEqual([])
    await proxy.start()
    await eventually(() => lines.some((l) => l.obj.event === 'listen' && l.level === 'info'), 20_000, 'the reconnect line')
    await proxy.stop()
  })

  it('without a logger and without error listeners: at most one process warning a minute, naming every channel', async () => {
    const proxy = await forwarder()
    pool = poolOn(proxy.url, { min: 0, max: 1, name: 'listen-fail' })
    subs = await Promise.all(['a', 'b', 'c'].map((channel) => listen(pool!, channel, () => undefined)))
    const errors: unknown[] = []
    await proxy.stop()
    await eventually(() => listenWarnings().length >= 1, 20_000, 'a process warning')
    // several more attempts fail meanwhile (backoff up to 800 ms)
    await sleep(3_000)
    expect(listenWarnings()).toHaveLength(1)
    expect(String(listenWarnings()[0])).toContain('listen("a", "b", "c")')
    // an error listener still gets every attempt
    subs[0]!.on('error', (err) => errors.push(err))
    await eventually(() => errors.length >= 2, 20_000, 'error events')
    await proxy.start()
    await proxy.stop()
  })
})
