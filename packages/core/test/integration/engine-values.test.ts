import { DatabaseError, PoolFactory, sql, type DatabasePool } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// The same repository code stores the same values on both engines (README, "Parameters" and "Where the
// engines differ"): table-driven, each row run against the real Postgres and a real SQLite file.

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'
const BACKENDS = ['postgres', 'sqlite'] as const

let pgDb: TestDatabase
let file: TempSqlite
const pools = {} as Record<Backend, DatabasePool<unknown>>

beforeAll(async () => {
  pgDb = await createTestDatabase()
  file = await createTempSqlite()
  pools.postgres = await PoolFactory.create(pgDb.url, { min: 0, max: 2, name: 'values-pg' })
  pools.sqlite = await PoolFactory.create(file.url, { min: 0, max: 2, name: 'values-sqlite' })
})

afterAll(async () => {
  await pools.postgres?.close()
  await pools.sqlite?.close()
  await pgDb?.drop()
  await file?.remove()
})

async function outcome<T>(work: Promise<T>): Promise<T | DatabaseError> {
  return work.catch((err: unknown) => {
    if (DatabaseError.is(err)) return err
    throw err
  })
}

describe('numbers beyond ±(2^53 - 1): both engines store the exact integer the double holds', () => {
  // the same column kinds on each engine
  const COLUMNS = {
    bigint: { postgres: 'bigint', sqlite: 'integer' },
    numeric: { postgres: 'numeric', sqlite: 'numeric' },
    double: { postgres: 'double precision', sqlite: 'real' },
    text: { postgres: 'text', sqlite: 'text' },
  } as const
  type Column = keyof typeof COLUMNS

  const fitsInt64 = (n: number): boolean => n >= -(2 ** 63) && n < 2 ** 63
  /** The exact decimal a number holds (what both engines should store). */
  const exact = (n: number): string => (Number.isInteger(n) ? BigInt(n).toString() : String(n))

  /** What reads back, as a decimal string: bigint and number alike (a number is exact: read from a double). */
  function decimal(read: unknown): string {
    if (typeof read === 'bigint') return read.toString()
    if (typeof read === 'number') return exact(read)
    return String(read)
  }

  /**
   * The documented differences: beyond signed 64 bits Postgres's bigint refuses the value (22003) while
   * a SQLite INTEGER column keeps it as REAL (no STRICT), and SQLite writes a REAL as text its own way.
   */
  function expected(value: number, column: Column, backend: Backend): string {
    if (column === 'bigint' && !fitsInt64(value)) return backend === 'postgres' ? 'refused 22003' : exact(value)
    if (column === 'text' && backend === 'sqlite' && !fitsInt64(value)) return SQLITE_REAL_TEXT.get(value)!
    return exact(value)
  }

  /** How SQLite writes a REAL as text (its own format, 17 significant digits). */
  const SQLITE_REAL_TEXT = new Map([
    [2 ** 63, '9.2233720368547758e+18'],
    [1e21, '1.0e+21'],
    [2 ** 70, '1.1805916207174113e+21'],
  ])

  const VALUES: readonly [string, number][] = [
    ['2^53', 2 ** 53],
    ['2^60', 2 ** 60],
    ['-2^60', -(2 ** 60)],
    ['2^63 - 1024 (the largest double below 2^63)', 2 ** 63 - 1024],
    ['-2^63', -(2 ** 63)],
    ['2^63', 2 ** 63],
    ['1e21', 1e21],
    ['2^70', 2 ** 70],
    ['-0', -0],
    ['0.1', 0.1],
  ]
  const CASES = VALUES.flatMap(([label, value]) =>
    (Object.keys(COLUMNS) as Column[])
      // a fraction in bigint is an error on Postgres and REAL on SQLite: the affinity table of the README
      .filter((column) => Number.isInteger(value) || column !== 'bigint')
      .map((column) => [label, column, value] as const),
  )

  beforeAll(async () => {
    for (const backend of BACKENDS) {
      const columns = (Object.keys(COLUMNS) as Column[]).map((c) => `${c} ${COLUMNS[c][backend]}`).join(', ')
      await pools[backend].query(`create table numbers (id integer primary key, ${columns})`)
    }
  })

  let id = 0
  it.each(CASES)('%s into a %s column', async (_label, column, value) => {
    const key = ++id
    const got: Record<string, string> = {}
    for (const backend of BACKENDS) {
      const pool = pools[backend]
      const stored = await outcome(pool.query(sql`insert into numbers (id, ${sql.id(column)}) values (${key}, ${value})`))
      if (stored instanceof DatabaseError) {
        got[backend] = `refused ${stored.sqlState ?? stored.code}`
        continue
      }
      const { rows } = await pool.query<{ v: unknown }>(sql`select ${sql.id(column)} as v from numbers where id = ${key}`)
      got[backend] = decimal(rows[0]!.v)
    }
    expect(got).toEqual({ postgres: expected(value, column, 'postgres'), sqlite: expected(value, column, 'sqlite') })
  })

  it('Postgres arrays carry the exact integers too, and numeric[] reads back as exact strings like numeric', async () => {
    await pools.postgres.query('create table number_lists (id int, ids bigint[], vals numeric[])')
    const big = [2 ** 60, -(2 ** 60), 2 ** 63 - 1024]
    await pools.postgres.query(sql`insert into number_lists values (1, ${big}, ${[1e21, 0.5]})`)
    await pools.postgres.query(
      sql`insert into number_lists values (2, null, ${[
        ['12345678901234567.89', '0.10'],
        [null, '-1e-30'],
      ]})`,
    )
    const { rows } = await pools.postgres.query<{ ids: bigint[]; vals: unknown[] }>('select ids, vals from number_lists order by id')
    expect(rows[0]!.ids).toEqual(big.map((n) => BigInt(n)))
    expect(rows[0]!.vals).toEqual(['1000000000000000000000', '0.5'])
    // pg parsed numeric[] with parseFloat: 12345678901234568, 0.1
    expect(rows[1]!.vals).toEqual([
      ['12345678901234567.89', '0.10'],
      [null, '-0.000000000000000000000000000001'],
    ])
  })

  it('numbers inside JSON are JSON.stringify text on both: the same number in SQL, the same double back in JS', async () => {
    const doc = { n: 2 ** 60, e: 1e21, z: -0 }
    const inSql: Record<string, unknown> = {}
    for (const backend of BACKENDS) {
      const pool = pools[backend]
      await pool.query(`create table docs (id integer primary key, v ${backend === 'postgres' ? 'jsonb' : 'text'})`)
      await pool.query(sql`insert into docs (id, v) values (1, ${sql.json(doc)})`)
      const { rows } = await pool.query<{ v: unknown }>('select v from docs where id = 1')
      const read = backend === 'postgres' ? rows[0]!.v : JSON.parse(rows[0]!.v as string)
      expect(read).toEqual({ n: 2 ** 60, e: 1e21, z: 0 })
      const extract =
        backend === 'postgres' ? sql`select (v->>'n')::numeric as n from docs` : sql`select json_extract(v, '$.n') as n from docs`
      inSql[backend] = decimal((await pool.query<{ n: unknown }>(extract)).rows[0]!.n)
    }
    // JSON.stringify's shortest text, not the double's exact integer (1152921504606846976): the same on both
    expect(inSql).toEqual({ postgres: '1152921504606847000', sqlite: '1152921504606847000' })
  })
})

