import type { DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// DDL run on a connection marks its cached named statements stale (as DEALLOCATE does), and once
// committed every connection's; an invalidation the transaction does to itself (a function running
// DDL or DEALLOCATE) is not replayed as retryable forever.
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
  "prepare '%s': DDL inside a transaction between two runs of a cached statement: the second run parses again there",
  async (prepare) => {
    pool = poolOn(db.url, { max: 1, name: 'ddl-in-tx' }, { prepare })
    await pool.query(
      `drop table if exists t_${prepare.replace('-', '_')}; create table t_${prepare.replace('-', '_')} (id int primary key, v int)`,
    )
    const table = `t_${prepare.replace('-', '_')}`
    await pool.query(`insert into ${table} values (1, 1)`)
    const q = `select * from ${table} where id = $1`
    await pool.query(q, [1])
    await pool.query(q, [1])
    let attempts = 0
    const rows = await pool.transaction(
      async (tx) => {
        attempts++
        await tx.query(q, [1])
        await tx.query(`alter table ${table} add column note text`)
        return (await tx.query(q, [1])).rows
      },
      { retry: true },
    )
    // before: 0A000 "cached plan must not change result type" on all 5 attempts, each retryable
    expect(attempts).toBe(1)
    expect(rows).toEqual([{ id: 1, v: 1, note: null }])
  },
  30_000,
)

it('a committed ALTER on one connection makes every connection of the pool parse again (no silent conversion by stale parameter types)', async () => {
  pool = poolOn(db.url, { max: 2, min: 0, name: 'ddl-everywhere' }, { prepare: 'always' })
  await pool.query('drop table if exists codes; create table codes (id serial, c int)')
  const ins = 'insert into codes (c) values ($1)'
  // both connections cache the insert with an int parameter
  await Promise.all([
    pool.withConnection(async (c) => {
      await c.query(ins, ['7'])
      await new Promise((r) => setTimeout(r, 100))
    }),
    pool.withConnection(async (c) => {
      await c.query(ins, ['7'])
      await new Promise((r) => setTimeout(r, 100))
    }),
  ])
  await pool.transaction(async (tx) => {
    await tx.query('alter table codes alter column c type text')
  })
  // both connections again: each must send '007' as text now, not through its old int parameter ('7')
  await Promise.all([
    pool.withConnection(async (c) => {
      await c.query(ins, ['007'])
      await new Promise((r) => setTimeout(r, 100))
    }),
    pool.withConnection(async (c) => {
      await c.query(ins, ['007'])
      await new Promise((r) => setTimeout(r, 100))
    }),
  ])
  const { rows } = await pool.query<{ c: string }>("select c from codes where c <> '7' order by id")
  expect(rows).toEqual([{ c: '007' }, { c: '007' }])
}, 30_000)

it('a function that deallocates or alters inside the transaction: not replayed as retryable on every attempt', async () => {
  pool = poolOn(db.url, { max: 1, name: 'ddl-own-doing' }, { prepare: 'always' })
  await pool.query(`drop table if exists own; create table own (id serial, v int);
    create or replace function dealloc() returns int language plpgsql as $$ begin execute 'deallocate all'; return 1; end $$;
    create or replace function widen() returns int language plpgsql as $$ begin execute 'alter table own add column extra' || (random() * 1e9)::int || ' int'; return 1; end $$`)
  const ins = 'insert into own (v) values ($1) returning *'
  for (const fn of ['dealloc', 'widen']) {
    await pool.query(ins, [0])
    let attempts = 0
    const err = await rejection(
      pool.transaction(
        async (tx) => {
          attempts++
          await tx.query(ins, [1])
          await tx.query(`select ${fn}()`)
          await tx.query(ins, [2])
        },
        { retry: { maxAttempts: 5, baseDelayMs: 0 } },
      ),
    )
    // before: 5 attempts, each failing the same way with retryable: true
    expect(err.sqlState).toBe(fn === 'dealloc' ? '26000' : '0A000')
    expect(err.retryable).toBe(false)
    expect(err.message).toMatch(/parsed in this transaction and the transaction itself dropped or changed it/)
    expect(attempts).toBeLessThanOrEqual(2)
  }
  // nothing of those transactions committed, and the statement runs again
  await pool.query(ins, [3])
  expect((await pool.query<{ v: number }>('select v from own order by id')).rows.map((r) => r.v)).toEqual([0, 0, 3])
}, 30_000)

