import { sql, type DatabasePool } from '@dbpool/core'
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
