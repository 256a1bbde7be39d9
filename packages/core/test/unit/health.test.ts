import { DatabaseError, HealthChecker, worstStatus } from '@dbpool/core'
import { makePool, waitFor } from './helpers'

describe('HealthChecker', () => {
  it.each<[string, object, RegExp]>([
    [
      'a timeoutMs beyond a timer',
      { timeoutMs: 2 ** 31 },
      /^invalid health\.timeoutMs 2147483648: must be an integer between 1 and 2147483647/,
    ],
    ['a negative timeoutMs', { timeoutMs: -1 }, /^invalid health\.timeoutMs -1/],
    ['a NaN timeoutMs', { timeoutMs: Number.NaN }, /^invalid health\.timeoutMs NaN/],
    ['a degradedUtilization above 1', { degradedUtilization: 2 }, /^invalid health\.degradedUtilization 2/],
    ['a deep that is not a boolean', { deep: 'yes' }, /^invalid health\.deep "yes"/],
    ['an unknown key', { timeout: 5 }, /^invalid health\.timeout 5: unknown option/],
  ])('refuses %s with CONFIGURATION naming the option', (_what, options, message) => {
    let caught: unknown
    try {
      new HealthChecker(options as never)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(DatabaseError)
    expect((caught as DatabaseError).code).toBe('CONFIGURATION')
    expect((caught as DatabaseError).message).toMatch(message)
  })

  it('reports healthy with latencies and stats', async () => {
    const { pool } = makePool({ name: 'h' })
    const report = await new HealthChecker().check(pool)
    expect(report).toMatchObject({ pool: 'h', backend: 'postgres', target: 'fake://test', status: 'healthy' })
    expect(report.checks.map((c) => c.name)).toEqual(['ping', 'saturation'])
    expect(typeof report.latencyMs).toBe('number')
    expect(report.stats.max).toBe(2)
  })

  it('reports unhealthy, never throwing, when it cannot connect', async () => {
    const { pool, manager } = makePool()
    manager.connectFault = { kind: 'fail', error: new DatabaseError('CONNECTION_FAILED', 'refused') }
    const report = await new HealthChecker().check(pool)
    expect(report.status).toBe('unhealthy')
    expect(report.checks[0]).toMatchObject({ name: 'ping', status: 'unhealthy', data: { code: 'CONNECTION_FAILED' } })
  })

  it('is bounded by its timeout when the database hangs', async () => {
    const { pool, manager } = makePool({ acquireTimeoutMs: 10_000, createTimeoutMs: 10_000 })
    manager.connectFault = { kind: 'hang' }
    const started = Date.now()
    const report = await new HealthChecker({ timeoutMs: 50 }).check(pool)
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(report.status).toBe('unhealthy')
    expect(report.checks[0]?.name).toBe('deadline')
    expect(report.checks[0]?.message).toMatch(/did not finish within 50 ms/)
    // the ping left the queue before the check answered: no waiter outlives it
    expect(report.checks[0]?.data).toEqual({ code: 'ACQUIRE_TIMEOUT' })
    expect(pool.stats().pending).toBe(0)
    await pool.close({ timeoutMs: 100 })
  })

  it('reports degraded when saturated with callers waiting', async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 2_000 })
    const releases: (() => void)[] = []
    const holders = [0, 1].map(() => pool.withConnection(() => new Promise<void>((r) => releases.push(r))))
    await waitFor(() => pool.stats().used === 2)
    const report = new HealthChecker({ timeoutMs: 1_000 }).check(pool)
    await waitFor(() => pool.stats().pending === 1)
    // free one connection for the ping while another caller keeps waiting
    const waiter = pool.query('select waiting')
    releases.shift()!()
    const result = await report
    releases.shift()!()
    await Promise.all([...holders, waiter])
    expect(result.checks.find((c) => c.name === 'ping')?.status).toBe('healthy')
    expect(['degraded', 'healthy']).toContain(result.status)
  })

  // a merely busy pool (every connection leased by a long transaction) was unhealthy (deadline, 503):
  // under load every replica of a service left its load balancer together
  it('reports a pool whose every connection is leased as degraded (saturation), not unhealthy, when the ping gets none', async () => {
    const { pool } = makePool({ max: 1, min: 0, acquireTimeoutMs: 10_000 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    const report = await new HealthChecker({ timeoutMs: 50 }).check(pool)
    release()
    await holder
    expect(report.status).toBe('degraded')
    expect(report.checks).toEqual([
      expect.objectContaining({ name: 'saturation', status: 'degraded', data: expect.objectContaining({ code: 'ACQUIRE_TIMEOUT' }) }),
    ])
    expect(report.checks[0]?.message).toMatch(/all 1\/1 connections are in use/)
    await pool.close()
  })

  // review r13 D4: a probe refused because the wait queue was full (POOL_EXHAUSTED) was unhealthy, while
  // the same pool a little less busy (the probe timing out in the queue) was degraded
  it('reports a pool whose wait queue is full (POOL_EXHAUSTED) as degraded (saturation), not unhealthy', async () => {
    const { pool } = makePool({ max: 1, min: 0, acquireTimeoutMs: 10_000, maxWaitingClients: 2 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    const waiting = [pool.query('select 1'), pool.query('select 1')]
    await waitFor(() => pool.stats().pending === 2)
    const report = await new HealthChecker({ timeoutMs: 200 }).check(pool)
    release()
    await Promise.all([holder, ...waiting])
    expect(report.status).toBe('degraded')
    expect(report.checks).toEqual([
      expect.objectContaining({
        name: 'saturation',
        status: 'degraded',
        data: expect.objectContaining({ code: 'POOL_EXHAUSTED', pending: 2 }),
      }),
    ])
    expect(report.checks[0]?.message).toMatch(/wait queue is full/)
    await pool.close()
  })

  it('stays unhealthy when the ping gets no connection because connects fail, even with every open one leased', async () => {
    const { pool, manager } = makePool({ max: 2, min: 0, acquireTimeoutMs: 10_000 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    manager.connectFault = { kind: 'hang' }
    const report = await new HealthChecker({ timeoutMs: 50 }).check(pool)
    release()
    await holder
    expect(report.status).toBe('unhealthy')
    await pool.close({ timeoutMs: 100 })
  })

  it('reports degraded for a slow ping', async () => {
    const { pool, manager } = makePool()
    const ping = manager.ping.bind(manager)
    manager.ping = async (conn, t) => {
      await new Promise((r) => setTimeout(r, 30))
      return ping(conn, t)
    }
    await pool.query('select 1')
    const report = await new HealthChecker({ slowPingMs: 5 }).check(pool)
    expect(report.status).toBe('degraded')
    expect(report.checks[0]?.message).toMatch(/ping took/)
  })

  it('reports a closed pool as unhealthy', async () => {
    const { pool } = makePool()
    await pool.close()
    const report = await new HealthChecker().check(pool)
    expect(report.status).toBe('unhealthy')
    expect(report.checks[0]?.message).toBe('pool is closed')
  })

  it('includes backend checks and reports their failure', async () => {
    const { pool, manager } = makePool()
    Object.assign(manager, { healthChecks: async () => [{ name: 'integrity', status: 'unhealthy', message: 'page 3 corrupt' }] })
    expect((await new HealthChecker({ deep: true }).check(pool)).status).toBe('unhealthy')
    Object.assign(manager, {
      healthChecks: async () => {
        throw new Error('cannot run')
      },
    })
    const report = await new HealthChecker().check(pool)
    expect(report.checks.at(-1)).toMatchObject({ name: 'backend', status: 'unhealthy', message: 'cannot run' })
  })

  it('validateConnections pings idle connections and evicts the bad ones', async () => {
    const { pool, manager } = makePool({ min: 2, max: 2 })
    await waitFor(() => pool.stats().idle === 2)
    manager.pingFault = { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'dead') }
    const result = await new HealthChecker().validateConnections(pool)
    expect(result.checked).toBe(2)
    expect(result.evicted).toBe(2)
    manager.pingFault = undefined
    await waitFor(() => manager.open.length === 2)
  })

  it('validateConnections never throws', async () => {
    const { pool } = makePool()
    pool.validateConnections = async () => {
      throw new Error('x')
    }
    expect(await new HealthChecker().validateConnections(pool)).toEqual({ checked: 0, evicted: 0, error: 'x' })
  })

  it('worstStatus orders statuses', () => {
    expect(worstStatus([])).toBe('healthy')
    expect(worstStatus(['healthy', 'degraded'])).toBe('degraded')
    expect(worstStatus(['unhealthy', 'degraded'])).toBe('unhealthy')
  })
})
