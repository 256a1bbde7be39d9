import { DatabaseError, sql, type DatabasePool, type QueryResult } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// A JS array is one Postgres array parameter: it is sent only where the server expects an array.
// `where name in (${names})` matched nothing and `values (${names})` stored '{"a","b"}' silently.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { max: 2, min: 0 })
  await pool.query(`create type mood as enum ('sad', 'ok')`)
  await pool.query('create table people (name text, moods mood[], one mood, ids int[])')
  await pool.query(`insert into people (name) values ('a'), ('b')`)
}, 120_000)

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await db?.drop()
}, 60_000)

const names = ['a', 'b']

async function count(): Promise<number> {
  return (await pool.query<{ n: number }>('select count(*)::int as n from people')).rows[0]!.n
}

describe('a JS array where the server expects a scalar is INVALID_PARAMETER, before it runs', () => {
  it.each([
    ['in (${names})', sql`select name from people where name in (${names})`],
    ['= ${names}', sql`select name from people where name = ${names}`],
    ['values (${names}) into a text column', sql`insert into people (name) values (${names})`],
    ['an enum column', sql`insert into people (one) values (${['sad']})`],
    ['select ${names}::text', sql`select ${names}::text as t`],
  ])('%s', async (_what, query) => {
    const err = await rejection(pool.query(query))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.detail).toMatchObject({ position: 1, type: 'Array' })
    expect(err.message).toMatch(/^parameter 1 \(Array\)/)
    expect(await count()).toBe(2)
  })

  it('the same through a lease, a stream, a transaction (which goes on: nothing ran) and a pool without prepared statements', async () => {
    await pool.withConnection(async (conn) => {
      expect((await rejection(conn.query(sql`select 1 as n where 'a' in (${names})`))).code).toBe('INVALID_PARAMETER')
      const streamed = rejection(
        (async () => {
          for await (const row of conn.stream(sql`select name from people where name in (${names})`)) void row
        })(),
      )
      expect((await streamed).code).toBe('INVALID_PARAMETER')
    })
    await pool.transaction(async (tx) => {
      await tx.query(`insert into people (name) values ('c')`)
      expect((await rejection(tx.query(sql`insert into people (name) values (${names})`))).code).toBe('INVALID_PARAMETER')
      await tx.query(`insert into people (name) values ('d')`)
    })
    expect((await pool.query<{ name: string }>('select name from people order by name')).rows.map((r) => r.name)).toEqual([
      'a',
      'b',
      'c',
      'd',
    ])
    await pool.query(`delete from people where name in ('c', 'd')`)
    const unprepared = poolOn(db.url, { max: 1, min: 0 }, { prepare: false })
    try {
      expect((await rejection(unprepared.query(sql`select name from people where name in (${names})`))).code).toBe('INVALID_PARAMETER')
      expect((await unprepared.query(sql`select count(*)::int as n from people where name = any(${names})`)).rows).toEqual([{ n: 2 }])
    } finally {
      await unprepared.close()
    }
  })
})

describe('arrays where the server expects one still work', () => {
  it('= any(), array columns (built-in and enum arrays), casts, many at once (statement sharing)', async () => {
    expect((await pool.query(sql`select name from people where name = any(${names}) order by name`)).rows).toEqual([
      { name: 'a' },
      { name: 'b' },
    ])
    await pool.query(sql`update people set moods = ${['sad', 'ok']}, ids = ${[1, 2]} where name = 'a'`)
    expect((await pool.query(`select moods::text as m, ids from people where name = 'a'`)).rows).toEqual([{ m: '{sad,ok}', ids: [1, 2] }])
    expect((await pool.query(sql`select ${names}::text[] as t, array_length(${[1, 2, 3]}::int[], 1) as n`)).rows).toEqual([
      { t: names, n: 3 },
    ])
    const counts = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pool.query<{ n: number }>(sql`select count(*)::int as n from people where name = any(${i % 2 === 0 ? names : ['a']})`),
      ),
    )
    expect(counts.map((r) => r.rows[0]!.n)).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 2 : 1)))
  })

  it('after a schema change the server types are asked again (a column that became an array accepts one)', async () => {
    await pool.query('create table tags (label text)')
    const insert = (value: unknown) => pool.query(sql`insert into tags (label) values (${value})`)
    expect((await rejection(insert(['x', 'y']))).code).toBe('INVALID_PARAMETER')
    await pool.query('alter table tags alter column label type text[] using array[label]')
    await insert(['x', 'y'])
    expect((await pool.query('select label from tags')).rows).toEqual([{ label: ['x', 'y'] }])
  })
})

/** `promise`'s settlement, or 'pending' after `ms` (a hang fails the assertion instead of the test timing out). */
function within(promise: Promise<unknown>, ms = 5_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)))
  return Promise.race([
    promise.then(
      (value) => value,
      (err: unknown) => err,
    ),
    pending,
  ]).finally(() => clearTimeout(timer))
}

