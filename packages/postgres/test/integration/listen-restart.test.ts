import type { DatabasePool } from '@dbpool/core'
import { listen, notify, type PostgresConnection, type ReconnectInfo } from '@dbpool/postgres'
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@dbpool/testing'
import { poolOn, sleep, watchProcess } from './helpers'

// A dedicated server (never the shared one) is stopped and started again under a subscription.
let server: EmbeddedPostgresServer
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  server = await startEmbeddedPostgres()
}, 120_000)

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await server?.stop()
}, 60_000)

it('after a server restart the subscription listens again (reconnect event) and notifications arrive within 2 s of the server being back', async () => {
  const watch = watchProcess()
  pool = poolOn(server.url, { min: 0, max: 2, acquireTimeoutMs: 2_000, createTimeoutMs: 2_000, name: 'listen-restart' })
  const received: string[] = []
  const subscription = await listen(pool, 'restart_channel', (payload) => void received.push(payload))
  const reconnects: ReconnectInfo[] = []
  subscription.on('reconnect', (info) => reconnects.push(info))
  const errors: unknown[] = []
  subscription.on('error', (err) => errors.push(err))
  await notify(pool, 'restart_channel', 'before')
  for (let i = 0; i < 100 && received.length === 0; i++) await sleep(20)
  expect(received).toEqual(['before'])

  await server.stopServer()
  await sleep(1_500)
  expect(pool.stats().dedicated).toBe(0)
  await server.startServer()
  const readyAt = performance.now()
  let arrivedMs = -1
  for (let n = 1; performance.now() - readyAt < 5_000; n++) {
    try {
      await notify(pool, 'restart_channel', `after ${n}`)
    } catch {
      // the pool's own connections reconnect too
    }
    if (received.length > 1) {
      arrivedMs = performance.now() - readyAt
      break
    }
    await sleep(50)
  }
  expect(arrivedMs).toBeGreaterThanOrEqual(0)
  expect(arrivedMs).toBeLessThan(2_000)
  expect(reconnects).toHaveLength(1)
  expect(reconnects[0]!.downMs).toBeGreaterThanOrEqual(1_000)
  expect(pool.stats().dedicated).toBe(1)
  watch.stop()
  expect(watch.failures).toEqual([])
  process.stdout.write(
    `listen restart: notifications again ${arrivedMs.toFixed(0)} ms after the server was back (${reconnects[0]!.attempts} attempts, ${errors.length} failed attempts reported)\n`,
  )
}, 60_000)
