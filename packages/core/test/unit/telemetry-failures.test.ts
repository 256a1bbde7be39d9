import type { Span, Tracer } from '@opentelemetry/api'
import { DatabasePool, type PoolOptions } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'

/** A tracer whose spans record and throw from every other method (an SDK with a broken processor). */
function brokenTracer(startThrows: boolean): Tracer {
  const fail = (): never => {
    throw new Error('SDK failed')
  }
  const span = {
    isRecording: () => true,
    spanContext: () => ({ traceId: '0'.repeat(31) + '1', spanId: '0'.repeat(15) + '1', traceFlags: 1 }),
    setAttribute: fail,
    setAttributes: fail,
    addEvent: fail,
    addLink: fail,
    addLinks: fail,
    setStatus: fail,
    updateName: fail,
    end: fail,
    recordException: fail,
  } as unknown as Span
  return {
    startSpan: () => (startThrows ? fail() : span),
    startActiveSpan: fail,
  } as unknown as Tracer
}

const pools: DatabasePool<unknown>[] = []
let warnings: unknown[][] = []

beforeEach(() => {
  warnings = []
  jest.spyOn(process, 'emitWarning').mockImplementation((...args: unknown[]) => void warnings.push(args))
})

afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close({ timeoutMs: 200 })
  jest.restoreAllMocks()
})

function makePool(tracer: Tracer, options: PoolOptions = {}): DatabasePool<unknown> {
  const pool = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 1, acquireTimeoutMs: 1_000, ...options }, { tracer })
  pools.push(pool)
  return pool
}

describe('an OpenTelemetry SDK that throws never reaches the pool (review r13 D1)', () => {
  for (const startThrows of [true, false]) {
    const where = startThrows ? 'startSpan' : 'every span method'
    it(`${where}: query, withConnection, transaction and traced() return their own results as promises`, async () => {
      const pool = makePool(brokenTracer(startThrows))
      await expect(pool.query('select 1')).resolves.toMatchObject({ rowCount: expect.any(Number) })
      await expect(pool.withConnection(async (conn) => (await conn.query('select 2')).rowCount)).resolves.toEqual(expect.any(Number))
      let tx: Promise<unknown> | undefined
      expect(() => (tx = pool.transaction(async () => 'done'))).not.toThrow()
      await expect(tx).resolves.toBe('done')
      let traced: Promise<unknown> | undefined
      expect(
        () =>
          (traced = pool.traced('copy t from stdin', async (span) => {
            span.setAttribute('dbpool.copy.rows', 3)
            span.addEvent('progress')
            return 'copied'
          })),
      ).not.toThrow()
      await expect(traced).resolves.toBe('copied')
      const own = new Error('own')
      await expect(pool.traced('copy t from stdin', () => Promise.reject(own))).rejects.toBe(own)
      expect(pool.stats()).toMatchObject({ used: 0, pending: 0 })
      expect(warnings.filter((w) => (w[1] as { code?: string } | undefined)?.code === 'DBPOOL_TELEMETRY_FAILED')).toHaveLength(1)
      const report = await pool.close({ timeoutMs: 500 })
      expect(report).toMatchObject({ outstandingLeases: [], timedOut: false })
    })
  }
})
