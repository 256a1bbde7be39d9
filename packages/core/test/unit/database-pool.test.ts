import { DatabaseError, DatabasePool, sql } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'
import { makePool, rejection, sleep, waitFor } from './helpers'

const authError = () =>
  new DatabaseError('AUTHENTICATION_FAILED', 'password authentication failed', { backend: 'postgres', sqlState: '28P01' })

describe('DatabasePool: queries and leases', () => {
  it('runs a fragment compiled for the manager dialect and returns rows', async () => {
    const { pool, manager } = makePool()
    manager.responses.push({ match: /from accounts/, rows: [{ id: 1 }] })
    const r = await pool.query(sql`select * from accounts where id = ${7}`)
    expect(r.rows).toEqual([{ id: 1 }])
    expect(manager.connections[0]!.statements).toContain('select * from accounts where id = $1')
    expect(pool.stats().used).toBe(0)
  })

  it('runs native text with params', async () => {
    const { pool, manager } = makePool()
    await pool.query('select $1::int', [1])
    expect(manager.connections[0]!.statements).toContain('select $1::int')
  })

  it('rejects params next to a fragment, and non-array params', async () => {
    const { pool } = makePool()
    expect((await rejection(pool.query(sql`select 1`, [1]))).code).toBe('INVALID_PARAMETER')
    expect((await rejection(pool.query('select 1', 'x' as never))).code).toBe('INVALID_PARAMETER')
    const notText = await rejection(pool.query(42 as never))
    expect([notText.code, notText.message]).toEqual(['CONFIGURATION', 'invalid query 42: must be SQL text or a sql`` fragment'])
  })

  it('a handle refuses work after its callback returned', async () => {
    const { pool } = makePool()
    let kept: { query(q: string): Promise<unknown> } | undefined
    await pool.withConnection(async (conn) => {
      kept = conn
      expect(conn.backend).toBe('postgres')
      expect(conn.lane).toBe('write')
      expect(typeof conn.id).toBe('number')
    })
    const err = await rejection(kept!.query('select 1'))
    expect(err.message).toMatch(/released/)
    expect(pool.stats().used).toBe(0)
  })

  it('refuses a 4th argument of query() and stream(), on the pool and on a handle (it was ignored): CONFIGURATION, nothing run', async () => {
    const { pool, manager } = makePool()
    const extra = [{ timeoutMs: 1 }] as never[]
    const call = pool.query as (...args: unknown[]) => Promise<unknown>
    expect(await rejection(call.call(pool, 'select 1', [], {}, ...extra))).toMatchObject({
      code: 'CONFIGURATION',
      detail: { option: 'query()' },
    })
    const stream = pool.stream as (...args: unknown[]) => AsyncIterable<unknown>
    const iterate = async (rows: AsyncIterable<unknown>) => {
      for await (const row of rows) void row
    }
    expect(await rejection(iterate(stream.call(pool, 'select 1', [], {}, ...extra)))).toMatchObject({
      code: 'CONFIGURATION',
      detail: { option: 'stream()' },
    })
    await pool.withConnection(async (conn) => {
      const query = conn.query as (...args: unknown[]) => Promise<unknown>
      expect(await rejection(query.call(conn, 'select 1', [], {}, 5))).toMatchObject({ code: 'CONFIGURATION' })
      const connStream = conn.stream as (...args: unknown[]) => AsyncIterable<unknown>
      expect(await rejection(iterate(connStream.call(conn, 'select 1', [], {}, 5)))).toMatchObject({ code: 'CONFIGURATION' })
    })
    await pool.transaction(async (tx) => {
      const query = tx.query as (...args: unknown[]) => Promise<unknown>
      expect(await rejection(query.call(tx, 'select 1', [], undefined, 5))).toMatchObject({ code: 'CONFIGURATION' })
    })
    expect(manager.connections.flatMap((c) => c.statements).filter((t) => t === 'select 1')).toEqual([])
    // three arguments, undefined ones included, are fine
    await pool.query('select 2', undefined, undefined)
    await pool.close()
  })

  it('accepts trailing undefined arguments (a wrapper forwarding (text, params, options, cb) without cb); a defined 4th says callbacks are not supported', async () => {
    const { pool, manager } = makePool()
    const call = pool.query as (...args: unknown[]) => Promise<unknown>
    const stream = pool.stream as (...args: unknown[]) => AsyncIterable<unknown>
    const iterate = async (rows: AsyncIterable<unknown>) => {
      for await (const row of rows) void row
    }
    await call.call(pool, 'select 2', [], undefined, undefined)
    await call.call(pool, 'select 3', [], {}, undefined, undefined)
    await pool.withConnection(async (conn) => {
      await (conn.query as (...args: unknown[]) => Promise<unknown>).call(conn, 'select 5', [], undefined, undefined)
    })
    await pool.transaction(async (tx) => {
      await (tx.query as (...args: unknown[]) => Promise<unknown>).call(tx, 'select 7', [], undefined, undefined)
    })
    const ran = manager.connections.flatMap((c) => c.statements)
    for (const text of ['select 2', 'select 3', 'select 5', 'select 7']) expect(ran).toContain(text)
    const err = await rejection(call.call(pool, 'select 8', [], undefined, () => undefined))
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'query()', argument: 4 } })
    expect(err.message).toBe(
      'query() takes at most 3 arguments (text, params, options); a 4th was given: callbacks are not supported, use the promise',
    )
    expect(await rejection(iterate(stream.call(pool, 'select 8', [], {}, undefined, 1)))).toMatchObject({
      code: 'CONFIGURATION',
      message:
        'stream() takes at most 3 arguments (text, params, options); argument 5 was given: callbacks are not supported, use the promise',
    })
    expect(ran).not.toContain('select 8')
    await pool.close()
  })

  it('rejects an unknown lane name', async () => {
    const { pool } = makePool()
    expect((await rejection(pool.withConnection(async () => 1, { lane: 'x' as never }))).code).toBe('CONFIGURATION')
  })

  it('reports stats with utilization', async () => {
    const { pool } = makePool({ max: 4 })
    await pool.withConnection(async () => {
      expect(pool.stats()).toMatchObject({ used: 1, max: 4, utilization: 0.25 })
    })
    expect(pool.stats()).toMatchObject({ used: 0, idle: 1, size: 1, pending: 0 })
  })
})