describe("an array statement the server refuses at Parse: the server's error at once, the connection goes on", () => {
  // pg hands the ErrorResponse to the probe and clears it: the probe waited for a ReadyForQuery pg never gave it
  it('a missing table, unnest($1), in (select unnest($1)), with timeoutMs, pipelined, in a transaction; max 1', async () => {
    const one = poolOn(db.url, { max: 1, min: 0, acquireTimeoutMs: 3_000 })
    try {
      for (const text of ['select $1::int[] from no_such_table', 'select * from unnest($1) u', 'select 1 where 1 in (select unnest($1))']) {
        const err = (await within(one.query(text, [[1, 2]]))) as DatabaseError
        expect(err).toBeInstanceOf(DatabaseError)
        expect(err.code).toBe('SYNTAX_ERROR')
      }
      const timed = (await within(one.query('select $1::int[] from no_such_table', [[1]], { timeoutMs: 2_000 }))) as DatabaseError
      expect(timed.code).toBe('SYNTAX_ERROR')
      expect(timed.message).toMatch(/no_such_table/)
      expect((await within(one.query('select 1 as one'))) as QueryResult).toMatchObject({ rows: [{ one: 1 }] })
      // shared behind a running statement, other callers' statements behind it
      const shared = await Promise.all(
        [
          one.query('select pg_sleep(0.1) as s'),
          one.query('select $1::int[] from no_such_table', [[1]]),
          one.query('select 2 as two'),
          one.query('select $1::int as three', [3]),
        ].map((q) => within(q)),
      )
      expect((shared[1] as DatabaseError).code).toBe('SYNTAX_ERROR')
      expect(shared[2]).toMatchObject({ rows: [{ two: 2 }] })
      expect(shared[3]).toMatchObject({ rows: [{ three: 3 }] })
      // inside a transaction: the statement's own error (the transaction rolls back), then the next one runs
      const tx = await within(
        one.transaction(async (t) => {
          await t.query(`insert into people (name) values ('tx')`)
          await t.query('select $1::int[] from no_such_table', [[1]])
        }),
      )
      expect((tx as DatabaseError).code).toBe('SYNTAX_ERROR')
      // an aborted transaction: 25P02 at the probe's Parse
      const aborted = await within(
        one.transaction(async (t) => {
          await t.query('select 1 from no_such_table').catch(() => undefined)
          await t.query(sql`select ${[1]}::int[] as a`)
        }),
      )
      expect(aborted).toBeInstanceOf(DatabaseError)
      expect(await within(one.query(sql`select count(*)::int as n from people where name = any(${['tx']})`))).toMatchObject({
        rows: [{ n: 0 }],
      })
    } finally {
      await one.close({ timeoutMs: 5_000 })
    }
  })
})

describe('an array statement does not reorder the statements issued after it on one handle', () => {
  // the check (a Parse/Describe the first time, a microtask after) let a later statement without arrays go first
  it('pool.transaction and withConnection, first time and cached, several statements not awaited one by one', async () => {
    await pool.query('create table ord (seq serial, what text)')
    const batch = (q: { query: DatabasePool<PostgresConnection>['query'] }, round: string) =>
      Promise.all([
        q.query(`insert into ord (what) select 'a-' || $2 where 1 = any($1)`, [[1, 2], round]),
        q.query(`insert into ord (what) values ('b-' || $1)`, [round]),
        q.query(`insert into ord (what) select 'c-' || $2 where $2 <> all($1)`, [['x'], round]),
        q.query(`insert into ord (what) values ('d-' || $1)`, [round]),
        q.query(`insert into ord (what) select 'e-' || $2 where 1 = any($1)`, [[1], round]),
      ])
    for (let round = 0; round < 2; round++) {
      await pool.transaction((tx) => batch(tx, `t${round}`))
      await pool.withConnection((conn) => batch(conn, `w${round}`))
    }
    const rows = (await pool.query<{ what: string }>('select what from ord order by seq')).rows.map((r) => r.what)
    const expected = ['t0', 'w0', 't1', 'w1'].flatMap((round) => ['a', 'b', 'c', 'd', 'e'].map((s) => `${s}-${round}`))
    expect(rows).toEqual(expected)
  })
})

describe('the array check after a schema change made elsewhere', () => {
  // the statement cache sees no DDL tag: the check's types were kept, the named statement ran again unchecked
  it('a named statement prepared again (run again after the server refused it) checks its arrays afresh', async () => {
    const one = poolOn(db.url, { max: 1, min: 0 }, { prepare: 'always' })
    const other = poolOn(db.url, { max: 1, min: 0 })
    try {
      await one.query(`create table tg (tags text[])`)
      await one.query(`insert into tg values ('{a,b}')`)
      const find = (tags: string[]) => one.query<{ n: number }>('select count(*)::int as n from tg where tags = $1', [tags])
      expect((await find(['a', 'b'])).rows).toEqual([{ n: 1 }])
      expect((await find(['a', 'b'])).rows).toEqual([{ n: 1 }])
      // another service's migration: the column is text now, holding the text of an array literal
      await other.query(`alter table tg alter column tags type text using array_to_string(tags, ',')`)
      await other.query(`insert into tg values ('{c,d}')`)
      // was: prepared again with $1 text and run again: matched the text '{c,d}' (n: 1)
      const err = await rejection(find(['c', 'd']))
      expect(err.code).toBe('INVALID_PARAMETER')
    } finally {
      await one.close({ timeoutMs: 5_000 })
      await other.close({ timeoutMs: 5_000 })
    }
  })
})
