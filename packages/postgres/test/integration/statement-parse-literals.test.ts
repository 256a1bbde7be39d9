import type { DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// Parse converts a date/time literal once: a named statement would keep the instant of its Parse
// ('now', 'today'...) or the TimeZone / DateStyle of its session then.
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

it.each(['always', 'second-use'] as const)(
  "prepare '%s': a 'now' literal is read at every run, never fixed by a named statement",
  async (prepare) => {
    pool = poolOn(db.url, { max: 1, name: 'now-literal' }, { prepare })
    const table = `evlog_${prepare.replace('-', '_')}`
    await pool.query(`drop table if exists ${table}; create table ${table} (id serial, at timestamptz, k int)`)
    for (let i = 0; i < 4; i++) {
      await pool.query(`insert into ${table} (at) values ('now')`) // lone, without parameters
      await pool.query(`insert into ${table} (at, k) values ('NOW', $1)`, [i]) // with a parameter
      await new Promise((r) => setTimeout(r, 20))
    }
    const distinct = await pool.query<{ n: number }>(`select count(distinct at)::int as n from ${table}`)
    // before: 2 (lone) + 1 (parameterised, 'always') distinct instants: every later run wrote its Parse's
    expect(distinct.rows[0]!.n).toBe(8)
  },
  30_000,
)

it.each([
  ['set time zone', "set time zone 'Asia/Tokyo'", 'reset time zone'],
  ['set_config', "select set_config('TimeZone', 'Asia/Tokyo', false)", 'reset time zone'],
])(
  'a timestamptz literal of a cached statement is read in the time zone set by %s',
  async (_how, set, reset) => {
    pool = poolOn(db.url, { max: 1, name: 'tz-literal' }, { prepare: 'second-use' })
    await pool.query("drop table if exists appt; create table appt (id int, at timestamptz); set time zone 'UTC'")
    await pool.query("insert into appt values (1, '2024-01-01 12:00:00+00'), (2, '2024-01-01 03:00:00+00')")
    const text = "select id from appt where at = '2024-01-01 12:00'" // 12:00 in the session's zone
    const ids = await pool.withConnection(async (c) => {
      const utc = (await c.query<{ id: number }>(text)).rows.map((r) => r.id)
      await c.query(text) // named from its second run
      await c.query(set)
      const tokyo = (await c.query<{ id: number }>(text)).rows.map((r) => r.id)
      await c.query(reset)
      return { utc, tokyo }
    })
    // before: tokyo [1]: the cached statement kept the literal read in UTC
    expect(ids).toEqual({ utc: [1], tokyo: [2] })
  },
  30_000,
)

it('a date literal of a cached statement is read in the DateStyle of the moment, SET LOCAL in a transaction and after it', async () => {
  pool = poolOn(db.url, { max: 1, name: 'datestyle-literal' }, { prepare: 'always' })
  await pool.query(
    "drop table if exists days; create table days (id int, d date); insert into days values (1, '2024-01-02'), (2, '2024-02-01')",
  )
  const text = "select id from days where d = '01/02/2024'"
  const ids = await pool.withConnection(async (c) => {
    await c.query("set datestyle = 'ISO, MDY'")
    const mdy = (await c.query<{ id: number }>(text)).rows.map((r) => r.id)
    const dmy = await c.transaction(async (tx) => {
      await tx.query("set local datestyle = 'ISO, DMY'")
      return (await tx.query<{ id: number }>(text)).rows.map((r) => r.id)
    })
    const after = (await c.query<{ id: number }>(text)).rows.map((r) => r.id)
    return { mdy, dmy, after }
  })
  // before: { mdy: [1], dmy: [1], after: [1] }
  expect(ids).toEqual({ mdy: [1], dmy: [2], after: [1] })
}, 30_000)
