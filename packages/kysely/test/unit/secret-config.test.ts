import { inspect } from 'node:util'
import { DbpoolDialect, dbpoolTransaction } from '@dbpool/kysely'

// A pool, URL or pg config given where a pool belongs showed its password in the CONFIGURATION
// error (message, stack, JSON, inspect): review r5 item 4
const URL = 'postgres://app:S3cretPassw0rdXYZ@db.internal:5432/ledger'
class Pool {
  readonly options = { connectionString: URL, password: 'S3cretPassw0rdXYZ' }
}

function check(err: unknown): void {
  const e = err as Error & { code?: string }
  expect(e.code).toBe('CONFIGURATION')
  for (const text of [e.message, e.stack ?? '', JSON.stringify(e), inspect(e, { depth: 10 })])
    expect(text).not.toContain('S3cretPassw0rdXYZ')
}

it.each([URL, new Pool(), { connectionString: URL }])('DbpoolDialect({ pool: %#th value }): no password in the error', (pool) => {
  let err: unknown
  try {
    new DbpoolDialect({ pool } as never)
  } catch (e) {
    err = e
  }
  check(err)
})

it.each([URL, { password: 'x', url: URL }])('dbpoolTransaction(%#th value): no password in the error', async (db) => {
  check(
    await dbpoolTransaction(db as never, async () => 1).then(
      () => undefined,
      (e: unknown) => e,
    ),
  )
})
