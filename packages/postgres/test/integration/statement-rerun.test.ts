import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection, PostgresPoolOptions } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection } from './helpers'

// A named statement the server refuses as out of date (0A000 after ALTER TABLE, 26000 after
// DEALLOCATE) is prepared again; it is run again only where that keeps the order statements were
// issued in, outside a transaction, and never when the error came from inside the statement's work.

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

/** A pool of one connection, so every statement runs on the same session. */
function onePool(options: PostgresPoolOptions = {}): DatabasePool<PostgresConnection> {
  const pool = poolOn(db.url, { min: 0, max: 1, name: 'rerun' }, { prepare: 'always', ...options })
  pools.push(pool)
  return pool
}

/** The ids in `table`, read outside the pool. */
async function ids(table: string): Promise<number[]> {
  return admin(db.url, async (c) => (await c.query<{ id: number }>(`select id from ${table} order by id`)).rows.map((r) => r.id))
}

/** Counts the ErrorResponses the server sends on a leased connection while `fn` runs. */
async function serverErrors(c: { native: PostgresConnection }, fn: () => Promise<unknown>): Promise<number> {
  let errors = 0
  const count = (): void => void errors++
  const wire = c.native.client.connection
  wire.on('errorMessage', count)
  try {
    await fn()
  } finally {
    wire.off('errorMessage', count)
  }
  return errors
}

/** How a promise settled, without leaving a rejection unhandled. */
function settle<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
}

describe('a stale named statement keeps the order statements were issued in', () => {
  it('with a later statement of the lease already queued, it is not run again behind it: retryable error, nothing ran', async () => {
    await admin(db.url, (c) => c.query('create table reorder (id int primary key, v text)'))
    const pool = onePool()
    const insert = (id: number) => sql`insert into reorder (id, v) values (${id}, 'x') returning *`
    await pool.query(insert(1))
    await pool.query('delete from reorder')
    await admin(db.url, (c) => c.query('alter table reorder add column extra int')) // 'returning *' changes shape
    const [inserted, deleted] = await pool.withConnection(async (c) => {
      const a = settle(c.query(insert(10))) // issued first
      const b = c.query(sql`delete from reorder where id = ${10}`) // issued second: must see a's row if a ran
      return [await a, await b] as const
    })
    // before: the insert was run again behind the delete, resolved, and its row stayed
    expect('error' in inserted).toBe(true)
    const err = (inserted as { error: DatabaseError }).error
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.sqlState).toBe('0A000')
    expect(err.retryable).toBe(true)
    expect(err.message).toContain('statements issued after it on this connection were already queued')
    expect(deleted.rowCount).toBe(0)
    expect(await ids('reorder')).toEqual([])
    // prepared again: the next run succeeds
    expect((await pool.query(insert(11))).rows).toEqual([{ id: 11, v: 'x', extra: null }])
  })

  it('a transaction issued after it never takes in its run again (which would be rolled back with it)', async () => {
    await admin(db.url, (c) => c.query('create table intotx (id int primary key, v text)'))
    const pool = onePool()
    const insert = (id: number) => sql`insert into intotx (id, v) values (${id}, 'x') returning *`
    const stale = async (): Promise<void> => {
      await pool.query(insert(1))
      await pool.query('delete from intotx')
      await admin(db.url, (c) => c.query(`alter table intotx add column c${Date.now()} int`))
    }
    await stale()
    const inserted = await pool.withConnection(async (c) => {
      const a = settle(c.query(insert(10))) // auto-commit, not awaited yet
      void c.query('begin')
      await c.query(sql`select 1`) // a's answer came meanwhile
      await c.query('rollback')
      return a
    })
    // before: run again behind BEGIN, inside the transaction, resolved and rolled back with it
    expect('error' in inserted).toBe(true)
    expect((inserted as { error: DatabaseError }).error.retryable).toBe(true)
    expect(await ids('intotx')).toEqual([])
    // through conn.transaction(): whatever the insert's promise says is what the table holds
    await stale()
    const [again, transaction] = await pool.withConnection(async (c) => {
      const a = settle(c.query(insert(20)))
      const t = settle(
        c.transaction(async (tx) => {
          await tx.query(sql`select 1`)
          throw new Error('business rule says no')
        }),
      )
      return [await a, await t] as const
    })
    expect('error' in transaction).toBe(true)
    if ('value' in again) expect(await ids('intotx')).toEqual([20])
    else {
      expect((again.error as DatabaseError).retryable).toBe(true)
      expect(await ids('intotx')).toEqual([])
    }
  })

  it('issued behind an in-flight statement with nothing after it, it is run again transparently (outside a transaction)', async () => {
    await admin(db.url, (c) => c.query('create table behind (id int primary key, a int); insert into behind values (1, 1)'))
    const pool = onePool()
    const select = sql`select * from behind where id = ${1}`
    await pool.query(select)
    await admin(db.url, (c) => c.query('alter table behind add column b int default 2'))
    const rows = await pool.withConnection(async (c) => {
      const first = c.query(sql`select pg_sleep(${0.05})`)
      const second = c.query(select) // sent when the sleep is answered, outside a transaction
      await first
      return (await second).rows
    })
    // before: QUERY_FAILED "the transaction it ran in was aborted" although there was no transaction
    expect(rows).toEqual([{ id: 1, a: 1, b: 2 }])
  })

  it('DEALLOCATE ALL issued and not awaited: the named statement behind it parses again without a failed round trip', async () => {
    await admin(db.url, (c) => c.query("create table unawaited (id int primary key, v text); insert into unawaited values (1, 'one')"))
    const pool = onePool()
    const select = sql`select v from unawaited where id = ${1}`
    await pool.query(select)
    await pool.withConnection(async (c) => {
      let rows: unknown[] = []
      const errors = await serverErrors(c, async () => {
        const dropped = c.query('DEALLOCATE ALL')
        const again = c.query(select) // acquired before DEALLOCATE ALL's command tag arrives
        await dropped
        rows = (await again).rows
      })
      expect(rows).toEqual([{ v: 'one' }])
      // before: 26000 "prepared statement does not exist" (then run again, or refused)
      expect(errors).toBe(0)
    })
  })

  it('statements sharing a pipelined connection are each prepared again and run after a changed result type', async () => {
    await admin(db.url, (c) =>
      c.query('create table piped (id int primary key, a int); insert into piped select g, g from generate_series(1, 20) g'),
    )
    const pool = onePool({ pipelineDepth: 8 })
    const text = 'select * from piped where id = $1'
    await pool.query(text, [1])
    await admin(db.url, (c) => c.query('alter table piped add column b int default 0'))
    const rows = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.query(text, [i + 1]).then((r) => r.rows)))
    expect(rows).toEqual(Array.from({ length: 20 }, (_, i) => [{ id: i + 1, a: i + 1, b: 0 }]))
    // the kept row description is the new one
    expect((await pool.query(text, [3])).rows).toEqual([{ id: 3, a: 3, b: 0 }])
  })
})

