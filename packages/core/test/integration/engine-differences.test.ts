import { DatabaseError, PoolFactory, sql, type DatabasePool, type SqlFragment } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// README, "Where the engines differ": every row of that table, run against the real Postgres and a
// real SQLite file, so the table stays true. A row that starts to behave the same on both (or
// differently than written) fails here.

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'
const BACKENDS = ['postgres', 'sqlite'] as const

let pgDb: TestDatabase
let file: TempSqlite
const pools = {} as Record<Backend, DatabasePool<unknown>>

beforeAll(async () => {
  pgDb = await createTestDatabase()
  file = await createTempSqlite()
  pools.postgres = await PoolFactory.create(pgDb.url, { min: 0, max: 2, name: 'differ-pg' })
  pools.sqlite = await PoolFactory.create(file.url, { min: 0, max: 2, name: 'differ-sqlite' })
})

afterAll(async () => {
  await pools.postgres?.close()
  await pools.sqlite?.close()
  await pgDb?.drop()
  await file?.remove()
})

/** Rows as JSON-friendly values (bigint as `'<digits>n'`), or `'<code> <sqlState|sqliteCode>'` for an error. */
async function answer(backend: Backend, query: string | SqlFragment, options?: { lane: 'read' }): Promise<unknown> {
  try {
    const { rows } = await pools[backend].query(query, undefined, options)
    return JSON.parse(JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)))
  } catch (err) {
    if (!DatabaseError.is(err)) throw err
    return `${err.code} ${err.sqlState ?? err.sqliteCode}`
  }
}

async function onBoth(query: string | SqlFragment, options?: { lane: 'read' }): Promise<Record<Backend, unknown>> {
  return { postgres: await answer('postgres', query, options), sqlite: await answer('sqlite', query, options) }
}

