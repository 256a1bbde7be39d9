import { createServer } from 'node:net'
import { context, metrics, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AggregationTemporality, MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { DatabaseConfig, METRIC_NAMES, type DatabasePool } from '@dbpool/core'
import { copyFrom, copyTo, createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { rejection } from './helpers'

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE })
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

// A multi-host target whose first host refuses connections: every connection lands on the second
// host, and a statement's span and operation metric must name that server, not the first one listed.
let db: TestDatabase
let closedPort: number
const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const reader = new TestReader()
const meterProvider = new MeterProvider({ readers: [reader] })
const pools: DatabasePool<PostgresConnection>[] = []
jest.setTimeout(60_000)

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(tracerProvider)
  metrics.setGlobalMeterProvider(meterProvider)
  db = await createTestDatabase()
  // a port nobody listens on: bind one, note it, close it
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closedPort = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

afterAll(async () => {
  for (const pool of pools.splice(0)) await pool.close({ timeoutMs: 5_000 })
  await db?.drop()
  await meterProvider.shutdown()
  trace.disable()
  metrics.disable()
  context.disable()
})

function multiHostPool(): DatabasePool<PostgresConnection> {
  const u = new URL(db.url)
  const config = new DatabaseConfig({
    // the first host is named differently from the real one, so address and port both tell them apart
    hosts: [
      { host: 'localhost', port: closedPort },
      { host: u.hostname, port: Number(u.port || 5432) },
    ],
    database: db.name,
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    sslMode: 'disable',
  })
  const pool = createPostgresPool(config, { min: 0, max: 2, name: 'telemetry-server' })
  pools.push(pool)
  return pool
}

async function operationPoints(): Promise<DataPoint<Histogram>[]> {
  const { resourceMetrics } = await reader.collect()
  const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === METRIC_NAMES.operationDuration)
  return (metric?.dataPoints ?? []) as DataPoint<Histogram>[]
}

it('a statement on a multi-host target names the server it ran on in its span and operation metric, on success and on failure', async () => {
  const pool = multiHostPool()
  const real = new URL(db.url)
  const address = real.hostname
  const port = Number(real.port || 5432)
  await pool.query('create table telemetry_server (id int primary key)')
  await pool.query('insert into telemetry_server values (1)')
  expect((await rejection(pool.query('insert into telemetry_server values (1)'))).code).toBe('UNIQUE_VIOLATION')
  await pool.withConnection((conn) => conn.query('select count(*) from telemetry_server'))
  await pool.transaction((tx) => tx.query('insert into telemetry_server values (2)'))

  const statements = exporter.getFinishedSpans().filter((s) => s.attributes['db.query.text'] !== undefined)
  expect(statements.length).toBeGreaterThanOrEqual(6)
  for (const span of statements) {
    expect([span.name, span.attributes['server.address'], span.attributes['server.port']]).toEqual([span.name, address, port])
  }
  const failed = statements.find((s) => s.attributes['error.type'] === 'UNIQUE_VIOLATION')
  expect(failed?.attributes['server.port']).toBe(port)

  const points = await operationPoints()
  const ours = points.filter((p) => p.attributes['db.namespace'] === new URL(db.url).pathname.slice(1))
  expect(ours.length).toBeGreaterThan(0)
  for (const point of ours) expect([point.attributes['server.address'], point.attributes['server.port']]).toEqual([address, port])
  expect(ours.some((p) => p.attributes['error.type'] === 'UNIQUE_VIOLATION')).toBe(true)
})

it('a stream and a COPY on a multi-host target name the server their connection reached', async () => {
  exporter.reset()
  const pool = multiHostPool()
  const real = new URL(db.url)
  const port = Number(real.port || 5432)
  await pool.query('create table telemetry_server_copy (id int primary key)')
  expect(await copyFrom(pool, 'copy telemetry_server_copy (id) from stdin', [[1], [2]])).toBe(2)
  const out: Buffer[] = []
  for await (const chunk of copyTo(pool, 'copy telemetry_server_copy to stdout')) out.push(chunk as Buffer)
  expect(Buffer.concat(out).toString()).toBe('1\n2\n')
  const rows: unknown[] = []
  for await (const row of pool.stream('select id from telemetry_server_copy order by id')) rows.push(row)
  expect(rows).toHaveLength(2)
  const spans = exporter.getFinishedSpans()
  const copies = spans.filter((s) => s.name.startsWith('COPY'))
  const stream = spans.filter((s) => String(s.attributes['db.query.text']).startsWith('select id from telemetry_server_copy'))
  expect(copies).toHaveLength(2)
  expect(stream).toHaveLength(1)
  for (const span of [...copies, ...stream]) {
    expect([span.name, span.attributes['server.address'], span.attributes['server.port']]).toEqual([span.name, real.hostname, port])
  }
})
