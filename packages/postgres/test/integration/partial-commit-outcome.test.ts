import { DatabaseError, isOutcomeUnknown, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection } from './helpers'

// A CALL, a DO block or a multi-statement text can commit part of its work before it fails (a COMMIT
// in a procedure's body sends no CommandComplete): the error must never say `retryable: true`, and a
// session lost after it started leaves its outcome unknown.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => {
    await c.query(`create table w (id int); create table y (id int);
      create procedure p_lock(n int) language plpgsql as $$ begin
        insert into w values (n); commit; perform set_config('lock_timeout', '100ms', true); lock table y; end $$;
      create procedure p_sleep(n int) language plpgsql as $$ begin insert into w values (n); commit; perform pg_sleep(30); end $$;
      create procedure p_lock_only() language plpgsql as $$ begin
        perform set_config('lock_timeout', '100ms', true); lock table y; end $$`)
  })
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
  await admin(db.url, (c) => c.query('truncate w'))
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** Runs `fn` while another session holds an ACCESS EXCLUSIVE lock on y. */
async function withYLocked<T>(fn: () => Promise<T>): Promise<T> {
  return admin(db.url, async (c) => {
    await c.query('begin; lock table y')
    try {
      return await fn()
    } finally {
      await c.query('rollback')
    }
  })
}

async function committed(): Promise<number[]> {
  return admin(db.url, async (c) => (await c.query<{ id: number }>('select id from w order by id')).rows.map((r) => r.id))
}

it.each([
  {
    title: 'a text with its own COMMIT',
    text: "insert into w values (1); commit; set lock_timeout = '100ms'; lock table y",
    prepare: false,
  },
  { title: 'CALL', text: 'call p_lock(1)', prepare: false },
  { title: 'CALL, parameterised and named', text: 'call p_lock($1)', prepare: 'always' },
  {
    title: 'DO',
    text: "do $$ begin insert into w values (1); commit; perform set_config('lock_timeout', '100ms', true); lock table y; end $$",
    prepare: false,
  },
] as const)(
  '$title that committed, then hit a lock timeout: BUSY, not retryable, outcome unknown',
  async ({ text, prepare }) => {
    pool = poolOn(db.url, { max: 1, name: 'partial-busy' }, { prepare })
    const err = await withYLocked(() => rejection(pool!.query(text, text.includes('$1') ? [1] : [])))
    expect(err.code).toBe('BUSY')
    expect(err.sqlState).toBe('55P03')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.message).toMatch(/outcome is unknown/)
    expect(await committed()).toEqual([1])
    // the connection goes on
    expect((await pool.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }])
  },
  30_000,
)

it('a text that fails before any commit of its own keeps its retryable BUSY (nothing was committed)', async () => {
  pool = poolOn(db.url, { max: 1, name: 'partial-none' })
  const plain = await withYLocked(() =>
    rejection(pool!.query("insert into w values (1); select set_config('lock_timeout', '100ms', true); lock table y")),
  )
  expect(plain.code).toBe('BUSY')
  expect(plain.retryable).toBe(true)
  expect(isOutcomeUnknown(plain)).toBe(false)
  // a CALL inside a transaction cannot commit (the server refuses COMMIT there): its BUSY replays
  let attempts = 0
  const err = await withYLocked(() =>
    rejection(
      pool!.transaction(
        async (tx) => {
          attempts++
          await tx.query('insert into w values (2)')
          await tx.query('call p_lock_only()')
        },
        { retry: { maxAttempts: 2, baseDelayMs: 0 } },
      ),
    ),
  )
  expect(err.code).toBe('BUSY')
  expect(err.retryable).toBe(true)
  expect(attempts).toBe(2)
  expect(await committed()).toEqual([])
}, 30_000)

it.each([
  { title: 'CALL', text: 'call p_sleep(1)' },
  { title: 'DO', text: 'do $$ begin insert into w values (1); commit; perform pg_sleep(30); end $$' },
])(
  '$title whose session is terminated after its COMMIT: CONNECTION_LOST, not retryable, outcome unknown',
  async ({ text }) => {
    pool = poolOn(db.url, { max: 1, name: 'partial-fatal' }, { prepare: false })
    const running = rejection(pool.query(text))
    // wait for the body's COMMIT to be visible, then end the session
    for (let i = 0; i < 100 && (await committed()).length === 0; i++) await new Promise((r) => setTimeout(r, 50))
    await admin(db.url, (c) =>
      c.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where query like 'call p_sleep%' or query like 'do $$ begin insert into w%'",
      ),
    )
    const err = await running
    expect(DatabaseError.is(err)).toBe(true)
    expect(err.code).toBe('CONNECTION_LOST')
    expect(err.sqlState).toBe('57P01')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(await committed()).toEqual([1])
  },
  30_000,
)

