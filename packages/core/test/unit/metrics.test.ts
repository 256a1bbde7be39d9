import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { DatabasePool, METRIC_NAMES, MetricsCollector, POOL_NAME_ATTRIBUTE } from '@dbpool/core'
import { FakeConnectionManager, type FakeConnection } from '@dbpool/core/testing'

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

function points(metrics: ResourceMetrics, name: string) {
  const found = metrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name)
  if (!found) throw new Error(`metric ${name} not recorded`)
  return { unit: found.descriptor.unit, points: found.dataPoints as { attributes: Record<string, unknown>; value: unknown }[] }
}

describe('MetricsCollector', () => {
  it('records the semantic-convention instruments through the OpenTelemetry API', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const metrics = new MetricsCollector('ledger', { meter: provider.getMeter('test') })
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 3, name: 'ledger', acquireTimeoutMs: 50 }, { metrics })
    await pool.query('select 1')
    await pool.withConnection(async () => {
      const { resourceMetrics } = await reader.collect()
      const count = points(resourceMetrics, METRIC_NAMES.count)
      expect(count.unit).toBe('{connection}')
      const used = count.points.find((p) => p.attributes['db.client.connection.state'] === 'used')
      expect(used?.value).toBe(1)
      expect(used?.attributes[POOL_NAME_ATTRIBUTE]).toBe('ledger')
      expect(points(resourceMetrics, METRIC_NAMES.max).points[0]?.value).toBe(3)
      expect(points(resourceMetrics, METRIC_NAMES.pendingRequests).points[0]?.value).toBe(0)
      expect(points(resourceMetrics, METRIC_NAMES.idleMax).points[0]?.value).toBe(3)
      expect(points(resourceMetrics, METRIC_NAMES.idleMin).points[0]?.value).toBe(0)
    })
    const { resourceMetrics } = await reader.collect()
    for (const name of [METRIC_NAMES.createTime, METRIC_NAMES.waitTime, METRIC_NAMES.useTime]) {
      const h = points(resourceMetrics, name)
      expect(h.unit).toBe('s')
      expect((h.points[0]?.value as { count: number }).count).toBeGreaterThanOrEqual(1)
    }
    await pool.close()
    await provider.shutdown()
  })

  it('counts timeouts and keeps a snapshot without any SDK', async () => {
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 1, acquireTimeoutMs: 30, name: 'plain' })
    await pool.withConnection(async () => {
      await expect(pool.query('select 1')).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT' })
    })
    const snap = pool.metrics.snapshot()
    expect(snap).toMatchObject({
      poolName: 'plain',
      created: 1,
      acquired: 1,
      returned: 1,
      timeouts: 1,
      connections: { idle: 1, used: 0, max: 1 },
    })
    expect(snap.useTime.maxMs).toBeGreaterThanOrEqual(30)
    expect(snap.waitTime.count).toBe(1)
    await pool.close()
    expect(pool.metrics.snapshot().dropped).toBe(1)
  })

  it('reports zero averages before anything happened', () => {
    const m = new MetricsCollector('empty')
    expect(m.snapshot().waitTime).toEqual({ count: 0, totalMs: 0, maxMs: 0, avgMs: 0 })
    m.detach()
  })
})

describe('use time of every lease', () => {
  it('a lease close() revoked, and one whose connection broke, each get their use_time sample (acquired = returned)', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const metrics = new MetricsCollector('revoked', { meter: provider.getMeter('test') })
    const manager = new FakeConnectionManager()
    const pool = new DatabasePool(manager, { min: 0, max: 2, name: 'revoked' }, { metrics })
    try {
      // a lease whose connection broke while held
      await pool
        .withConnection(async (conn) => {
          manager.kill(conn.native as FakeConnection)
          await conn.query('select 1')
        })
        .catch(() => undefined)
      let release = (): void => undefined
      const held = pool.withConnection(() => new Promise<void>((resolve) => (release = resolve))).catch(() => undefined)
      await new Promise((resolve) => setTimeout(resolve, 10))
      const report = await pool.close({ timeoutMs: 20 })
      expect(report.outstandingLeases).toHaveLength(1)
      release()
      await held
      const snap = pool.metrics.snapshot()
      expect(snap.acquired).toBe(2)
      expect(snap.returned).toBe(2)
      const { resourceMetrics } = await reader.collect()
      expect((points(resourceMetrics, METRIC_NAMES.useTime).points[0]?.value as { count: number }).count).toBe(2)
    } finally {
      await provider.shutdown()
    }
  })
})

