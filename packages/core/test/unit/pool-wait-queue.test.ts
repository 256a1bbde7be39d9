import { AsyncLocalStorage } from 'node:async_hooks'
import { DatabaseError, DatabasePool } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'
import { TARN_SLACK } from '../../src/pool/lane-pool'
import { makePool, rejection, sleep, waitFor } from './helpers'

type Pool = ReturnType<typeof makePool>['pool']

/** Holds one connection of `pool` until the returned `release()` is called. */
async function hold(pool: Pool): Promise<{ release: () => void; done: Promise<void> }> {
  let release!: () => void
  const done = pool.withConnection(() => new Promise<void>((r) => (release = r)))
  await waitFor(() => release !== undefined)
  return { release, done }
}

/**
 * Callers that fill tarn's own queue on a pool of max `max` (tarn is given `max + TARN_SLACK`
 * acquires at a time): callers after them wait in dbpool's queue. Each holds its connection, once
 * it gets one, until `open()`.
 */
function fillTarn(pool: Pool, max: number): { callers: Promise<string>[]; open: () => void } {
  let open!: () => void
  const gate = new Promise<void>((r) => (open = r))
  const callers = Array.from({ length: max + TARN_SLACK }, () =>
    pool
      .withConnection(() => gate)
      .then(
        () => 'ok',
        (err: DatabaseError) => err.code,
      ),
  )
  return { callers, open }
}

/** Timers that keep the event loop alive right now. */
function refedTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

