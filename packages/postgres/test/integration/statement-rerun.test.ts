import type { DatabasePool } from '@dbpool/core'
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
