import { createServer, connect, Socket, type Server } from 'node:net'
import type { DatabaseError, DatabasePool, PoolLogger } from '@dbpool/core'
import { listen, notify, type PostgresConnection, type ReconnectInfo, type Subscription } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, sleep } from './helpers'

// How the LISTEN connection reports what goes wrong with it: a failed reconnect attempt is one line on
// the pool's logger per attempt (not one per subscription), and a process warning only without a
// logger, at most one a minute; a silent partition is noticed by its liveness check.
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

  /** Terminates the LISTEN connection of `channel` (pg_terminate_backend) and waits for the pool to be listening again. */
  async function terminateListener(channel: string, back: () => boolean): Promise<void> {
    await eventually(
      async () =>
        (
          await admin(db.url, (c) =>
            c.query(`select pg_terminate_backend(pid) from pg_stat_activity where query like $1 and pid <> pg_backend_pid()`, [
              `LISTEN "${channel}"%`,
            ]),
          )
        ).rowCount! > 0,
      10_000,
      'the LISTEN backend',
    )
    await eventually(back, 10_000, 'the LISTEN connection back')
  }

  it('a loss nobody hears (no reconnect listener, no logger): one process warning when it is back, saying notifications were lost', async () => {
    pool = poolOn(db.url, { min: 0, max: 1, name: 'listen-loss' })
    subs = [await listen(pool, 'loss_ch', () => undefined)]
    subs[0]!.on('error', () => undefined) // an error listener alone does not hear the loss
    await terminateListener('loss_ch', () => listenWarnings().length > 0)
    expect(String(listenWarnings()[0])).toMatch(
      /listen\("loss_ch"\): the LISTEN connection was lost and is back .*notifications sent meanwhile were lost/,
    )
  })

  it('a loss heard through reconnect, or logged: no process warning', async () => {
    pool = poolOn(db.url, { min: 0, max: 1, name: 'listen-loss' })
    const reconnects: ReconnectInfo[] = []
    subs = [await listen(pool, 'heard_ch', () => undefined)]
    subs[0]!.on('reconnect', (info) => reconnects.push(info))
    await terminateListener('heard_ch', () => reconnects.length > 0)
    await subs[0]!.unlisten()
    await pool.close()
    const lines: Line[] = []
    pool = poolOn(db.url, { min: 0, max: 1, name: 'listen-loss' }, { logger: capturingLogger(lines) })
    subs = [await listen(pool, 'logged_ch', () => undefined)]
    await terminateListener('logged_ch', () => lines.some((l) => l.obj.event === 'listen' && l.level === 'info'))
    await sleep(200)
    expect(listenWarnings()).toEqual([])
  })

  it('a handler that throws with nobody listening to error: a logger line with a logger, else one process warning a minute', async () => {
    const lines: Line[] = []
    pool = poolOn(db.url, { min: 0, max: 1, name: 'listen-handler' }, { logger: capturingLogger(lines) })
    const throwing = (): never => {
      throw new Error('handler broke')
    }
    subs = [await listen(pool, 'handler_ch', throwing)]
    for (let i = 0; i < 3; i++) await pool.query('select pg_notify($1, $2)', ['handler_ch', String(i)])
    const handlerLines = (): Line[] => lines.filter((l) => l.obj.event === 'listen' && l.msg.includes('handler'))
    await eventually(() => handlerLines().length === 3, 10_000, 'three logger lines')
    expect((handlerLines()[0]!.obj.err as { code: string }).code).toBe('QUERY_FAILED')
    expect(listenWarnings()).toEqual([])
    await subs[0]!.unlisten()
    await pool.close()
    pool = poolOn(db.url, { min: 0, max: 1, name: 'listen-handler' })
    subs = [await listen(pool, 'handler_ch', throwing)]
    for (let i = 0; i < 3; i++) await pool.query('select pg_notify($1, $2)', ['handler_ch', String(i)])
    await eventually(() => listenWarnings().length >= 1, 10_000, 'a process warning')
    await sleep(300)
    expect(listenWarnings()).toHaveLength(1)
  })
})

describe('the LISTEN connection behind a silent partition (no RST, no FIN: bytes just stop)', () => {
  it('its liveness check notices within keepaliveIntervalMs + cancelTimeoutMs: error CONNECTION_LOST, then reconnect once the network is back', async () => {
    const target = new URL(db.url)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const pool = poolOn(
      proxy.urlFor(db.url),
      { min: 0, max: 1, name: 'listen-partition', keepaliveIntervalMs: 300 },
      { cancelTimeoutMs: 500, connectTimeoutMs: 1_000 },
    )
    const direct = poolOn(db.url, { min: 0, max: 1, name: 'listen-partition-notify' })
    const received: string[] = []
    const errors: DatabaseError[] = []
    const reconnects: ReconnectInfo[] = []
    try {
      const sub = await listen(pool, 'partition_ch', (payload) => received.push(payload))
      sub.on('error', (err) => errors.push(err)).on('reconnect', (info) => reconnects.push(info))
      await notify(direct, 'partition_ch', 'before')
      await eventually(() => received.includes('before'), 10_000, 'the first notification')
      proxy.blackhole()
      // the old code never noticed: no event at all, however long the partition
      await eventually(() => errors.some((e) => e.code === 'CONNECTION_LOST'), 15_000, 'the liveness check to fail')
      expect(errors.find((e) => e.code === 'CONNECTION_LOST')!.message).toContain('liveness check (SELECT 1 not answered within 500 ms')
      expect(pool.stats().dedicated).toBe(0)
      proxy.resume()
      await eventually(() => reconnects.length > 0, 20_000, 'reconnect')
      expect(pool.stats().dedicated).toBe(1)
      await notify(direct, 'partition_ch', 'after')
      await eventually(() => received.includes('after'), 10_000, 'a notification after the reconnect')
      await sub.unlisten()
    } finally {
      await pool.close({ timeoutMs: 2_000 })
      await direct.close()
      await proxy.close()
    }
  })
})