it('a cached statement invalidated inside a savepoint: the message says only the savepoint was rolled back', async () => {
  pool = poolOn(db.url, { max: 1, name: 'ddl-savepoint' }, { prepare: 'always' })
  await pool.query(`drop table if exists sp; create table sp (id serial, v int);
    create or replace function widen_sp() returns int language plpgsql as $$ begin alter table sp add column a int; return 1; end $$`)
  const ins = 'insert into sp (v) values ($1) returning *'
  await pool.query(ins, [0])
  await pool.transaction(async (tx) => {
    await tx.query('insert into sp (v) values (100)')
    // a function changes the table behind the cached statement's back (no command tag seen)
    await tx.query('select widen_sp()')
    const err = await rejection(tx.transaction((s) => s.query(ins, [4])))
    expect(err.sqlState).toBe('0A000')
    expect(err.retryable).toBe(true)
    expect(err.message).toMatch(/inside a savepoint, only the work since the savepoint/)
    // before: "the transaction it ran in was aborted, so run the transaction again"
    expect(err.message).not.toMatch(/the transaction it ran in was aborted/)
    await tx.transaction((s) => s.query(ins, [5]))
  })
  expect((await pool.query<{ v: number }>('select v from sp order by id')).rows.map((r) => r.v)).toEqual([0, 100, 5])
}, 30_000)

it('a temp table created on the connection shadows the permanent one for its cached statements too (temp schema already there)', async () => {
  pool = poolOn(db.url, { max: 1, name: 'ddl-temp' }, { prepare: 'second-use' })
  await pool.query('drop table if exists items; create table items (v int)')
  const ins = 'insert into items (v) values ($1)'
  const counts = await pool.withConnection(async (c) => {
    // the session's temp schema exists before: creating the shadowing table then changes no search_path
    await c.query('create temp table scratch (x int)')
    await c.query('drop table scratch')
    await c.query(ins, [1])
    await c.query(ins, [2])
    await c.query('create temp table items (v int)')
    await c.query(ins, [3])
    const temp = (await c.query<{ n: number }>('select count(*)::int as n from pg_temp.items')).rows[0]!.n
    const permanent = (await c.query<{ n: number }>('select count(*)::int as n from public.items')).rows[0]!.n
    await c.query('drop table pg_temp.items')
    return { temp, permanent }
  })
  // before: { temp: 0, permanent: 3 }: the cached insert went on writing to public.items
  expect(counts).toEqual({ temp: 1, permanent: 2 })
}, 30_000)

it('a table created earlier in search_path by another connection of the pool is seen by every connection once committed', async () => {
  pool = poolOn(db.url, { max: 2, min: 0, name: 'ddl-shadow' }, { prepare: 'always' }, {})
  await pool.query('drop schema if exists app cascade; drop table if exists goods; create table goods (v int); create schema app')
  const ins = 'insert into goods (v) values ($1)'
  const both = async (value: number) => {
    let ready = 0
    const hold = async (c: { query: (t: string, p: unknown[]) => Promise<unknown> }) => {
      await c.query("select set_config('search_path', 'app, public', false)", [])
      await c.query(ins, [value])
      ready++
      while (ready < 2) await new Promise((r) => setTimeout(r, 10))
    }
    await Promise.all([pool!.withConnection(hold), pool!.withConnection(hold)])
  }
  await both(1)
  // the schema existed already: the search_path the cached statements were parsed with resolves to the same schemas
  await pool.query('create table app.goods (v int)')
  await both(2)
  const permanent = (await pool.query<{ v: number }>('select v from public.goods order by v')).rows.map((r) => r.v)
  const shadowing = (await pool.query<{ v: number }>('select v from app.goods order by v')).rows.map((r) => r.v)
  // before: the connection that did not run the CREATE went on writing to public.goods
  expect({ permanent, shadowing }).toEqual({ permanent: [1, 1], shadowing: [2, 2] })
}, 30_000)

