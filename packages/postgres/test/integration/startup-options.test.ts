import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// A setting the config's `options` (libpq's options, `-c name=value`) gives at connection start that
// the server refuses fails every connect: CONFIGURATION naming database.options and the parameter,
// not QUERY_FAILED / SYNTAX_ERROR as if a statement were wrong.
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
}, 60_000)

afterAll(async () => {
  await db?.drop()
})

describe('startup options the server refuses', () => {
  it.each([
    ['-c nosuch_setting=1', 'nosuch_setting', '42704'],
    ['-c statement_timeout=abc', 'statement_timeout', '22023'],
    ['--default-transaction-isolation=bogus', 'default_transaction_isolation', '22023'],
  ])('%s is CONFIGURATION naming database.options and %s (SQLSTATE %s kept)', async (options, parameter, sqlState) => {
    const pool = poolOn(db.url, { min: 0, max: 1, name: 'startup-options' }, {}, { options })
    try {
      const err = await rejection(pool.query('select 1'))
      expect(err.code).toBe('CONFIGURATION')
      expect(err.retryable).toBe(false)
      expect(err.sqlState).toBe(sqlState)
      expect(err.detail).toMatchObject({ option: 'database.options', parameter })
      expect(err.message).toMatch(/invalid database\.options: the server refused its setting/)
    } finally {
      await pool.close()
    }
  })

  it('a valid setting in options still applies', async () => {
    const pool = poolOn(db.url, { min: 0, max: 1, name: 'startup-options' }, {}, { options: '-c statement_timeout=1234' })
    try {
      const { rows } = await pool.query<{ v: string }>("select current_setting('statement_timeout') as v")
      expect(rows[0]!.v).toBe('1234ms')
    } finally {
      await pool.close()
    }
  })
})
