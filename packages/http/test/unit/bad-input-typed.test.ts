import { DatabaseError, DatabasePool } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'
import { createHealthHandler, createMetricsRegistry } from '@dbpool/http'

// Values the handler and registry accepted silently (paths no request reaches, two routes on one
// path, a look-alike registry) or that failed later with a TypeError: CONFIGURATION naming the option.
const pool = new DatabasePool(new FakeConnectionManager(), { name: 'typed', min: 0, max: 1 })
const registry = createMetricsRegistry()
afterAll(async () => {
  await pool.close()
  await registry.shutdown()
})

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

it.each<[string, object, RegExp]>([
  [
    'health and ready on one path',
    { paths: { health: '/x', ready: '/x' } },
    /^invalid health handler\.paths\.ready "\/x": is also the health path/,
  ],
  [
    'ready on the metrics path',
    { paths: { ready: '/metrics' } },
    /^invalid health handler\.paths\.metrics "\/metrics": is also the ready path/,
  ],
  ['a query in a path', { paths: { health: '/h?x=1' } }, /^invalid health handler\.paths\.health "\/h\?x=1": can never match a request/],
  ['a space in a path', { paths: { health: '/h x' } }, /^invalid health handler\.paths\.health "\/h x": can never match/],
  ['an empty segment', { paths: { health: '//' } }, /^invalid health handler\.paths\.health "\/\/": can never match/],
  ['a look-alike registry', { metrics: { scrape() {} } }, /^invalid health handler\.metrics/],
])('createHealthHandler refuses %s', (_what, options, message) => {
  expect(configurationError(() => createHealthHandler(pool, options as never)).message).toMatch(message)
})

it('the metrics path may equal another when /metrics is off, and "/" stays a path', () => {
  expect(typeof createHealthHandler(pool, { metrics: false, paths: { ready: '/metrics' } })).toBe('function')
  expect(typeof createHealthHandler(pool, { paths: { health: '/' } })).toBe('function')
})

it.each<[string, () => unknown, RegExp]>([
  ['collector(undefined)', () => registry.collector(undefined as never), /^invalid metrics collector poolName/],
  ['collector("")', () => registry.collector(''), /^invalid metrics collector poolName ""/],
])('registry.%s is CONFIGURATION', (_what, run, message) => {
  expect(configurationError(run).message).toMatch(message)
})

it.each<[string, unknown, RegExp]>([
  ['42', 42, /^invalid metrics registry scrape pools 42/],
  ['[null]', [null], /^invalid metrics registry scrape pools\[0\] null/],
  ['[{}]', [{}], /^invalid metrics registry scrape pools\[0\]/],
])('registry.scrape(%s) rejects with CONFIGURATION', async (_what, pools, message) => {
  const err = await registry.scrape(pools as never).catch((e: unknown) => e)
  expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
  expect((err as DatabaseError).message).toMatch(message)
})