// review r2 item 5, on Postgres too: a text whose own COMMIT completed before a failure that is not
// retryable (a constraint) was reported with the plain error, and one that then left a transaction
// open was TRANSACTION_ROLLED_BACK "what ran inside it was not committed", though the first block
// was committed in both
describe('a text that committed a block of its own before it failed or left a transaction open', () => {
  it('a constraint after its COMMIT: the error says an earlier block committed (outcome unknown, not retryable)', async () => {
    pool = poolOn(db.url, { max: 1, name: 'partial-constraint' })
    await admin(db.url, (c) => c.query('create table if not exists u (id int primary key)'))
    const err = await rejection(pool.query('insert into w values (1); commit; insert into u values (1); insert into u values (1)'))
    expect(err.code).toBe('UNIQUE_VIOLATION')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.message).toMatch(/COMMIT had committed the work before it/)
    expect(await committed()).toEqual([1])
    // without a COMMIT of its own: the plain error, nothing kept
    const plain = await rejection(pool.query('insert into w values (2); insert into u values (2); insert into u values (2)'))
    expect(plain.code).toBe('UNIQUE_VIOLATION')
    expect(isOutcomeUnknown(plain)).toBe(false)
    expect(await committed()).toEqual([1])
  })

  it('a COMMIT that ends a failed transaction (the server answers ROLLBACK) is not a commit point: the plain error, nothing kept (re-review r10 item 2)', async () => {
    pool = poolOn(db.url, { max: 1, name: 'partial-aborted-commit' })
    await admin(db.url, (c) =>
      c.query('create table if not exists u (id int primary key); insert into u values (0) on conflict do nothing'),
    )
    const [first, second] = await pool.withConnection(async (conn) => {
      await conn.query('begin')
      await conn.query('insert into w values (1)')
      const aborting = await rejection(conn.query('insert into u values (0)'))
      return [aborting, await rejection(conn.query('commit; insert into u values (0)'))]
    })
    expect(first.code).toBe('UNIQUE_VIOLATION')
    expect(second.code).toBe('UNIQUE_VIOLATION')
    expect(isOutcomeUnknown(second)).toBe(false)
    expect(second.message).not.toMatch(/committed/)
    // the transaction was rolled back by its COMMIT: "the work before it was committed" would have lost it
    expect(await committed()).toEqual([])
  })

  it('a result refused in the client (two columns of one name) after its COMMIT and a BEGIN: outcome unknown, the first block kept (re-review r10 item 3)', async () => {
    pool = poolOn(db.url, { max: 1, name: 'partial-columns' })
    const err = await rejection(pool.query('insert into w values (1); commit; begin; insert into w values (2); select 1 as a, 2 as a'))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.message).toMatch(/COMMIT of its own had committed the work before it/)
    expect(await committed()).toEqual([1])
    // all of it inside the transaction it opened: nothing committed, no outcome unknown
    const plain = await rejection(pool.query('begin; insert into w values (3); select 1 as a, 2 as a'))
    expect(plain.code).toBe('SYNTAX_ERROR')
    expect(isOutcomeUnknown(plain)).toBe(false)
    expect(await committed()).toEqual([1])
  })

  // re-review r12 item 4: sent on a lease with its transaction open, the same texts said "nothing of it
  // commits" (only texts sent outside a transaction were judged), while their COMMIT had committed the
  // lease's work and their own; the kind: a value refused in the client (a timestamp past a Date's
  // range) is judged the same way, and so is a text whose COMMIT ends the lease's transaction before
  // the refused statement runs in auto-commit
  it.each([
    ['two columns of one name', 'select 1 as a, 2 as a', 'SYNTAX_ERROR'],
    ["a timestamp past a Date's range", "select '290000-01-01'::timestamptz as t", 'QUERY_FAILED'],
  ])(
    'on a lease with its transaction open, %s refused after the text committed it: outcome unknown, or committed, never "nothing commits"',
    async (_, refused, code) => {
      pool = poolOn(db.url, { max: 1, name: 'partial-columns-lease' })
      const [reopened, autocommit, inside, aborting] = await pool.withConnection(async (conn) => {
        await conn.query('begin')
        await conn.query('insert into w values (10)')
        // its COMMIT commits the lease's insert and its own, then it opens a transaction the refusal aborts
        const reopened = await rejection(conn.query(`insert into w values (1); commit; begin; insert into w values (2); ${refused}`))
        await conn.query('rollback')
        await conn.query('begin')
        // its COMMIT ends the lease's transaction: the refused statement ran (and wrote) in auto-commit
        const autocommit = await rejection(
          conn.query(`insert into w values (3); commit; insert into w values (4) returning ${refused.replace('select ', '')}`),
        )
        await conn.query('begin')
        await conn.query('insert into w values (20)')
        // all of it inside the lease's transaction: nothing committed, that transaction aborted
        const inside = await rejection(conn.query(`insert into w values (5); ${refused}`))
        await conn.query('rollback')
        // a COMMIT that ends a failed transaction commits nothing (the server answers ROLLBACK)
        await conn.query('begin')
        await conn.query('insert into w values (30)')
        await rejection(conn.query('select 1/0'))
        const aborting = await rejection(conn.query(`commit; begin; insert into w values (6); ${refused}`))
        await conn.query('rollback')
        return [reopened, autocommit, inside, aborting]
      })
      for (const err of [reopened, autocommit, inside, aborting]) expect(err.code).toBe(code)
      expect(isOutcomeUnknown(reopened)).toBe(true)
      expect(reopened.message).toMatch(/committed the work before it/)
      expect(autocommit.detail?.outcome).toBe('committed')
      expect(isOutcomeUnknown(inside)).toBe(false)
      expect(inside.detail?.outcome).toBeUndefined()
      expect(isOutcomeUnknown(aborting)).toBe(false)
      expect(aborting.detail?.outcome).toBeUndefined()
      expect((await committed()).sort((a, b) => a - b)).toEqual([1, 3, 4, 10])
    },
  )

  it('left a transaction open after its COMMIT: TRANSACTION_ROLLED_BACK saying the first block may be committed (outcome unknown)', async () => {
    pool = poolOn(db.url, { max: 1, name: 'partial-left-open' })
    const err = await rejection(pool.query('insert into w values (1); commit; begin; insert into w values (2)'))
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.message).toMatch(/before it opened may have been committed/)
    expect(await committed()).toEqual([1])
    // everything inside the transaction it left open: nothing committed, no outcome unknown
    const plain = await rejection(pool.query('insert into w values (3); begin; insert into w values (4)'))
    expect(plain.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(isOutcomeUnknown(plain)).toBe(false)
    expect(await committed()).toEqual([1])
  })
})
