import { inspect } from 'node:util'
import { DatabaseConfig, PoolFactory, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, testPostgresUrl, type TestDatabase } from '@dbpool/testing'
import { admin, rejection, uniqueAppName } from './helpers'

// The shared test server authenticates with scram-sha-256 (never trust), so a wrong password fails.
let db: TestDatabase
let pool: DatabasePool<unknown> | DatabasePool<PostgresConnection> | undefined
const SECRET = 'Wr0ng-Pa55word-do-not-print-7f3a'

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await admin(await testPostgresUrl(), (c) => c.query('drop role if exists dbpool_rotating')).catch(() => undefined)
  await db?.drop()
}, 60_000)

function withPassword(url: string, password: string): string {
  const u = new URL(url)
  u.password = encodeURIComponent(password)
  return u.toString()
}

function everyRendering(value: unknown): string[] {
  return [
    String(value),
    JSON.stringify(value),
    inspect(value),
    inspect(value, { depth: 10, showHidden: true }),
    value instanceof Error ? String(value.stack) : '',
    value instanceof Error ? inspect(value.cause, { depth: 10, showHidden: true }) : '',
    value instanceof Error ? String((value.cause as Error | undefined)?.stack) : '',
    value instanceof Error ? JSON.stringify(value.cause) : '',
  ]
}

it('the server really requires a password', async () => {
  const hba = await admin(await testPostgresUrl(), async (c) =>
    (await c.query("select distinct auth_method from pg_hba_file_rules where type = 'host'")).rows.map((r) => r.auth_method as string),
  )
  expect(hba.length).toBeGreaterThan(0)
  expect(hba).not.toContain('trust')
})

it('a wrong password fails at once with AUTHENTICATION_FAILED, and the password is printed nowhere', async () => {
  pool = await PoolFactory.create(withPassword(db.url, SECRET), { min: 0, acquireTimeoutMs: 10_000, name: 'wrong-password' })
  const started = performance.now()
  const err = await rejection(pool.query('select 1'))
  const elapsed = performance.now() - started
  expect(err.code).toBe('AUTHENTICATION_FAILED')
  expect(err.sqlState).toBe('28P01')
  expect(err.retryable).toBe(false)
  expect(elapsed).toBeLessThan(2_000) // not after the 10 s acquire timeout
  for (const text of everyRendering(err)) expect(text).not.toContain(SECRET)
  for (const text of everyRendering(pool)) expect(text).not.toContain(SECRET)
  for (const text of everyRendering(pool.config)) expect(text).not.toContain(SECRET)
  expect(pool.target).not.toContain(SECRET)
  // a second attempt fails the same way (no cached success, no hang)
  expect((await rejection(pool.query('select 1'))).code).toBe('AUTHENTICATION_FAILED')
}, 30_000)

it('a password function is called for every new connection (credential rotation)', async () => {
  const server = await testPostgresUrl()
  let current = 'first-Secret-1'
  await admin(server, async (c) => {
    await c.query('drop role if exists dbpool_rotating')
    await c.query(`create role dbpool_rotating login password '${current}'`)
  })
  let calls = 0
  const url = new URL(db.url)
  const config = new DatabaseConfig({
    host: url.hostname,
    port: Number(url.port),
    database: db.name,
    username: 'dbpool_rotating',
    password: async () => {
      calls++
      return current
    },
    sslMode: 'disable',
    applicationName: uniqueAppName('rotate'),
  })
  const p = createPostgresPool(config, { min: 0, max: 3 })
  pool = p
  await Promise.all(Array.from({ length: 3 }, () => p.query('select pg_sleep(0.05)')))
  expect(calls).toBe(3)
  // review r13 D10: pg kept the password on the connected client, which inspect with showHidden printed
  await p.withConnection(async (conn) => {
    for (const value of [conn.native, conn.native.client]) {
      expect(inspect(value, { depth: 6, showHidden: true })).not.toContain('first-Secret')
      expect(inspect(value, { depth: 6 })).not.toContain('first-Secret')
    }
  })

  // rotate: the server takes the new password, the function returns it, old sessions are dropped
  current = 'second-Secret-2'
  await admin(server, async (c) => {
    await c.query(`alter role dbpool_rotating password '${current}'`)
    await c.query("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'dbpool_rotating'")
  })
  await new Promise((r) => setTimeout(r, 200))
  const { rows } = await p.query<{ u: string }>('select current_user as u')
  expect(rows).toEqual([{ u: 'dbpool_rotating' }])
  expect(calls).toBeGreaterThanOrEqual(4)

  // a wrong rotated password: AUTHENTICATION_FAILED naming neither password
  current = 'third-Secret-not-set-3'
  await admin(server, (c) => c.query("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'dbpool_rotating'"))
  await new Promise((r) => setTimeout(r, 200))
  const err = await rejection(p.query('select 1'))
  expect(err.code).toBe('AUTHENTICATION_FAILED')
  for (const text of everyRendering(err)) {
    expect(text).not.toContain('third-Secret')
    expect(text).not.toContain('second-Secret')
  }
}, 30_000)

