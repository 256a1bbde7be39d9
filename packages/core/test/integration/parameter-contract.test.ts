import fc from 'fast-check'
import { parse as parseLossless } from 'lossless-json'
import { DatabaseError, PoolFactory, sql, type DatabasePool } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// The parameter contract (README, "Parameters"): for generated values of every JS type in the table,
// what each backend stores and reads back is what the table says, and a value one backend refuses
// with INVALID_PARAMETER the other refuses too (arrays and bigints beyond 64 bits are the documented
// exceptions: Postgres has arrays and numeric, SQLite has neither).

jest.setTimeout(180_000)

type Backend = 'postgres' | 'sqlite'

interface Case {
  readonly kind: string
  readonly value: unknown
  /** Column type per backend. */
  readonly column: { readonly postgres: string; readonly sqlite: string }
  /** What reads back, normalised to compare across backends; `'refused'` when INVALID_PARAMETER is expected. */
  readonly expected: (backend: Backend) => unknown
  /** Normalises what a backend read back for the comparison. */
  readonly normalise?: (read: unknown, backend: Backend) => unknown
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const INT64_MAX = 2n ** 63n - 1n
const INT64_MIN = -(2n ** 63n)
const refused = (): 'refused' => 'refused'

const finiteNumber: fc.Arbitrary<Case> = fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => ({
  kind: 'number',
  value: n,
  column: { postgres: 'double precision', sqlite: 'real' },
  // -0 is 0 on both: pg sends String(-0), which is "0", and SQLite keeps an integral REAL as an integer
  expected: () => (Object.is(n, -0) ? 0 : n),
}))

const nonFinite: fc.Arbitrary<Case> = fc.constantFrom(NaN, Infinity, -Infinity).map((n) => ({
  kind: 'number (not finite)',
  value: n,
  column: { postgres: 'double precision', sqlite: 'real' },
  expected: refused,
}))

const int64: fc.Arbitrary<Case> = fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map((b) => ({
  kind: 'bigint',
  value: b,
  column: { postgres: 'bigint', sqlite: 'integer' },
  expected: () => b,
  // Postgres reads int8 as a bigint; SQLite as a number within ±(2^53-1) and a bigint beyond: never rounded
  normalise: (read, backend) => {
    if (backend === 'sqlite' && typeof read === 'number') {
      expect(Number.isSafeInteger(read)).toBe(true)
      return BigInt(read)
    }
    if (backend === 'sqlite') expect((read as bigint) > MAX_SAFE || (read as bigint) < -MAX_SAFE).toBe(true)
    return read
  },
}))

const beyondInt64: fc.Arbitrary<Case> = fc
  .oneof(fc.bigInt({ min: INT64_MAX + 1n, max: 2n ** 80n }), fc.bigInt({ min: -(2n ** 80n), max: INT64_MIN - 1n }))
  .map((b) => ({
    kind: 'bigint beyond 64 bits',
    value: b,
    column: { postgres: 'numeric', sqlite: 'integer' },
    expected: (backend) => (backend === 'postgres' ? b.toString() : 'refused'),
  }))

const wellFormed: fc.Arbitrary<Case> = fc
  .string({ unit: 'grapheme', maxLength: 40 })
  .filter((s) => !s.includes('\u0000'))
  .map((s) => ({ kind: 'string', value: s, column: { postgres: 'text', sqlite: 'text' }, expected: () => s }))

const badString: fc.Arbitrary<Case> = fc
  .tuple(fc.string({ maxLength: 10 }), fc.constantFrom('\u0000', '\uD800', '\uDFFF'), fc.string({ maxLength: 10 }))
  .map(([a, bad, b]) => ({
    kind: 'string (NUL or lone surrogate)',
    value: a + bad + b,
    column: { postgres: 'text', sqlite: 'text' },
    expected: refused,
  }))

const date: fc.Arbitrary<Case> = fc
  .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .map((d) => ({
    kind: 'Date',
    value: d,
    column: { postgres: 'timestamptz', sqlite: 'text' },
    expected: () => d.getTime(),
    // Postgres reads a Date (the instant); SQLite the ISO-8601 UTC text that was written
    normalise: (read, backend) => {
      if (backend === 'sqlite') expect(read).toBe(d.toISOString())
      return new Date(read as string | Date).getTime()
    },
  }))