describe('an error raised inside the statement’s own work is never taken for a stale statement', () => {
  beforeAll(async () => {
    await admin(db.url, (c) =>
      c.query(`create sequence calls; create table fn_target (n int);
        create function assign(v text) returns int language plpgsql as $$
        begin perform nextval('calls'); if v = 'bad' then execute 'insert into fn_target (n) values ($1)' using v; end if; return 1; end $$;
        create function dropped(v text) returns int language plpgsql as $$
        begin perform nextval('calls'); if v = 'bad' then raise exception 'no such thing' using errcode = '26000'; end if; return 1; end $$`),
    )
  })

  async function calls(): Promise<number> {
    return admin(db.url, async (c) => Number((await c.query<{ n: string }>('select last_value::text as n from calls')).rows[0]!.n))
  }

  it.each([
    ['42804 from a PL/pgSQL EXECUTE', 'assign', '42804'],
    ['26000 raised by a function', 'dropped', '26000'],
  ])('%s: the function runs once, the error is not retryable', async (_what, fn, sqlState) => {
    const pool = onePool()
    const call = (v: string) => pool.query(`select ${fn}($1) as r`, [v])
    await call('ok')
    await call('ok') // named and described: the next run only binds and executes
    const before = await calls()
    const err = await rejection(call('bad'))
    expect(err.sqlState).toBe(sqlState)
    expect(err.retryable).toBe(false)
    // before: run again, so nextval (not rolled back) counted two calls
    expect((await calls()) - before).toBe(1)
    // inside a transaction: not retryable, so retryOn(retryable) does not replay it
    let attempts = 0
    const inTx = await rejection(
      pool.transaction(
        async (tx) => {
          attempts++
          await tx.query(`select ${fn}($1) as r`, ['bad'])
        },
        { retry: { maxAttempts: 3, baseDelayMs: 0, retryOn: (e) => e.retryable } },
      ),
    )
    expect(inTx.sqlState).toBe(sqlState)
    expect(attempts).toBe(1)
    expect((await calls()) - before).toBe(2)
  })
})
