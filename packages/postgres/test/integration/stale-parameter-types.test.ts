import { isOutcomeUnknown, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection } from './helpers'

// A column type changed by another client (a migration elsewhere) leaves cached named statements
// with stale parameter types: the values then fail to convert (22003, 22P02) or the re-analysis finds
// no operator (42883). Such a failure must not last: the statement is parsed again, and outside a
// transaction run again at once (the error was raised at Bind: nothing ran).
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

const alter = (text: string) => admin(db.url, (c) => c.query(text))

it.each(['always', 'second-use'] as const)(
  "prepare '%s': int -> bigint, int -> text, jsonb -> text changed elsewhere: the next runs succeed outside a transaction",
  async (prepare) => {
    pool = poolOn(db.url, { max: 1, name: 'stale-outside' }, { prepare })
    await pool.query('drop table if exists big; create table big (id int primary key, ref int)')
    await pool.query('drop table if exists txt; create table txt (c int, v int); insert into txt values (1, 1)')
    await pool.query('drop table if exists js; create table js (id serial, c jsonb)')
    const insBig = 'insert into big (id, ref) values ($1, $2)'
    const selBig = 'select id from big where id = $1'
    const selTxt = 'select v from txt where c = $1'
    const insJs = 'insert into js (c) values ($1) returning id'
    for (let i = 1; i <= 2; i++) {
      await pool.query(insBig, [i, i])
      await pool.query(selBig, [i])
      await pool.query(selTxt, ['1'])
      await pool.query(insJs, ['{"a":1}'])
    }
    await alter('alter table big alter column id type bigint, alter column ref type bigint')
    await alter('alter table txt alter column c type text')
    await alter('alter table js alter column c type text')
    const huge = 2 ** 31 + 5
    for (let i = 0; i < 2; i++) {
      // before: 22003 "out of range for type integer", 42883 "operator does not exist: text = integer",
      // 22P02 "invalid input syntax for type json", on every call until the connection was recycled
      await pool.query(insBig, [huge + i, huge])
      expect((await pool.query(selBig, [huge + i])).rows).toEqual([{ id: BigInt(huge + i) }])
      expect((await pool.query(selTxt, ['1'])).rows).toEqual([{ v: 1 }])
      expect((await pool.query(insJs, ['not json'])).rows).toHaveLength(1)
    }
  },
  30_000,
)

it('inside a transaction: the statement fails once (not retryable), the next transaction parses it again', async () => {
  pool = poolOn(db.url, { max: 1, name: 'stale-inside' }, { prepare: 'always' })
  await pool.query('drop table if exists big2; create table big2 (id int primary key)')
  const ins = 'insert into big2 (id) values ($1)'
  await pool.query(ins, [1])
  await alter('alter table big2 alter column id type bigint')
  const huge = 2 ** 31 + 5
  let attempts = 0
  const err = await rejection(
    pool.transaction(
      async (tx) => {
        attempts++
        await tx.query(ins, [huge])
      },
      { retry: { maxAttempts: 3, baseDelayMs: 0 } },
    ),
  )
  expect(err.sqlState).toBe('22003')
  expect(err.retryable).toBe(false)
  expect(attempts).toBe(1)
  expect(err.message).toMatch(/prepared again \(fresh parameter types\) on its next run/)
  await pool.transaction(async (tx) => {
    await tx.query(ins, [huge])
  })
  expect((await pool.query<{ id: bigint }>('select id from big2 order by id')).rows).toEqual([{ id: 1n }, { id: BigInt(huge) }])
}, 30_000)

it('a value wrong for the column stays an error, not retryable, run at most twice, and the statement goes on working', async () => {
  pool = poolOn(db.url, { max: 1, name: 'stale-genuine' }, { prepare: 'always' })
  await pool.query('drop table if exists num; create table num (id serial, n int)')
  const ins = 'insert into num (n) values ($1)'
  await pool.query(ins, [1])
  for (let i = 0; i < 3; i++) {
    const err = await rejection(pool.query(ins, ['abc']))
    expect(err.sqlState).toBe('22P02')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(false)
  }
  await pool.query(ins, [2])
  expect((await pool.query<{ n: number }>('select n from num order by id')).rows.map((r) => r.n)).toEqual([1, 2])
}, 30_000)