describe('wait time of a caller that waited', () => {
  it('runs from the acquire to the moment the connection was handed back', async () => {
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 1, acquireTimeoutMs: 2_000, name: 'waits' })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await new Promise((r) => setTimeout(r, 5))
    const waiter = pool.query('select 1')
    await new Promise((r) => setTimeout(r, 40))
    release()
    await Promise.all([holder, waiter])
    const { waitTime } = pool.metrics.snapshot()
    expect(waitTime.count).toBe(2)
    expect(waitTime.maxMs).toBeGreaterThanOrEqual(35)
    expect(waitTime.maxMs).toBeLessThan(1_000)
    await pool.close()
  })
})

describe('gauges of a closed pool and of pools sharing a name', () => {
  function gauges(metrics: ResourceMetrics, poolName: string): Record<string, unknown> {
    const of = (name: string) => points(metrics, name).points.filter((p) => p.attributes[POOL_NAME_ATTRIBUTE] === poolName)
    const count = of(METRIC_NAMES.count)
    return {
      idle: count.find((p) => p.attributes['db.client.connection.state'] === 'idle')?.value,
      used: count.find((p) => p.attributes['db.client.connection.state'] === 'used')?.value,
      pending: of(METRIC_NAMES.pendingRequests)[0]?.value,
      max: of(METRIC_NAMES.max)[0]?.value,
    }
  }

  it('a closed pool reads its final state (zero connections, zero pending), not its last scrape', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const pool = new DatabasePool(
      new FakeConnectionManager(),
      { min: 0, max: 3, name: 'gone' },
      { metricsOptions: { meter: provider.getMeter('t') } },
    )
    await pool.query('select 1')
    await pool.withConnection(async () => {
      await pool.withConnection(async () => {
        // the last scrape before close sees connections in use
        expect(gauges((await reader.collect()).resourceMetrics, 'gone')).toEqual({ idle: 0, used: 2, pending: 0, max: 3 })
      })
    })
    await pool.close()
    expect(gauges((await reader.collect()).resourceMetrics, 'gone')).toEqual({ idle: 0, used: 0, pending: 0, max: 3 })
    expect(gauges((await reader.collect()).resourceMetrics, 'gone')).toEqual({ idle: 0, used: 0, pending: 0, max: 3 })
    expect(pool.metrics.snapshot().connections).toMatchObject({ idle: 0, used: 0, pending: 0 })
    // a pool made later under that name takes the series over
    const again = new DatabasePool(
      new FakeConnectionManager(),
      { min: 0, max: 5, name: 'gone' },
      { metricsOptions: { meter: provider.getMeter('t') } },
    )
    await again.withConnection(async () => {
      expect(gauges((await reader.collect()).resourceMetrics, 'gone')).toEqual({ idle: 0, used: 1, pending: 0, max: 5 })
    })
    await again.close()
    await provider.shutdown()
  })

  it('two open pools with one name: a DBPOOL_DUPLICATE_POOL_NAME warning, the first reports until it closes, then the second', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const meter = provider.getMeter('t')
    const warnings: unknown[] = []
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation((...args: unknown[]) => void warnings.push(args))
    try {
      const a = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 2, name: 'same' }, { metricsOptions: { meter } })
      const b = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 7, name: 'same' }, { metricsOptions: { meter } })
      const c = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 9, name: 'same' }, { metricsOptions: { meter } })
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toEqual([expect.stringMatching(/two open pools named "same"/), { code: 'DBPOOL_DUPLICATE_POOL_NAME' }])
      await a.withConnection(async () => {
        // one series, one pool's values (not a merge of the three)
        expect(gauges((await reader.collect()).resourceMetrics, 'same')).toEqual({ idle: 0, used: 1, pending: 0, max: 2 })
      })
      await a.close()
      expect(gauges((await reader.collect()).resourceMetrics, 'same')).toEqual({ idle: 0, used: 0, pending: 0, max: 7 })
      await b.close()
      await c.close()
      // every pool of that name closed: the last one's final state
      expect(gauges((await reader.collect()).resourceMetrics, 'same')).toEqual({ idle: 0, used: 0, pending: 0, max: 9 })
    } finally {
      spy.mockRestore()
      await provider.shutdown()
    }
  })

  it('one collector given to a second open pool: CONFIGURATION naming pool.metrics and the first pool; the first keeps reporting itself (review r13 D2)', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const metrics = new MetricsCollector('app', { meter: provider.getMeter('t') })
    const a = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 4, name: 'a' }, { metrics })
    let thrown: unknown
    try {
      new DatabasePool(new FakeConnectionManager(), { min: 0, max: 6, name: 'b' }, { metrics })
    } catch (err) {
      thrown = err
    }
    expect(thrown).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'pool.metrics', pool: 'a' } })
    expect((thrown as Error).message).toMatch(/pool\.metrics.*already the collector of pool "a"/)
    // binding it by hand (a registry, a second source) is refused alike
    expect(() => metrics.bind(() => a.stats())).toThrow(/already the collector of pool "a"/)
    await a.withConnection(async () => {
      expect(gauges((await reader.collect()).resourceMetrics, 'app')).toEqual({ idle: 0, used: 1, pending: 0, max: 4 })
      expect(a.metrics.snapshot().connections).toMatchObject({ used: 1, max: 4 })
    })
    await a.close()
    await provider.shutdown()
  })

  // review r13 D5: a stand-in with bind() alone passed, then every statement failed with a TypeError,
  // close() rejected and a connection was stranded; a Meter without the batch callbacks threw a TypeError
  it.each([
    ['an object with bind() alone', { bind() {} }],
    [
      'a collector missing detach()',
      {
        ...Object.fromEntries(
          [
            'bind',
            'snapshot',
            'recordConnectionCreated',
            'recordConnectionAcquired',
            'recordConnectionReturned',
            'recordConnectionDropped',
            'recordTimeout',
            'recordOperation',
          ].map((m) => [m, () => undefined]),
        ),
      },
    ],
  ])('metrics that is not a MetricsCollector (%s): CONFIGURATION naming pool.metrics, when the pool is made', (_, metrics) => {
    expect(() => new DatabasePool(new FakeConnectionManager(), { min: 0, max: 2, name: 'm' }, { metrics: metrics as never })).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION', detail: expect.objectContaining({ option: 'pool.metrics' }) }),
    )
  })

  it('metricsOptions.meter without addBatchObservableCallback: CONFIGURATION naming metricsOptions.meter, from the pool and the collector', () => {
    const provider = new MeterProvider({ readers: [] })
    const real = provider.getMeter('t')
    const meter = {
      createCounter: real.createCounter.bind(real),
      createHistogram: real.createHistogram.bind(real),
      createObservableUpDownCounter: real.createObservableUpDownCounter.bind(real),
    }
    const expected = expect.objectContaining({ code: 'CONFIGURATION', detail: expect.objectContaining({ option: 'metricsOptions.meter' }) })
    expect(() => new MetricsCollector('m', { meter: meter as never })).toThrow(expected)
    expect(
      () => new DatabasePool(new FakeConnectionManager(), { min: 0, max: 2, name: 'm' }, { metricsOptions: { meter: meter as never } }),
    ).toThrow(expected)
  })

  it('a collector that throws when a connection is made or at close() strands no connection, and close() still reports', async () => {
    const metrics = new MetricsCollector('throwing')
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 1, name: 'throwing', acquireTimeoutMs: 1_000 }, { metrics })
    const errors: unknown[] = []
    pool.on('error', (err) => errors.push(err))
    metrics.recordConnectionCreated = () => {
      throw new Error('collector broke')
    }
    await pool.query('select 1')
    await pool.query('select 1')
    expect(pool.stats()).toMatchObject({ size: 1, used: 0, idle: 1 })
    metrics.detach = () => {
      throw new Error('collector broke at detach')
    }
    const report = await pool.close({ timeoutMs: 1_000 })
    expect(report).toMatchObject({ timedOut: false, outstandingLeases: [] })
    expect(pool.isOpen).toBe(false)
    // the failure at detach goes to the pool's error event (a record that throws is a telemetry warning)
    expect((errors as Error[]).map((e) => e.message)).toEqual(expect.arrayContaining([expect.stringMatching(/collector broke at detach/)]))
  })

  it('a collector whose pool closed is reused by a new pool: it reports the new pool, then its final state', async () => {
    const reader = new TestReader()
    const provider = new MeterProvider({ readers: [reader] })
    const metrics = new MetricsCollector('app', { meter: provider.getMeter('t') })
    const a = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 4, name: 'app' }, { metrics })
    await a.query('select 1')
    await a.close()
    const b = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 6, name: 'app' }, { metrics })
    await b.withConnection(async () => {
      expect(gauges((await reader.collect()).resourceMetrics, 'app')).toEqual({ idle: 0, used: 1, pending: 0, max: 6 })
      expect(metrics.snapshot().connections).toMatchObject({ used: 1, max: 6 })
    })
    // the closed pool a, closed again, does not detach it from b
    await a.close()
    expect(metrics.snapshot().connections).toMatchObject({ idle: 1, used: 0, max: 6 })
    await b.close()
    expect(gauges((await reader.collect()).resourceMetrics, 'app')).toEqual({ idle: 0, used: 0, pending: 0, max: 6 })
    // a pool whose construction failed never held it
    expect(() => new DatabasePool(new FakeConnectionManager(), { min: 0, max: 2, name: 'app', bogus: 1 } as never, { metrics })).toThrow()
    const c = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 3, name: 'app' }, { metrics })
    expect(metrics.snapshot().connections.max).toBe(3)
    await c.close()
    await provider.shutdown()
  })
})
