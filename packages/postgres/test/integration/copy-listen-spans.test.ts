import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { DatabasePool } from '@dbpool/core'
import { copyFrom, copyTo, listen, notify, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, rejection, terminate } from './helpers'

// COPY, NOTIFY and LISTEN do not go through pool.query(): each gets a span of its own from the pool's
// telemetry (the SDK's in-memory exporter here), as a statement does. None had one before.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>
let appName: string
const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
jest.setTimeout(30_000)

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(tracerProvider)
  db = await createTestDatabase()
  appName = `spans-${Math.random().toString(16).slice(2, 10)}`
  pool = poolOn(db.url, { min: 0, max: 2, name: 'copy-spans' }, {}, { applicationName: appName })
  await pool.query('create table items (id int primary key, label text)')
})

beforeEach(async () => {
  await pool.query('truncate items')
  exporter.reset()
})

afterAll(async () => {
  await pool?.close()
  await db?.drop()
  trace.disable()
  context.disable()
})

const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name)

describe('COPY spans', () => {
  it('copyFrom: a CLIENT span "COPY items" with the text, the table and the row count', async () => {
    const text = 'copy items (id, label) from stdin'
    expect(
      await copyFrom(pool, text, [
        [1, 'one'],
        [2, 'two'],
      ]),
    ).toBe(2)
    const [span] = spans('COPY items')
    expect(span).toBeDefined()
    expect(span!.kind).toBe(SpanKind.CLIENT)
    expect(span!.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'db.operation.name': 'COPY',
      'db.collection.name': 'items',
      'db.query.text': text,
      'dbpool.copy.rows': 2,
    })
    expect(span!.status.code).not.toBe(SpanStatusCode.ERROR)
  })

  it('copyFrom: a row the server rejects (a data exception quoting its field) puts no value in the span status', async () => {
    await rejection(copyFrom(pool, 'copy items (id, label) from stdin', ['CopyRowValue-555\tx\n']))
    const [failed] = spans('COPY items')
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'invalid input syntax for type integer: "[PARAMETER]"' })
    expect(JSON.stringify([failed!.attributes, failed!.events])).not.toContain('CopyRowValue')
  })

  it('copyFrom failing (a duplicate key; a deadline): status ERROR with error.type', async () => {
    await rejection(
      copyFrom(pool, 'copy items (id, label) from stdin', [
        [1, 'a'],
        [1, 'b'],
      ]),
    )
    const [failed] = spans('COPY items')
    expect(failed!.status.code).toBe(SpanStatusCode.ERROR)
    expect(failed!.attributes['error.type']).toBe('UNIQUE_VIOLATION')
    exporter.reset()
    async function* never(): AsyncGenerator<unknown[]> {
      yield [5, 'five']
      await new Promise(() => undefined)
    }
    const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', never(), { timeoutMs: 200 }))
    expect(error.code).toBe('QUERY_TIMEOUT')
    const [timedOut] = spans('COPY items')
    expect(timedOut!.attributes['error.type']).toBe('QUERY_TIMEOUT')
  })

  it('copyTo: a CLIENT span with db.response.returned_rows, ended when the data ended; a query COPY names no table', async () => {
    await pool.query("insert into items values (1, 'one'), (2, 'two'), (3, 'three')")
    let text = ''
    for await (const chunk of copyTo(pool, 'copy items to stdout')) text += String(chunk)
    expect(text.split('\n')).toHaveLength(4)
    await eventually(() => spans('COPY items').length === 1, 2_000, 'the copyTo span')
    expect(spans('COPY items')[0]!.attributes).toMatchObject({ 'db.response.returned_rows': 3, 'db.collection.name': 'items' })
    for await (const chunk of copyTo(pool, 'copy (select 1) to stdout')) void chunk
    await eventually(() => spans(`COPY ${db.name}`).length === 1, 2_000, 'the query copyTo span')
    expect(spans(`COPY ${db.name}`)[0]!.attributes['db.collection.name']).toBeUndefined()
  })
})

describe('LISTEN / NOTIFY spans', () => {
  it('listen: a CLIENT span for the LISTEN; notify: a NOTIFY span with the channel over its statement; a reconnect: a LISTEN span with an event', async () => {
    const received: string[] = []
    const sub = await listen(pool, 'news', (payload) => received.push(payload))
    try {
      const [first] = exporter.getFinishedSpans().filter((s) => s.attributes['db.operation.name'] === 'LISTEN')
      expect(first).toBeDefined()
      expect(first!.kind).toBe(SpanKind.CLIENT)
      expect(first!.attributes).toMatchObject({ 'db.query.text': 'LISTEN "news"', 'dbpool.listen.reconnect': false })

      exporter.reset()
      await notify(pool, 'news', 'hello')
      await eventually(() => received.length === 1, 5_000, 'the notification')
      const [sent] = exporter.getFinishedSpans().filter((s) => s.attributes['db.operation.name'] === 'NOTIFY')
      expect(sent).toBeDefined()
      expect(sent!.attributes['dbpool.channel']).toBe('news')
      const statement = exporter.getFinishedSpans().find((s) => s.attributes['db.query.text'] === 'select pg_notify($1, $2)' && s !== sent)
      expect(statement?.parentSpanContext?.spanId).toBe(sent!.spanContext().spanId)

      exporter.reset()
      const reconnected = new Promise<void>((resolve) => sub.on('reconnect', () => resolve()))
      await terminate(db.url, appName)
      await reconnected
      const again = (): ReadableSpan[] =>
        exporter
          .getFinishedSpans()
          .filter((s) => s.attributes['db.operation.name'] === 'LISTEN' && s.attributes['dbpool.listen.reconnect'] === true)
      // the span ends once the reconnect's LISTEN and its event are done
      await eventually(() => again().some((s) => s.status.code !== SpanStatusCode.ERROR), 5_000, 'the reconnect span')
      const done = again().find((s) => s.status.code !== SpanStatusCode.ERROR)!
      expect(done.kind).toBe(SpanKind.CLIENT)
      expect(done.events.map((e) => e.name)).toContain('dbpool.listen.reconnected')
    } finally {
      await sub.unlisten()
    }
  })
})
