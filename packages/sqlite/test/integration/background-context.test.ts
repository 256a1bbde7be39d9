import { AsyncLocalStorage } from 'node:async_hooks'
import { context, trace, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { createSqlitePool } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

// The pool's own background work (warm-up, keepalive and leak timers, tarn's idle reaper) ran in the
// async context of whoever made the pool, or of the first caller, for the pool's life: a pool made
// lazily inside a request emitted its events later in that request's AsyncLocalStorage store, with
// its (long ended) span active (review r13 item D4, related variant). Real OpenTelemetry SDK.
const tmp = tempDir()
const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const tracer = tracerProvider.getTracer('app')
const request = new AsyncLocalStorage<string>()

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(tracerProvider)
})

afterAll(() => {
  trace.disable()
  context.disable()
  tmp.cleanup()
})

/** Runs `fn` inside a request: `request`'s store `name` and an active span `name`, ended when `fn` returns. */
function inRequest<T>(name: string, fn: () => T): T {
  return request.run(name, () =>
    tracer.startActiveSpan(name, (span) => {
      try {
        return fn()
      } finally {
        span.end()
      }
    }),
  )
}

function seen(): string {
  const span = trace.getActiveSpan() as (Span & { name?: string }) | undefined
  return `request=${request.getStore() ?? 'none'} span=${span?.name ?? 'none'}`
}

describe("the pool's background work runs in no caller's context", () => {
  it('a pool made inside a request: its warm-up connects and leak scans', async () => {
    const pool = inRequest('request-A', () =>
      createSqlitePool(tmp.file('made-in-request.db'), { name: 'made-in-request', min: 2, leakDetectionThresholdMs: 50 }, { readers: 1 }),
    )
    const events: string[] = []
    pool.on('connect', () => events.push(`connect ${seen()}`))
    pool.on('leak', () => events.push(`leak ${seen()}`))
    try {
      // a caller of another request holds the writer past the leak threshold; its callback keeps its own context
      const inCallback = await inRequest('request-B', () =>
        pool.withConnection(async () => {
          await sleep(150)
          return seen()
        }),
      )
      expect(inCallback).toBe('request=request-B span=request-B')
      expect([...new Set(events)].sort()).toEqual(['connect request=none span=none', 'leak request=none span=none'])
      expect(events.filter((e) => e.startsWith('connect'))).toHaveLength(2)
    } finally {
      await pool.close({ timeoutMs: 2_000 })
    }
  })

  it("a connection opened for a caller, closed later by the idle reaper: neither event runs in that caller's context", async () => {
    const pool = createSqlitePool(tmp.file('reaped.db'), { name: 'reaped', min: 0, idleTimeoutMs: 50 }, { readers: 0 })
    const events: string[] = []
    pool.on('connect', () => events.push(`connect ${seen()}`))
    pool.on('destroy', () => events.push(`destroy ${seen()}`))
    try {
      // the first caller: its statement makes the pool open the writer (and start tarn's reaper)
      const rows = await inRequest('request-B', () => pool.query<{ n: number }>('select 1 as n'))
      expect(rows.rows).toEqual([{ n: 1 }])
      const deadline = performance.now() + 5_000
      while (!events.some((e) => e.startsWith('destroy')) && performance.now() < deadline) await sleep(20)
      expect(events).toEqual(['connect request=none span=none', 'destroy request=none span=none'])
    } finally {
      await pool.close({ timeoutMs: 2_000 })
    }
  })
})