// DDL the server reports with a query's tag (SELECT n): CREATE TABLE ... AS, SELECT ... INTO, CREATE MATERIALIZED VIEW
it.each([['create temp table items_q as select * from public.items_q'], ['select * into temp items_q from public.items_q']])(
  'a temp copy made by %s shadows the permanent table for the cached UPDATE too',
  async (copy) => {
    pool = poolOn(db.url, { max: 1, name: 'ddl-ctas-temp' }, { prepare: 'second-use' })
    await pool.query("drop table if exists items_q; create table items_q (id int, v text); insert into items_q values (1, 'original')")
    const upd = 'update items_q set v = $1 where id = $2'
    const rows = await pool.withConnection(async (c) => {
      await c.query('create temp table scratch (x int)')
      await c.query('drop table scratch')
      await c.query(upd, ['original', 1])
      await c.query(upd, ['original', 1]) // named from its second run
      await c.query(copy)
      await c.query(upd, ['staged', 1]) // meant for the temp copy
      const temp = (await c.query<{ v: string }>('select v from pg_temp.items_q')).rows.map((r) => r.v)
      await c.query('drop table pg_temp.items_q')
      return temp
    })
    const permanent = (await pool.query<{ v: string }>('select v from public.items_q')).rows.map((r) => r.v)
    // before: { temp: ['original'], permanent: ['staged'] }: the cached UPDATE wrote into public.items_q
    expect({ temp: rows, permanent }).toEqual({ temp: ['staged'], permanent: ['original'] })
  },
  30_000,
)

it.each([
  ['create table app.wares as select 1 as id, $$app$$::text as v'],
  ['create materialized view app.wares as select 1 as id, $$app$$::text as v'],
  ['select 1 as id, $$app$$::text as v into app.wares'],
])(
  '%s on another connection: every connection reads the new table once committed',
  async (create) => {
    pool = poolOn(db.url, { max: 2, min: 0, name: 'ddl-ctas-shadow' }, { prepare: 'always', sessionInit: 'SET search_path TO app, public' })
    await pool.query(
      "drop schema if exists app cascade; drop table if exists wares; create schema app; create table public.wares (id int, v text); insert into public.wares values (1, 'public')",
    )
    const read = 'select v from wares where id = $1'
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let ready!: () => void
    const aReady = new Promise<void>((r) => (ready = r))
    const a = pool.withConnection(async (c) => {
      const before = (await c.query<{ v: string }>(read, [1])).rows.map((r) => r.v)
      ready()
      await held
      return { before, after: (await c.query<{ v: string }>(read, [1])).rows.map((r) => r.v) }
    })
    await aReady
    await pool.withConnection(async (c) => {
      await c.query(create)
    })
    release()
    // before: after was ['public']: the cached statement kept reading public.wares
    expect(await a).toEqual({ before: ['public'], after: ['app'] })
  },
  30_000,
)

// a DO block or a procedure may run any DDL, which has no tag of its own
it.each([
  ['do', 'do $$ begin alter table z_do alter column code type text; end $$'],
  ['call', 'call z_do_alter()'],
])(
  'a column type changed by %s on another connection reaches every connection',
  async (_kind, ddl) => {
    pool = poolOn(db.url, { max: 2, min: 0, name: 'ddl-do' }, { prepare: 'second-use' })
    await pool.query(
      'drop table if exists z_do; create table z_do (id serial, code int); create or replace procedure z_do_alter() language plpgsql as $$ begin alter table z_do alter column code type text; end $$',
    )
    const ins = 'insert into z_do (code) values ($1)'
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let ready!: () => void
    const aReady = new Promise<void>((r) => (ready = r))
    const a = pool.withConnection(async (c) => {
      await c.query(ins, ['1'])
      await c.query(ins, ['2']) // named: its parameter typed int
      ready()
      await held
      await c.query(ins, ['007'])
    })
    await aReady
    await pool.withConnection(async (c) => {
      await c.query(ddl)
    })
    release()
    await a
    // before: ['1', '2', '7']: the cached insert converted '007' through its int parameter
    expect((await pool.query<{ code: string }>('select code from z_do order by id')).rows.map((r) => r.code)).toEqual(['1', '2', '007'])
  },
  30_000,
)
