import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { context, metrics, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { DatabaseError, PoolFactory, TRANSACTION_SPAN_NAME, type DatabasePool, type PoolOptions } from '@dbpool/core'

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** What differs between the backends. */
export interface TelemetryFailuresOptions {
  readonly backend: 'postgres' | 'sqlite'
  /** A fresh database; `secret` is the password its URL carries (Postgres), if any. */
  database(): Promise<{ url: string; secret?: string; cleanup: () => Promise<void> }>
  /** Placeholder of the first parameter in native text. */
  readonly placeholder: string
  /** A statement that takes well over 20 ms, with one text parameter. */
  readonly slowStatement: string
}

/**
 * An application's span processor that throws once, in `onStart` or `onEnd`, for the next span whose
 * name matches (an exporter bridge or an enrichment processor with a bug: the SDK does not guard it).
 */
class FaultyProcessor implements SpanProcessor {
  armed: { phase: 'start' | 'end'; name: RegExp } | undefined
  fired = 0

  arm(phase: 'start' | 'end', name: RegExp): void {
    this.armed = { phase, name }
    this.fired = 0
  }

  #maybeThrow(phase: 'start' | 'end', name: string): void {
    const armed = this.armed
    if (armed?.phase !== phase || !armed.name.test(name)) return
    this.armed = undefined
    this.fired++
    throw new Error(`span processor failed in on${phase === 'start' ? 'Start' : 'End'}`)
  }

  onStart(span: Span & { name: string }, _parent: Context): void {
    this.#maybeThrow('start', span.name)
  }

  onEnd(span: ReadableSpan): void {
    this.#maybeThrow('end', span.name)
  }

  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

/**
 * Review r13 D1, D8, D9 on a real database with the real OpenTelemetry SDK: an SDK that throws never
 * reaches the pool (no leaked lease, the caller's own result or error, close() at once); a failed wait
 * for a connection has its `dbpool.acquire` span; `logParameters` hides secrets in `params`.
 */
export function defineTelemetryFailuresSuite(options: TelemetryFailuresOptions): void {
  const exporter = new InMemorySpanExporter()
  const faulty = new FaultyProcessor()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), faulty] })
  const meterProvider = new MeterProvider({ readers: [new TestReader()] })
  const tracer = trace.getTracer('app')
  const pools: DatabasePool<unknown>[] = []
  let db: { url: string; secret?: string; cleanup: () => Promise<void> }
  let dir: string
  let warnings: unknown[][]
  const p = options.placeholder

  async function open(config: PoolOptions = {}, poolOptions: Record<string, unknown> = {}): Promise<DatabasePool<unknown>> {
    const pool = await PoolFactory.create(
      db.url,
      { min: 0, max: 1, name: 'faults', acquireTimeoutMs: 3_000, ...config },
      { pool: poolOptions },
    )
    pools.push(pool)
    return pool
  }

  const telemetryWarnings = (): unknown[][] =>
    warnings.filter((args) => (args[1] as { code?: string } | undefined)?.code === 'DBPOOL_TELEMETRY_FAILED')

  async function count(pool: DatabasePool<unknown>, id: number): Promise<number> {
    const { rows } = await pool.query<{ n: unknown }>(`select count(*) as n from ledger where id = ${p}`, [id])
    return Number(rows[0]!.n)
  }

  /** The pool is whole: its next statement runs at once, nothing is leased, close() ends at once with nothing out. */
  async function expectWhole(pool: DatabasePool<unknown>): Promise<void> {
    const started = Date.now()
    await expect(pool.query('select 1 as x')).resolves.toMatchObject({ rows: [{ x: 1 }] })
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(pool.stats()).toMatchObject({ used: 0, pending: 0 })
    const report = await pool.close({ timeoutMs: 2_000 })
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
    expect(Date.now() - started).toBeLessThan(1_500)
  }

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    trace.setGlobalTracerProvider(tracerProvider)
    metrics.setGlobalMeterProvider(meterProvider)
    db = await options.database()
    dir = mkdtempSync(join(tmpdir(), `dbpool-telemetry-failures-${options.backend}-`))
    const pool = await open()
    await pool.query('create table ledger (id integer primary key, note text not null)')
  }, 180_000)

  afterAll(async () => {
    for (const pool of pools.splice(0)) await pool.close({ timeoutMs: 5_000 })
    await db?.cleanup()
    rmSync(dir, { recursive: true, force: true })
    await meterProvider.shutdown()
    trace.disable()
    metrics.disable()
    context.disable()
  }, 60_000)

  let nextId = 1_000
  beforeEach(() => {
    exporter.reset()
    faulty.armed = undefined
    warnings = []
    jest.spyOn(process, 'emitWarning').mockImplementation((...args: unknown[]) => void warnings.push(args))
  })
  afterEach(() => jest.restoreAllMocks())

  describe(`a span processor that throws, on ${options.backend} (review r13 D1)`, () => {
    for (const phase of ['start', 'end'] as const) {
      it(`in on${phase === 'start' ? 'Start' : 'End'} of a waiting caller's dbpool.acquire span: both callers get their own result, no lease is leaked`, async () => {
        const pool = await open()
        await pool.query('select 1')
        faulty.arm(phase, /^dbpool\.acquire$/)
        // the holder's release hands the connection to the waiter, whose acquire span then fails
        const holder = pool.withConnection(() => new Promise((resolve) => setTimeout(() => resolve('held'), 100)))
        const waiter = pool.withConnection(async (conn) => (await conn.query('select 2 as y')).rows)
        await expect(holder).resolves.toBe('held')
        await expect(waiter).resolves.toEqual([{ y: 2 }])
        expect(faulty.fired).toBe(1)
        await expectWhole(pool)
        expect(telemetryWarnings()).toHaveLength(1)
        expect(String(telemetryWarnings()[0]![0])).toMatch(/telemetry of pool "faults" failed .*span processor failed/)
      })

      it(`in on${phase === 'start' ? 'Start' : 'End'} of a statement span: a committed INSERT resolves, a failed one rejects with its own DatabaseError`, async () => {
        const pool = await open()
        const id = nextId++
        faulty.arm(phase, /^INSERT ledger$/)
        await expect(pool.query(`insert into ledger (id, note) values (${p}, 'committed')`, [id])).resolves.toMatchObject({ rowCount: 1 })
        expect(faulty.fired).toBe(1)
        faulty.arm(phase, /^INSERT ledger$/)
        const failed = await pool.query(`insert into ledger (id, note) values (${p}, 'duplicate')`, [id]).catch((err: unknown) => err)
        expect(failed).toBeInstanceOf(DatabaseError)
        expect(failed).toMatchObject({ code: 'UNIQUE_VIOLATION' })
        expect(faulty.fired).toBe(1)
        await expect(count(pool, id)).resolves.toBe(1)
        await expectWhole(pool)
        // once per pool: the second failure is dropped
        expect(telemetryWarnings()).toHaveLength(1)
      })

      it(`in on${phase === 'start' ? 'Start' : 'End'} of a transaction span: transaction() returns a promise with the callback's result or error, nothing stays admitted`, async () => {
        const pool = await open()
        const id = nextId++
        faulty.arm(phase, new RegExp(`^${TRANSACTION_SPAN_NAME}$`))
        let running: Promise<unknown> | undefined
        expect(() => {
          running = pool.transaction(async (tx) => {
            await tx.query(`insert into ledger (id, note) values (${p}, 'in tx')`, [id])
            return 'committed'
          })
        }).not.toThrow()
        await expect(running).resolves.toBe('committed')
        expect(faulty.fired).toBe(1)
        faulty.arm(phase, new RegExp(`^${TRANSACTION_SPAN_NAME}$`))
        const own = new Error('the callback`s own error')
        await expect(
          pool.transaction(async (tx) => {
            await tx.query(`insert into ledger (id, note) values (${p}, 'rolled back')`, [id + 500_000])
            throw own
          }),
        ).rejects.toBe(own)
        expect(faulty.fired).toBe(1)
        await expect(count(pool, id)).resolves.toBe(1)
        await expect(count(pool, id + 500_000)).resolves.toBe(0)
        await expectWhole(pool)
      })

      it(`in on${phase === 'start' ? 'Start' : 'End'} of a stream span: every row arrives, the stream ends cleanly`, async () => {
        const pool = await open()
        const id = nextId++
        await pool.query(`insert into ledger (id, note) values (${p}, 'streamed')`, [id])
        faulty.arm(phase, /^SELECT ledger$/)
        const rows: unknown[] = []
        for await (const row of pool.stream(`select note from ledger where id = ${p}`, [id], { batchSize: 1 })) rows.push(row)
        expect(rows).toEqual([{ note: 'streamed' }])
        expect(faulty.fired).toBe(1)
        await expectWhole(pool)
      })
    }

    it('a meter whose record throws (an SDK view): statements and leases go on, one warning', async () => {
      const throwing = {
        process: () => {
          throw new Error('attributes processor failed')
        },
      }
      const faultyMeters = new MeterProvider({
        readers: [new TestReader()],
        views: [
          { instrumentName: 'db.client.connection.wait_time', attributesProcessors: [throwing] },
          { instrumentName: 'db.client.connection.use_time', attributesProcessors: [throwing] },
          { instrumentName: 'db.client.operation.duration', attributesProcessors: [throwing] },
        ],
      })
      const pool = await open({}, { metricsOptions: { meter: faultyMeters.getMeter('faulty') } })
      const id = nextId++
      await expect(pool.query(`insert into ledger (id, note) values (${p}, 'metered')`, [id])).resolves.toMatchObject({ rowCount: 1 })
      await expect(pool.withConnection(async (conn) => (await conn.query('select 3 as z')).rows)).resolves.toEqual([{ z: 3 }])
      await expect(pool.transaction((tx) => tx.query('select 4 as w').then((r) => r.rows))).resolves.toEqual([{ w: 4 }])
      await expectWhole(pool)
      expect(telemetryWarnings()).toHaveLength(1)
      await faultyMeters.shutdown()
    })
  })

  describe(`a failed wait for a connection, on ${options.backend} (review r13 D8)`, () => {
    it('ACQUIRE_TIMEOUT: the caller gets a dbpool.acquire span over its wait, status ERROR, error.type ACQUIRE_TIMEOUT', async () => {
      const pool = await open({ acquireTimeoutMs: 300 })
      await pool.query('select 1')
      let release!: () => void
      const holder = pool.withConnection(() => new Promise<void>((resolve) => (release = resolve)))
      await new Promise((resolve) => setTimeout(resolve, 20))
      exporter.reset()
      const code = await tracer.startActiveSpan('req', async (span) => {
        try {
          await pool.withConnection(async () => undefined)
          return 'acquired'
        } catch (err) {
          return (err as DatabaseError).code
        } finally {
          span.end()
        }
      })
      release()
      await holder
      expect(code).toBe('ACQUIRE_TIMEOUT')
      const req = exporter.getFinishedSpans().find((s) => s.name === 'req')!
      const waits = exporter.getFinishedSpans().filter((s) => s.name === 'dbpool.acquire')
      expect(waits).toHaveLength(1)
      const wait = waits[0]!
      expect(wait.parentSpanContext?.spanId).toBe(req.spanContext().spanId)
      expect(wait.status.code).toBe(SpanStatusCode.ERROR)
      expect(wait.attributes).toMatchObject({ 'error.type': 'ACQUIRE_TIMEOUT', 'dbpool.lane': 'write' })
      const ms = wait.duration[0] * 1_000 + wait.duration[1] / 1e6
      expect(ms).toBeGreaterThanOrEqual(250)
      await expectWhole(pool)
    })

    it('POOL_EXHAUSTED: the refused caller gets a failed dbpool.acquire span too', async () => {
      const pool = await open({ maxWaitingClients: 0 })
      await pool.query('select 1')
      let release!: () => void
      const holder = pool.withConnection(() => new Promise<void>((resolve) => (release = resolve)))
      await new Promise((resolve) => setTimeout(resolve, 20))
      exporter.reset()
      await expect(pool.withConnection(async () => undefined)).rejects.toMatchObject({ code: 'POOL_EXHAUSTED' })
      release()
      await holder
      const wait = exporter.getFinishedSpans().find((s) => s.name === 'dbpool.acquire')
      expect(wait?.status.code).toBe(SpanStatusCode.ERROR)
      expect(wait?.attributes['error.type']).toBe('POOL_EXHAUSTED')
      await expectWhole(pool)
    })
  })

  describe(`logParameters on ${options.backend} (review r13 D9)`, () => {
    it('the slowStatement line`s params hide secrets as its text does: strings, and strings inside arrays and objects', async () => {
      const file = join(dir, 'params.log')
      const logger = pino({ level: 'debug' }, pino.destination({ dest: file, sync: true }))
      const pool = await open({ slowQueryMs: 1, logParameters: true }, { logger })
      const url = 'postgres://app:UrlPassw0rd!@db.example/ledger'
      await pool.query(options.slowStatement, [url])
      if (db.secret !== undefined) {
        await pool.query(options.slowStatement, [db.secret])
        if (options.backend === 'postgres') {
          await pool.query(`select pg_sleep(0.03), ${p}::text[] as a, $2::jsonb as b`, [
            ['plain', db.secret],
            { user: 'app', password: db.secret, nested: { also: db.secret } },
          ])
        }
      }
      await pool.close()
      const lines = readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line.includes('"slowStatement"'))
        .map((line) => JSON.parse(line) as { params: unknown[] })
      expect(lines[0]?.params).toEqual(['postgres://app:[REDACTED]@db.example/ledger'])
      if (db.secret !== undefined) {
        expect(lines[1]?.params).toEqual(['[REDACTED]'])
        if (options.backend === 'postgres')
          expect(lines[2]?.params).toEqual([
            ['plain', '[REDACTED]'],
            { user: 'app', password: '[REDACTED]', nested: { also: '[REDACTED]' } },
          ])
      }
      const logged = readFileSync(file, 'utf8')
      expect(logged).not.toContain('UrlPassw0rd')
      if (db.secret !== undefined) expect(logged).not.toContain(`"${db.secret}"`)
    })
  })
}