describe('DatabasePool: acquire failures', () => {
  it('times out an acquire with ACQUIRE_TIMEOUT carrying the stats', async () => {
    const { pool } = makePool({ max: 1, acquireTimeoutMs: 50 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    const err = await rejection(pool.query('select 1'))
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('ACQUIRE_TIMEOUT')
    expect(err.message).toMatch(/size=1, used=1, idle=0, pending=1, max=1/)
    expect(err.poolStats).toMatchObject({ used: 1, max: 1 })
    expect(pool.metrics.snapshot().timeouts).toBe(1)
    release()
    await holder
  })

  it('rejects past maxWaitingClients with POOL_EXHAUSTED', async () => {
    const { pool } = makePool({ max: 1, maxWaitingClients: 1, acquireTimeoutMs: 1_000 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    const waiting = pool.query('select 1')
    const err = await rejection(pool.query('select 2'))
    expect(err.code).toBe('POOL_EXHAUSTED')
    expect(err.poolStats?.pending).toBe(1)
    release()
    await holder
    await waiting
  })

  it('surfaces a failing connect to the caller at once, with its code and cause', async () => {
    const { pool, manager } = makePool({ acquireTimeoutMs: 5_000 })
    manager.connectFault = { kind: 'fail', error: authError() }
    const started = Date.now()
    const err = await rejection(pool.query('select 1'))
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(err.code).toBe('AUTHENTICATION_FAILED')
    expect(err.sqlState).toBe('28P01')
  })

  it('fails every waiter fast while the server is down, then recovers', async () => {
    const { pool, manager } = makePool({ max: 2, acquireTimeoutMs: 5_000 })
    manager.connectFault = { kind: 'fail', error: new DatabaseError('CONNECTION_FAILED', 'connection refused', { backend: 'postgres' }) }
    const started = Date.now()
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => pool.query('select 1')))
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(results.every((r) => r.status === 'rejected' && (r.reason as DatabaseError).code === 'CONNECTION_FAILED')).toBe(true)
    manager.connectFault = undefined
    await expect(pool.query('select 1')).resolves.toBeDefined()
  })

  it('bounds a hanging connect by createTimeoutMs and closes a late connection', async () => {
    const { pool, manager } = makePool({ createTimeoutMs: 50, acquireTimeoutMs: 2_000 })
    manager.connectFault = { kind: 'hang' }
    const started = Date.now()
    const err = await rejection(pool.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toMatch(/timed out after 50 ms/)
    expect(Date.now() - started).toBeLessThan(1_000)
  })

  // review r6 item 4: a multi-host walk giving each host connect_timeout was cut at createTimeoutMs
  it("waits for a connect as long as the manager's own deadline (connectDeadlineMs) when that is longer", async () => {
    const manager = new FakeConnectionManager({ connectDelayMs: 300 })
    const lanes: string[] = []
    const withDeadline = Object.assign(manager, {
      connectDeadlineMs: (lane: string) => {
        lanes.push(lane)
        return 1_000
      },
    })
    const pool = new DatabasePool(withDeadline, {
      min: 0,
      max: 1,
      createTimeoutMs: 100,
      acquireTimeoutMs: 2_000,
      leakDetectionThresholdMs: 0,
    })
    try {
      await expect(pool.query('select 1')).resolves.toBeDefined()
      expect(lanes).toContain('write')
    } finally {
      await pool.close()
    }
    // never shorter than createTimeoutMs
    const short = Object.assign(new FakeConnectionManager(), { connectDeadlineMs: () => 10 })
    short.connectFault = { kind: 'hang' }
    const bounded = new DatabasePool(short, { min: 0, max: 1, createTimeoutMs: 200, acquireTimeoutMs: 2_000, leakDetectionThresholdMs: 0 })
    try {
      expect((await rejection(bounded.query('select 1'))).message).toMatch(/timed out after 200 ms/)
    } finally {
      await bounded.close()
    }
  })

  it('names the last connect error when an acquire times out', async () => {
    const { pool, manager } = makePool({ max: 1, acquireTimeoutMs: 80 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    const waiting = rejection(pool.query('select 1'))
    manager.connectFault = { kind: 'fail', error: authError() }
    const err = await waiting
    expect(err.code).toBe('ACQUIRE_TIMEOUT')
    release()
    await holder
  })
})

describe('DatabasePool: connection lifecycle', () => {
  it('warms up to min at start', async () => {
    const { pool, manager } = makePool({ min: 2, max: 3 })
    await waitFor(() => pool.stats().idle === 2)
    expect(manager.connectAttempts).toBe(2)
  })

  it('warms up again after a connection is lost', async () => {
    const { pool, manager } = makePool({ min: 1 })
    await waitFor(() => pool.stats().idle === 1)
    const events: string[] = []
    pool.on('connectionLost', (err, info) => events.push(`${err.code}:${info.idle}`))
    manager.kill(manager.connections[0]!)
    expect(events).toEqual(['CONNECTION_LOST:true'])
    await waitFor(() => manager.open.length === 1 && manager.connections.length === 2)
    expect(manager.connections[0]!.ended).toBe(true)
  })

  it('retries a failed warm-up with backoff and reports it as an error event', async () => {
    const { pool, manager } = makePool({ min: 1 })
    manager.connectFault = { kind: 'fail', error: new DatabaseError('CONNECTION_FAILED', 'down') }
    const errors: string[] = []
    pool.on('error', (e) => errors.push(e.code))
    await waitFor(() => errors.length >= 1)
    manager.connectFault = undefined
    await waitFor(() => pool.stats().idle === 1)
    expect(errors[0]).toBe('CONNECTION_FAILED')
  })

  it('retires a connection past its lifetime', async () => {
    const { pool, manager } = makePool({ maxLifetimeMs: 30, maxLifetimeJitter: 0 })
    await pool.query('select 1')
    const first = manager.connections[0]!
    await sleep(50)
    await pool.query('select 2')
    expect(first.ended).toBe(true)
    expect(manager.connections.length).toBe(2)
  })

  it('applies jitter below the lifetime', async () => {
    const { pool, manager } = makePool({ max: 1, maxLifetimeMs: 100_000, maxLifetimeJitter: 0.5 })
    await pool.query('select 1')
    expect(manager.connections.length).toBe(1)
  })

  it('closes idle connections beyond min after idleTimeoutMs', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2, idleTimeoutMs: 30 })
    await Promise.all([pool.withConnection(() => sleep(5)), pool.withConnection(() => sleep(5))])
    expect(manager.open.length).toBe(2)
    await waitFor(() => manager.open.length === 0)
  })

  it('pings on borrow only after the idle threshold, and silently replaces a dead one', async () => {
    const { pool, manager } = makePool({ max: 1, validateAfterIdleMs: 20 })
    await pool.query('select 1')
    await pool.query('select 2')
    expect(manager.pings).toBe(0)
    await sleep(40)
    manager.pingFault = { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'gone') }
    const first = manager.connections[0]!
    await pool.query('select 3')
    expect(manager.pings).toBe(1)
    expect(first.ended).toBe(true)
    expect(manager.connections.length).toBe(2)
  })

  it('pings idle connections every keepalive interval', async () => {
    const { pool, manager } = makePool({ min: 1, keepaliveIntervalMs: 20, validateAfterIdleMs: 100_000 })
    await waitFor(() => pool.stats().idle === 1)
    await waitFor(() => manager.pings >= 2)
  })

  it('evicts an idle connection whose keepalive ping fails', async () => {
    const { pool, manager } = makePool({ min: 1, keepaliveIntervalMs: 20 })
    await waitFor(() => pool.stats().idle === 1)
    const first = manager.connections[0]!
    manager.pingFault = { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'gone') }
    await waitFor(() => first.ended)
    manager.pingFault = undefined
    await waitFor(() => manager.open.length === 1)
  })

  it("rolls back a connection released inside a transaction, and the callback's withConnection rejects TRANSACTION_ROLLED_BACK", async () => {
    const { pool, manager } = makePool({ max: 1 })
    await expect(
      pool.withConnection(async (conn) => {
        await conn.query('BEGIN')
      }),
    ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    const conn = manager.connections[0]!
    expect(conn.inTransaction).toBe(false)
    expect(conn.statements).toEqual(['BEGIN', 'ROLLBACK'])
    expect(conn.ended).toBe(false)
  })

  it('destroys a connection whose reset fails', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.resetFault = { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'reset failed') }
    await pool.query('select 1')
    expect(manager.connections[0]!.ended).toBe(true)
    manager.resetFault = undefined
    await pool.query('select 2')
    expect(manager.connections.length).toBe(2)
  })

  it('destroys a connection that saw a fatal error and never reuses it', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({
      match: /fatal/,
      fault: { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'terminated') },
      fatal: true,
    })
    const err = await rejection(pool.query('select fatal'))
    expect(err.code).toBe('CONNECTION_LOST')
    expect(manager.connections[0]!.ended).toBe(true)
    await pool.query('select ok')
    expect(manager.connections[1]!.statements).toEqual(['select ok'])
  })

  it('keeps a connection after a non-fatal statement error', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /bad/, fault: { kind: 'fail', error: new DatabaseError('SYNTAX_ERROR', 'syntax') }, fatal: false })
    expect((await rejection(pool.query('bad'))).code).toBe('SYNTAX_ERROR')
    await pool.query('select 1')
    expect(manager.connections.length).toBe(1)
  })

  it('maps a non-DatabaseError thrown by the manager', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /odd/, fault: { kind: 'fail', error: new Error('odd') as DatabaseError }, fatal: false })
    const err = await rejection(pool.query('odd'))
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('QUERY_FAILED')
  })

  it('a lost leased connection is destroyed at release, not reused', async () => {
    const { pool, manager } = makePool({ max: 1 })
    await pool.withConnection(async () => {
      manager.kill(manager.connections[0]!)
    })
    expect(manager.connections[0]!.ended).toBe(true)
    await pool.query('select 1')
    expect(manager.connections.length).toBe(2)
  })
})