describe('the wait queue: callers waiting for a connection', () => {
  it('serves 200 waiting callers in the order they asked, on a pool of max 2', async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 5_000 })
    const a = await hold(pool)
    const b = await hold(pool)
    const order: number[] = []
    const callers = Array.from({ length: 200 }, (_, i) =>
      pool.withConnection(async () => {
        order.push(i)
        await sleep(0)
      }),
    )
    expect(pool.stats()).toMatchObject({ used: 2, pending: 200 })
    a.release()
    b.release()
    await Promise.all([...callers, a.done, b.done])
    expect(order).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(pool.stats()).toMatchObject({ used: 0, pending: 0 })
  })

  it('keeps no timer per waiting caller: 1,000 callers waiting hold a handful of timers, not 1,000', async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 5_000 })
    const a = await hold(pool)
    const b = await hold(pool)
    const before = refedTimers()
    const callers = Array.from({ length: 1_000 }, () => pool.query('select 1'))
    expect(pool.stats().pending).toBe(1_000)
    // tarn's pending acquires (at most max + TARN_SLACK of them) have a timer each, plus the queue's one
    expect(refedTimers() - before).toBeLessThanOrEqual(2 + TARN_SLACK + 1)
    a.release()
    b.release()
    await Promise.all([...callers, a.done, b.done])
    expect(refedTimers()).toBeLessThanOrEqual(before)
  })

  it('times out queued callers acquireTimeoutMs after they arrived, including one handed to tarn late', async () => {
    const { pool } = makePool({ max: 1, acquireTimeoutMs: 600 })
    const first = await hold(pool)
    const started = performance.now()
    const filler = fillTarn(pool, 1)
    const late = rejection(pool.query('select late')).then((err) => ({ err, at: performance.now() - started }))
    const last = rejection(pool.query('select last')).then((err) => ({ err, at: performance.now() - started }))
    expect(pool.stats().pending).toBe(1 + TARN_SLACK + 2)
    await sleep(400)
    // the first filler gets the connection and keeps it: `late` moves from dbpool's queue to tarn's
    first.release()
    const [a, b] = await Promise.all([late, last])
    for (const { err } of [a, b]) {
      expect(err.code).toBe('ACQUIRE_TIMEOUT')
      expect(err.message).toMatch(/timed out after 600 ms/)
      expect(err.poolStats).toMatchObject({ used: 1, max: 1 })
    }
    // 600 ms after arrival, not 600 ms after `late` reached tarn (1,000 ms)
    expect(a.at).toBeGreaterThanOrEqual(590)
    expect(a.at).toBeLessThan(900)
    expect(b.at).toBeGreaterThanOrEqual(590)
    // the other fillers time out while the first holds the connection (opening the gate before their
    // deadlines fired, on a loaded machine, handed the connection to one of them)
    const waited = await Promise.all(filler.callers.slice(1))
    filler.open()
    const fillers = [await filler.callers[0], ...waited]
    expect(fillers[0]).toBe('ok')
    expect(fillers.slice(1).every((code) => code === 'ACQUIRE_TIMEOUT')).toBe(true)
    expect(pool.metrics.snapshot().timeouts).toBe(TARN_SLACK + 2)
    await first.done
    expect(pool.stats()).toMatchObject({ pending: 0, used: 0 })
  })

  it('a queued caller that times out names the last connect error as its cause', async () => {
    const { pool, manager } = makePool({ max: 2, acquireTimeoutMs: 150, createTimeoutMs: 5_000 })
    const first = await hold(pool)
    manager.connectFault = { kind: 'fail', error: new DatabaseError('AUTHENTICATION_FAILED', 'bad password') }
    expect((await rejection(pool.query('select 1'))).code).toBe('AUTHENTICATION_FAILED')
    // the next connect hangs: callers wait in tarn's queue, and six more in dbpool's
    manager.connectFault = { kind: 'hang' }
    const errors = await Promise.all(Array.from({ length: 2 + TARN_SLACK + 6 }, () => rejection(pool.query('select 2'))))
    for (const err of errors) {
      expect(err.code).toBe('ACQUIRE_TIMEOUT')
      expect(err.message).toMatch(/last connect error: AUTHENTICATION_FAILED: bad password/)
      expect(err.cause).toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    }
    first.release()
    await first.done
  })

  it('counts queued callers against maxWaitingClients (POOL_EXHAUSTED) and in stats().pending', async () => {
    const { pool } = makePool({ max: 1, maxWaitingClients: 5, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const waiting = Array.from({ length: 5 }, (_, i) => pool.query(`select ${i}`))
    expect(pool.stats().pending).toBe(5)
    expect(pool.metrics.snapshot().connections.pending).toBe(5)
    const err = await rejection(pool.query('select too many'))
    expect(err.code).toBe('POOL_EXHAUSTED')
    expect(err.message).toMatch(/5 callers waiting \(maxWaitingClients 5\)/)
    expect(err.poolStats?.pending).toBe(5)
    first.release()
    await Promise.all([...waiting, first.done])
  })

  it('a queued caller whose AbortSignal aborts leaves the queue at once with QUERY_CANCELLED; the others keep their turn', async () => {
    const { pool, manager } = makePool({ max: 1, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const filler = fillTarn(pool, 1)
    filler.open()
    const controller = new AbortController()
    const before = pool.query('select before')
    const cancelled = rejection(pool.query('select cancelled', [], { signal: controller.signal }))
    const after = pool.query('select after')
    const pending = pool.stats().pending
    expect(pending).toBe(1 + TARN_SLACK + 3)
    const reason = new Error('user went away')
    controller.abort(reason)
    const err = await cancelled
    expect(err.code).toBe('QUERY_CANCELLED')
    expect(err.cause).toBe(reason)
    expect(pool.stats().pending).toBe(pending - 1)
    first.release()
    await Promise.all([before, after, first.done, ...filler.callers])
    expect(manager.connections[0]!.statements).toEqual(['select before', 'select after'])
  })

  it('an AbortSignal aborting while its caller is the one handed to tarn also cancels it', async () => {
    const { pool, manager } = makePool({ max: 1, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const controller = new AbortController()
    // the first caller waits in tarn itself (the queue in front holds the rest)
    const cancelled = rejection(pool.query('select cancelled', [], { signal: controller.signal }))
    const next = pool.query('select next')
    controller.abort()
    expect((await cancelled).code).toBe('QUERY_CANCELLED')
    first.release()
    await Promise.all([next, first.done])
    expect(manager.connections[0]!.statements).toEqual(['select next'])
    expect(pool.stats()).toMatchObject({ pending: 0, used: 0, idle: 1 })
  })

  it("a caller whose AbortSignal aborts while in tarn's queue stops counting against maxWaitingClients at once: a caller arriving in the same tick is not refused", async () => {
    const { pool } = makePool({ max: 1, maxWaitingClients: 1, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const controller = new AbortController()
    const cancelled = rejection(pool.withConnection(async () => 'ran', { signal: controller.signal }))
    expect(pool.stats().pending).toBe(1)
    controller.abort()
    // tarn drops the rejected acquire from its queue only in a later promise callback
    expect(pool.stats().pending).toBe(0)
    const next = pool.query('select next')
    expect(pool.stats().pending).toBe(1)
    expect((await cancelled).code).toBe('QUERY_CANCELLED')
    expect(pool.stats().pending).toBe(1)
    first.release()
    await Promise.all([next, first.done])
    expect(pool.stats()).toMatchObject({ pending: 0, used: 0 })
  })

  it('a connection released to a caller cancelled a moment before comes back to the next caller', async () => {
    // a synchronous reset, as the real managers have when there is nothing to roll back: the
    // release then reaches tarn's queue while the cancelled acquire is still first in it
    class SyncResetManager extends FakeConnectionManager {
      // ConnectionManager.reset may return void; the fake's signature says Promise
      override reset(): Promise<void> {
        return undefined as unknown as Promise<void>
      }
    }
    const manager = new SyncResetManager()
    const pool = new DatabasePool(manager, { min: 0, max: 1, acquireTimeoutMs: 2_000, leakDetectionThresholdMs: 0 })
    try {
      const controller = new AbortController()
      let proceed!: () => void
      const gate = new Promise<void>((r) => (proceed = r))
      const holder = pool.withConnection(async () => {
        await gate
        controller.abort()
      })
      await waitFor(() => pool.stats().used === 1)
      const cancelled = rejection(pool.query('select cancelled', [], { signal: controller.signal }))
      const next = pool.query('select next')
      proceed()
      expect((await cancelled).code).toBe('QUERY_CANCELLED')
      await expect(next).resolves.toBeDefined()
      await holder
      expect(manager.connections).toHaveLength(1)
      expect(manager.connections[0]!.statements).toEqual(['select next'])
      expect(pool.stats()).toMatchObject({ used: 0, idle: 1, pending: 0 })
    } finally {
      await pool.close({ timeoutMs: 100 })
    }
  })

  it('a connection past its lifetime is not handed to a waiting caller: the caller gets a new one', async () => {
    const { pool, manager } = makePool({ max: 1, maxLifetimeMs: 50, maxLifetimeJitter: 0, acquireTimeoutMs: 2_000 })
    const first = await hold(pool)
    const waiting = pool.withConnection(async (conn) => conn.id)
    await sleep(80)
    first.release()
    const id = await waiting
    await first.done
    expect(manager.connections).toHaveLength(2)
    expect(manager.connections[0]!.ended).toBe(true)
    expect(id).not.toBe(manager.connections[0]!.id)
  })

  it("a statement's timeoutMs bounds its wait for a connection: ACQUIRE_TIMEOUT at its deadline, not acquireTimeoutMs, nothing sent, in tarn's queue and in the pool's", async () => {
    const { pool, manager } = makePool({ max: 1, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const timersBefore = refedTimers()
    const started = performance.now()
    // the first waits in tarn's own queue; after TARN_SLACK fillers, the last waits in the pool's queue
    const inTarn = rejection(pool.query('select in tarn', [], { timeoutMs: 50 }))
    const filler = fillTarn(pool, 1)
    const inQueue = rejection(pool.query('select in queue', [], { timeoutMs: 60 }))
    const patient = pool.query('select patient', [], { timeoutMs: 4_000 })
    for (const err of await Promise.all([inTarn, inQueue])) {
      expect(err.code).toBe('ACQUIRE_TIMEOUT')
      expect(err.retryable).toBe(true)
      expect(err.message).toContain("statement's timeoutMs")
      expect(err.message).toContain('the statement was not sent')
      expect(err.poolStats?.max).toBe(1)
    }
    // well before the pool's own 5 s deadline
    expect(performance.now() - started).toBeLessThan(2_500)
    filler.open()
    first.release()
    await Promise.all([patient, first.done, ...filler.callers])
    const sent = manager.connections.flatMap((c) => c.statements)
    expect(sent).toContain('select patient')
    expect(sent).not.toContain('select in tarn')
    expect(sent).not.toContain('select in queue')
    expect(pool.stats()).toMatchObject({ pending: 0, used: 0 })
    // the deadline timers of the served callers were cleared
    expect(refedTimers()).toBeLessThanOrEqual(timersBefore)
  })

  it('a statement that waited for its connection runs with what is left of its timeoutMs', async () => {
    const seen: (number | undefined)[] = []
    class RecordingManager extends FakeConnectionManager {
      override execute<R>(
        conn: Parameters<FakeConnectionManager['execute']>[0],
        query: Parameters<FakeConnectionManager['execute']>[1],
        options: Parameters<FakeConnectionManager['execute']>[2],
      ) {
        if (query.text === 'select timed') seen.push(options.timeoutMs)
        return super.execute<R>(conn, query, options)
      }
    }
    const manager = new RecordingManager()
    const pool = new DatabasePool(manager, { min: 0, max: 1, acquireTimeoutMs: 5_000, leakDetectionThresholdMs: 0 })
    try {
      // the connection exists first: a first statement that had to wait for its creation would run
      // with less than its whole timeoutMs (under load, creation can take over a millisecond)
      await pool.query('select warm-up')
      await pool.query('select timed', [], { timeoutMs: 1_000 })
      const first = await hold(pool)
      const waiting = pool.query('select timed', [], { timeoutMs: 1_000 })
      await sleep(150)
      first.release()
      await Promise.all([waiting, first.done])
      expect(seen[0]).toBe(1_000)
      expect(seen[1]).toBeLessThanOrEqual(1_000 - 140)
      expect(seen[1]).toBeGreaterThanOrEqual(1)
    } finally {
      await pool.close({ timeoutMs: 100 })
    }
  })

  it('an already aborted signal fails at once, without borrowing a connection', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const err = await rejection(pool.query('select 1', [], { signal: AbortSignal.abort() }))
    expect(err.code).toBe('QUERY_CANCELLED')
    expect(manager.connectAttempts).toBe(0)
    expect(pool.metrics.snapshot().acquired).toBe(0)
  })

  it('withConnection({ signal }): a waiting caller leaves the queue on abort with QUERY_CANCELLED (cause: the reason), its callback never runs; an invalid signal is CONFIGURATION', async () => {
    const { pool } = makePool({ max: 1, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const controller = new AbortController()
    let ran = false
    const cancelled = rejection(
      pool.withConnection(
        async () => {
          ran = true
        },
        { signal: controller.signal },
      ),
    )
    await sleep(10)
    expect(pool.stats().pending).toBe(1)
    controller.abort('gone')
    const err = await cancelled
    expect(err.code).toBe('QUERY_CANCELLED')
    expect(err.cause).toBe('gone')
    expect(pool.stats().pending).toBe(0)
    first.release()
    await first.done
    expect(ran).toBe(false)
    const bad = await rejection(pool.withConnection(async () => 1, { signal: {} as AbortSignal }))
    expect(bad.code).toBe('CONFIGURATION')
    expect(bad.message).toContain('withConnection.signal')
  })

  it('records the wait of a queued caller in wait_time', async () => {
    const { pool } = makePool({ max: 1, acquireTimeoutMs: 5_000 })
    const first = await hold(pool)
    const queued = [pool.query('select 1'), pool.query('select 2'), pool.query('select 3')]
    await sleep(60)
    first.release()
    await Promise.all([...queued, first.done])
    const { waitTime } = pool.metrics.snapshot()
    expect(waitTime.count).toBe(4)
    expect(waitTime.maxMs).toBeGreaterThanOrEqual(55)
  })

  it('close() lets 100 queued callers finish, then reports a clean drain', async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 5_000 }, { queryDelayMs: 1 })
    const first = await hold(pool)
    const callers = Array.from({ length: 100 }, (_, i) => pool.query(`select ${i}`))
    const closing = pool.close({ timeoutMs: 5_000 })
    expect((await rejection(pool.query('select after close'))).code).toBe('POOL_CLOSED')
    first.release()
    const settled = await Promise.allSettled(callers)
    expect(settled.every((r) => r.status === 'fulfilled')).toBe(true)
    expect(await closing).toMatchObject({ abortedWaiters: 0, timedOut: false, outstandingLeases: [] })
    await first.done
  })

  it('at close()`s deadline every queued caller fails with POOL_CLOSED and is counted', async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 10_000 })
    const a = await hold(pool)
    const b = await hold(pool)
    const callers = Array.from({ length: 50 }, (_, i) => rejection(pool.withConnection(async () => i)))
    const report = await pool.close({ timeoutMs: 100 })
    const errors = await Promise.all(callers)
    expect(errors.every((e) => e.code === 'POOL_CLOSED')).toBe(true)
    expect(report.abortedWaiters).toBe(50)
    expect(report.outstandingLeases).toHaveLength(2)
    expect(pool.stats().pending).toBe(0)
    a.release()
    b.release()
    await Promise.all([a.done, b.done])
  })

  it('a connect error reaches the oldest waiting caller at once, and every queued caller in turn', async () => {
    const { pool, manager } = makePool({ max: 2, acquireTimeoutMs: 10_000 })
    manager.connectFault = { kind: 'fail', error: new DatabaseError('CONNECTION_FAILED', 'connection refused', { backend: 'postgres' }) }
    const started = Date.now()
    const errors = await Promise.all(Array.from({ length: 12 }, () => rejection(pool.query('select 1'))))
    expect(errors.every((e) => e.code === 'CONNECTION_FAILED')).toBe(true)
    // tarn retries a failed connect every 100 ms, failing one caller each time: far below the 10 s timeout
    expect(Date.now() - started).toBeLessThan(5_000)
  })
  it("runs a queued caller's callback in its own async context, not the releasing caller's (200 callers, max 2, no tracing)", async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 5_000 })
    const requestId = new AsyncLocalStorage<number>()
    const a = await hold(pool)
    const b = await hold(pool)
    const seen: { id: number; inConnection: number | undefined; inTransaction: number | undefined }[] = []
    const callers = Array.from({ length: 200 }, (_, id) =>
      requestId.run(id, async () => {
        const inConnection = await pool.withConnection(async () => {
          await sleep(0)
          return requestId.getStore()
        })
        const inTransaction = await pool.transaction(async () => requestId.getStore())
        seen.push({ id, inConnection, inTransaction })
      }),
    )
    // more than max + 32 callers: most of them wait in dbpool's own queue
    expect(pool.stats()).toMatchObject({ used: 2, pending: 200 })
    a.release()
    b.release()
    await Promise.all([...callers, a.done, b.done])
    expect(seen).toHaveLength(200)
    expect(seen.filter((s) => s.inConnection !== s.id || s.inTransaction !== s.id)).toEqual([])
  })
})
