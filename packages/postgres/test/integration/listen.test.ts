import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { DatabaseConfig, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, listen, notify, type PostgresConnection, type ReconnectInfo } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, rejection, sleep, uniqueAppName, watchProcess } from './helpers'

// LISTEN/NOTIFY: one dedicated connection per pool outside the lanes, safe channel quoting, reconnect
// after pg_terminate_backend, unlisten()/close() ending it so the process can exit.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>
let appName: string

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

beforeEach(() => {
  appName = uniqueAppName('listen')
  pool = poolOn(db.url, { min: 0, max: 2, name: 'listen' }, {}, { applicationName: appName })
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** Collects payloads; `next()` resolves with the next one (fails after `timeoutMs`). */
function inbox(): { handler: (payload: string) => void; received: string[]; next(timeoutMs?: number): Promise<string> } {
  const received: string[] = []
  let read = 0
  return {
    received,
    handler: (payload) => received.push(payload),
    async next(timeoutMs = 5_000) {
      await eventually(() => received.length > read, timeoutMs, 'a notification')
      return received[read++]!
    },
  }
}

async function listenerPid(): Promise<number> {
  let pid = 0
  await eventually(
    async () => {
      const rows = await admin(
        db.url,
        async (c) =>
          (
            await c.query<{ pid: number }>("select pid from pg_stat_activity where application_name = $1 and query ilike 'listen%'", [
              appName,
            ])
          ).rows,
      )
      pid = rows[0]?.pid ?? 0
      return rows.length === 1
    },
    5_000,
    'the listening backend',
  )
  return pid
}

it('delivers notifications on a dedicated connection outside the lanes, shown in stats().dedicated; unlisten() closes it', async () => {
  const box = inbox()
  const subscription = await listen(pool, 'jobs', box.handler)
  expect(pool.stats().dedicated).toBe(1)
  expect(pool.stats().used).toBe(0)
  await notify(pool, 'jobs', 'job 1')
  await pool.transaction(async (tx) => {
    await tx.query("select pg_notify('jobs', 'job 2')")
  })
  expect(await box.next()).toBe('job 1')
  expect(await box.next()).toBe('job 2')
  await subscription.unlisten()
  await subscription.unlisten()
  expect(pool.stats().dedicated).toBe(0)
  await notify(pool, 'jobs', 'job 3')
  await sleep(200)
  expect(box.received).toEqual(['job 1', 'job 2'])
})

it('quotes channel names as identifiers: case, spaces, quotes and semicolons are one channel, nothing injected', async () => {
  const channel = 'Weird "chan"; drop table x; --'
  const box = inbox()
  await listen(pool, channel, box.handler)
  const lower = inbox()
  await listen(pool, 'weird', lower.handler)
  await notify(pool, channel, 'payload with \'quotes\' and "doubles"')
  expect(await box.next()).toBe('payload with \'quotes\' and "doubles"')
  await sleep(100)
  expect(lower.received).toEqual([])
  expect(pool.stats().dedicated).toBe(1)
})

it('several handlers share a channel; one unlisten keeps the others; a throwing handler does not stop delivery', async () => {
  const first = inbox()
  const second = inbox()
  const a = await listen(pool, 'shared', first.handler)
  await listen(pool, 'shared', second.handler)
  const errors: unknown[] = []
  const thrower = await listen(pool, 'shared', () => {
    throw new Error('handler bug')
  })
  thrower.on('error', (err) => errors.push(err))
  await notify(pool, 'shared', 'one')
  expect(await first.next()).toBe('one')
  expect(await second.next()).toBe('one')
  await a.unlisten()
  await notify(pool, 'shared', 'two')
  expect(await second.next()).toBe('two')
  await sleep(100)
  expect(first.received).toEqual(['one'])
  expect(errors).toHaveLength(2)
})

it('an async handler that rejects is an error event, not an unhandled rejection ending the process', async () => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
  // jest installs its own handler; ours records what would have ended a plain Node process
  process.on('unhandledRejection', onUnhandled)
  try {
    const errors: { cause?: unknown }[] = []
    const box = inbox()
    const failing = await listen(pool, 'async_jobs', async (payload) => {
      await sleep(1)
      throw new Error(`async handler bug ${payload}`)
    })
    failing.on('error', (err) => errors.push(err))
    await listen(pool, 'async_jobs', box.handler)
    // the handler type stays `=> void`: a handler returning a value (the README's cache.delete) type-checks
    const cache = new Map<string, number>()
    await listen(pool, 'async_jobs', (payload) => cache.delete(payload))
    await notify(pool, 'async_jobs', 'one')
    await notify(pool, 'async_jobs', 'two')
    expect(await box.next()).toBe('one')
    expect(await box.next()).toBe('two')
    await eventually(() => errors.length === 2, 2_000, 'both rejections as error events')
    await sleep(50)
    expect(unhandled).toEqual([])
    expect((errors[0]?.cause as Error).message).toBe('async handler bug one')
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
})

it('after pg_terminate_backend of the listening connection it reconnects, listens again and emits reconnect; notifications arrive within 2 s', async () => {
  const watch = watchProcess()
  const box = inbox()
  const subscription = await listen(pool, 'after_kill', box.handler)
  const other = inbox()
  await listen(pool, 'second_channel', other.handler)
  const reconnects: ReconnectInfo[] = []
  subscription.on('reconnect', (info) => reconnects.push(info))
  const pid = await listenerPid()
  await admin(db.url, (c) => c.query('select pg_terminate_backend($1)', [pid]))
  const killedAt = performance.now()
  // notify until one arrives: what is sent while the connection is down is lost (reconnect says so)
  let sent = 0
  while (box.received.length === 0 && performance.now() - killedAt < 5_000) {
    await notify(pool, 'after_kill', `n${++sent}`)
    await sleep(50)
  }
  const arrivedMs = performance.now() - killedAt
  expect(box.received.length).toBeGreaterThan(0)
  expect(arrivedMs).toBeLessThan(2_000)
  expect(reconnects).toHaveLength(1)
  expect(reconnects[0]!.attempts).toBeGreaterThanOrEqual(1)
  await notify(pool, 'second_channel', 'also back')
  expect(await other.next()).toBe('also back')
  expect((await listenerPid()) === pid).toBe(false)
  expect(pool.stats().dedicated).toBe(1)
  watch.stop()
  expect(watch.failures).toEqual([])
  process.stdout.write(`listen: notifications again ${arrivedMs.toFixed(0)} ms after pg_terminate_backend\n`)
})

it('refuses bad channels and handlers with CONFIGURATION; a pgbouncer: true pool refuses listen() (notify works)', async () => {
  expect((await rejection(listen(pool, '', () => undefined))).code).toBe('CONFIGURATION')
  expect((await rejection(listen(pool, 'x'.repeat(64), () => undefined))).code).toBe('CONFIGURATION')
  expect((await rejection(listen(pool, 'ok', 'nope' as never))).code).toBe('CONFIGURATION')
  expect((await rejection(notify(pool, 'a\u0000b', 'x'))).code).toBe('CONFIGURATION')
  expect((await rejection(notify(pool, 'ok', 5 as never))).code).toBe('INVALID_PARAMETER')
  const bouncer = createPostgresPool(DatabaseConfig.fromUrl(db.url, { pgbouncer: true, sslMode: 'disable' }), { min: 0, name: 'bouncer' })
  try {
    const refused = await rejection(listen(bouncer, 'jobs', () => undefined))
    expect(refused.code).toBe('CONFIGURATION')
    expect(refused.message).toContain('PgBouncer')
    await notify(bouncer, 'jobs', 'fine')
  } finally {
    await bouncer.close()
  }
  // the manager option decides: 'transaction' refuses, 'session' (a session of its own) allows
  const byOption = createPostgresPool(
    DatabaseConfig.fromUrl(db.url, { sslMode: 'disable' }),
    { min: 0, name: 'bouncer' },
    { pgbouncer: 'transaction' },
  )
  const sessionMode = createPostgresPool(
    DatabaseConfig.fromUrl(db.url, { pgbouncer: true, sslMode: 'disable' }),
    { min: 0, name: 'bouncer' },
    { pgbouncer: 'session' },
  )
  try {
    expect((await rejection(listen(byOption, 'jobs', () => undefined))).code).toBe('CONFIGURATION')
    const subscription = await listen(sessionMode, 'jobs', () => undefined)
    await subscription.unlisten()
  } finally {
    await byOption.close()
    await sessionMode.close()
  }
})

it('notify() takes timeoutMs and signal as its statement options and refuses any other 4th argument before sending', async () => {
  const box = inbox()
  const sub = await listen(pool, 'notify_options', box.handler)
  try {
    await notify(pool, 'notify_options', 'with a deadline', { timeoutMs: 5_000, signal: new AbortController().signal })
    expect(await box.next()).toBe('with a deadline')
    const aborted = new AbortController()
    aborted.abort(new Error('stop'))
    const cancelled = await rejection(notify(pool, 'notify_options', 'never sent', { signal: aborted.signal }))
    expect(cancelled.code).not.toBe('CONFIGURATION')
    for (const [options, option] of [
      [{ bogus: 1 }, 'notify.bogus'],
      [{ timeoutMs: 0 }, 'notify.timeoutMs'],
      [{ timeoutMs: '5' }, 'notify.timeoutMs'],
      [{ signal: {} }, 'notify.signal'],
      ['x', 'notify options'],
      [new Map(), 'notify options'],
    ] as const) {
      const err = await rejection(notify(pool, 'notify_options', 'never sent', options as never))
      expect([option, err.code, err.message.startsWith(`invalid ${option} `)]).toEqual([option, 'CONFIGURATION', true])
    }
    // listen() takes no options: a 4th argument is refused, not ignored
    const looseListen = listen as (...a: unknown[]) => Promise<unknown>
    const refused = await rejection(looseListen(pool, 'notify_options', () => undefined, { bogus: 1 }))
    expect([refused.code, refused.message.startsWith('invalid listen argument ')]).toEqual(['CONFIGURATION', true])
    await notify(pool, 'notify_options', 'last')
    expect(await box.next()).toBe('last')
    expect(box.received).toEqual(['with a deadline', 'last'])
  } finally {
    await sub.unlisten()
  }
})

it('pool.close() ends the dedicated connection; listen() after close is POOL_CLOSED', async () => {
  await listen(pool, 'closing', () => undefined)
  const pid = await listenerPid()
  await pool.close()
  await eventually(
    async () => (await admin(db.url, async (c) => (await c.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount)) === 0,
    5_000,
    'the listening backend to end',
  )
  expect((await rejection(listen(pool, 'closing', () => undefined))).code).toBe('POOL_CLOSED')
})

describe('the process exits once the subscription ends', () => {
  const fixtures = join(__dirname, '..', 'fixtures')
  const repoRoot = join(__dirname, '..', '..', '..', '..')

  it.each(['unlisten', 'close'])(
    'by %s()',
    async (mode) => {
      const child = spawn(
        process.execPath,
        ['-r', 'ts-node/register', '-r', join(fixtures, 'register-sources.ts'), join(fixtures, 'listen-child.ts'), db.url, mode],
        {
          cwd: repoRoot,
          env: { ...process.env, TS_NODE_PROJECT: join(repoRoot, 'tsconfig.jest.json'), TS_NODE_TRANSPILE_ONLY: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let out = ''
      let err = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
      const code = await new Promise<number | null | 'running'>((resolve) => {
        const timer = setTimeout(() => resolve('running'), 45_000)
        child.once('exit', (exitCode) => {
          clearTimeout(timer)
          resolve(exitCode)
        })
      })
      if (code === 'running') child.kill('SIGKILL')
      expect({ code, err }).toEqual({ code: 0, err: '' })
      expect(out).toContain('listening, dedicated 1')
      expect(out).toContain('received hello')
      expect(out).toContain(`ended by ${mode}`)
    },
    60_000,
  )
})
