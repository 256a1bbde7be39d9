import { runInNewContext } from 'node:vm'
import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function failure(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

// one interpolated value is exactly one parameter (the contract's table); refusals happen before the
// statement runs and leave the connection usable
describe('parameters on a SQLite file', () => {
  let pool: DatabasePool<SqliteDatabase>
  let id = 0
  beforeAll(async () => {
    pool = createSqlitePool(tmp.file('params.db'), { name: 'params' }, { readers: 2 })
    await pool.query('create table t (id integer primary key, v)')
  })
  afterAll(() => pool.close())

  async function stored(value: unknown): Promise<unknown> {
    const key = ++id
    await pool.query(sql`insert into t (id, v) values (${key}, ${value})`)
    const { rows } = await pool.query<{ v: unknown }>(sql`select v from t where id = ${key}`)
    return rows[0]?.v
  }

  async function count(): Promise<number> {
    const { rows } = await pool.query<{ n: number }>('select count(*) as n from t')
    return rows[0]?.n ?? -1
  }

  it('an array is refused as one parameter (it used to spread over several placeholders)', async () => {
    const before = await count()
    for (const value of [['red'], ['red', 'green', 'blue'], []]) {
      const err = await failure(pool.query(sql`insert into t (id, v) values (${++id}, ${value})`))
      expect(err.code).toBe('INVALID_PARAMETER')
      expect(err.detail).toEqual({ position: 2, type: 'Array' })
      expect(err.message).toMatch(/SQLite has no arrays: use sql\.json\(v\) for JSON or sql\.join\(v\)/)
    }
    expect(await count()).toBe(before)
    // the portable ways
    expect(await stored(sql.json(['red', 'green']))).toBe('["red","green"]')
    const { rows } = await pool.query<{ n: number }>(
      sql`select count(*) as n from t where v in (${sql.join(['x', 'y', '["red","green"]'])})`,
    )
    expect(rows).toEqual([{ n: 1 }])
  })

  it('a plain object is stored as JSON text (it used to be read as named parameters); a bigint inside as a JSON integer of its digits', async () => {
    expect(await stored({ a: 1, tags: ['x'], nested: { ok: true } })).toBe('{"a":1,"tags":["x"],"nested":{"ok":true}}')
    expect(await stored({ big: 2n ** 64n + 1n })).toBe('{"big":18446744073709551617}')
    // within 64 bits SQLite's JSON functions read it exactly, and dbpool returns it as the exact bigint
    const extracted = await pool.query(sql`select json_extract(${{ id: 9007199254740993n }}, '$.id') as id`)
    expect(extracted.rows).toEqual([{ id: 9007199254740993n }])
    expect(await stored(Object.assign(Object.create(null), { n: null }))).toBe('{"n":null}')
    expect(await stored(sql.json({ when: new Date(Date.UTC(2024, 0, 1)) }))).toBe('{"when":"2024-01-01T00:00:00.000Z"}')
    // native text with a params array holding objects: still one value per placeholder
    const key = ++id
    await pool.query('insert into t (id, v) values (?, ?)', [key, { a: 1 }])
    expect((await pool.query('select v from t where id = ?', [key])).rows).toEqual([{ v: '{"a":1}' }])
    const json = await pool.query(sql`select json_extract(${{ price: 12.5 }}, '$.price') as p`)
    expect(json.rows).toEqual([{ p: 12.5 }])
  })

  it('binds booleans as 1/0, Dates as ISO-8601 UTC text, bytes as BLOB, bigints within 64 bits exactly', async () => {
    expect(await stored(true)).toBe(1)
    expect(await stored(false)).toBe(0)
    expect(await stored(new Date(Date.UTC(2024, 2, 1, 0, 30)))).toBe('2024-03-01T00:30:00.000Z')
    expect(await stored(undefined)).toBeNull()
    const u8 = new Uint8Array([0, 1, 2, 255])
    expect(await stored(u8)).toEqual(Buffer.from([0, 1, 2, 255]))
    expect(await stored(Buffer.from('blob'))).toEqual(Buffer.from('blob'))
    expect(await stored(2n ** 63n - 1n)).toBe(2n ** 63n - 1n)
    expect(await stored(-(2n ** 63n))).toBe(-(2n ** 63n))
    expect(await stored('😀 ünïcode')).toBe('😀 ünïcode')
  })

  it.each([
    ['NaN', NaN, 'number NaN'],
    ['Infinity', Infinity, 'number Infinity'],
    ['a bigint beyond 64 bits', 2n ** 63n, 'bigint'],
    ['a string with U+0000', 'a\u0000b', 'string'],
    ['a string with a lone surrogate', 'a\uDC00', 'string'],
    ['an invalid Date', new Date('nope'), 'Date (invalid)'],
    // their ISO text has a signed 6-digit year ('+010000-...', '-000001-...'): it sorted before '2024-...'
    ['a Date after year 9999', new Date('+010000-01-01T00:00:00.000Z'), 'Date'],
    ['a Date before year 0000', new Date('-000001-12-31T23:59:59.999Z'), 'Date'],
    ['an object that only claims to be a Date', { [Symbol.toStringTag]: 'Date' }, 'object'],
    ['a Map', new Map([[1, 2]]), 'Map'],
    ['a class instance', new (class Money {})(), 'Money'],
    ['a Float64Array', new Float64Array([1]), 'Float64Array'],
    ['a function', () => 1, 'function'],
    ['a symbol', Symbol('x'), 'symbol'],
    // JSON.stringify writes a boxed NaN / Infinity as null, like an unboxed one
    ['a boxed NaN inside sql.json', sql.json({ n: new Number(NaN) }), 'object'],
    ['a boxed -Infinity inside a plain object', { n: [new Number(-Infinity)] }, 'object'],
  ])('refuses %s with INVALID_PARAMETER naming position and type; nothing runs; the writer stays usable', async (_, value, type) => {
    const before = await count()
    const err = await failure(pool.query(sql`insert into t (id, v) values (${++id}, ${value})`))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.detail).toEqual({ position: 2, type })
    expect(err.message).toContain(`parameter 2 (${type})`)
    expect(await count()).toBe(before)
    expect(await stored('still fine')).toBe('still fine')
  })

  it('Dates at the edges of years 0000 and 9999 are stored as 4-digit-year ISO text, sorting as instants', async () => {
    const first = new Date('0000-01-01T00:00:00.000Z')
    const last = new Date('9999-12-31T23:59:59.999Z')
    expect(await stored(first)).toBe('0000-01-01T00:00:00.000Z')
    expect(await stored(last)).toBe('9999-12-31T23:59:59.999Z')
    const err = await failure(pool.query(sql`select ${new Date(last.getTime() + 1)} as x`))
    expect(err.message).toMatch(/outside years 0000 to 9999 \(UTC\)/)
  })

  // values from a vm context were read by tag (a Date, a Uint8Array) or refused (a plain object)
  it("binds a Date, a Uint8Array and a plain object from another JS realm as it binds this realm's", async () => {
    const [date, bytes, plain] = runInNewContext('[new Date(Date.UTC(2024, 2, 1)), new Uint8Array([1, 2]), { a: 1 }]') as unknown[]
    expect(await stored(date)).toBe('2024-03-01T00:00:00.000Z')
    expect(await stored(bytes)).toEqual(Buffer.from([1, 2]))
    expect(await stored(plain)).toBe('{"a":1}')
    // a subclass's own toISOString is not what is stored: the instant is
    class Shifted extends Date {
      override toISOString(): string {
        return 'not the instant'
      }
    }
    expect(await stored(new Shifted(Date.UTC(2024, 2, 1)))).toBe('2024-03-01T00:00:00.000Z')
    // a typed array that claims to be a Uint8Array is still refused
    const fake = Object.defineProperty(new Float32Array([1]), Symbol.toStringTag, { value: 'Uint8Array' })
    expect((await failure(pool.query(sql`select ${fake} as x`))).code).toBe('INVALID_PARAMETER')
  })

  it('a refused value inside a transaction does not end it: fn catches it and commits', async () => {
    const key = ++id
    await pool.transaction(async (tx) => {
      await tx.query(sql`insert into t (id, v) values (${key}, ${'in tx'})`)
      const err = await failure(tx.query(sql`insert into t (id, v) values (${key + 1}, ${[1, 2]})`))
      expect(err.code).toBe('INVALID_PARAMETER')
      await tx.query(sql`update t set v = ${'committed'} where id = ${key}`)
    })
    id++
    expect((await pool.query(sql`select v from t where id = ${key}`)).rows).toEqual([{ v: 'committed' }])
  })

  it('more parameters than SQLITE_MAX_VARIABLE_NUMBER (32766) is INVALID_PARAMETER before running; exactly the limit runs', async () => {
    const limit = 32_766
    for (const lane of ['write', 'read'] as const) {
      await pool.withConnection(
        async (conn) => {
          const over = Array.from({ length: limit + 1 }, (_, i) => i)
          const err = await failure(conn.query(sql`select count(*) as n from t where id in (${sql.join(over)})`))
          expect(err.code).toBe('INVALID_PARAMETER')
          expect(err.detail).toEqual({ count: limit + 1, max: limit })
          const at = Array.from({ length: limit }, (_, i) => -i - 1)
          expect((await conn.query(sql`select count(*) as n from t where id in (${sql.join(at)})`)).rows).toEqual([{ n: 0 }])
        },
        { lane },
      )
    }
    expect(await stored('after the limit')).toBe('after the limit')
  })

  // statement-call.ts passes up to 8 values as listed arguments and spreads longer lists: every count
  // must bind each value to its own placeholder, on a reader (all) and on the writer (run)
  it('0 to 10 parameters each bind to their own placeholder, on a read and on a write', async () => {
    await pool.query(`create table wide (${Array.from({ length: 10 }, (_, i) => `c${i + 1}`).join(', ')})`)
    for (let n = 0; n <= 10; n++) {
      const values = Array.from({ length: n }, (_, i) => `v${n}.${i + 1}`)
      const columns = values.map((_, i) => `? as c${i + 1}`).join(', ')
      const { rows } = await pool.query(`select ${n === 0 ? "'none' as c0" : columns}`, values)
      expect(rows).toEqual([n === 0 ? { c0: 'none' } : Object.fromEntries(values.map((v, i) => [`c${i + 1}`, v]))])
      if (n === 0) continue
      const names = values.map((_, i) => `c${i + 1}`)
      const written = await pool.query(`insert into wide (${names.join(', ')}) values (${names.map(() => '?').join(', ')})`, values)
      expect(written.rowCount).toBe(1)
      const back = await pool.query(`select ${names.join(', ')} from wide where rowid = ?`, [written.lastInsertRowid])
      expect(back.rows).toEqual([Object.fromEntries(values.map((v, i) => [`c${i + 1}`, v]))])
    }
  })

  it('values that do not fit the placeholders are INVALID_PARAMETER (better-sqlite3 checks before running)', async () => {
    expect((await failure(pool.query('select ? as a', [1, 2]))).code).toBe('INVALID_PARAMETER')
    expect((await failure(pool.query('select ? as a, ? as b', [1]))).code).toBe('INVALID_PARAMETER')
    expect((await failure(pool.query('select @name as a', []))).code).toBe('INVALID_PARAMETER')
  })
})

