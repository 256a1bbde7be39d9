import { DatabaseConfig, sql, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, findPgBouncer, startPgBouncer, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection, uniqueAppName } from './helpers'

// review r17i: a sessionInit `SET datestyle = 'ISO, DMY'` / `SET intervalstyle = sql_standard` on a
// server whose defaults are ISO, MDY / postgres was "restored" to the learnt server default on the
// first release of each connection, so with several connections '03/04/2024' read as 3 April on some
// leases and 4 March on others, '-1 2:00:00' as -26 h on some and -22 h on others. What sessionInit
// sets is the session's baseline, kept on every lease.
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

const PROBE = sql`select ${'03/04/2024'}::date as d, ${'-1 2:00:00'}::interval as i, current_setting('DateStyle') as ds`

/** Many leases, three at a time on three connections: each reads the date and interval input the same way. */
async function leases(p: DatabasePool<PostgresConnection>): Promise<Set<string>> {
  const seen = new Set<string>()
  for (let round = 0; round < 4; round++)
    for (const { rows } of await Promise.all([1, 2, 3].map(() => p.query<{ d: string; i: unknown; ds: string }>(PROBE))))
      seen.add(JSON.stringify(rows[0]))
  return seen
}

const DMY = [
  `SET datestyle = 'ISO, DMY'`,
  `SET datestyle = 'ISO, DMY'; SET application_name = 'app'`,
  [`SET datestyle TO 'ISO, DMY'`, `SET application_name = 'app'`],
  `select set_config('datestyle', 'ISO, DMY', false)`,
  `SET datestyle = DMY`,
] as const

it.each(DMY)('sessionInit %j on an MDY server: every lease reads 03/04/2024 as 3 April (some read 4 March)', async (sessionInit) => {
  pool = poolOn(db.url, { max: 3, min: 0, name: 'si-dmy' }, { sessionInit })
  const expected = JSON.stringify({ d: '2024-04-03', i: { days: -1, hours: 2 }, ds: 'ISO, DMY' })
  expect([...(await leases(pool))]).toEqual([expected])
})

it('sessionInit SET intervalstyle = sql_standard: every lease reads -1 2:00:00 as -26 h (some read -22 h)', async () => {
  for (const sessionInit of [`SET intervalstyle = 'sql_standard'`, `SET intervalstyle = 'sql_standard'; SET application_name = 'app'`]) {
    pool = poolOn(db.url, { max: 3, min: 0, name: 'si-iv' }, { sessionInit })
    const expected = JSON.stringify({ d: '2024-03-04', i: { days: -1, hours: -2 }, ds: 'ISO, MDY' })
    expect([...(await leases(pool))]).toEqual([expected])
    await pool.close({ timeoutMs: 5_000 })
    pool = undefined
  }
})

it("a lease's own change is set back to sessionInit's setting, not the server default; a reset runs sessionInit again", async () => {
  pool = poolOn(
    db.url,
    { max: 1, min: 0, name: 'si-lease' },
    { sessionInit: `SET datestyle = 'ISO, DMY'; SET intervalstyle = sql_standard` },
  )
  for (const change of [
    `SET datestyle = 'ISO, MDY'`,
    `SET datestyle = 'SQL, YMD'`,
    `SET intervalstyle = postgres`,
    'RESET ALL',
    'DISCARD ALL',
  ]) {
    await pool.query(change)
    const { rows } = await pool.query(PROBE)
    expect([change, rows]).toEqual([change, [{ d: '2024-04-03', i: { days: -1, hours: -2 }, ds: 'ISO, DMY' }]])
  }
})

it('a sessionInit output the parsers cannot read is CONFIGURATION: at pool creation when its text shows it, else at connect', async () => {
  for (const sessionInit of [
    `SET datestyle = 'SQL, DMY'`,
    `SET DateStyle TO German`,
    `select set_config('datestyle', 'Postgres, MDY', false)`,
    `SET intervalstyle = 'iso_8601'`,
    `SET session intervalstyle TO postgres_verbose`,
  ]) {
    let error: unknown
    try {
      poolOn(db.url, { max: 1, min: 0, name: 'si-bad' }, { sessionInit })
    } catch (err) {
      error = err
    }
    expect([sessionInit, error]).toEqual([sessionInit, expect.objectContaining({ code: 'CONFIGURATION' })])
  }
  // what no text shows: the server's report after the setup is checked on every connection
  pool = poolOn(
    db.url,
    { max: 1, min: 0, name: 'si-bad-connect' },
    { sessionInit: `select set_config('date' || 'style', 'SQL, DMY', false)` },
  )
  const err = await rejection(pool.query('select 1'))
  expect(err.code).toBe('CONFIGURATION')
  expect(JSON.stringify(err)).toMatch(/DateStyle/)
})

const bouncerSuite = findPgBouncer() !== undefined || process.env.CI ? describe : describe.skip

bouncerSuite('behind PgBouncer in session mode', () => {
  it("sessionInit's DateStyle and IntervalStyle hold on every lease", async () => {
    const bouncer = await startPgBouncer(db.url, { poolMode: 'session', poolSize: 3 })
    try {
      for (const declared of [{ pgbouncer: 'session' as const }, {}]) {
        pool = createPostgresPool(
          DatabaseConfig.fromUrl(bouncer.urlFor(db.url), { sslMode: 'disable', applicationName: uniqueAppName('si-bouncer') }),
          { min: 0, max: 3, name: 'si-bouncer' },
          { ...declared, sessionInit: `SET datestyle = 'ISO, DMY'; SET intervalstyle = sql_standard` },
        )
        const expected = JSON.stringify({ d: '2024-04-03', i: { days: -1, hours: -2 }, ds: 'ISO, DMY' })
        expect([...(await leases(pool))]).toEqual([expected])
        await pool.close({ timeoutMs: 5_000 })
        pool = undefined
      }
    } finally {
      await bouncer.stop()
    }
  }, 60_000)
})
