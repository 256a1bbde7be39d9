import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection, PostgresPoolOptions } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// Postgres's side of "two result columns of one name are refused" (the cross-engine cases are in
// packages/core/test/integration/result-columns.test.ts): every statement path, and the statements
// whose rows nobody reads.

let db: TestDatabase
const pools: DatabasePool<PostgresConnection>[] = []

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

function onePool(options: PostgresPoolOptions = {}): DatabasePool<PostgresConnection> {
  const pool = poolOn(db.url, { min: 0, max: 1, name: 'columns' }, options)
  pools.push(pool)
  return pool
}

it.each([
  ['a named prepared statement, every run (its row description is kept after the first)', { prepare: 'always' }],
  ['an unnamed statement', { prepare: false }],
] as const)('%s', async (_label, options) => {
  const pool = onePool(options)
  for (let run = 0; run < 3; run++) {
    const err = await rejection(pool.query(sql`select ${run}::int as n, ${'x'}::text as n`))
    expect(DatabaseError.is(err, 'SYNTAX_ERROR')).toBe(true)
    expect((err as DatabaseError).detail).toMatchObject({ column: 'n', positions: [1, 2] })
    // the same columns aliased apart, as a named statement too
    const { rows } = await pool.query(sql`select ${run}::int as n, ${'x'}::text as m`)
    expect(rows).toEqual([{ n: run, m: 'x' }])
  }
})

it('with a deadline, a signal, and inside withConnection: the same refusal', async () => {
  const pool = onePool()
  const text = 'select 1 as a, 2 as a'
  for (const work of [
    pool.query(text, [], { timeoutMs: 5_000 }),
    pool.query(text, [], { signal: new AbortController().signal }),
    pool.withConnection((c) => c.query(text)),
  ]) {
    expect(DatabaseError.is(await rejection(work), 'SYNTAX_ERROR')).toBe(true)
  }
})

it('only the answer of a multi-statement text is checked (the earlier results are discarded anyway)', async () => {
  const pool = onePool()
  const { rows } = await pool.query('select 1 as a, 2 as a; select 3 as b')
  expect(rows).toEqual([{ b: 3 }])
  expect(DatabaseError.is(await rejection(pool.query('select 3 as b; select 1 as a, 2 as a')), 'SYNTAX_ERROR')).toBe(true)
})

it('sessionInit whose rows nobody reads may name two columns alike (set_config twice)', async () => {
  const init = "select set_config('application_name', 'cols', false), set_config('search_path', 'public', false)"
  const pool = onePool({ sessionInit: init, sessionReset: 'clean' })
  const { rows } = await pool.query<{ app: string }>("select current_setting('application_name') as app")
  expect(rows).toEqual([{ app: 'cols' }])
  // and again after the reset of a released connection
  await pool.withConnection(async (c) => c.query('select 1 as one'))
  expect((await pool.query<{ app: string }>("select current_setting('application_name') as app")).rows).toEqual([{ app: 'cols' }])
})
