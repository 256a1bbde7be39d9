import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { context, metrics, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { MeterProvider, MetricReader, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { METRIC_NAMES, PoolFactory, TRANSACTION_SPAN_NAME, type DatabasePool, type PoolOptions } from '@dbpool/core'

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** What differs between the backends. */
export interface TelemetrySuiteOptions {
  readonly backend: 'postgres' | 'sqlite'
  /** A fresh database; `secret` is a password its URL carries (Postgres), if any. */
  database(): Promise<{ url: string; secret?: string; cleanup: () => Promise<void> }>
  /** `db.system.name`. */
  readonly systemName: string
  /** The span and metric attributes every statement carries, besides db.system.name. */
  targetAttributes(url: string): Record<string, unknown>
  /** A statement that takes well over 20 ms, with one parameter. */
  readonly slowStatement: string
  /** {@link slowStatement} as spans and log lines record it by default: its literals as `?`. */
  readonly slowStatementSanitised: string
  /** `db.response.status_code` of a unique violation. */
  readonly uniqueStatus: string
  /** Placeholder of the first parameter in native text. */
  readonly placeholder: string
  /**
   * A slow statement whose literals only this backend's lexical rules find (review r13 D1), as spans
   * and the slow-statement log record it, and what must not show of it.
   */
  readonly dialectStatement?: { readonly text: string; readonly sanitised: string; readonly secrets: RegExp }
}

/** Spans (the SDK's in-memory exporter), the operation metric and pino log lines on a real database. */
export function defineTelemetrySuite(options: TelemetrySuiteOptions): void {
  const exporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const reader = new TestReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const tracer = trace.getTracer('app')
  const pools: DatabasePool<unknown>[] = []
  let db: { url: string; secret?: string; cleanup: () => Promise<void> }
  let dir: string

  const named = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name)
  const childrenOf = (span: ReadableSpan): ReadableSpan[] =>
    exporter.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === span.spanContext().spanId)

  async function inSpan<T>(name: string, fn: () => Promise<T>): Promise<ReadableSpan> {
    await tracer.startActiveSpan(name, async (span: Span) => {
      try {
        await fn()
      } finally {
        span.end()
      }
    })
    return named(name).at(-1)!
  }

  async function open(config: PoolOptions = {}, logFile?: string): Promise<DatabasePool<unknown>> {
    const logger = logFile ? pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true })) : undefined
    const pool = await PoolFactory.create(db.url, { min: 0, max: 2, name: 'telemetry', ...config }, { pool: { logger } })
    pools.push(pool)
    return pool
  }

  function logLines(file: string): Record<string, unknown>[] {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
  }

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    trace.setGlobalTracerProvider(tracerProvider)
    metrics.setGlobalMeterProvider(meterProvider)
    db = await options.database()
    dir = mkdtempSync(join(tmpdir(), `dbpool-telemetry-${options.backend}-`))
    const pool = await open()
    await pool.query('create table accounts (id integer primary key, email text not null unique)')
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

  beforeEach(() => exporter.reset())

  describe(`telemetry on ${options.backend}`, () => {
    it('a transaction in a handler`s span nests under it, with BEGIN, the statements and COMMIT as CLIENT children', async () => {
      const pool = await open()
      const p = options.placeholder
      const handler = await inSpan('POST /accounts', () =>
        pool.transaction(async (tx) => {
          await tx.query(`insert into accounts (id, email) values (${p}, 'tx@example.com')`, [1])
          await tx.query(`select email from accounts where id = ${p}`, [1])
        }),
      )
      const [txSpan] = named(TRANSACTION_SPAN_NAME)
      expect(txSpan!.parentSpanContext?.spanId).toBe(handler.spanContext().spanId)
      const statements = childrenOf(txSpan!).filter((s) => s.kind === SpanKind.CLIENT)
      const ns = String(options.targetAttributes(db.url)['db.namespace'])
      expect(statements.map((s) => s.name)).toEqual(['BEGIN ' + ns, 'INSERT accounts', 'SELECT accounts', 'COMMIT ' + ns])
      const select = statements[2]!
      expect(select.attributes).toEqual({
        'db.system.name': options.systemName,
        ...options.targetAttributes(db.url),
        'db.operation.name': 'SELECT',
        'db.collection.name': 'accounts',
        'db.query.text': `select email from accounts where id = ${p}`,
      })
    })

    it('withConnection: the callback`s statements are children of the caller`s span; pool.query of the active span', async () => {
      const pool = await open()
      const job = await inSpan('job', async () => {
        await pool.withConnection(async (conn) => {
          await conn.query('select count(*) from accounts')
          await conn.query('select 1')
        })
        await pool.query('select id from accounts')
      })
      const names = childrenOf(job).map((s) => s.name)
      expect(names.filter((n) => n !== 'dbpool.acquire')).toEqual([
        'SELECT accounts',
        `SELECT ${String(options.targetAttributes(db.url)['db.namespace'])}`,
        'SELECT accounts',
      ])
    })

    it('pool.stream() and conn.stream(): one CLIENT span per stream under the caller`s span, ended with the iteration', async () => {
      const pool = await open()
      const rows: unknown[] = []
      const job = await inSpan('export', async () => {
        for await (const row of pool.stream('select id, email from accounts', [], { batchSize: 1 })) rows.push(row)
        await pool.withConnection(async (conn) => {
          for await (const row of conn.stream('select email from accounts')) rows.push(row)
        })
      })
      const streams = childrenOf(job).filter((s) => s.name === 'SELECT accounts')
      expect(streams).toHaveLength(2)
      expect(streams.every((s) => s.kind === SpanKind.CLIENT && s.status.code === SpanStatusCode.UNSET)).toBe(true)
      expect(rows.length).toBeGreaterThan(0)
      await expect(
        (async () => {
          for await (const row of pool.stream('select email from no_such_table')) rows.push(row)
        })(),
      ).rejects.toMatchObject({ code: expect.any(String) })
      const failed = named('SELECT no_such_table')[0]!
      expect(failed.status.code).toBe(SpanStatusCode.ERROR)
      expect(failed.attributes['error.type']).toBeDefined()
    })

    it('a failing statement: status ERROR, error.type the DatabaseError code, db.response.status_code the engine`s', async () => {
      const pool = await open()
      await pool.query(`insert into accounts (id, email) values (2, 'dup@example.com')`)
      await expect(pool.query(`insert into accounts (id, email) values (3, 'dup@example.com')`)).rejects.toMatchObject({
        code: 'UNIQUE_VIOLATION',
      })
      const failed = named('INSERT accounts').at(-1)!
      expect(failed.status.code).toBe(SpanStatusCode.ERROR)
      expect(failed.attributes['error.type']).toBe('UNIQUE_VIOLATION')
      expect(failed.attributes['db.response.status_code']).toBe(options.uniqueStatus)
    })

    it('records db.client.operation.duration in seconds with the conventions` attributes', async () => {
      const pool = await open()
      await pool.query('select email from accounts')
      const { resourceMetrics } = await reader.collect()
      const metric = resourceMetrics.scopeMetrics
        .flatMap((s) => s.metrics)
        .find((m) => m.descriptor.name === METRIC_NAMES.operationDuration)
      expect(metric?.descriptor.unit).toBe('s')
      const point = (metric!.dataPoints as { attributes: Record<string, unknown>; value: Histogram }[]).find(
        (d) => d.attributes['db.collection.name'] === 'accounts' && d.attributes['db.operation.name'] === 'SELECT',
      )
      expect(point?.attributes).toMatchObject({ 'db.system.name': options.systemName, ...options.targetAttributes(db.url) })
      expect(point!.value.count).toBeGreaterThanOrEqual(1)
      expect(point!.value.buckets.boundaries).toEqual([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10])
    })

    it('db.operation.name is upper-cased and one of the SQL verbs: a letter case or a malformed statement adds no series', async () => {
      const pool = await open()
      await pool.query('select email from cardinality_probe').catch(() => undefined)
      await pool.query('SELECT email from cardinality_probe').catch(() => undefined)
      await pool.query('Select email from cardinality_probe').catch(() => undefined)
      for (let i = 0; i < 5; i++) await expect(pool.query(`frobnicate${i} cardinality_probe`)).rejects.toBeDefined()
      const { resourceMetrics } = await reader.collect()
      const metric = resourceMetrics.scopeMetrics
        .flatMap((s) => s.metrics)
        .find((m) => m.descriptor.name === METRIC_NAMES.operationDuration)
      const points = (metric!.dataPoints as { attributes: Record<string, unknown>; value: Histogram }[]).filter(
        (d) => d.attributes['db.collection.name'] === 'cardinality_probe' || d.attributes['db.collection.name'] === undefined,
      )
      const operations = [...new Set(points.map((d) => d.attributes['db.operation.name']))]
      expect(operations.filter((o) => o !== undefined && !['SELECT', 'BEGIN', 'COMMIT', 'CREATE', 'INSERT'].includes(o as string))).toEqual(
        [],
      )
      const selects = points.filter((d) => d.attributes['db.collection.name'] === 'cardinality_probe')
      expect(selects).toHaveLength(1)
      expect(selects[0]!.value.count).toBe(3)
      const ns = String(options.targetAttributes(db.url)['db.namespace'])
      const names = new Set(exporter.getFinishedSpans().map((s) => s.name))
      expect(names.has('SELECT cardinality_probe')).toBe(true)
      expect([...names].filter((n) => /frobnicate|select|Select/.test(n))).toEqual([])
      expect(names.has(ns)).toBe(true)
    })

    it('pino: connects at debug, a slow statement at warn with text, duration and stats, values only with logParameters', async () => {
      const file = join(dir, 'slow.log')
      const pool = await open({ slowQueryMs: 20 }, file)
      await pool.query(options.slowStatement, ['param-value-42'])
      await pool.close()
      const lines = logLines(file)
      const connect = lines.find((l) => l.event === 'connect')
      expect(connect).toMatchObject({ level: 20, pool: 'telemetry', msg: 'connection opened' })
      const slow = lines.find((l) => l.event === 'slowStatement')
      expect(slow).toMatchObject({ level: 40, pool: 'telemetry', text: options.slowStatementSanitised, slowQueryMs: 20 })
      expect(slow!.durationMs as number).toBeGreaterThan(20)
      expect(slow!.stats).toMatchObject({ max: expect.any(Number), pending: 0 })
      expect(readFileSync(file, 'utf8')).not.toContain('param-value-42')
      expect(lines.some((l) => l.event === 'destroy' && l.level === 20)).toBe(true)

      const withValues = join(dir, 'slow-values.log')
      const verbose = await open({ slowQueryMs: 20, logParameters: true }, withValues)
      await verbose.query(options.slowStatement, ['param-value-42'])
      expect(logLines(withValues).find((l) => l.event === 'slowStatement')?.params).toEqual(['param-value-42'])
    })

    it('literals in the text are ? in db.query.text and the slow-statement log by default; as written with rawQueryText', async () => {
      const file = join(dir, 'literals.log')
      const pool = await open({ slowQueryMs: 20 }, file)
      const text = options.slowStatement.replace(' as tag', " || 'LiteralSecret-777' || 31337 as tag")
      await pool.query(text, ['p'])
      await pool.close()
      const slow = logLines(file).find((l) => l.event === 'slowStatement')
      const expected = options.slowStatementSanitised.replace(' as tag', ' || ? || ? as tag')
      expect(slow?.text).toBe(expected)
      const span = exporter.getFinishedSpans().find((s) => String(s.attributes['db.query.text']).includes(' || ? || ? as tag'))
      expect(span?.attributes['db.query.text']).toBe(expected)
      expect(readFileSync(file, 'utf8')).not.toMatch(/LiteralSecret|31337/)
      expect(JSON.stringify(exporter.getFinishedSpans().map((s) => [s.name, s.attributes, s.status]))).not.toMatch(/LiteralSecret|31337/)

      exporter.reset()
      const rawFile = join(dir, 'literals-raw.log')
      const raw = await open({ slowQueryMs: 20, rawQueryText: true }, rawFile)
      await raw.query(text, ['p'])
      await raw.close()
      expect(logLines(rawFile).find((l) => l.event === 'slowStatement')?.text).toBe(text)
      expect(exporter.getFinishedSpans().some((s) => s.attributes['db.query.text'] === text)).toBe(true)
    })

    const dialect = options.dialectStatement
    ;(dialect ? it : it.skip)(
      'the backend`s own lexical rules find every literal: none shows in db.query.text or the slow-statement log',
      async () => {
        const file = join(dir, 'dialect.log')
        const pool = await open({ slowQueryMs: 20 }, file)
        await pool.query(dialect!.text)
        await pool.close()
        expect(logLines(file).find((l) => l.event === 'slowStatement')?.text).toBe(dialect!.sanitised)
        expect(exporter.getFinishedSpans().some((s) => s.attributes['db.query.text'] === dialect!.sanitised)).toBe(true)
        expect(readFileSync(file, 'utf8')).not.toMatch(dialect!.secrets)
        expect(JSON.stringify(exporter.getFinishedSpans().map((s) => [s.name, s.attributes, s.status]))).not.toMatch(dialect!.secrets)
      },
    )

    it('no secret in a log line or span: a URL password in a statement`s text is redacted', async () => {
      const file = join(dir, 'secrets.log')
      const pool = await open({ slowQueryMs: 20 }, file)
      const text = `${options.slowStatement} -- from postgres://app:pw-in-url@db.example/ledger`
      await pool.query(text, ['x'])
      await pool.close()
      const logged = readFileSync(file, 'utf8')
      const slow = logLines(file).find((l) => l.event === 'slowStatement')
      expect(slow?.text).toBe(`${options.slowStatementSanitised} -- from postgres://app:[REDACTED]@db.example/ledger`)
      const span = exporter.getFinishedSpans().find((s) => String(s.attributes['db.query.text']).includes('db.example'))
      expect(span?.attributes['db.query.text']).toBe(slow?.text)
      expect(logged).not.toContain('pw-in-url')
      if (db.secret) expect(logged).not.toContain(db.secret)
    })

    it('no numeric literal a syntax error stops at in a span status or log line (review r14d)', async () => {
      const file = join(dir, 'number-echo.log')
      const pool = await open({ slowQueryMs: 1 }, file)
      const before = exporter.getFinishedSpans().length
      const texts = [
        'update t set pin = 4921 4111111111111111 where id = 7',
        'select 5222222222222222x as card',
        'select 4921 6333333333333333',
      ]
      for (const text of texts) await expect(pool.query(text)).rejects.toBeDefined()
      await pool.close()
      const failed = exporter
        .getFinishedSpans()
        .slice(before)
        .filter((s) => s.status.code === SpanStatusCode.ERROR)
      expect(failed).toHaveLength(texts.length)
      // the token the syntax error stopped at, quoted: hidden as a literal of the statement
      for (const span of failed) expect(span.status.message).toMatch(/"\[PARAMETER\]"/)
      const logged = readFileSync(file, 'utf8')
      for (const needle of ['4111111111111111', '5222222222222222', '6333333333333333']) {
        expect(logged).not.toContain(needle)
        expect(JSON.stringify(failed.map((s) => [s.status, s.events]))).not.toContain(needle)
      }
    })

    it('no parameter value in any form (array, element, JSON, Date, raise message) in a span status or log line without logParameters', async () => {
      const file = join(dir, 'param-forms.log')
      const pool = await open({ slowQueryMs: 1 }, file)
      const pg = options.backend === 'postgres'
      if (pg)
        await pool.query(
          "create or replace function raise_it(t text) returns int language plpgsql as $$ begin raise exception 'custom %', t; end $$",
        )
      else {
        await pool.query('create table raised (a text)')
        await pool.query("create trigger raised_t before insert on raised begin select raise(abort, 'nope ' || new.a); end")
      }
      // each fails after a 20 ms scan (random() keeps the planner from folding the cast): slow, then failed;
      // arrays are bound to text[] (a JS array for a scalar is refused before sending)
      const cases: [string, unknown[]][] = pg
        ? [
            [`select ($1::text[]::text || repeat('', (random() * 0)::integer))::int from pg_sleep(0.02)`, [['ArrayValue-222']]],
            [`select ($1::text || repeat('', (random() * 0)::integer))::int from pg_sleep(0.02)`, [{ ssn: 'ObjectValue-333' }]],
            [`select ($1::text || repeat('', (random() * 0)::integer))::int from pg_sleep(0.02)`, [new Date('1980-02-03T00:00:00Z')]],
            [`select ($1::text[]::text || repeat('', (random() * 0)::integer))::uuid[] from pg_sleep(0.02)`, [['ElementValue-444']]],
            ["select raise_it($1 || repeat('', (random() * 0)::integer)) from pg_sleep(0.02)", ['RaisedValue-555']],
            [`select ($1::text[]::text || repeat('', (random() * 0)::integer))::int from pg_sleep(0.02)`, [['x', 'y"Quoted\\Value-666']]],
          ]
        : [['insert into raised values (?)', ['RaisedValue-555']]]
      for (const [text, params] of cases) await expect(pool.query(text, params)).rejects.toBeDefined()
      await pool.close()
      const logged = readFileSync(file, 'utf8')
      const spans = JSON.stringify(exporter.getFinishedSpans().map((s) => [s.name, s.attributes, s.status, s.events]))
      for (const needle of ['ArrayValue', 'ObjectValue', '1980-02-03', 'ElementValue', 'RaisedValue', 'Value-666']) {
        expect(logged).not.toContain(needle)
        expect(spans).not.toContain(needle)
      }
      // the slow-statement log (SQLite's statements are too fast for it)
      if (pg) expect(logLines(file).filter((l) => l.event === 'slowStatement' && l.err !== undefined)).toHaveLength(cases.length)
      const failed = exporter.getFinishedSpans().filter((s) => s.status.code === SpanStatusCode.ERROR)
      expect(failed).toHaveLength(cases.length)
      for (const span of failed) expect(span.status.message).toContain('[PARAMETER]')
    })

    if (options.backend === 'postgres') {
      it('no secret in a log line or span: the pool URL`s password inside an engine error message is redacted', async () => {
        const secret = db.secret!
        const file = join(dir, 'password.log')
        const logger = pino({ level: 'debug' }, pino.destination({ dest: file, sync: true }))
        // the server quotes the text it could not cast: the password, in its error message
        const failing = `select cast('${secret}' as integer)`
        const broken = await PoolFactory.create(
          db.url,
          { min: 1, max: 1, name: 'broken' },
          { backend: { sessionInit: failing }, pool: { logger } },
        )
        pools.push(broken)
        const clean = await PoolFactory.create(db.url, { min: 0, max: 1, name: 'clean' }, { pool: { logger } })
        pools.push(clean)
        await expect(clean.query(failing)).rejects.toMatchObject({ message: expect.stringContaining('[REDACTED]') })
        // a table named like the password: the span's name and db.collection.name come from the text too
        await expect(clean.query(`select * from "${secret}"`)).rejects.toMatchObject({ sqlState: '42P01' })
        const deadline = Date.now() + 5_000
        while (!readFileSync(file, 'utf8').includes('"event":"error"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
        await broken.close()
        await clean.close()
        const lines = logLines(file)
        const error = lines.find((l) => l.event === 'error' && l.pool === 'broken')
        // a data exception: the quoted input value is hidden whatever it is
        expect((error?.err as { message: string }).message).toMatch(/session init on postgres:\/\/postgres@.* failed: .*\[PARAMETER\]/)
        expect(readFileSync(file, 'utf8')).not.toContain(secret)
        const span = exporter.getFinishedSpans().find((s) => s.status.code === SpanStatusCode.ERROR && s.name.startsWith('SELECT'))
        expect(span?.attributes['db.query.text']).toBe('select cast(? as integer)')
        expect(span?.status.message).toContain('[PARAMETER]')
        expect(JSON.stringify(exporter.getFinishedSpans().map((s) => [s.name, s.attributes, s.status]))).not.toContain(secret)
      })

      it('no parameter value in a span or log line without logParameters, even when the server quotes it in its error', async () => {
        const file = join(dir, 'param-in-error.log')
        const pool = await open({ slowQueryMs: 20 }, file)
        // the target list is evaluated after the 50 ms scan (random() keeps the planner from folding the
        // cast): the statement is slow, then fails with 22P02 quoting $1
        const failing = "select ($1::text || repeat('', (random() * 0)::integer))::integer from pg_sleep(0.05)"
        const failingSanitised = 'select ($1::text || repeat(?, (random() * ?)::integer))::integer from pg_sleep(?)'
        const caller = await inSpan('POST /orders', async () => {
          await expect(pool.transaction((tx) => tx.query(failing, ['card-4111-1111']))).rejects.toMatchObject({
            sqlState: '22P02',
            message: expect.stringContaining('card-4111-1111'),
          })
        })
        await pool.close()
        const slow = logLines(file).find((l) => l.event === 'slowStatement')
        expect(slow?.err).toMatchObject({ code: 'QUERY_FAILED', message: 'invalid input syntax for type integer: "[PARAMETER]"' })
        expect(readFileSync(file, 'utf8')).not.toContain('card-4111')
        const transaction = childrenOf(caller).find((s) => s.name === 'transaction')!
        const statement = childrenOf(transaction).find((s) => s.attributes['db.query.text'] === failingSanitised)!
        expect(statement.status).toEqual({ code: SpanStatusCode.ERROR, message: 'invalid input syntax for type integer: "[PARAMETER]"' })
        expect(transaction.status).toEqual(statement.status)
        expect(JSON.stringify(exporter.getFinishedSpans().map((s) => [s.name, s.attributes, s.status, s.events]))).not.toContain(
          'card-4111',
        )

        const verbose = join(dir, 'param-in-error-verbose.log')
        const withValues = await open({ slowQueryMs: 20, logParameters: true }, verbose)
        await expect(withValues.query(failing, ['card-4111-1111'])).rejects.toMatchObject({ sqlState: '22P02' })
        expect(logLines(verbose).find((l) => l.event === 'slowStatement')).toMatchObject({
          params: ['card-4111-1111'],
          err: { message: 'invalid input syntax for type integer: "card-4111-1111"' },
        })
      })
    }
  })
}