describe('types and affinity', () => {
  beforeAll(async () => {
    for (const backend of BACKENDS)
      await pools[backend].query('create table loose (id integer primary key, d numeric(20, 2), t text, v varchar(3), n integer)')
  })

  it('NUMERIC/DECIMAL columns round decimal strings on SQLite (cents lost); TEXT keeps them; Postgres keeps them exact', async () => {
    await onBoth("insert into loose (id, d, t) values (1, '12345678901234567.89', '12345678901234567.89'), (2, '0.10', '0.10')")
    expect(await onBoth('select d, t from loose where id in (1, 2) order by id')).toEqual({
      postgres: [
        { d: '12345678901234567.89', t: '12345678901234567.89' },
        { d: '0.10', t: '0.10' },
      ],
      sqlite: [
        { d: '12345678901234568n', t: '12345678901234567.89' },
        { d: 0.1, t: '0.10' },
      ],
    })
  })

  // review r4 item 6: documented in the README row 'a boolean parameter in a TEXT column'
  it("a boolean parameter stored in a TEXT column is 'true'/'false' on Postgres, '1'/'0' on SQLite", async () => {
    await onBoth(sql`insert into loose (id, t) values (10, ${true}), (11, ${false})`)
    expect(await onBoth('select t from loose where id in (10, 11) order by id')).toEqual({
      postgres: [{ t: 'true' }, { t: 'false' }],
      sqlite: [{ t: '1' }, { t: '0' }],
    })
  })

  it.each([
    ['varchar(n) length is not enforced on SQLite', 3, "insert into loose (id, v) values (3, 'abcdef')", 'QUERY_FAILED 22001', 'abcdef'],
    ['text is accepted in an integer column on SQLite', 4, "insert into loose (id, n) values (4, 'abc')", 'QUERY_FAILED 22P02', 'abc'],
  ])('%s', async (_label, id, insert, postgres, stored) => {
    expect(await onBoth(insert)).toEqual({ postgres, sqlite: [] })
    const { rows } = await pools.sqlite.query<{ v: unknown; n: unknown }>(sql`select v, n from loose where id = ${id}`)
    expect(rows.map((r) => r.v ?? r.n)).toEqual([stored])
  })

  it('a SQLite STRICT table refuses text and fractions in an INTEGER column (CHECK_VIOLATION, SQLITE_CONSTRAINT_DATATYPE), converts a numeric string, and has no varchar(n) or numeric type', async () => {
    const strict = pools.sqlite
    await strict.query('create table strict_items (id integer primary key, qty integer not null, price_cents integer, note text) strict')
    for (const bad of ["'abc'", '1.5', "'1.5'"]) {
      const err = await strict.query(`insert into strict_items (qty) values (${bad})`).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'CHECK_VIOLATION', sqliteCode: 'SQLITE_CONSTRAINT_DATATYPE' })
    }
    await strict.query("insert into strict_items (id, qty, note) values (1, '42', 'ok')")
    expect((await strict.query('select qty, typeof(qty) as type from strict_items')).rows).toEqual([{ qty: 42, type: 'integer' }])
    for (const type of ['varchar(3)', 'numeric(20, 2)']) {
      const err = await strict.query(`create table strict_bad (v ${type}) strict`).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'SYNTAX_ERROR', sqliteCode: 'SQLITE_ERROR' })
    }
  })

  it.each([
    ['division by zero', 'select 1 / 0 as x', 'QUERY_FAILED 22012', [{ x: null }]],
    ['integer overflow', 'select 9223372036854775807 + 1 as x', 'QUERY_FAILED 22003', [{ x: 2 ** 63 }]],
    ["cast('abc' as integer)", "select cast('abc' as integer) as x", 'QUERY_FAILED 22P02', [{ x: 0 }]],
    [
      'LIKE on ASCII letters of another case',
      "select count(*) as x from (select 'ABC' as s) q where s like 'abc'",
      [{ x: '0n' }],
      [{ x: 1 }],
    ],
    [
      'NULLs in ascending order',
      'select v from (select 1 as v union all select null) q order by v',
      [{ v: 1 }, { v: null }],
      [{ v: null }, { v: 1 }],
    ],
    ['an empty list from sql.join([])', sql`select 1 as x where 1 in (${sql.join([], ', ')})`, 'SYNTAX_ERROR 42601', []],
    ['two untyped parameters in arithmetic', sql`select ${1} + ${2} as x`, 'SYNTAX_ERROR 42725', [{ x: 3 }]],
    ['a parameter cast on both', sql`select cast(${1} as integer) + cast(${2} as integer) as x`, [{ x: 3 }], [{ x: 3 }]],
    ['an untyped parameter read back', sql`select ${1} as x`, [{ x: '1' }], [{ x: 1 }]],
  ] as const)('%s', async (_label, query, postgres, sqlite) => {
    expect(await onBoth(query)).toEqual({ postgres, sqlite })
  })
})

describe('statements', () => {
  beforeAll(async () => {
    for (const backend of BACKENDS) await pools[backend].query('create table things (id integer primary key, name text)')
  })

  it('a data-changing CTE runs on Postgres only', async () => {
    await onBoth("insert into things (id, name) values (100, 'x')")
    expect(await onBoth('with d as (delete from things where id = 100 returning id) select count(*) as n from d')).toEqual({
      postgres: [{ n: '1n' }],
      sqlite: 'SYNTAX_ERROR SQLITE_ERROR',
    })
  })

  it('integer primary key without a value: SQLite assigns the rowid, Postgres refuses NULL', async () => {
    const { postgres, sqlite } = await onBoth("insert into things (name) values ('auto') returning id")
    expect(postgres).toBe('NOT_NULL_VIOLATION 23502')
    expect(sqlite).toEqual([{ id: expect.any(Number) }])
  })

  it("a write with { lane: 'read' }: Postgres without replicas runs it on the primary, SQLite refuses it (READ_ONLY)", async () => {
    expect(await onBoth("insert into things (id, name) values (200, 'read lane') returning id", { lane: 'read' })).toEqual({
      postgres: [{ id: 200 }],
      sqlite: 'READ_ONLY SQLITE_READONLY',
    })
  })

  it('stats().max on SQLite counts the writer and the readers (`max` does not size the read lane)', async () => {
    const lite = await PoolFactory.create(file.url, { min: 0, max: 1, name: 'differ-stats' })
    try {
      expect([lite.stats().max, lite.stats('write').max, lite.stats('read').max]).toEqual([3, 1, 2])
    } finally {
      await lite.close()
    }
    expect(pools.postgres.stats().max).toBe(2)
  })
})

