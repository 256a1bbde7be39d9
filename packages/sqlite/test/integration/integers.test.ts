import { sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const BEYOND = 9007199254740993n // 2^53 + 1: better-sqlite3 rounds it to 9007199254740992 as a number
const VALUES = [BEYOND, -BEYOND, 2n ** 63n - 1n, -(2n ** 63n)]

// with safeIntegers off (the default), an INTEGER beyond ±(2^53 - 1) is read as a bigint, never as a
// rounded number; everything else (smaller integers, REALs of any size) stays a number
describe.each([
  ['file, read lane', () => createSqlitePool(tmp.file(`integers-${Math.random()}.db`), { name: 'int' }, { readers: 2 })],
  ['file, no read lane', () => createSqlitePool(tmp.file(`integers-${Math.random()}.db`), { name: 'int' }, { readers: 0 })],
  ['in memory', () => createSqlitePool(':memory:', { name: 'int' })],
])('integers beyond 2^53 - 1 on read (%s)', (_, open) => {
  let pool: DatabasePool<SqliteDatabase>
  beforeAll(async () => {
    pool = open()
    await pool.query('create table b (id integer primary key, v integer, r real, note text)')
    for (const [i, v] of VALUES.entries()) await pool.query(sql`insert into b (id, v, note) values (${i + 1}, ${v}, ${String(v)})`)
    await pool.query(sql`insert into b (id, v, r, note) values (${10}, ${42}, ${1e20}, ${'small'})`)
  })
  afterAll(() => pool.close())

  it('reads each value exactly, as a bigint, and finds the row again by the value returned', async () => {
    for (const [i, v] of VALUES.entries()) {
      const { rows } = await pool.query<{ v: unknown; note: string }>(sql`select v, note from b where id = ${i + 1}`)
      expect(rows).toEqual([{ v, note: String(v) }])
      const again = await pool.query<{ id: number }>(sql`select id from b where v = ${rows[0]?.v}`)
      expect(again.rows).toEqual([{ id: i + 1 }])
    }
  })

  it('keeps safe integers and REALs as numbers in the same rows (a REAL beyond 2^53 is not an integer)', async () => {
    const { rows } = await pool.query('select id, v, r from b order by id')
    expect(rows).toEqual([
      { id: 1, v: BEYOND, r: null },
      { id: 2, v: -BEYOND, r: null },
      { id: 3, v: 2n ** 63n - 1n, r: null },
      { id: 4, v: -(2n ** 63n), r: null },
      { id: 10, v: 42, r: 1e20 },
    ])
    const literal = await pool.query('select 9007199254740993 as i, 9007199254740993.0 as f, 1e20 as g, 7 as s, -9007199254740991 as edge')
    expect(literal.rows).toEqual([{ i: BEYOND, f: 9007199254740992, g: 1e20, s: 7, edge: -9007199254740991 }])
    expect(typeof literal.rows[0]?.f).toBe('number')
    // a row of REALs only: nothing to convert
    expect((await pool.query('select r from b where id = 10')).rows).toEqual([{ r: 1e20 }])
  })

  it('reads exactly inside a transaction and on a lease (the lease path)', async () => {
    const seen = await pool.transaction(async (tx) => (await tx.query('select v from b where id = 3')).rows)
    expect(seen).toEqual([{ v: 2n ** 63n - 1n }])
    const leased = await pool.withConnection(async (conn) => (await conn.query('select v from b where id = 4')).rows)
    expect(leased).toEqual([{ v: -(2n ** 63n) }])
  })

  it('INSERT ... RETURNING reads exactly and runs once', async () => {
    const { rows } = await pool.query(sql`insert into b (v, note) values (${BEYOND + 2n}, ${'returning'}) returning id, v, note`)
    expect(rows).toEqual([{ id: 11, v: BEYOND + 2n, note: 'returning' }])
    expect((await pool.query(sql`select count(*) as n from b where note = ${'returning'}`)).rows).toEqual([{ n: 1 }])
  })

  it('lastInsertRowid beyond 2^53 - 1 is an exact bigint, and finds its row', async () => {
    const high = 2n ** 62n + 1n
    const a = await pool.query(sql`insert into b (id, note) values (${high}, ${'high rowid'})`)
    expect(a.lastInsertRowid).toBe(high)
    const next = await pool.query(sql`insert into b (note) values (${'after high'})`)
    expect(next.lastInsertRowid).toBe(high + 1n)
    const found = await pool.query(sql`select note from b where id = ${next.lastInsertRowid}`)
    expect(found.rows).toEqual([{ note: 'after high' }])
    const low = await pool.query(sql`insert into b (id, note) values (${-BEYOND}, ${'low rowid'})`)
    expect(low.lastInsertRowid).toBe(-BEYOND)
    // a safe rowid stays a number
    expect((await pool.query(sql`insert into b (id, note) values (${20}, ${'small'})`)).lastInsertRowid).toBe(20)
  })
})

describe('safeIntegers: true', () => {
  it('still returns every integer as a bigint', async () => {
    const pool = createSqlitePool(':memory:', {}, { safeIntegers: true })
    try {
      await pool.query('create table b (v integer)')
      const r = await pool.query(sql`insert into b (v) values (${2n ** 63n - 1n})`)
      expect(r.lastInsertRowid).toBe(1n)
      expect((await pool.query('select v, 7 as s, 1.5 as f from b')).rows).toEqual([{ v: 2n ** 63n - 1n, s: 7n, f: 1.5 }])
      expect((await pool.query('insert into b (v) values (5) returning v')).rows).toEqual([{ v: 5n }])
    } finally {
      await pool.close()
    }
  })
})