describe('DatabasePool: leaks and events', () => {
  it('emits leak with the acquirer stack past the threshold', async () => {
    const { pool } = makePool({ leakDetectionThresholdMs: 30 })
    const leaks: { stack: string; heldForMs: number }[] = []
    pool.on('leak', (info) => leaks.push(info))
    await pool.withConnection(() => sleep(80))
    expect(leaks).toHaveLength(1)
    expect(leaks[0]!.stack).toMatch(/database-pool\.test\.ts/)
    expect(leaks[0]!.heldForMs).toBeGreaterThanOrEqual(30)
  })

  it('warns through process warnings when nobody listens for leaks', async () => {
    const { pool } = makePool({ leakDetectionThresholdMs: 20 })
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    try {
      await pool.withConnection(() => sleep(60))
      expect(spy.mock.calls.some(([w]) => /possible leak/.test(String(w)))).toBe(true)
    } finally {
      spy.mockRestore()
    }
  })

  it('a throwing listener never breaks the pool', async () => {
    const { pool, manager } = makePool({ min: 0 })
    const onWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    pool.on('connect', () => {
      throw new Error('listener bug')
    })
    const seen: number[] = []
    pool.on('connect', (info) => seen.push(info.connectionId))
    await expect(pool.query('select 1')).resolves.toBeDefined()
    expect(seen).toEqual([manager.connections[0]!.id])
    expect(onWarning).toHaveBeenCalledWith(expect.stringMatching(/listener threw: listener bug/), 'DbpoolWarning')
    onWarning.mockRestore()
  })

  it('off removes a listener', async () => {
    const { pool } = makePool()
    const listener = jest.fn()
    pool.on('connect', listener).off('connect', listener)
    await pool.query('select 1')
    expect(listener).not.toHaveBeenCalled()
  })
})

