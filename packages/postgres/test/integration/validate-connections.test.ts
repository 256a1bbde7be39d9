import { HealthChecker, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn } from './helpers'

// HealthChecker.validateConnections / pool.validateConnections against connections that stop
// answering (a blackholed TCP proxy): every idle connection is checked, the one statement sharing
// keeps between lone pool.query() calls included, each ping within the checker's timeoutMs.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let proxy: TcpProxy | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 200 })
  pool = undefined
  await proxy?.close()
  proxy = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

describe('validateConnections', () => {
  it('checks the connections kept between lone pool.query() calls, each ping bounded by the checker timeoutMs', async () => {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    pool = poolOn(proxy.urlFor(db.url), { min: 2, max: 2 })
    await eventually(() => pool!.stats().size === 2, 10_000, 'the pool to open its 2 connections')
    await Promise.all([pool.query('select pg_sleep(0.05)'), pool.query('select pg_sleep(0.05)')])
    // statement sharing keeps each until the next macrotask: idle to the caller, not in the lane's free list
    expect(pool.stats()).toMatchObject({ size: 2, idle: 2, used: 0 })
    proxy.blackhole()
    const started = performance.now()
    const result = await new HealthChecker({ timeoutMs: 300 }).validateConnections(pool)
    const tookMs = performance.now() - started
    expect(result).toEqual({ checked: 2, evicted: 2 })
    // a ping that does not answer fails at the checker's 300 ms, not at min(createTimeoutMs, 5000) = 5000 ms
    expect(tookMs).toBeLessThan(3_000)
  }, 30_000)

  it('pool.validateConnections refuses a bad timeoutMs or another key with CONFIGURATION', async () => {
    pool = poolOn(db.url, { min: 0, max: 1 })
    await expect(pool.validateConnections({ timeoutMs: 0 })).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(pool.validateConnections({ bogus: 1 } as never)).rejects.toMatchObject({ code: 'CONFIGURATION' })
    expect(await pool.validateConnections({ timeoutMs: 1_000 })).toEqual({ checked: 0, evicted: 0 })
  })
})