it('a password function that throws fails the connect with CONNECTION_FAILED and its cause', async () => {
  const url = new URL(db.url)
  const boom = new Error('vault unavailable')
  pool = createPostgresPool(
    new DatabaseConfig({
      host: url.hostname,
      port: Number(url.port),
      database: db.name,
      password: () => Promise.reject(boom),
      sslMode: 'disable',
    }),
    { min: 0, acquireTimeoutMs: 5_000 },
  )
  const err = await rejection(pool.query('select 1'))
  expect(err.code).toBe('CONNECTION_FAILED')
  expect(err.message).toContain('vault unavailable')
  expect(err.cause).toBe(boom)
})

it.each([
  ['no password at all', (url: string) => withPassword(url, '')],
  ['an empty password', (url: string) => `${withPassword(url, 'x').replace(':x@', ':@')}`],
])(
  '%s where the server asks for one: AUTHENTICATION_FAILED, not retryable, saying none was given (pg said CONNECTION_FAILED, retryable)',
  async (_, urlOf) => {
    const saved = process.env.PGPASSWORD
    delete process.env.PGPASSWORD
    try {
      pool = await PoolFactory.create(urlOf(db.url), { min: 0, acquireTimeoutMs: 10_000, name: 'no-password' })
      const err = await rejection(pool.query('select 1'))
      expect(err.code).toBe('AUTHENTICATION_FAILED')
      expect(err.retryable).toBe(false)
      expect(err.message).toMatch(/client password must be a (non-empty )?string \(the server asks for a password and none was given/)
    } finally {
      if (saved !== undefined) process.env.PGPASSWORD = saved
    }
  },
  30_000,
)

it('a password function that resolves to no string fails with AUTHENTICATION_FAILED', async () => {
  const url = new URL(db.url)
  pool = createPostgresPool(
    new DatabaseConfig({
      host: url.hostname,
      port: Number(url.port),
      database: db.name,
      password: () => Promise.resolve(''),
      sslMode: 'disable',
    }),
    { min: 0, acquireTimeoutMs: 5_000 },
  )
  const err = await rejection(pool.query('select 1'))
  expect(err.code).toBe('AUTHENTICATION_FAILED')
  expect(err.retryable).toBe(false)
})

// A password hidden wherever it occurred told itself by the gaps: `postgres` (the user name too) gave
// `for user "[REDACTED]"` beside `postgres://postgres@`, `e` gave `auth[REDACTED]ntication fail[REDACTED]d`.
it.each(['postgres', 'e', '1', 'password', 'failed'])(
  'a wrong password %j that is a short or common word leaves the message whole (nothing hidden tells it)',
  async (password) => {
    const user = decodeURIComponent(new URL(db.url).username)
    pool = await PoolFactory.create(withPassword(db.url, password), { min: 0, acquireTimeoutMs: 10_000 })
    const err = await rejection(pool.query('select 1'))
    expect(err.code).toBe('AUTHENTICATION_FAILED')
    expect(err.message).toContain(`password authentication failed for user "${user}"`)
    for (const text of everyRendering(err)) expect(text).not.toContain('[REDACTED]')
  },
  30_000,
)

it('the right password is hidden where a statement error echoes it as a value, and inside a longer name when strong', async () => {
  const password = decodeURIComponent(new URL(db.url).password)
  expect(password.length).toBeGreaterThan(0)
  pool = await PoolFactory.create(db.url, { min: 0 })
  const echoed = await rejection(pool.query(`select '${password}'::int`))
  // a random hex password of digits only is out of range instead (a fresh-clone CI run drew one)
  expect(echoed.message).toMatch(
    /^(invalid input syntax for type integer: "\[REDACTED\]"|value "\[REDACTED\]" is out of range for type integer)$/,
  )
  for (const text of everyRendering(echoed)) expect(text).not.toContain(`"${password}"`)
  // the test role's password is strong (random hex): hidden wherever it occurs (a plain-word one is
  // not, inside a longer word: see the redaction unit tests)
  expect(password.length).toBeGreaterThanOrEqual(8)
  const named = await rejection(pool.query(`select * from no_table_${password}_x`))
  expect(named.message).toBe('relation "no_table_[REDACTED]_x" does not exist')
})