describe('DatabasePool: close', () => {
  it('refuses new work at once with POOL_CLOSED, and lets a caller that was waiting before close() finish', async () => {
    const { pool } = makePool({ max: 1, acquireTimeoutMs: 5_000 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await waitFor(() => pool.stats().used === 1)
    const waiting = pool.query('select 1')
    const closing = pool.close({ timeoutMs: 1_000 })
    expect(pool.isOpen).toBe(false)
    expect((await rejection(pool.query('select 2'))).code).toBe('POOL_CLOSED')
    release()
    await holder
    await expect(waiting).resolves.toMatchObject({ rows: [] })
    const report = await closing
    expect(report.outstandingLeases).toEqual([])
    expect(report.abortedWaiters).toBe(0)
    expect(report.timedOut).toBe(false)
  })

  it('resolves by its deadline with a leaked lease, names it, and destroys its connection', async () => {
    const { pool, manager } = makePool({ max: 1, leakDetectionThresholdMs: 60_000 })
    let leasedQuery: Promise<unknown> | undefined
    void pool.withConnection(async (conn) => {
      await new Promise(() => undefined) // never returns: a leak
      leasedQuery = conn.query('select 1')
    })
    await waitFor(() => pool.stats().used === 1)
    const started = Date.now()
    const report = await pool.close({ timeoutMs: 100 })
    expect(Date.now() - started).toBeLessThan(1_500)
    expect(report.timedOut).toBe(true)
    expect(report.outstandingLeases).toHaveLength(1)
    expect(report.outstandingLeases[0]!.stack).toMatch(/database-pool\.test\.ts/)
    expect(manager.open).toHaveLength(0)
    expect(leasedQuery).toBeUndefined()
  })

  it('is idempotent', async () => {
    const { pool } = makePool()
    const a = pool.close()
    const b = pool.close()
    expect(a).toBe(b)
    await a
  })

  it('destroys every idle connection', async () => {
    const { pool, manager } = makePool({ min: 2 })
    await waitFor(() => pool.stats().idle === 2)
    await pool.close()
    expect(manager.open).toHaveLength(0)
    expect(pool.stats().size).toBe(0)
  })

  it('a handle revoked by close refuses work with POOL_CLOSED', async () => {
    const { pool } = makePool({ max: 1 })
    let handle: { query(q: string): Promise<unknown> } | undefined
    let proceed!: () => void
    const user = pool.withConnection(async (conn) => {
      handle = conn
      await new Promise<void>((r) => (proceed = r))
      return conn.query('select after close')
    })
    await waitFor(() => handle !== undefined)
    await pool.close({ timeoutMs: 20 })
    proceed()
    expect((await rejection(user)).code).toBe('POOL_CLOSED')
  })
})

describe('DatabasePool: lanes', () => {
  const lanes = { writeMax: 1, readers: 2 }

  it('routes read-only statements to the read lane and writes to the single writer', async () => {
    const { pool, manager } = makePool({ max: 10 }, { lanes })
    await pool.query('select 1')
    await pool.query('insert into t values (1)')
    const byLane = (lane: string) => manager.connections.filter((c) => c.lane === lane)
    expect(byLane('read')[0]!.statements).toEqual(['select 1'])
    expect(byLane('write')[0]!.statements).toEqual(['insert into t values (1)'])
    expect(pool.stats('write').max).toBe(1)
    expect(pool.stats('read').max).toBe(2)
    expect(pool.stats().max).toBe(3)
  })

  it('runs a read-only transaction on a reader and a read-write one on the writer', async () => {
    const { pool } = makePool({ max: 10 }, { lanes })
    const lanesSeen: string[] = []
    await pool.transaction(async (tx) => void lanesSeen.push(tx.lane), { readOnly: true })
    await pool.transaction(async (tx) => void lanesSeen.push(tx.lane))
    expect(lanesSeen).toEqual(['read', 'write'])
  })

  it('queues writers for the single write connection', async () => {
    const { pool, manager } = makePool({ max: 10, acquireTimeoutMs: 2_000 }, { lanes })
    let active = 0
    let peak = 0
    await Promise.all(
      Array.from({ length: 10 }, () =>
        pool.transaction(async (tx) => {
          active++
          peak = Math.max(peak, active)
          await sleep(2)
          await tx.query('insert into t values (1)')
          active--
        }),
      ),
    )
    expect(peak).toBe(1)
    expect(manager.connections.filter((c) => c.lane === 'write')).toHaveLength(1)
  })

  it('reports empty read-lane stats when there is no read lane', () => {
    const { pool } = makePool()
    expect(pool.stats('read')).toMatchObject({ size: 0, max: 0 })
  })
})

describe('DatabasePool: construction', () => {
  it('rejects an invalid config eagerly', () => {
    expect(() => new DatabasePool(new FakeConnectionManager(), { max: 0 })).toThrow(/pool\.max/)
  })

  it('exposes backend, target and name', async () => {
    const { pool } = makePool({ name: 'ledger' })
    expect(pool.backend).toBe('postgres')
    expect(pool.target).toBe('fake://test')
    expect(pool.name).toBe('ledger')
  })
})

describe('DatabasePool: synchronous drivers', () => {
  it('runs a single statement on an idle connection without a lease', async () => {
    const { pool, manager } = makePool({ min: 1 }, { synchronous: true })
    await waitFor(() => pool.stats().idle === 1)
    manager.responses.push({ match: /select/, rows: [{ n: 1 }] })
    const r = await pool.query('select 1')
    expect(r.rows).toEqual([{ n: 1 }])
    expect(manager.syncExecutions).toBe(1)
    expect(pool.metrics.snapshot().acquired).toBe(0)
  })

  it('waits for the writer when a transaction holds it', async () => {
    const { pool, manager } = makePool({ min: 1, max: 1 }, { synchronous: true })
    await waitFor(() => pool.stats().idle === 1)
    const order: string[] = []
    let release!: () => void
    const tx = pool.transaction(async (t) => {
      await t.query('insert in tx')
      await new Promise<void>((r) => (release = r))
      order.push('commit')
    })
    await waitFor(() => pool.stats().used === 1)
    const outside = pool.query('insert outside').then(() => order.push('outside'))
    await sleep(10)
    expect(order).toEqual([])
    release()
    await Promise.all([tx, outside])
    expect(order).toEqual(['commit', 'outside'])
    expect(manager.syncExecutions).toBe(0)
  })

  it('marks a connection broken after a fatal synchronous error and replaces it', async () => {
    const { pool, manager } = makePool({ min: 1, max: 1 }, { synchronous: true })
    await waitFor(() => pool.stats().idle === 1)
    manager.queryFaults.push({
      match: /fatal/,
      fault: { kind: 'fail', error: new DatabaseError('CORRUPT', 'disk image is malformed') },
      fatal: true,
    })
    expect((await rejection(pool.query('select fatal'))).code).toBe('CORRUPT')
    await waitFor(() => manager.connections[0]!.ended && manager.open.length === 1)
    expect((await pool.query('select ok')).rowCount).toBe(0)
  })

  it('keeps the connection after a non-fatal synchronous error', async () => {
    const { pool, manager } = makePool({ min: 1, max: 1 }, { synchronous: true })
    await waitFor(() => pool.stats().idle === 1)
    manager.queryFaults.push({ match: /dup/, fault: { kind: 'fail', error: new DatabaseError('UNIQUE_VIOLATION', 'dup') }, fatal: false })
    expect((await rejection(pool.query('insert dup'))).code).toBe('UNIQUE_VIOLATION')
    await pool.query('select ok')
    expect(manager.connections).toHaveLength(1)
  })
})

describe('DatabasePool: dead connections leave at once', () => {
  it('a connection destroyed on release is gone from the stats, and nothing reopens when min is 0', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2 })
    manager.queryFaults.push({ match: /fatal/, fault: { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'gone') }, fatal: true })
    expect((await rejection(pool.query('select fatal'))).code).toBe('CONNECTION_LOST')
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, used: 0 })
    await sleep(20)
    expect(manager.connectAttempts).toBe(1)
  })

  it('an idle connection lost to the server is dropped without opening a new one when min is 0', async () => {
    const { pool, manager } = makePool({ min: 0, max: 2 })
    await pool.query('select 1')
    expect(pool.stats().idle).toBe(1)
    manager.kill(manager.connections[0]!)
    await waitFor(() => pool.stats().size === 0)
    await sleep(20)
    expect(manager.connectAttempts).toBe(1)
    expect(manager.connections[0]!.ended).toBe(true)
  })
})