describe("every row of the README's parameter table binds as the table says, on both engines", () => {
  const when = new Date('2024-03-01T00:30:00.123Z')
  // [label, value, Postgres: the text the server received (`$1::text`, bytea as hex), SQLite: [typeof(?), cast(? as text), bytes as hex]]
  const ROWS: readonly [string, unknown, string | null, readonly [string, string | null]][] = [
    ['null', null, null, ['null', null]],
    ['undefined', undefined, null, ['null', null]],
    ['true', true, 'true', ['integer', '1']],
    ['false', false, 'false', ['integer', '0']],
    ['an integral number', 5, '5', ['integer', '5']],
    ['-0', -0, '0', ['integer', '0']],
    ['a fraction', 1.5, '1.5', ['real', '1.5']],
    ['an integral number beyond 2^53', 2 ** 60, '1152921504606846976', ['integer', '1152921504606846976']],
    ['an integral number beyond 2^63', 1e21, '1000000000000000000000', ['real', '1.0e+21']],
    ['a bigint', 9007199254740993n, '9007199254740993', ['integer', '9007199254740993']],
    ['a string', 'héllo 🎉', 'héllo 🎉', ['text', 'héllo 🎉']],
    ['a Date', when, '2024-03-01T00:30:00.123Z', ['text', '2024-03-01T00:30:00.123Z']],
    ['a Buffer', Buffer.from([0, 1, 255]), '\\x0001ff', ['blob', '0001ff']],
    ['a Uint8Array', new Uint8Array([65, 66]), '\\x4142', ['blob', '4142']],
    ['a plain object', { a: 1, b: [true] }, '{"a":1,"b":[true]}', ['text', '{"a":1,"b":[true]}']],
    ['sql.json', sql.json([1, 'x', null]), '[1,"x",null]', ['text', '[1,"x",null]']],
  ]

  it.each(ROWS)('%s', async (_label, value, postgresText, [sqliteType, sqliteText]) => {
    const bytes = Buffer.isBuffer(value) || value instanceof Uint8Array
    const pgQuery = bytes ? sql`select '\\x' || encode(${value}::bytea, 'hex') as t` : sql`select ${value}::text as t`
    const pg = await pools.postgres.query<{ t: string | null }>(pgQuery)
    expect(pg.rows[0]!.t).toBe(postgresText)
    const liteQuery = bytes
      ? sql`select typeof(${value}) as type, lower(hex(${value})) as t`
      : sql`select typeof(${value}) as type, cast(${value} as text) as t`
    const lite = await pools.sqlite.query<{ type: string; t: string | null }>(liteQuery)
    expect(lite.rows[0]).toEqual({ type: sqliteType, t: sqliteText })
  })

  it('an array: a Postgres array literal on Postgres, refused on SQLite (no arrays) with INVALID_PARAMETER', async () => {
    const { rows } = await pools.postgres.query<{ t: string }>(sql`select ${[1, 2 ** 60, 'x', null, 'a,b']}::text[]::text as t`)
    // the literal as sent, read back as text[]: numbers exact, NULL, strings whole
    expect(rows).toEqual([{ t: '{1,1152921504606846976,x,NULL,"a,b"}' }])
    // a JS array where the server expects a scalar (here text) is refused before it is sent
    const scalar = await outcome(pools.postgres.query(sql`select ${[1, 2]}::text as t`))
    expect(scalar).toMatchObject({ code: 'INVALID_PARAMETER', detail: { position: 1, type: 'Array', serverType: 25 } })
    const err = await outcome(pools.sqlite.query(sql`select typeof(${[1, 2]}) as type`))
    expect(err).toMatchObject({ code: 'INVALID_PARAMETER', detail: { position: 1, type: 'Array' } })
  })

  it('JSON refuses what JSON.stringify would change silently, at any depth, on both engines; the connection stays usable', async () => {
    class Point {
      x = 1
    }
    const refused: readonly [string, unknown][] = [
      ['a Buffer property', { b: Buffer.from('hi') }],
      ['a Uint8Array property', sql.json({ b: new Uint8Array([1]) })],
      ['a nested class instance', { c: new Point() }],
      ['a class instance in sql.json', sql.json(new Point())],
      ['an undefined property', { u: undefined, k: 1 }],
      ['an undefined nested property', sql.json([[1, { a: undefined }]])],
    ]
    for (const backend of BACKENDS) {
      for (const [label, value] of refused) {
        const err = await outcome(pools[backend].query(sql`select ${value} as j`))
        expect([label, err]).toEqual([
          label,
          expect.objectContaining({ code: 'INVALID_PARAMETER', detail: { position: 1, type: expect.any(String) } }),
        ])
      }
      const { rows } = await pools[backend].query<{ j: string }>(
        sql`select cast(${{ d: new Date('2024-01-01T00:00:00Z'), o: Object.assign(Object.create(null) as object, { x: 1 }) }} as text) as j`,
      )
      expect(rows[0]!.j.replace(/ /g, '')).toBe('{"d":"2024-01-01T00:00:00.000Z","o":{"x":1}}')
    }
  })

  it('a boolean stored in a TEXT column reads the same digits on both (it was 1.0 on SQLite)', async () => {
    for (const backend of BACKENDS) {
      const pool = pools[backend]
      await pool.query('create table flags (id integer primary key, t text)')
      await pool.query(sql`insert into flags (id, t) values (1, ${true}), (2, ${false})`)
      const { rows } = await pool.query<{ t: string }>('select t from flags order by id')
      expect(rows.map((r) => r.t)).toEqual(backend === 'postgres' ? ['true', 'false'] : ['1', '0'])
    }
  })
})
