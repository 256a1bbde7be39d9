import { inspect } from 'node:util'
import { createHealthHandler, createMetricsRegistry } from '@dbpool/http'

// A pool, URL or pg config given where a pool belongs showed its password in the CONFIGURATION
// error (message, stack, JSON, inspect): review r5 item 4
const URL = 'postgres://app:S3cretPassw0rdXYZ@db.internal:5432/ledger'
class Pool {
  readonly options = { connectionString: URL, password: 'S3cretPassw0rdXYZ' }
}

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('did not throw')
}

it.each([
  ['target: a URL', () => createHealthHandler(URL as never)],
  ['target: a pg Pool', () => createHealthHandler(new Pool() as never)],
  ['target: a pg config', () => createHealthHandler({ connectionString: URL } as never)],
  ['metrics: a look-alike object', () => createHealthHandler([] as never, { metrics: { url: URL } } as never)],
  ['metrics registry prefix', () => createMetricsRegistry({ prefix: URL } as never)],
])('%s: CONFIGURATION without the password anywhere', (_name, fn) => {
  const err = thrown(fn) as Error & { code?: string }
  expect(err.code).toBe('CONFIGURATION')
  for (const text of [err.message, err.stack ?? '', JSON.stringify(err), inspect(err, { depth: 10 })])
    expect(text).not.toContain('S3cretPassw0rdXYZ')
})