describe('time and isolation', () => {
  it("CURRENT_TIMESTAMP's text does not compare with a bound Date on SQLite; the recommended strftime default does", async () => {
    const lite = pools.sqlite
    await lite.query(
      "create table events (id integer primary key, plain text not null default current_timestamp, iso text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    )
    await lite.query('insert into events (id) values (1)')
    const hourAgo = new Date(Date.now() - 3_600_000)
    const hourAhead = new Date(Date.now() + 3_600_000)
    const { rows } = await lite.query<{ plain: string; iso: string; plainAfter: number; isoAfter: number; isoBefore: number }>(
      sql`select plain, iso, plain > ${hourAgo} as plainAfter, iso > ${hourAgo} as isoAfter, iso < ${hourAhead} as isoBefore from events`,
    )
    const row = rows[0]!
    expect(row.plain).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/)
    // the same format as a bound Date (toISOString), so text comparison is time order
    expect(row.iso).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(new Date(row.iso).toISOString()).toBe(row.iso)
    expect({ plainAfter: row.plainAfter, isoAfter: row.isoAfter, isoBefore: row.isoBefore }).toEqual({
      // ' ' sorts before 'T': a row written now reads as older than an hour ago (unless the day changed)
      plainAfter: row.plain.slice(0, 10) === hourAgo.toISOString().slice(0, 10) ? 0 : 1,
      isoAfter: 1,
      isoBefore: 1,
    })
  })

  it('default isolation: a read-modify-write of two interleaved transactions loses an update on Postgres (read committed); SQLite serializes the writers', async () => {
    for (const backend of BACKENDS) await pools[backend].query('create table counter (id integer primary key, n integer not null)')
    for (const backend of BACKENDS) await pools[backend].query('insert into counter (id, n) values (1, 100)')
    // Postgres: both read 100 before either writes (each step waits for the other's signal)
    const pg = pools.postgres
    const signal = (): { wait: Promise<void>; give: () => void } => {
      let give!: () => void
      const wait = new Promise<void>((resolve) => (give = resolve))
      return { wait, give }
    }
    const firstRead = signal()
    const secondRead = signal()
    const firstCommitted = signal()
    const increment = (steps: { before?: Promise<void>; read: () => void; write?: Promise<void> }) =>
      pg.transaction(async (tx) => {
        await steps.before
        const { rows } = await tx.query<{ n: number }>('select n from counter where id = 1')
        steps.read()
        await steps.write
        await tx.query(sql`update counter set n = ${rows[0]!.n + 1} where id = 1`)
      })
    const second = increment({ before: firstRead.wait, read: secondRead.give, write: firstCommitted.wait })
    await increment({ read: firstRead.give, write: secondRead.wait }).then(firstCommitted.give)
    await second
    expect((await pg.query<{ n: number }>('select n from counter')).rows).toEqual([{ n: 101 }])
    // SQLite: BEGIN IMMEDIATE takes the write lock first, so the second transaction reads the first's write
    const lite = pools.sqlite
    const bump = () =>
      lite.transaction(async (tx) => {
        const { rows } = await tx.query<{ n: number }>('select n from counter where id = 1')
        await new Promise((resolve) => setImmediate(resolve))
        await tx.query(sql`update counter set n = ${rows[0]!.n + 1} where id = 1`)
      })
    await Promise.all([bump(), bump()])
    expect((await lite.query<{ n: number }>('select n from counter')).rows).toEqual([{ n: 102 }])
  })
})
