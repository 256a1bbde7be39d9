import { AsyncLocalStorage } from 'node:async_hooks'
import { context, trace, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { DatabasePool } from '@dbpool/core'
import { listen, notify, type PostgresConnection, type Subscription } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, terminate, uniqueAppName } from './helpers'

// Which async context (AsyncLocalStorage stores, the active OpenTelemetry span, with the real SDK)
// dbpool's callbacks and its own background work run in (review r13 item D4). A LISTEN handler ran in
// the context of whichever subscriber first opened the LISTEN connection (another tenant's store, its
// ended request span), the LISTEN connection's reconnect span joined that subscriber's trace, and a
// pool made inside a request ran its events (connect, connectionLost, destroy) in it for life.
let db: TestDatabase
const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const tracer = tracerProvider.getTracer('app')
const tenant = new AsyncLocalStorage<string>()
jest.setTimeout(30_000)

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(tracerProvider)
  db = await createTestDatabase()
}, 120_000)

afterAll(async () => {
  await db?.drop()
  trace.disable()
  context.disable()
}, 60_000)

/** Runs `fn` inside a request: `tenant`'s store `name` and an active span `name`, ended when `fn` settles. */
function inRequest<T>(name: string, fn: (span: Span) => Promise<T>): Promise<T> {
  return tenant.run(name, () =>
    tracer.startActiveSpan(name, async (span) => {
      try {
        return await fn(span)
      } finally {
        span.end()
      }
    }),
  )
}

/** The context a callback runs in: the tenant store and the name of the active span. */
function seen(): string {
  const span = trace.getActiveSpan() as (Span & { name?: string }) | undefined
  return `tenant=${tenant.getStore() ?? 'none'} span=${span?.name ?? 'none'}`
}

describe('LISTEN', () => {
  let pool: DatabasePool<PostgresConnection>
  let appName: string
  beforeEach(() => {
    appName = uniqueAppName('ctx-listen')
    pool = poolOn(db.url, { min: 0, max: 2, name: 'ctx-listen' }, {}, { applicationName: appName })
    exporter.reset()
  })
  afterEach(async () => {
    await pool.close({ timeoutMs: 5_000 })
  })

  it("runs each subscription's handler and event listeners in the context of its own listen() call, not the first subscriber's", async () => {
    const contexts: Record<string, string[]> = { A: [], B: [] }
    const subs: Subscription[] = []
    try {
      // A opens the LISTEN connection; B joins it later from another request
      subs.push(await inRequest('tenant-A', () => listen(pool, 'ctx', () => contexts.A!.push(`handler ${seen()}`))))
      subs.push(await inRequest('tenant-B', () => listen(pool, 'ctx', () => contexts.B!.push(`handler ${seen()}`))))
      for (const [who, sub] of [
        ['A', subs[0]!],
        ['B', subs[1]!],
      ] as const)
        inRequest(`listener-${who}`, async () => void sub.on('reconnect', () => contexts[who]!.push(`reconnect ${seen()}`))).catch(
          () => undefined,
        )
      // sent from outside any request
      await notify(pool, 'ctx', 'one')
      await eventually(() => contexts.A!.length === 1 && contexts.B!.length === 1, 5_000, 'both handlers')
      await terminate(db.url, appName)
      await eventually(() => contexts.A!.length === 2 && contexts.B!.length === 2, 10_000, 'both reconnect events')
      expect(contexts).toEqual({
        A: ['handler tenant=tenant-A span=tenant-A', 'reconnect tenant=tenant-A span=tenant-A'],
        B: ['handler tenant=tenant-B span=tenant-B', 'reconnect tenant=tenant-B span=tenant-B'],
      })
    } finally {
      for (const sub of subs) await sub.unlisten()
    }
  })

  it("runs the LISTEN connection's reconnect in no caller's context: its span is a root span, not in the first subscriber's trace", async () => {
    let requestTrace = ''
    const sub = await inRequest('tenant-A', async (span) => {
      requestTrace = span.spanContext().traceId
      return listen(pool, 'ctx-reconnect', () => undefined)
    })
    try {
      const opened = exporter.getFinishedSpans().find((s) => s.attributes['dbpool.listen.reconnect'] === false)
      // the subscriber's own call (the connect it waited for) stays in its trace
      expect(opened?.spanContext().traceId).toBe(requestTrace)
      const reconnected = new Promise<void>((resolve) => sub.on('reconnect', () => resolve()))
      exporter.reset()
      await terminate(db.url, appName)
      await reconnected
      await eventually(
        () => exporter.getFinishedSpans().some((s) => s.attributes['dbpool.listen.reconnect'] === true),
        5_000,
        'the reconnect span',
      )
      const spans = exporter.getFinishedSpans().filter((s) => s.attributes['dbpool.listen.reconnect'] === true)
      expect(spans.map((s) => ({ inRequestTrace: s.spanContext().traceId === requestTrace, parent: s.parentSpanContext?.spanId }))).toEqual(
        spans.map(() => ({ inRequestTrace: false, parent: undefined })),
      )
    } finally {
      await sub.unlisten()
    }
  })
})

describe("the pool's background work", () => {
  it('a pool made inside a request: its connect, connectionLost and destroy events later run in no caller context', async () => {
    const appName = uniqueAppName('ctx-pool')
    const pool = await inRequest('request-A', async () =>
      poolOn(db.url, { min: 2, max: 2, name: 'ctx-pool' }, {}, { applicationName: appName }),
    )
    const events: string[] = []
    for (const event of ['connect', 'connectionLost', 'destroy'] as const) pool.on(event, () => events.push(`${event} ${seen()}`))
    try {
      // the warm-up to min
      await eventually(() => pool.stats().idle === 2, 5_000, 'the warm-up')
      await terminate(db.url, appName)
      // lost, destroyed, opened again
      await eventually(() => events.filter((e) => e.startsWith('connect ')).length >= 4, 10_000, 'the connections opened again')
      expect([...new Set(events)].sort()).toEqual([
        'connect tenant=none span=none',
        'connectionLost tenant=none span=none',
        'destroy tenant=none span=none',
      ])
    } finally {
      await pool.close({ timeoutMs: 5_000 })
    }
  })

  it("a connection opened for a caller: its later loss runs in no caller's context, while the caller's callback kept its own", async () => {
    const appName = uniqueAppName('ctx-conn')
    const pool = poolOn(db.url, { min: 0, max: 1, name: 'ctx-conn' }, {}, { applicationName: appName })
    const events: string[] = []
    for (const event of ['connect', 'connectionLost', 'destroy'] as const) pool.on(event, () => events.push(`${event} ${seen()}`))
    try {
      // the caller whose statement makes the pool open its connection
      const inCallback = await inRequest('request-B', () => pool.withConnection(async (conn) => (await conn.query('select 1'), seen())))
      expect(inCallback).toBe('tenant=request-B span=request-B')
      await terminate(db.url, appName)
      await eventually(() => events.some((e) => e.startsWith('destroy')), 5_000, 'the loss')
      expect(events).toEqual(['connect tenant=none span=none', 'connectionLost tenant=none span=none', 'destroy tenant=none span=none'])
    } finally {
      await pool.close({ timeoutMs: 5_000 })
    }
  })
})
