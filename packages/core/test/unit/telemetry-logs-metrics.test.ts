import { Writable } from 'node:stream'
import { runInNewContext } from 'node:vm'
import { pino } from 'pino'
import { MeterProvider, MetricReader, type Histogram } from '@opentelemetry/sdk-metrics'
import { DatabaseError, DatabasePool, METRIC_NAMES, MetricsCollector, OPERATION_DURATION_BUCKETS, type PoolLogger } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'
import { makePool, sleep, waitFor } from './helpers'
import { PoolLog } from '../../src/telemetry/logger'

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Line {
  readonly level: string
  readonly obj: Record<string, unknown>
  readonly msg: string
}

/** A logger with pino's shape that keeps what it was given. */
function captureLogger(): PoolLogger & { lines: Line[]; events: (event: string) => Line[] } {
  const lines: Line[] = []
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void lines.push({ level, obj, msg })
  return {
    lines,
    events: (event) => lines.filter((l) => l.obj.event === event),
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  }
}

class SecretManager extends FakeConnectionManager {
  readonly telemetryTarget = { namespace: 'ledger' }
  redact(text: string): string {
    return text.split('hunter2').join('[REDACTED]')
  }
}

describe('db.client.operation.duration', () => {
  it('records every statement in seconds with the conventions` attributes and bucket advice; failures add error.type', async () => {
    const reader = new TestReader()
    const meterProvider = new MeterProvider({ readers: [reader] })
    const metrics = new MetricsCollector('ledger', { meter: meterProvider.getMeter('test') })
    expect(metrics.recordsOperations).toBe(true)
    const manager = new SecretManager({ queryDelayMs: 5 })
    manager.queryFaults.push({
      match: /insert/,
      fatal: false,
      fault: { kind: 'fail', error: new DatabaseError('UNIQUE_VIOLATION', 'duplicate', { sqlState: '23505' }) },
    })
    const pool = new DatabasePool(manager, { min: 0, max: 2 }, { metrics })
    try {
      await pool.query('select * from accounts')
      await pool.query('select * from accounts')
      await expect(pool.query('insert into users (a) values ($1)', [1])).rejects.toThrow('duplicate')
      const { resourceMetrics } = await reader.collect()
      const metric = resourceMetrics.scopeMetrics
        .flatMap((s) => s.metrics)
        .find((m) => m.descriptor.name === METRIC_NAMES.operationDuration)
      expect(metric?.descriptor.unit).toBe('s')
      const points = metric!.dataPoints as { attributes: Record<string, unknown>; value: Histogram }[]
      const select = points.find((p) => p.attributes['db.operation.name'] === 'SELECT')!
      expect(select.attributes).toEqual({
        'db.system.name': 'postgresql',
        'db.namespace': 'ledger',
        'db.operation.name': 'SELECT',
        'db.collection.name': 'accounts',
      })
      expect(select.value.count).toBe(2)
      expect(select.value.min).toBeGreaterThan(0.004)
      expect(select.value.max).toBeLessThan(60)
      expect(select.value.buckets.boundaries).toEqual([...OPERATION_DURATION_BUCKETS])
      const insert = points.find((p) => p.attributes['db.operation.name'] === 'INSERT')!
      expect(insert.attributes['error.type']).toBe('UNIQUE_VIOLATION')
      expect(insert.attributes['db.response.status_code']).toBe('23505')
    } finally {
      await pool.close()
      await meterProvider.shutdown()
    }
  })

  it('is skipped when the meter is the API`s no-op meter (no MeterProvider registered)', () => {
    expect(new MetricsCollector('noop').recordsOperations).toBe(false)
  })
})