describe('statement text holding U+0000', () => {
  it('is refused before running, on the prepare path and on the script path (SQLite ignored everything after the NUL)', async () => {
    const pool = createSqlitePool(tmp.file('nul.db'), { name: 'nul' }, { readers: 2 })
    try {
      await pool.query('create table t (id integer primary key, v text)')
      // a migration-style script: only its first statement used to run
      const script = 'create table a1 (x);\u0000create table a2 (y);'
      const err = await failure(pool.query(script))
      expect(err.code).toBe('SYNTAX_ERROR')
      expect(err.detail).toEqual({ position: 21 })
      const tables = await pool.query<{ name: string }>("select name from sqlite_master where name in ('a1', 'a2')")
      expect(tables.rows).toEqual([])
      // one statement with trailing text after the NUL, on the writer and on a reader
      const write = await failure(pool.query("insert into t (v) values ('kept');\u0000 delete from t"))
      expect(write.code).toBe('SYNTAX_ERROR')
      const read = await failure(pool.query('select 1 as one\u0000 union select 2'))
      expect(read.code).toBe('SYNTAX_ERROR')
      await pool.withConnection(async (conn) => {
        expect((await failure(conn.query('select 1 as one\u0000'))).code).toBe('SYNTAX_ERROR')
      })
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
    } finally {
      await pool.close()
    }
  })
})

describe('statement text holding a lone UTF-16 surrogate', () => {
  it('is refused before running, as U+0000 is (UTF-8 stored three U+FFFD bytes instead)', async () => {
    const pool = createSqlitePool(tmp.file('lone.db'), { name: 'lone' }, { readers: 2 })
    try {
      await pool.query('create table t (id integer primary key, v text)')
      const write = await failure(pool.query("insert into t (v) values ('a\ud800b')"))
      expect(write.code).toBe('SYNTAX_ERROR')
      expect(write.detail).toEqual({ position: 29 })
      expect((await failure(pool.query(sql`insert into t (v) values (${sql.raw("'c\udc00'")})`))).code).toBe('SYNTAX_ERROR')
      expect((await failure(pool.query("select 1 as one; select 'x\ud800'"))).code).toBe('SYNTAX_ERROR')
      expect(() => sql`select v as ${sql.id('k\ud800')} from t`).toThrow(DatabaseError)
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
      // a valid pair is stored as written
      await pool.query("insert into t (v) values ('\ud83d\ude00')")
      expect((await pool.query('select v from t')).rows).toEqual([{ v: '\ud83d\ude00' }])
    } finally {
      await pool.close()
    }
  })
})