it('a CALL after its procedure changed type is parsed again (a CALL re-prepares every connection once it ends), and runs once', async () => {
  pool = poolOn(db.url, { max: 1, name: 'stale-call' }, { prepare: 'always' })
  await pool.query(`drop table if exists calls; create table calls (n bigint);
    create or replace procedure put(v int) language plpgsql as $$ begin insert into calls values (v); commit; end $$`)
  await pool.query('call put($1)', [1])
  await admin(db.url, (c) =>
    c.query(
      `drop procedure put(int); create procedure put(v bigint) language plpgsql as $$ begin insert into calls values (v); commit; end $$`,
    ),
  )
  const huge = 2 ** 31 + 5
  // before 536e5e4 the cached statement kept the int parameter type: 22003, not retryable, not run again;
  // a CALL (which may run DDL) now makes every connection prepare its statements again once it ends
  await pool.query('call put($1)', [huge])
  expect((await pool.query<{ n: bigint }>('select n from calls order by n')).rows).toEqual([{ n: 1n }, { n: BigInt(huge) }])
}, 30_000)

// review r13a: only an error the server raised at Bind (no BindComplete), with no user code in its
// context, proves nothing ran; anything else ran the statement's side effects, which a run again repeats
describe('an error raised while the statement ran, or by user code at Bind, is never run again', () => {
  it.each(['always', 'second-use'] as const)(
    "prepare '%s': 42883 from the statement's own execution (a bad regprocedure value): one nextval, not retryable, no transaction replay",
    async (prepare) => {
      pool = poolOn(db.url, { max: 1, name: 'rerun-executed' }, { prepare })
      await pool.query('drop sequence if exists side; create sequence side')
      const text = "select nextval('side') as n, $1::text::regprocedure as f"
      await pool.query(text, ['now()'])
      await pool.query(text, ['now()'])
      const last = async () => Number((await pool!.query<{ n: string }>('select last_value::text as n from side')).rows[0]?.n)
      const before = await last()
      const err = await rejection(pool.query(text, ['no_such_function()']))
      expect(err).toMatchObject({ sqlState: '42883', retryable: false })
      // before: 2 (run again as a stale parameter type)
      expect((await last()) - before).toBe(1)
      let attempts = 0
      const inTx = await rejection(
        pool.transaction(async (tx) => {
          attempts++
          await tx.query(text, ['no_such_function()'])
        }),
      )
      expect(inTx).toMatchObject({ sqlState: '42883', retryable: false })
      expect(inTx.detail?.failedAtBind).toBeUndefined()
      // before: 2 attempts (thrown retryable, and core's default retryOn replayed 42883)
      expect(attempts).toBe(1)
      expect((await last()) - before).toBe(2)
    },
    30_000,
  )

  it('a class 22 error raised at Bind by a domain CHECK function (user code ran): the function runs once', async () => {
    pool = poolOn(db.url, { max: 1, name: 'rerun-domain' }, { prepare: 'always' })
    await pool.query(`drop table if exists dt; drop domain if exists checked_amount; drop sequence if exists audit;
      create sequence audit;
      create or replace function audit_check(v int) returns bool language plpgsql as $f$ begin
        perform nextval('audit');
        if v < 0 then raise exception 'negative amount %', v using errcode = '22023'; end if;
        return true; end $f$;
      create domain checked_amount as int check (audit_check(value));
      create table dt (v checked_amount)`)
    const ins = 'insert into dt (v) values ($1::checked_amount)'
    await pool.query(ins, [1])
    const last = async () => Number((await pool!.query<{ n: string }>('select last_value::text as n from audit')).rows[0]?.n)
    const before = await last()
    const err = await rejection(pool.query(ins, [-5]))
    expect(err).toMatchObject({ sqlState: '22023', retryable: false })
    // before: 2 (read as a stale parameter type at Bind and run again)
    expect((await last()) - before).toBe(1)
  }, 30_000)
})
