import { DatabaseError } from '@dbpool/core'
import { STALLED_HEAD_MS } from '../../src/pool/statement-sharing'
import { makePool, rejection, sleep } from './helpers'

describe('DatabasePool: statement sharing (pipelining managers)', () => {
  it('shares connections between concurrent statements instead of queueing them', async () => {
    const { pool, manager } = makePool({ max: 3, acquireTimeoutMs: 2_000 }, { pipelineDepth: 8, queryDelayMs: 5 })
    const results = await Promise.all(Array.from({ length: 48 }, (_, i) => pool.query(`select ${i}`)))
    expect(results).toHaveLength(48)
    expect(manager.connections.length).toBeLessThanOrEqual(3)
    expect(manager.peakInFlight).toBeGreaterThan(1)
    expect(manager.peakInFlight).toBeLessThanOrEqual(8)
    // more than one statement in flight on a connection is what sharing means (timings are not asserted)
    expect(pool.metrics.snapshot().acquired).toBeLessThan(16) // one lease per statement would be 48
    await sleep(5)
    expect(pool.stats().used).toBe(0)
  })

  it('keeps the connection for back-to-back statements of one caller (no tarn per statement)', async () => {
    const { pool, manager } = makePool({ max: 2 }, { pipelineDepth: 4 })
    for (let i = 0; i < 50; i++) await pool.query(`select ${i}`)
    expect(pool.metrics.snapshot().acquired).toBe(1)
    expect(manager.connections).toHaveLength(1)
    await sleep(5)
    expect(pool.stats()).toMatchObject({ used: 0, idle: 1 })
  })

  it('never shares transaction control or statements with a deadline', async () => {
    const { pool, manager } = makePool({ max: 1 }, { pipelineDepth: 4, queryDelayMs: 5 })
    const begin = pool.query('BEGIN').then(
      () => 'resolved',
      (err: DatabaseError) => err.code,
    )
    await Promise.all([pool.query('select 1'), begin, pool.query('select 2', [], { timeoutMs: 1_000 })])
    // a BEGIN through pool.query is rolled back on release, so it is not reported done
    expect(await begin).toBe('TRANSACTION_ROLLED_BACK')
    expect(manager.peakInFlight).toBe(1)
    expect(manager.connections[0]!.statements).toContain('ROLLBACK')
  })

  it('does not starve a transaction waiting behind shared statements', async () => {
    const { pool } = makePool({ max: 2, acquireTimeoutMs: 2_000 }, { pipelineDepth: 8, queryDelayMs: 2 })
    let stop = false
    const load = Array.from({ length: 16 }, async () => {
      while (!stop) await pool.query('select load')
    })
    await sleep(10)
    const started = Date.now()
    await pool.transaction(async (tx) => {
      await tx.query('update t')
    })
    const waited = Date.now() - started
    stop = true
    await Promise.all(load)
    expect(waited).toBeLessThan(1_500) // the acquire timeout is 2 s: a starved transaction would fail
  })

  it('a fatal error on a shared connection destroys it; the pool recovers', async () => {
    const { pool, manager } = makePool({ max: 1 }, { pipelineDepth: 4, queryDelayMs: 5 })
    manager.queryFaults.push({
      match: /fatal/,
      fault: { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'terminated') },
      fatal: true,
    })
    const settled = await Promise.allSettled([pool.query('select a'), pool.query('select fatal'), pool.query('select b')])
    expect(settled[1]).toMatchObject({ status: 'rejected', reason: { code: 'CONNECTION_LOST' } })
    await sleep(5)
    expect(manager.connections[0]!.ended).toBe(true)
    await expect(pool.query('select after')).resolves.toBeDefined()
  })

  it.each([
    ['withConnection', (pool: ReturnType<typeof makePool>['pool']) => pool.withConnection(async (c) => c.query('select 2'))],
    ['transaction', (pool: ReturnType<typeof makePool>['pool']) => pool.transaction(async (tx) => tx.query('select 2'))],
    ['a statement with a deadline', (pool: ReturnType<typeof makePool>['pool']) => pool.query('select 2', [], { timeoutMs: 1_000 })],
  ])('maxWaitingClients 0: %s right after an awaited shared statement is served, not refused with POOL_EXHAUSTED', async (_name, next) => {
    // the connection statement sharing keeps until the next macrotask is idle to the caller
    const { pool } = makePool({ max: 1, min: 1, maxWaitingClients: 0 }, { pipelineDepth: 4 })
    for (let i = 0; i < 3; i++) {
      await pool.query('select 1')
      await expect(next(pool)).resolves.toBeDefined()
    }
    // a connection really busy (a statement in flight) still refuses the caller that would wait
    const { pool: busy } = makePool({ max: 1, min: 1, maxWaitingClients: 0 }, { pipelineDepth: 4, queryDelayMs: 30 })
    const running = busy.query('select 1')
    await sleep(5)
    expect((await rejection(next(busy))).code).toBe('POOL_EXHAUSTED')
    await running
  })

  it('maxWaitingClients 0: lone statements issued in one tick share the idle connection (up to the depth), none refused', async () => {
    for (const validateAfterIdleMs of [undefined, 1]) {
      // validateAfterIdleMs 1: the idle connection is pinged first (tarn's acquire), not handed out at once
      const { pool, manager } = makePool(
        { max: 1, min: 1, maxWaitingClients: 0, ...(validateAfterIdleMs ? { validateAfterIdleMs } : {}) },
        { pipelineDepth: 4, queryDelayMs: 20 },
      )
      await pool.query('select warm')
      await sleep(10) // the kept connection goes back: one idle connection
      const burst = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => pool.query(`select ${i}`)))
      expect(burst.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as DatabaseError).code))).toEqual(['ok', 'ok', 'ok', 'ok'])
      expect(manager.connections).toHaveLength(1)
      await sleep(10)
      // beyond the depth a statement would wait: still refused
      const over = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => pool.query(`select ${i}`)))
      expect(over.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as DatabaseError).code))).toEqual([
        'ok',
        'ok',
        'ok',
        'ok',
        'POOL_EXHAUSTED',
      ])
      await pool.close()
    }
  })

  it('a statement does not join a shared connection whose head statement has stalled: it waits for a connection of its own, at most acquireTimeoutMs', async () => {
    // found by review (r11a t14): a transaction's pool.query('select 1') joined the shared connection
    // behind another caller's update waiting for the transaction's own row lock, and waited forever
    const { pool, manager } = makePool({ max: 2, acquireTimeoutMs: 300 }, { pipelineDepth: 8 })
    manager.queryFaults.push({ match: /blocked/, fault: { kind: 'hang' }, fatal: false })
    const outcome = await pool
      .transaction(async (tx) => {
        await tx.query('update mine')
        const blocked = pool.query('update blocked')
        blocked.catch(() => undefined)
        await sleep(STALLED_HEAD_MS + 30)
        return rejection(pool.query('select 1'))
      })
      .catch((err: DatabaseError) => err)
    expect(outcome.code).toBe('ACQUIRE_TIMEOUT')
    // nothing was sent behind the stalled statement
    const shared = manager.connections.find((c) => c.statements.includes('update blocked'))!
    expect(shared.statements).not.toContain('select 1')
    manager.releaseHangs()
    await pool.close({ timeoutMs: 1_000 })
  })

  it('a statement still joins a shared connection whose head statement started within STALLED_HEAD_MS', async () => {
    const { pool, manager } = makePool({ max: 1, acquireTimeoutMs: 300 }, { pipelineDepth: 8 })
    manager.queryFaults.push({ match: /slow/, fault: { kind: 'hang' }, fatal: false })
    const slow = pool.query('select slow')
    slow.catch(() => undefined)
    await Promise.resolve()
    await expect(pool.query('select 1')).resolves.toBeDefined()
    expect(manager.connections).toHaveLength(1)
    expect(manager.connections[0]!.statements).toEqual(['select slow', 'select 1'])
    manager.releaseHangs()
    await pool.close({ timeoutMs: 1_000 })
  })

  it('r12b sharing-hang: nothing joins behind a write, however young (it may wait on a row lock the caller holds)', async () => {
    const { pool, manager } = makePool({ max: 2, acquireTimeoutMs: 300 }, { pipelineDepth: 8 })
    manager.queryFaults.push({ match: /blocked/, fault: { kind: 'hang' }, fatal: false })
    const outcome = await pool
      .transaction(async (tx) => {
        await tx.query('update mine')
        const blocked = pool.query('update blocked')
        blocked.catch(() => undefined)
        await Promise.resolve()
        return rejection(pool.query('select 1'))
      })
      .catch((err: DatabaseError) => err)
    expect(outcome.code).toBe('ACQUIRE_TIMEOUT')
    const shared = manager.connections.find((c) => c.statements.includes('update blocked'))!
    expect(shared.statements).not.toContain('select 1')
    manager.releaseHangs()
    await pool.close({ timeoutMs: 1_000 })
  })

  it('r12b sharing-load: a read that has run longer than STALLED_HEAD_MS is joined while no exclusive lease is out, not while one is', async () => {
    const { pool, manager } = makePool({ max: 1, acquireTimeoutMs: 300 }, { pipelineDepth: 8 })
    manager.queryFaults.push({ match: /slow/, fault: { kind: 'hang' }, fatal: false })
    const slow = pool.query('select slow')
    slow.catch(() => undefined)
    await sleep(STALLED_HEAD_MS + 30)
    await expect(pool.query('select 1')).resolves.toBeDefined()
    expect(manager.connections).toHaveLength(1)
    manager.releaseHangs()
    await slow.catch(() => undefined)
    await pool.close({ timeoutMs: 1_000 })

    const second = makePool({ max: 2, acquireTimeoutMs: 300 }, { pipelineDepth: 8 })
    second.manager.queryFaults.push({ match: /slow/, fault: { kind: 'hang' }, fatal: false })
    const outcome = await second.pool
      .transaction(async (tx) => {
        await tx.query('lock table t')
        const read = second.pool.query('select slow')
        read.catch(() => undefined)
        await sleep(STALLED_HEAD_MS + 30)
        return rejection(second.pool.query('select 1'))
      })
      .catch((err: DatabaseError) => err)
    expect(outcome.code).toBe('ACQUIRE_TIMEOUT')
    second.manager.releaseHangs()
    await second.pool.close({ timeoutMs: 1_000 })
  })

  it('close() returns idle shared connections at once', async () => {
    const { pool } = makePool({ max: 2 }, { pipelineDepth: 4 })
    await pool.query('select 1')
    const report = await pool.close({ timeoutMs: 1_000 })
    expect(report.timedOut).toBe(false)
    expect(report.outstandingLeases).toEqual([])
    expect((await rejection(pool.query('select 2'))).code).toBe('POOL_CLOSED')
  })

  it('surfaces a connect failure to every sharing caller', async () => {
    const { pool, manager } = makePool({ max: 1 }, { pipelineDepth: 4 })
    manager.connectFault = { kind: 'fail', error: new DatabaseError('AUTHENTICATION_FAILED', 'bad password') }
    const settled = await Promise.allSettled([pool.query('select 1'), pool.query('select 2')])
    expect(settled.every((r) => r.status === 'rejected' && (r.reason as DatabaseError).code === 'AUTHENTICATION_FAILED')).toBe(true)
  })
})
