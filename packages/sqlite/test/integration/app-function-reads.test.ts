import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// With safeIntegers off, a read whose rows held a number beyond 2^53 was run a second time with safe
// integers (to tell a rounded INTEGER from a REAL). SQLite calls a SELECT of an application function
// read-only, so a function registered through conn.native ran twice, and the first call's result was
// dropped. A connection lent through conn.native now reads every statement once, with safe integers.
const tmp = tempDir()
afterAll(() => tmp.cleanup())

const BIG = 2 ** 53 + 2

describe('reads on a connection whose native handle was lent (application functions)', () => {
  const pool = createSqlitePool(tmp.file('app-function.db'), { name: 'app-function', max: 1 }, { readers: 0 })
  afterAll(() => pool.close())

  it('runs a SELECT calling a registered function once, also in raw mode (__proto__ column) and with an exact INTEGER beside', async () => {
    await pool.withConnection(async (conn) => {
      let calls = 0
      conn.native.function('next_ticket', () => {
        calls++
        return BIG + 2 * calls
      })
      const first = await conn.query('select next_ticket() as t')
      expect({ rows: first.rows, calls }).toEqual({ rows: [{ t: BIG + 2 }], calls: 1 })
      calls = 0
      const mixed = await conn.query('select next_ticket() as t, 9007199254740993 as i, 1 as small')
      expect({ rows: mixed.rows, calls }).toEqual({ rows: [{ t: BIG + 2, i: 9007199254740993n, small: 1 }], calls: 1 })
      calls = 0
      const raw = await conn.query('select next_ticket() as "__proto__", 2 as n')
      expect(calls).toBe(1)
      expect(Object.getOwnPropertyDescriptor(raw.rows[0], '__proto__')?.value).toBe(BIG + 2)
    })
  })

  it('a statement cached before the handle was lent is read once after it (a built-in overridden there)', async () => {
    await pool.query('create table b (id integer primary key, v integer)')
    await pool.query('insert into b values (1, 9007199254740993)')
    const text = 'select abs(v) as a from b'
    await pool.withConnection(async (conn) => {
      // cached with the old abs(): exact, read twice while no application code could run
      expect((await conn.query(text)).rows).toEqual([{ a: 9007199254740993n }])
      let calls = 0
      conn.native.function('abs', { safeIntegers: true }, (v: unknown) => {
        calls++
        return v
      })
      expect((await conn.query(text)).rows).toEqual([{ a: 9007199254740993n }])
      expect(calls).toBe(1)
    })
    // the registration lasts as long as the connection: later statements on it without a lease (max 1: the same connection) too
    let later = 0
    await pool.withConnection(async (conn) => {
      conn.native.function('abs', { safeIntegers: true }, (v: unknown) => {
        later++
        return v
      })
    })
    expect((await pool.query(text)).rows).toEqual([{ a: 9007199254740993n }])
    expect(later).toBe(1)
  })

  it('a write returning rows (INSERT ... RETURNING) never runs twice', async () => {
    await pool.query('create table log (id integer primary key, x integer)')
    const { rows } = await pool.query('insert into log (x) values (9007199254740993), (2) returning x')
    expect(rows).toEqual([{ x: 9007199254740993n }, { x: 2 }])
    expect((await pool.query('select count(*) as n from log')).rows).toEqual([{ n: 2 }])
  })
})
