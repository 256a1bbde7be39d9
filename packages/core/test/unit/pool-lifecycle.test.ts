import { type CloseReport, DatabaseError, sql } from '@dbpool/core'
import { makePool, rejection, sleep, waitFor } from './helpers'

/** Settles every promise and returns what each settled to (fulfilled value or rejection code). */
async function outcomes(promises: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(promises)
  return settled.map((r) => (r.status === 'fulfilled' ? 'ok' : DatabaseError.is(r.reason) ? r.reason.code : String(r.reason)))
}

/** Timers that keep the event loop alive right now. */
function refedTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

describe('close(): work issued before close() runs to completion', () => {
  it('a query issued just before close() on a cold pool completes', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1 })
    const query = pool.query('select 1')
    const report = await pool.close({ timeoutMs: 1_000 })
    await expect(query).resolves.toMatchObject({ rows: [] })
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
    expect(manager.open).toHaveLength(0)
  })

  it('a query issued just before close() on a warm pool (an idle connection ready) completes', async () => {
    const { pool, manager } = makePool({ min: 1, max: 1 })
    await waitFor(() => pool.stats().idle === 1)
    const query = pool.query('select 1')
    await pool.close({ timeoutMs: 1_000 })
    await expect(query).resolves.toMatchObject({ rows: [] })
    expect(manager.connections).toHaveLength(1)
  })

  it('20 queries issued before close() on a pool of max 1 all complete, and close() reports a clean drain', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1, acquireTimeoutMs: 5_000 }, { queryDelayMs: 2 })
    const queries = Array.from({ length: 20 }, (_, i) => pool.query(`select ${i}`))
    const report = await pool.close({ timeoutMs: 5_000 })
    expect(await outcomes(queries)).toEqual(Array(20).fill('ok'))
    expect(manager.connections[0]!.statements).toEqual(Array.from({ length: 20 }, (_, i) => `select ${i}`))
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
  })

  it('withConnection, transaction and ping called before close() complete; calls made after it are refused at once', async () => {
    const { pool } = makePool({ min: 0, max: 1, acquireTimeoutMs: 5_000 }, { queryDelayMs: 2 })
    const before = [
      pool.withConnection((conn) => conn.query('select in lease')),
      pool.transaction((tx) => tx.query('insert 1')),
      pool.ping(),
      pool.query(sql`select ${1}`),
    ]
    const closing = pool.close({ timeoutMs: 5_000 })
    const after = [pool.query('select 1'), pool.withConnection(async () => undefined), pool.transaction(async () => undefined), pool.ping()]
    // refused before any of the earlier calls got a connection
    expect(await outcomes(after)).toEqual(Array(4).fill('POOL_CLOSED'))
    expect(pool.stats().used + pool.stats().pending).toBeGreaterThan(0)
    expect(await outcomes(before)).toEqual(Array(4).fill('ok'))
    expect((await closing).timedOut).toBe(false)
  })

  it('a transaction sleeping its retry backoff at close()`s deadline fails then with POOL_CLOSED; its timer is cleared', async () => {
    const timersBefore = refedTimers()
    const { pool } = makePool({ min: 0, max: 1 })
    // the longest backoff the settings allow: 60 s
    const random = jest.spyOn(Math, 'random').mockReturnValue(0.999_999)
    try {
      let attempts = 0
      const result = pool.transaction(
        async () => {
          attempts++
          throw new DatabaseError('BUSY', 'database is locked', { backend: 'sqlite', retryable: true })
        },
        { retry: { maxAttempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 } },
      )
      void result.catch(() => undefined)
      await waitFor(() => attempts === 1)
      await sleep(5)
      const report = await pool.close({ timeoutMs: 50 })
      const err = await rejection(result)
      expect(err.code).toBe('POOL_CLOSED')
      expect((err.cause as DatabaseError).code).toBe('BUSY')
      expect(attempts).toBe(1)
      expect(report).toMatchObject({ abortedWaiters: 1, timedOut: true })
      // the backoff's timer does not keep the process alive for the rest of its 60 s
      expect(refedTimers()).toBe(timersBefore)
    } finally {
      random.mockRestore()
    }
  })

  it('a transaction retry whose first attempt began before close() replays during the drain and commits', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1, acquireTimeoutMs: 5_000 })
    let attempts = 0
    let closing: Promise<CloseReport> | undefined
    const result = pool.transaction(
      async (tx) => {
        attempts++
        await tx.query(`insert attempt ${attempts}`)
        if (attempts === 1) {
          closing = pool.close({ timeoutMs: 5_000 })
          throw new DatabaseError('SERIALIZATION_FAILURE', 'could not serialize access', { backend: 'postgres' })
        }
        return attempts
      },
      { retry: { maxAttempts: 3, baseDelayMs: 1 } },
    )
    await expect(result).resolves.toBe(2)
    expect(await closing).toMatchObject({ abortedWaiters: 0, timedOut: false, outstandingLeases: [] })
    expect(manager.connections.flatMap((c) => c.statements)).toEqual([
      'BEGIN',
      'insert attempt 1',
      'ROLLBACK',
      'BEGIN',
      'insert attempt 2',
      'COMMIT',
    ])
    // a transaction begun after close() is still refused at once
    expect((await rejection(pool.transaction(async () => undefined))).code).toBe('POOL_CLOSED')
  })

  it('a lease taken before close() keeps a working handle until it is released', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1 })
    let proceed!: () => void
    const user = pool.withConnection(async (conn) => {
      await new Promise<void>((r) => (proceed = r))
      return conn.query('select after close began')
    })
    await waitFor(() => pool.stats().used === 1)
    const closing = pool.close({ timeoutMs: 1_000 })
    await sleep(10)
    proceed()
    await expect(user).resolves.toMatchObject({ rows: [] })
    expect((await closing).outstandingLeases).toEqual([])
    expect(manager.connections[0]!.statements).toContain('select after close began')
  })

  it('statements queued to share a pipelined connection before close() complete', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1 }, { pipelineDepth: 4, queryDelayMs: 5 })
    const queries = Array.from({ length: 12 }, (_, i) => pool.query(`select ${i}`))
    const report = await pool.close({ timeoutMs: 2_000 })
    expect(await outcomes(queries)).toEqual(Array(12).fill('ok'))
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
    expect(manager.open).toHaveLength(0)
  })

  it('queries issued before close() on a synchronous driver complete (cold and warm)', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1 }, { synchronous: true })
    const cold = [pool.query('select 1'), pool.query('select 2')]
    await pool.close({ timeoutMs: 1_000 })
    expect(await outcomes(cold)).toEqual(['ok', 'ok'])
    expect(manager.connections).toHaveLength(1)
  })

  it('at the deadline, callers still waiting fail with POOL_CLOSED and are counted; the lease still out is revoked', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1, acquireTimeoutMs: 10_000 })
    let handle: { query(q: string): Promise<unknown> } | undefined
    const holder = pool.withConnection(async (conn) => {
      handle = conn
      await new Promise(() => undefined) // never finishes
    })
    void holder.catch(() => undefined)
    await waitFor(() => handle !== undefined)
    const waiters = outcomes([pool.query('select 1'), pool.query('select 2')])
    const started = Date.now()
    const report = await pool.close({ timeoutMs: 100 })
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(await waiters).toEqual(['POOL_CLOSED', 'POOL_CLOSED'])
    expect(report.timedOut).toBe(true)
    expect(report.abortedWaiters).toBe(2)
    expect(report.outstandingLeases).toHaveLength(1)
    expect((await rejection(handle!.query('select on a revoked lease'))).code).toBe('POOL_CLOSED')
    expect(manager.open).toHaveLength(0)
  })

  it('at the deadline, the leases still out are revoked together: one slow destroy does not hold up the next', async () => {
    const { pool, manager } = makePool({ min: 0, max: 3, acquireTimeoutMs: 10_000 })
    let running = 0
    let most = 0
    const destroy = manager.destroy.bind(manager)
    manager.destroy = async (conn) => {
      most = Math.max(most, ++running)
      // a busy connection the manager takes a while to close
      await sleep(50)
      running--
      return destroy(conn)
    }
    let held = 0
    for (let i = 0; i < 3; i++) {
      const holder = pool.withConnection(async () => {
        held++
        await new Promise(() => undefined) // never finishes
      })
      void holder.catch(() => undefined)
    }
    await waitFor(() => held === 3)
    const report = await pool.close({ timeoutMs: 50 })
    expect(report.outstandingLeases).toHaveLength(3)
    expect(most).toBe(3)
    expect(manager.open).toHaveLength(0)
  })

  it('a revoked connection whose destroy never ends does not hold close() past its last step`s deadline (timeoutMs, at least 1 s)', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1, acquireTimeoutMs: 10_000 })
    // a connection whose goodbye never completes (a server that stopped answering)
    manager.destroy = () => new Promise<void>(() => undefined)
    let held = false
    void pool
      .withConnection(async () => {
        held = true
        await new Promise(() => undefined) // never finishes
      })
      .catch(() => undefined)
    await waitFor(() => held)
    const report = await pool.close({ timeoutMs: 50 })
    expect(report.outstandingLeases).toHaveLength(1)
    expect(report.timedOut).toBe(true)
  })

  it('close() on an unused pool resolves at once', async () => {
    const { pool } = makePool({ min: 0 })
    const report = await pool.close({ timeoutMs: 10_000 })
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
    expect(report.durationMs).toBeLessThan(5_000)
  })
})

