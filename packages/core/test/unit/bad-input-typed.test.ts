import { DatabaseError, DatabasePool, HealthChecker, MetricsCollector, PoolManager } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'
import { makePool } from './helpers'

// Values accepted silently that failed later (a non-pool in PoolManager: TypeError in closeAll and
// /ready; a tracer that is not one: TypeError in every statement) or TypeErrors at once: each is
// CONFIGURATION naming the option now.
function configurationError(run: () => unknown): DatabaseError {
  let caught: unknown
  try {
    run()
  } catch (err) {
    caught = err
  }
  expect(DatabaseError.is(caught, 'CONFIGURATION')).toBe(true)
  return caught as DatabaseError
}

describe('PoolManager.add', () => {
  it.each<[string, unknown, RegExp]>([
    ['undefined', undefined, /^invalid pool undefined: must be a DatabasePool/],
    ['{}', {}, /^invalid pool \{\}: must be a DatabasePool/],
    ['a string', 'pool', /^invalid pool "pool": must be a DatabasePool/],
  ])('refuses %s as the pool', (_what, value, message) => {
    expect(configurationError(() => new PoolManager().add('a', value as never)).message).toMatch(message)
  })

  it.each<[string, unknown, RegExp]>([
    ['null options', null, /^invalid pool manager add options null/],
    ['a primary that is not a boolean', { primary: 'yes' }, /^invalid pool manager add options\.primary "yes"/],
    ['an unknown key', { bogus: 1 }, /^invalid pool manager add options\.bogus 1: unknown option/],
  ])('refuses %s', (_what, options, message) => {
    const { pool } = makePool()
    expect(configurationError(() => new PoolManager().add('a', pool, options as never)).message).toMatch(message)
  })

  it('refuses an argument to its constructor', () => {
    expect(configurationError(() => new (PoolManager as unknown as new (a: unknown) => PoolManager)({ pools: 1 })).message).toMatch(
      /^invalid PoolManager argument/,
    )
  })
})

it.each<[string, unknown]>([
  ['undefined', undefined],
  ['{}', {}],
])('HealthChecker.check(%s) rejects with CONFIGURATION naming the pool (was a TypeError)', async (_what, value) => {
  const err = await new HealthChecker().check(value as never).catch((e: unknown) => e)
  expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
  expect((err as DatabaseError).message).toMatch(/^invalid health check pool/)
})

describe('MetricsCollector', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['no pool name', () => new MetricsCollector(undefined as never), /^invalid metrics collector poolName undefined/],
    ['a number as pool name', () => new MetricsCollector(42 as never), /^invalid metrics collector poolName 42/],
    ['null options', () => new MetricsCollector('x', null as never), /^invalid metricsOptions null/],
    ['a meter that is not one', () => new MetricsCollector('x', { meter: 5 as never }), /^invalid metricsOptions\.meter 5/],
    ['an unknown option', () => new MetricsCollector('x', { bogus: 1 } as never), /^invalid metricsOptions\.bogus 1: unknown option/],
    ['bind(5)', () => new MetricsCollector('y').bind(5 as never), /^invalid metrics collector bind stats 5/],
  ])('refuses %s', (_what, run, message) => {
    expect(configurationError(run).message).toMatch(message)
  })
})

describe('pool telemetry options', () => {
  it.each<[string, object, RegExp]>([
    ['tracer: 5', { tracer: 5 }, /^invalid pool\.tracer 5: must be an OpenTelemetry Tracer/],
    ['tracer: {}', { tracer: {} }, /^invalid pool\.tracer \{\}/],
    ['metrics: 5', { metrics: 5 }, /^invalid pool\.metrics 5: must be a MetricsCollector/],
    ['metricsOptions: { meter: 5 }', { metricsOptions: { meter: 5 } }, /^invalid metricsOptions\.meter 5/],
  ])('refuses %s when the pool is made', (_what, options, message) => {
    expect(configurationError(() => new DatabasePool(new FakeConnectionManager(), { min: 0 }, options as never)).message).toMatch(message)
  })
})