const invalidDate: fc.Arbitrary<Case> = fc.constant({
  kind: 'Date (invalid)',
  value: new Date(NaN),
  column: { postgres: 'timestamptz', sqlite: 'text' },
  expected: refused,
})

const bytes: fc.Arbitrary<Case> = fc
  .uint8Array({ maxLength: 64 })
  .chain((u8) =>
    fc.constantFrom(
      { kind: 'Buffer', value: Buffer.from(u8), column: { postgres: 'bytea', sqlite: 'blob' }, expected: () => Buffer.from(u8) },
      { kind: 'Uint8Array', value: u8, column: { postgres: 'bytea', sqlite: 'blob' }, expected: () => Buffer.from(u8) },
    ),
  )

const boolean: fc.Arbitrary<Case> = fc.boolean().map((b) => ({
  kind: 'boolean',
  value: b,
  column: { postgres: 'boolean', sqlite: 'integer' },
  expected: () => b,
  // SQLite has no boolean type: it stores and returns 1 / 0
  normalise: (read, backend) => (backend === 'sqlite' ? read === 1 : read),
}))

const nullish: fc.Arbitrary<Case> = fc.constantFrom(null, undefined).map((v) => ({
  kind: String(v),
  value: v,
  column: { postgres: 'text', sqlite: 'text' },
  expected: () => null,
}))

// JSON: a bigint inside becomes a JSON integer of its exact digits, on both backends; Postgres reads an
// integer JS would print differently as the exact bigint (packages/postgres parseJson), SQLite returns the text
const jsonLeaf = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 10 }).filter((s) => !s.includes('\u0000')),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.boolean(),
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
)
const jsonValue = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    jsonLeaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__' && !k.includes('\u0000')),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
})).value
/** The integer JS prints for an integral double, without an exponent (`1e+21` → `1000000000000000000000`). */
const printed = (n: number): string => {
  const m = /^(-?)(\d)(?:\.(\d+))?e\+(\d+)$/.exec(String(n))
  return m ? `${m[1]}${m[2]}${m[3] ?? ''}${'0'.repeat(Number(m[4]) - (m[3] ?? '').length)}` : String(n)
}
/** What a JSON value reads back as: a bigint that JS prints back the same is a number, any other stays a bigint. */
const exactJson = (v: unknown): unknown => {
  if (typeof v === 'bigint') return printed(Number(v)) === v.toString() ? Number(v) : v
  if (Array.isArray(v)) return v.map(exactJson)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, exactJson(x)]))
  return v
}
const expectedJson = (v: unknown): unknown => exactJson(v)
/** SQLite returns the JSON text: read the way dbpool reads Postgres json (an integer JS would round: a bigint). */
const parseJsonText = (read: unknown, backend: Backend): unknown =>
  backend === 'sqlite'
    ? parseLossless(read as string, null, (t) => (/^-?\d+$/.test(t) && printed(Number(t)) !== t ? BigInt(t) : Number(t)))
    : read

const json: fc.Arbitrary<Case> = jsonValue.map((v) => ({
  kind: 'sql.json',
  value: sql.json(v),
  column: { postgres: 'jsonb', sqlite: 'text' },
  expected: () => expectedJson(v),
  normalise: parseJsonText,
}))

const plainObject: fc.Arbitrary<Case> = fc
  .dictionary(
    fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
    jsonLeaf,
    { maxKeys: 5 },
  )
  .map((o) => ({
    kind: 'plain object',
    value: o,
    column: { postgres: 'jsonb', sqlite: 'text' },
    expected: () => expectedJson(o),
    normalise: parseJsonText,
  }))

const array: fc.Arbitrary<Case> = fc.array(fc.integer(), { maxLength: 6 }).map((a) => ({
  kind: 'Array',
  value: a,
  column: { postgres: 'integer[]', sqlite: 'text' },
  // Postgres binds an array as a Postgres array (for = ANY($1)); SQLite has no arrays and refuses it
  expected: (backend) => (backend === 'postgres' ? a : 'refused'),
}))

const unsupported: fc.Arbitrary<Case> = fc
  .constantFrom<unknown>(new Map([[1, 2]]), new Set([1]), /re/, () => 1, Symbol('s'), new (class Money {})(), new Error('x'))
  .map((v) => ({ kind: 'unsupported object', value: v, column: { postgres: 'text', sqlite: 'text' }, expected: refused }))