describe('max lifetime: idle connections are retired on time, without a borrow', () => {
  it('an idle connection is retired at its lifetime, and a min 0 pool empties (no replacement)', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2, maxLifetimeMs: 300, maxLifetimeJitter: 0 })
    await pool.query('select 1')
    const conn = manager.connections[0]!
    await waitFor(() => conn.ended, 300 + 1_000)
    await sleep(50)
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, used: 0 })
    expect(manager.connectAttempts).toBe(1)
  })

  it('with jitter, every idle connection is gone by its lifetime plus the bound', async () => {
    const { pool, manager } = makePool({ min: 0, max: 3, maxLifetimeMs: 600, maxLifetimeJitter: 0.5 })
    await Promise.all([1, 2, 3].map(() => pool.withConnection(() => sleep(5))))
    expect(manager.open).toHaveLength(3)
    await waitFor(() => manager.open.length === 0, 600 + 1_000)
    expect(manager.connectAttempts).toBe(3)
  })

  it('with min 1, an expired idle connection is replaced to keep min, and only to min', async () => {
    const { pool, manager } = makePool({ min: 1, max: 3, maxLifetimeMs: 300, maxLifetimeJitter: 0 })
    await waitFor(() => pool.stats().idle === 1)
    const first = manager.connections[0]!
    await waitFor(() => first.ended, 300 + 1_000)
    await waitFor(() => manager.open.length === 1)
    expect(manager.open[0]).not.toBe(first)
    await sleep(50)
    expect(pool.stats().size).toBe(1)
  })

  it('a connection leased across its expiry is retired soon after it comes back, with no replacement on a min 0 pool', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1, maxLifetimeMs: 300, maxLifetimeJitter: 0 })
    await pool.withConnection(() => sleep(400))
    const conn = manager.connections[0]!
    expect(conn.ended).toBe(false)
    await waitFor(() => conn.ended, 1_000)
    await sleep(50)
    expect(pool.stats().size).toBe(0)
    expect(manager.connectAttempts).toBe(1)
  })

  it('a synchronous driver stops running statements on an expired idle connection', async () => {
    const { pool, manager } = makePool({ min: 0, max: 1, maxLifetimeMs: 300, maxLifetimeJitter: 0 }, { synchronous: true })
    await pool.query('select 1')
    await pool.query('select 2') // lease-free, on the idle connection
    const first = manager.connections[0]!
    await waitFor(() => first.ended, 300 + 1_000)
    await pool.query('select 3')
    expect(first.statements).not.toContain('select 3')
    expect(manager.connections[1]!.statements).toContain('select 3')
  })
})

