import { type DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@dbpool/testing'
import { Client } from 'pg'
import { poolOn, sleep, uniqueAppName, watchProcess } from './helpers'

/** How long after the server is back a caller may still get the refusal of a connect begun before (ms). */
const READY_GRACE_MS = 250

// A dedicated server (never the shared one) is stopped and started again while callers keep querying.
let server: EmbeddedPostgresServer
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  server = await startEmbeddedPostgres()
}, 120_000)

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await server?.stop()
}, 60_000)

interface Op {
  readonly start: number
  readonly end: number
  readonly error?: DatabaseError
}

it('server stopped and restarted under load: errors only while down, first success within 2 s of it being back, never more than max backends', async () => {
  const watch = watchProcess()
  const max = 5
  const appName = uniqueAppName('restart')
  pool = poolOn(
    server.url,
    { max, min: 2, acquireTimeoutMs: 2_000, createTimeoutMs: 2_000, name: 'restart' },
    {},
    { applicationName: appName },
  )
  const ops: Op[] = []
  let running = true
  const workers = Array.from({ length: 10 }, async () => {
    while (running) {
      const start = performance.now()
      try {
        await pool!.query('select 1')
        ops.push({ start, end: performance.now() })
      } catch (err) {
        ops.push({ start, end: performance.now(), error: err as DatabaseError })
        await sleep(20)
      }
    }
  })
  // counts the pool's backends from outside, whenever the server answers: one monitoring session,
  // opened again after the restart (a connect per sample, with its SCRAM exchange, starved the
  // monitor of samples while the workers kept the process busy)
  let maxBackends = 0
  let samples = 0
  const monitor = (async () => {
    let client: Client | undefined
    while (running) {
      try {
        if (!client) {
          const fresh = new Client({ connectionString: server.url, application_name: 'dbpool-test-monitor' })
          fresh.on('error', () => undefined)
          client = fresh
          await fresh.connect()
        }
        const { rows } = await client.query<{ n: string }>('select count(*) as n from pg_stat_activity where application_name = $1', [
          appName,
        ])
        maxBackends = Math.max(maxBackends, Number(rows[0]!.n))
        samples++
      } catch {
        // down: nothing to count; connect again next time
        await client?.end().catch(() => undefined)
        client = undefined
      }
      await sleep(50)
    }
    await client?.end().catch(() => undefined)
  })()

  await sleep(1_000)
  const stopAt = performance.now()
  await server.stopServer()
  await sleep(1_500)
  await server.startServer()
  const readyAt = performance.now()
  await sleep(3_000)
  running = false
  await Promise.all([...workers, monitor])
  watch.stop()

  const before = ops.filter((o) => o.end < stopAt)
  const errors = ops.filter((o) => o.error)
  const firstSuccessAfter = ops.filter((o) => !o.error && o.end >= readyAt).sort((a, b) => a.end - b.end)[0]
  expect(before.length).toBeGreaterThan(100)
  expect(before.every((o) => !o.error)).toBe(true)
  expect(errors.length).toBeGreaterThan(0)
  for (const op of errors) {
    // every failure surfaced after the stop began, from an attempt that started before the server was
    // back (or within READY_GRACE_MS of it: a connect begun while the server was down fails the oldest
    // waiting caller when it is refused, pg-pool's fail-fast rule, and under load that answer can come
    // a little after the restart)
    expect(op.end).toBeGreaterThanOrEqual(stopAt)
    expect(op.start).toBeLessThanOrEqual(readyAt + READY_GRACE_MS)
    expect(['CONNECTION_LOST', 'CONNECTION_FAILED']).toContain(op.error?.code)
    expect(op.error?.retryable).toBe(true)
  }
  expect(firstSuccessAfter).toBeDefined()
  const recoveryMs = firstSuccessAfter!.end - readyAt
  expect(recoveryMs).toBeLessThan(2_000)
  expect(ops.filter((o) => o.start > readyAt + READY_GRACE_MS && o.error)).toEqual([])
  // enough samples for maxBackends to mean something (about 80 on an idle machine; 20 seen at load 14)
  expect(samples).toBeGreaterThan(5)
  expect(maxBackends).toBeLessThanOrEqual(max)
  expect(watch.failures).toEqual([])
  const errorWindow = Math.max(...errors.map((o) => o.end)) - stopAt
  process.stdout.write(
    `restart: ${ops.length} ops, ${errors.length} errors within ${errorWindow.toFixed(0)} ms of the stop (down ${(readyAt - stopAt).toFixed(0)} ms), ` +
      `first success ${recoveryMs.toFixed(0)} ms after the server was back, max ${maxBackends} backends (${samples} samples)\n`,
  )
}, 60_000)