const anyCase = fc.oneof(
  finiteNumber,
  nonFinite,
  int64,
  beyondInt64,
  wellFormed,
  badString,
  date,
  invalidDate,
  bytes,
  boolean,
  nullish,
  json,
  plainObject,
  array,
  unsupported,
)

describe('the parameter contract, on Postgres and SQLite at once', () => {
  let pgDb: TestDatabase
  let file: TempSqlite
  const pools = {} as Record<Backend, DatabasePool<unknown>>
  const tables = new Map<string, string>()

  beforeAll(async () => {
    pgDb = await createTestDatabase()
    file = await createTempSqlite()
    pools.postgres = await PoolFactory.create(pgDb.url, { min: 0, max: 2, name: 'contract-pg' })
    pools.sqlite = await PoolFactory.create(file.url, { min: 0, max: 2, name: 'contract-sqlite' })
  })

  afterAll(async () => {
    await pools.postgres?.close()
    await pools.sqlite?.close()
    await pgDb?.drop()
    await file?.remove()
  })

  async function table(backend: Backend, type: string): Promise<string> {
    const key = `${backend}:${type}`
    let name = tables.get(key)
    if (name === undefined) {
      name = `t_${tables.size}`
      await pools[backend].query(`create table ${name} (id integer primary key, v ${type})`)
      tables.set(key, name)
    }
    return name
  }

  let nextId = 1
  async function roundTrip(backend: Backend, c: Case): Promise<unknown> {
    const name = await table(backend, c.column[backend])
    const id = nextId++
    try {
      await pools[backend].query(sql`insert into ${sql.id(name)} (id, v) values (${id}, ${c.value})`)
    } catch (err) {
      if (DatabaseError.is(err, 'INVALID_PARAMETER')) {
        // refused before sending: the position is named and the connection still works
        expect(err.detail).toMatchObject({ position: 2 })
        await pools[backend].query('select 1')
        return 'refused'
      }
      throw err
    }
    const { rows } = await pools[backend].query<{ v: unknown }>(sql`select v from ${sql.id(name)} where id = ${id}`)
    expect(rows).toHaveLength(1)
    const read = rows[0]!.v
    return c.normalise && read !== null ? c.normalise(read, backend) : read
  }

  it('stores and reads back what the table says, or both refuse with INVALID_PARAMETER', async () => {
    const seen = new Set<string>()
    await fc.assert(
      fc.asyncProperty(anyCase, async (c) => {
        seen.add(c.kind)
        for (const backend of ['postgres', 'sqlite'] as const) {
          const got = await roundTrip(backend, c)
          expect({ kind: c.kind, backend, got }).toEqual({ kind: c.kind, backend, got: c.expected(backend) })
        }
      }),
      { numRuns: 400 },
    )
    // every row of the table was exercised
    expect(seen.size).toBeGreaterThanOrEqual(15)
  })

  it('one interpolated value is exactly one parameter, whatever its type', async () => {
    for (const backend of ['postgres', 'sqlite'] as const) {
      const { rows } = await pools[backend].query<{ v: unknown; w: unknown }>(
        sql`select ${sql.json(['red', 'green', 'blue'])} as v, ${sql.json({ a: 1 })} as w`,
      )
      expect(rows).toEqual([{ v: '["red","green","blue"]', w: '{"a":1}' }])
      for (const value of [['red'], ['red', 'green', 'blue'], { a: 1, b: 2 }]) {
        const name = await table(backend, 'text')
        const id = nextId++
        const outcome = await pools[backend].query(sql`insert into ${sql.id(name)} (id, v) values (${id}, ${value})`).then(
          () => 'stored',
          (err: unknown) => (DatabaseError.is(err, 'INVALID_PARAMETER') ? 'refused' : err),
        )
        // never spread over several placeholders: stored as one value (JSON) or refused as one
        if (outcome === 'stored') {
          const { rows: back } = await pools[backend].query<{ v: string }>(sql`select v from ${sql.id(name)} where id = ${id}`)
          expect(back[0]!.v).not.toBe('red')
        } else expect(outcome).toBe('refused')
      }
    }
  })

  it('the parameter-count limit is checked before sending, and the connection stays usable', async () => {
    for (const [backend, limit] of [
      ['postgres', 65_535],
      ['sqlite', 32_766],
    ] as const) {
      const values = Array.from({ length: limit + 1 }, (_, i) => i)
      const err = await pools[backend].query(sql`select ${sql.join(values)}`).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(DatabaseError.is(err, 'INVALID_PARAMETER')).toBe(true)
      const { rows } = await pools[backend].query<{ one: unknown }>('select 1 as one')
      expect(Number(rows[0]!.one)).toBe(1)
    }
  })

  it('statement text with U+0000 is refused before sending on both backends', async () => {
    for (const backend of ['postgres', 'sqlite'] as const) {
      const name = await table(backend, 'text')
      const [first, second] = [nextId++, nextId++]
      const script = `insert into ${name} (id, v) values (${first}, 'a');\u0000insert into ${name} (id, v) values (${second}, 'b')`
      const err = await pools[backend].query(script).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(DatabaseError.is(err, 'SYNTAX_ERROR')).toBe(true)
      expect((err as DatabaseError).detail).toMatchObject({ position: script.indexOf('\u0000') + 1 })
      // neither statement ran, not even the one before the NUL
      const { rows } = await pools[backend].query<{ n: unknown }>(`select count(*) as n from ${name} where id in (${first}, ${second})`)
      expect(Number(rows[0]!.n)).toBe(0)
    }
  })

  // a hole (a stray comma) reads as undefined and was stored as NULL on both backends, while
  // sql.join() refused the same hole: now INVALID_PARAMETER naming its position, on every path
  it('a hole in a params array is INVALID_PARAMETER naming its position on every path; nothing stored', async () => {
    for (const backend of ['postgres', 'sqlite'] as const) {
      const name = await table(backend, 'text')
      const p = backend === 'postgres' ? ['$1', '$2'] : ['?', '?']
      const insert = `insert into ${name} (id, v) values (${p[0]}, ${p[1]})`
      const id = nextId++
      // eslint-disable-next-line no-sparse-arrays
      const sparse: unknown[] = [id, , 'x'].slice(0, 2)
      expect(1 in sparse).toBe(false)
      const expectHole = async (promise: Promise<unknown>): Promise<void> => {
        const err = await promise.then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(DatabaseError.is(err, 'INVALID_PARAMETER')).toBe(true)
        expect((err as DatabaseError).detail).toMatchObject({ position: 2, type: 'hole' })
        expect((err as DatabaseError).message).toContain('parameter 2')
      }
      await expectHole(pools[backend].query(insert, sparse))
      await expectHole(pools[backend].transaction((tx) => tx.query(insert, sparse)))
      await expectHole(
        (async () => {
          for await (const row of pools[backend].stream(`select ${p[0]} as a, ${p[1]} as b`, sparse)) void row
        })(),
      )
      await expectHole(pools[backend].withConnection((conn) => conn.query(insert, sparse)))
      // undefined written out is still NULL, as the table says
      await pools[backend].query(insert, [nextId++, undefined])
      const { rows } = await pools[backend].query<{ n: unknown }>(`select count(*) as n from ${name} where id = ${id}`)
      expect(Number(rows[0]!.n)).toBe(0)
    }
    // an array parameter (Postgres) with a hole: its position and the element's index
    // eslint-disable-next-line no-sparse-arrays
    const err = await pools.postgres.query(sql`select ${[1, , 3]}::int[] as a`).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(DatabaseError.is(err, 'INVALID_PARAMETER')).toBe(true)
    expect((err as DatabaseError).detail).toMatchObject({ position: 1, type: 'hole', path: '[1]' })
    const inner = [3]
    inner.length = 2 // [3, <hole>]
    const nested = await pools.postgres.query('select $1::int[] as a', [[[1, 2], inner]]).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((err as DatabaseError).code).toBe('INVALID_PARAMETER')
    expect(nested).toMatchObject({ code: 'INVALID_PARAMETER', detail: { position: 1, path: '[1][1]' } })
    // explicit undefined / null elements stay NULL
    const { rows } = await pools.postgres.query<{ a: unknown }>('select $1::int[] as a', [[1, undefined, null]])
    expect(rows[0]!.a).toEqual([1, null, null])
  })
})