describe('idle timeout and keepalive', () => {
  it('idle connections beyond min close on time even while keepalive pings them', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2, idleTimeoutMs: 300, keepaliveIntervalMs: 50, validateAfterIdleMs: 100_000 })
    await Promise.all([pool.withConnection(() => sleep(5)), pool.withConnection(() => sleep(5))])
    expect(manager.open).toHaveLength(2)
    await waitFor(() => manager.pings >= 2)
    await waitFor(() => manager.open.length === 0, 300 + 1_000)
    expect(manager.connectAttempts).toBe(2)
  })

  it('a connection whose keepalive ping fails is dropped without a replacement on a min 0 pool', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2, keepaliveIntervalMs: 30 })
    await pool.query('select 1')
    manager.pingFault = { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'gone') }
    await waitFor(() => manager.connections[0]!.ended)
    await sleep(100)
    expect(manager.connectAttempts).toBe(1)
    expect(pool.stats().size).toBe(0)
  })

  it('idleTimeoutMs 0 never closes idle connections', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2, idleTimeoutMs: 0 })
    await Promise.all([pool.withConnection(() => sleep(5)), pool.withConnection(() => sleep(5))])
    await sleep(1_200)
    expect(manager.open).toHaveLength(2)
    expect(pool.stats().idle).toBe(2)
  })
})

describe('allowExitOnIdle and timers', () => {
  it('with allowExitOnIdle, a connection is unref`d while idle and ref`d while leased', async () => {
    const { pool, manager } = makePool({ min: 1, max: 1, allowExitOnIdle: true })
    await waitFor(() => pool.stats().idle === 1)
    const conn = manager.connections[0]!
    expect(conn.referenced).toBe(false)
    await pool.withConnection(async () => {
      expect(conn.referenced).toBe(true)
    })
    expect(conn.referenced).toBe(false)
    await pool.query('select 1')
    expect(conn.referenced).toBe(false)
  })

  it('without allowExitOnIdle, connections stay ref`d', async () => {
    const { pool, manager } = makePool({ min: 1, max: 1 })
    await waitFor(() => pool.stats().idle === 1)
    await pool.query('select 1')
    expect(manager.connections[0]!.referenced).toBe(true)
  })

  it('an idle pool holds no ref`d timer (tarn`s idle reaper included)', async () => {
    const before = refedTimers()
    const { pool } = makePool({ min: 1, max: 2, keepaliveIntervalMs: 1_000, leakDetectionThresholdMs: 1_000, maxLifetimeMs: 60_000 })
    await Promise.all([pool.withConnection(() => sleep(5)), pool.withConnection(() => sleep(5))])
    await waitFor(() => pool.stats().used === 0)
    await sleep(20)
    expect(refedTimers()).toBe(before)
  })
})