describe('pool logger', () => {
  it('logs connects and destroys at debug, a lost connection at warn, every line with the pool`s name', async () => {
    const logger = captureLogger()
    const manager = new FakeConnectionManager()
    const pool = new DatabasePool(manager, { min: 1, max: 1, name: 'ledger' }, { logger })
    try {
      await waitFor(() => logger.events('connect').length === 1)
      expect(logger.events('connect')[0]).toMatchObject({
        level: 'debug',
        obj: { pool: 'ledger', lane: 'write' },
        msg: 'connection opened',
      })
      expect(typeof logger.events('connect')[0]!.obj.durationMs).toBe('number')
      manager.kill(manager.connections[0]!)
      await waitFor(() => logger.events('destroy').length === 1)
      const lost = logger.events('connectionLost')[0]!
      expect(lost).toMatchObject({ level: 'warn', obj: { pool: 'ledger', idle: true, err: { code: 'CONNECTION_LOST' } } })
      expect(logger.events('destroy')[0]).toMatchObject({ level: 'debug', obj: { reason: 'broken: CONNECTION_LOST' } })
    } finally {
      await pool.close()
    }
  })

  it('logs statements slower than slowQueryMs with text, duration and pool stats; values only with logParameters', async () => {
    const logger = captureLogger()
    const { pool } = makePool({ slowQueryMs: 5 }, { queryDelayMs: 30 })
    const pool2 = new DatabasePool(new FakeConnectionManager({ queryDelayMs: 30 }), { min: 0, slowQueryMs: 5 }, { logger })
    const pool3 = new DatabasePool(
      new FakeConnectionManager({ queryDelayMs: 30 }),
      { min: 0, slowQueryMs: 5, logParameters: true },
      { logger },
    )
    try {
      await pool.query('select 1') // no logger: nothing to write to, and no failure
      await pool2.query('select * from accounts where email = $1', ['alice@example.com'])
      const [slow] = logger.events('slowStatement')
      expect(slow).toMatchObject({ level: 'warn', obj: { text: 'select * from accounts where email = $1', slowQueryMs: 5 } })
      expect(slow!.obj.durationMs as number).toBeGreaterThan(5)
      expect(slow!.obj.stats).toMatchObject({ max: 10, size: 1, pending: 0 })
      expect(JSON.stringify(logger.lines)).not.toContain('alice@example.com')
      await pool3.query('select $1::int8, $2', [12n, Buffer.from('abc')])
      expect(logger.events('slowStatement')[1]!.obj.params).toEqual(['12', '[3 bytes]'])
      // a fast statement is not logged
      const fast = new DatabasePool(new FakeConnectionManager(), { min: 0, slowQueryMs: 10_000 }, { logger })
      await fast.query('select 2')
      await fast.close()
      expect(logger.events('slowStatement')).toHaveLength(2)
    } finally {
      await pool2.close()
      await pool3.close()
    }
  })

  it('logs a leak at warn with the acquirer`s stack instead of process.emitWarning; no logger keeps the warning', async () => {
    const logger = captureLogger()
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    const logged = new DatabasePool(new FakeConnectionManager(), { min: 0, leakDetectionThresholdMs: 20 }, { logger })
    const { pool: plain } = makePool({ leakDetectionThresholdMs: 20 })
    try {
      await Promise.all([
        logged.withConnection(() => sleep(1_200)),
        plain.withConnection(async () => {
          await sleep(1_200)
        }),
      ])
      await sleep(10)
      const [leak] = logger.events('leak')
      expect(leak?.level).toBe('warn')
      expect(leak?.obj.stack).toMatch(/telemetry-logs-metrics\.test/)
      expect(warn.mock.calls.map((c) => String(c[0])).filter((w) => w.includes('possible leak'))).toHaveLength(1)
    } finally {
      warn.mockRestore()
      await logged.close()
    }
  })

  it('logs a failover at warn', async () => {
    const logger = captureLogger()
    const manager = new FakeConnectionManager()
    const pool = new DatabasePool(manager, { min: 1, max: 1 }, { logger })
    try {
      await waitFor(() => manager.connections.length === 1)
      manager.connections[0]!.hooks!.onFailover!({ from: 'db1:5432', to: 'db2:5432', lane: 'write' })
      expect(logger.events('failover')[0]).toMatchObject({ level: 'warn', obj: { from: 'db1:5432', to: 'db2:5432', lane: 'write' } })
    } finally {
      await pool.close()
    }
  })

  it('logs transaction replays at warn', async () => {
    const logger = captureLogger()
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 }, { logger })
    try {
      let attempts = 0
      await pool.transaction(
        async () => {
          if (++attempts < 3) throw new DatabaseError('DEADLOCK', 'deadlock detected', { sqlState: '40P01' })
        },
        { retry: { maxAttempts: 3, baseDelayMs: 1 } },
      )
      expect(logger.events('transactionRetry').map((l) => [l.level, l.obj.attempt, (l.obj.err as { code: string }).code])).toEqual([
        ['warn', 1, 'DEADLOCK'],
        ['warn', 2, 'DEADLOCK'],
      ])
    } finally {
      await pool.close()
    }
  })

  it('never writes a secret: URL passwords and the manager`s secrets are hidden in messages, causes and texts', async () => {
    const logger = captureLogger()
    const manager = new SecretManager()
    manager.connectFault = {
      kind: 'fail',
      error: new DatabaseError('CONNECTION_FAILED', 'connecting to postgres://app:hunter2@db/ledger failed', {
        cause: new Error('password "hunter2" rejected'),
      }),
    }
    const pool = new DatabasePool(manager, { min: 1, max: 1, slowQueryMs: 0 }, { logger })
    try {
      await waitFor(() => logger.events('error').length > 0)
      const line = logger.events('error')[0]!
      expect(line.obj.err).toMatchObject({
        code: 'CONNECTION_FAILED',
        message: 'connecting to postgres://app:[REDACTED]@db/ledger failed',
        cause: 'Error: password "[REDACTED]" rejected',
      })
      expect(JSON.stringify(logger.lines)).not.toContain('hunter2')
    } finally {
      await pool.close()
    }
  })

  // in a jest run, better-sqlite3's SqliteError was made in the realm of the test file that loaded the
  // native module first: for the next file `instanceof Error` was false, and the slow-statement line's
  // err.cause was String(cause), the number the syntax error stopped at shown (CI, review r14d's test)
  it('an error of another realm as cause is hidden like any: secrets and the statement literals it repeats', async () => {
    const logger = captureLogger()
    const manager = new SecretManager({ queryDelayMs: 20 })
    const foreign = runInNewContext('new Error(\'near "4111111111111111": syntax error, password "hunter2"\')') as Error
    expect(foreign instanceof Error).toBe(false)
    manager.queryFaults.push({
      match: /update/,
      fatal: false,
      fault: { kind: 'fail', error: new DatabaseError('SYNTAX_ERROR', 'near "4111111111111111": syntax error', { cause: foreign }) },
    })
    const pool = new DatabasePool(manager, { min: 0, max: 1, slowQueryMs: 5 }, { logger })
    try {
      await expect(pool.query('update t set pin = 4921 4111111111111111 where id = 7')).rejects.toThrow('syntax error')
      const slow = logger.events('slowStatement')[0]
      expect(slow?.obj.err).toMatchObject({ cause: 'Error: near "[PARAMETER]": syntax error, password "[REDACTED]"' })
      expect(JSON.stringify(logger.lines)).not.toMatch(/4111111111111111|hunter2/)
    } finally {
      await pool.close()
    }
  })

  it('an error whose statement may have committed says so in the line: err.outcome unknown, retryable false', () => {
    const lines: Record<string, unknown>[] = []
    const log = new PoolLog(
      { warn: (obj: Record<string, unknown>) => lines.push(obj) } as unknown as PoolLogger,
      'ledger',
      (t) => t,
      (e) => e.message,
    )
    const unknown = new DatabaseError('CONNECTION_LOST', 'lost', { backend: 'postgres', retryable: false, detail: { outcome: 'unknown' } })
    expect(log.error(unknown)).toMatchObject({ code: 'CONNECTION_LOST', retryable: false, outcome: 'unknown' })
    expect(log.error(new DatabaseError('CONNECTION_LOST', 'lost'))).not.toHaveProperty('outcome')
  })

  it('pino itself: err keeps type DatabaseError (not "Object") and its code; the stack pino prints is redacted', async () => {
    const out: string[] = []
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk.toString())
        done()
      },
    })
    const manager = new SecretManager()
    manager.connectFault = {
      kind: 'fail',
      error: new DatabaseError('CONNECTION_FAILED', 'connecting to postgres://app:hunter2@db/ledger failed', {
        cause: new Error('password "hunter2" rejected'),
      }),
    }
    const pool = new DatabasePool(manager, { min: 1, max: 1 }, { logger: pino({ level: 'debug' }, sink) })
    try {
      await waitFor(() => out.some((l) => l.includes('"event":"error"')))
      const line = JSON.parse(out.find((l) => l.includes('"event":"error"'))!) as { err: Record<string, unknown> }
      expect(line.err).toMatchObject({
        type: 'DatabaseError',
        code: 'CONNECTION_FAILED',
        message: 'connecting to postgres://app:[REDACTED]@db/ledger failed',
        cause: 'Error: password "[REDACTED]" rejected',
      })
      expect(line.err.stack).toMatch(/^DatabaseError: connecting to postgres:\/\/app:\[REDACTED\]@db\/ledger failed\n\s+at /)
      expect(out.join('')).not.toContain('hunter2')
    } finally {
      await pool.close()
    }
  })

  it('listener errors go to the logger; a throwing logger never breaks the pool', async () => {
    const logger = captureLogger()
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 }, { logger })
    pool.on('connect', () => {
      throw new Error('listener bug')
    })
    await pool.query('select 1')
    expect(logger.events('listenerError')[0]?.obj).toMatchObject({ listenerOf: 'connect', err: { message: 'listener bug' } })
    await pool.close()
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    const broken = { ...captureLogger(), debug: () => void (null as unknown as { x: number }).x }
    const pool2 = new DatabasePool(new FakeConnectionManager(), { min: 0 }, { logger: broken })
    try {
      await expect(pool2.query('select 1')).resolves.toMatchObject({ rowCount: 0 })
      expect(warn.mock.calls.some((c) => String(c[0]).includes('the logger of pool "default" threw'))).toBe(true)
    } finally {
      await pool2.close()
      warn.mockRestore()
    }
  })

  it('a logger whose methods return a rejected promise never crashes the process: reported once as a warning', async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    const down = async (): Promise<void> => {
      throw new Error('log sink down')
    }
    const logger = { trace: down, debug: down, info: down, warn: down, error: down }
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 }, { logger })
    try {
      await pool.query('select 1')
      await pool.query('select 2')
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(unhandled).toEqual([])
      const reports = warn.mock.calls.filter((c) => String(c[0]).includes('the logger of pool "default" rejected: Error: log sink down'))
      expect(reports).toHaveLength(1)
    } finally {
      await pool.close()
      process.off('unhandledRejection', onUnhandled)
      warn.mockRestore()
    }
  })

  it('refuses a logger without the five level methods, naming the option', () => {
    expect(() => new DatabasePool(new FakeConnectionManager(), { min: 0 }, { logger: { info: () => undefined } as never })).toThrow(
      /invalid pool\.logger .*missing trace, debug, warn, error/,
    )
    expect(() => new DatabasePool(new FakeConnectionManager(), { min: 0 }, { logger: 'console' as never })).toThrow(
      /invalid pool\.logger "console"/,
    )
  })
})