describe('the event loop blocked past the liveness deadline (a long synchronous handler, a busy host)', () => {
  it('does not make the healthy LISTEN connection look dead: the answer received meanwhile is read first (no error, no reconnect)', async () => {
    const pool = poolOn(db.url, { min: 0, max: 1, name: 'listen-blocked', keepaliveIntervalMs: 200 }, { cancelTimeoutMs: 150 })
    const direct = poolOn(db.url, { min: 0, max: 1, name: 'listen-blocked-notify' })
    const received: string[] = []
    const errors: DatabaseError[] = []
    const reconnects: ReconnectInfo[] = []
    // once a liveness SELECT 1 is on the wire: the loop blocks (after this turn's I/O) past its
    // deadline while the answer arrives, as a handler of another notification would block it
    let blocks = 0
    const write = Socket.prototype.write
    const spy = jest.spyOn(Socket.prototype, 'write').mockImplementation(function (this: Socket, ...args: unknown[]) {
      const chunk = args[0]
      if (blocks < 1 && Buffer.isBuffer(chunk) && chunk.includes('SELECT 1\0')) {
        blocks++
        setImmediate(() => {
          const end = Date.now() + 400
          while (Date.now() < end);
        })
      }
      return (write as (...a: unknown[]) => boolean).apply(this, args)
    })
    try {
      const sub = await listen(pool, 'blocked_ch', (payload) => received.push(payload))
      sub.on('error', (err) => errors.push(err)).on('reconnect', (info) => reconnects.push(info))
      await eventually(() => blocks >= 1, 10_000, 'a liveness check with a blocked loop')
      // several more checks (every 200 ms) on the same connection
      await sleep(1_000)
      spy.mockRestore()
      expect({ errors: errors.map((e) => e.message), reconnects: reconnects.length }).toEqual({ errors: [], reconnects: 0 })
      await notify(direct, 'blocked_ch', 'after')
      await eventually(() => received.includes('after'), 10_000, 'a notification on the same connection')
      await sub.unlisten()
    } finally {
      spy.mockRestore()
      await pool.close({ timeoutMs: 2_000 })
      await direct.close()
    }
  })
})

describe('close() and the last unlisten() while the LISTEN connection reconnects to a host that does not answer', () => {
  /** Resolves 'done' when `promise` settles, 'pending' after `ms` (far below the 60 s connect timeout). */
  function settlesWithin(promise: Promise<unknown>, ms: number): Promise<'done' | 'pending'> {
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      promise.then(
        () => 'done' as const,
        () => 'done' as const,
      ),
      new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms))),
    ]).finally(() => clearTimeout(timer))
  }

  /** A pool LISTENing through a proxy that then drops every connection and blackholes the new ones: its reconnect hangs. */
  async function reconnecting(name: string) {
    const target = new URL(db.url)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    // the old code waited for the connect attempt: up to its 60 s deadline
    const pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name, createTimeoutMs: 60_000 }, { connectTimeoutMs: 60_000 })
    const sub = await listen(pool, `${name}_ch`, () => undefined)
    const errors: DatabaseError[] = []
    sub.on('error', (err) => errors.push(err))
    proxy.blackhole()
    const before = proxy.connections
    proxy.resetAll()
    // the reconnect attempt is in flight once the proxy holds a new connection
    await eventually(() => proxy.connections > 0 && proxy.connections <= before, 10_000, 'the reconnect attempt')
    await sleep(200)
    return { pool, sub, proxy, errors }
  }

  it('pool.close({ timeoutMs }) abandons the reconnect (was: waited for its connect timeout)', async () => {
    const { pool, proxy } = await reconnecting('listen_close_rc')
    try {
      expect(await settlesWithin(pool.close({ timeoutMs: 1_000 }), 10_000)).toBe('done')
      await eventually(() => proxy.connections === 0, 5_000, 'the abandoned socket to be closed')
    } finally {
      await pool.close()
      await proxy.close()
    }
  })

  it('the last unlisten() abandons it too, with no error event for it', async () => {
    const { pool, sub, proxy, errors } = await reconnecting('listen_unlisten_rc')
    try {
      const before = errors.length
      expect(await settlesWithin(sub.unlisten(), 10_000)).toBe('done')
      expect(pool.stats().dedicated).toBe(0)
      await eventually(() => proxy.connections === 0, 5_000, 'the abandoned socket to be closed')
      await sleep(300)
      expect(errors.length).toBe(before)
    } finally {
      await pool.close({ timeoutMs: 1_000 })
      await proxy.close()
    }
  })
})
