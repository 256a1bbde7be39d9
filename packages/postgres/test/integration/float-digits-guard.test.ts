import { DatabaseConfig, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, findPgBouncer, startPgBouncer, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection, uniqueAppName } from './helpers'

// review r13a: the text check refusing SET extra_float_digits (not reported by the server) cannot be
// complete; statements it missed made this lease and every later one read 0.1 + 0.2 as 0.3. The
// release sets it back after any statement that may have changed it; behind PgBouncer in transaction
// mode (no release of the server connection) such a statement is refused.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

const SUM = 'select 0.1::float8 + 0.2::float8 as v'
const BYPASSES: readonly (readonly [string, unknown[]])[] = [
  ['select set_config($1, $2, false)', ['extra_float_digits', '0']],
  ["update pg_settings set setting = '0' where name = 'extra_float_digits'", []],
  ['set "extra_float_digits" = 0', []],
  ['set /* x */ extra_float_digits = 0', []],
  ["select set_config(E'extra_float_digits', '0', false)", []],
  ["do $$ begin perform set_config('extra' || '_float_digits', '0', false); end $$", []],
]

it.each(BYPASSES)('%s: the next lease reads floats exactly (it read 0.3)', async (text, params) => {
  pool = poolOn(db.url, { max: 1, min: 0, name: 'float-guard' })
  await pool.query(text, params)
  // its own lease was released: extra_float_digits is 3 again
  expect((await pool.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.1 + 0.2 }])
  expect((await pool.query('show extra_float_digits')).rows).toEqual([{ extra_float_digits: '3' }])
})

it('EXECUTE of a statement an earlier lease PREPAREd (its text names nothing): the next lease reads floats exactly (review r14d)', async () => {
  pool = poolOn(db.url, { max: 1, min: 0, name: 'float-guard-execute' })
  await pool.query('PREPARE setcfg(text, text) AS select set_config($1, $2, false)')
  await pool.query("EXECUTE setcfg('extra_' || 'float_digits', '0')")
  expect((await pool.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.1 + 0.2 }])
})

// review r17i: only texts starting with EXECUTE were marked, so these left it at 0 for every later lease
it.each([
  "EXPLAIN ANALYZE EXECUTE setcfg('extra_' || 'float_digits', '0')",
  "explain (analyze, costs off) /* x */ execute setcfg('extra_' || 'float_digits', '0')",
  "CREATE TABLE prepared_out_1 AS EXECUTE setcfg('extra_' || 'float_digits', '0')",
  "create temp table prepared_out_2 as execute setcfg('extra_' || 'float_digits', '0')",
])('%s (EXECUTE inside a statement): the next lease reads floats exactly (review r17i)', async (text) => {
  pool = poolOn(db.url, { max: 1, min: 0, name: 'float-guard-execute-inside' })
  await pool.query('PREPARE setcfg(text, text) AS select set_config($1, $2, false)')
  await pool.query(text)
  expect((await pool.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.1 + 0.2 }])
  expect((await pool.query('show extra_float_digits')).rows).toEqual([{ extra_float_digits: '3' }])
})

it('inside one lease the application reads with its own setting; the release sets it back', async () => {
  pool = poolOn(db.url, { max: 1, min: 0, name: 'float-guard-lease' })
  await pool.withConnection(async (c) => {
    await c.query('set "extra_float_digits" = 0')
    expect((await c.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.3 }])
  })
  expect((await pool.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.1 + 0.2 }])
})

it('conn.native taken: the release sets extra_float_digits back', async () => {
  pool = poolOn(db.url, { max: 1, min: 0, name: 'float-guard-native' })
  await pool.withConnection(async (c) => {
    await c.native.client.query('set extra_float_digits = 0')
  })
  expect((await pool.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.1 + 0.2 }])
})

const bouncerIt = findPgBouncer() !== undefined || process.env.CI ? it : it.skip

bouncerIt(
  'behind PgBouncer in transaction mode such statements are CONFIGURATION: another client would inherit rounded floats',
  async () => {
    const bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 1 })
    const mk = (name: string) =>
      createPostgresPool(
        DatabaseConfig.fromUrl(bouncer.urlFor(db.url), { sslMode: 'disable', applicationName: uniqueAppName(name) }),
        { min: 0, max: 1, name },
        { pgbouncer: 'transaction' },
      )
    const a = mk('float-a')
    const other = mk('float-other')
    try {
      for (const [text, params] of BYPASSES) {
        const err = await rejection(a.query(text, params))
        expect(err.code).toBe('CONFIGURATION')
        // a SET or set_config(..., false) as session state, the rest as a change of the float format
        expect(err.message).toMatch(/session state|extra_float_digits/)
        expect((await other.query<{ v: number }>(SUM)).rows).toEqual([{ v: 0.1 + 0.2 }])
      }
      // reading it, and set_config of another setting, pass
      expect((await a.query("select current_setting('extra_float_digits') as v")).rows).toHaveLength(1)
      expect((await a.query("select set_config('application_name', 'x', true) as v")).rows).toEqual([{ v: 'x' }])
    } finally {
      await a.close({ timeoutMs: 5_000 })
      await other.close({ timeoutMs: 5_000 })
      await bouncer.stop()
    }
  },
  60_000,
)
