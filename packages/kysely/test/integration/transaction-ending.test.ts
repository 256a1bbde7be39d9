import { DatabaseError } from '@dbpool/core'
import { dbpoolTransaction } from '@dbpool/kysely'
import { sql, type Kysely } from 'kysely'
import { BACKENDS, openKyselyDb, type KyselyTestDb } from './helpers'

// A statement a transaction's callback started and did not await (a forgotten await, forEach(async
// ...)) that reaches `trx` while its COMMIT is in flight used to find no transaction on the Kysely
// connection and borrow a connection of its own: it ran outside the transaction and was kept even
// when the COMMIT failed. It is refused (QUERY_FAILED); one issued before the callback returned still
// runs inside the transaction.
//
// The COMMIT fails: on Postgres a deferred constraint trigger sleeps, then raises (a COMMIT in flight
// for 0.5 s); on SQLite a deferred foreign key (SQLite's COMMIT is synchronous: the stray arrives a
// few microtasks after the callback returned).

jest.setTimeout(120_000)

interface Tables {
  t: { id: number; v: string; parent: number | null }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function microtasks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await null
}

function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (e: unknown) => e,
  )
}

describe.each(BACKENDS)('a Kysely statement sent while the transaction ends, on %s', (backend) => {
  let t: KyselyTestDb
  let db: Kysely<Tables>

  /** When the stray statement comes: during the COMMIT (Postgres: it takes 0.5 s), or right after the callback. */
  const later = (): Promise<void> => (backend === 'postgres' ? sleep(150) : microtasks(3))

  beforeAll(async () => {
    t = await openKyselyDb(backend)
    db = t.db as unknown as Kysely<Tables>
    await sql`create table parent (id integer primary key)`.execute(db)
    if (backend === 'postgres') {
      await sql`create table t (id integer primary key, v text, parent integer)`.execute(db)
      await sql`create function slow_fail() returns trigger language plpgsql as $$ begin perform pg_sleep(0.5); if new.v = 'fail' then raise exception 'refused at commit'; end if; return null; end $$`.execute(
        db,
      )
      await sql`create constraint trigger slow_commit after insert on t deferrable initially deferred for each row execute function slow_fail()`.execute(
        db,
      )
    } else {
      // a 'fail' row points at a parent that does not exist: the deferred check fails at COMMIT
      await sql`create table t (id integer primary key, v text, parent integer references parent (id) deferrable initially deferred)`.execute(
        db,
      )
    }
  })

  afterAll(async () => {
    await t?.close()
  })

  beforeEach(async () => {
    await db.deleteFrom('t').execute()
  })

  afterEach(() => {
    expect(t.pool.stats().used).toBe(0)
  })

  const insert = (trx: Kysely<Tables>, id: number, v: string): Promise<unknown> =>
    trx
      .insertInto('t')
      .values({ id, v, parent: backend === 'sqlite' && v === 'fail' ? 999 : null })
      .execute()

  async function ids(): Promise<number[]> {
    return (await db.selectFrom('t').select('id').orderBy('id').execute()).map((r) => Number(r.id))
  }

  function expectRefused(err: unknown): void {
    expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
    expect((err as DatabaseError).message).toMatch(/transaction (is ending|was released)/)
  }

  it('db.transaction(): the stray statement is refused and its row is not saved', async () => {
    let stray: Promise<unknown> | undefined
    const err = await settle(
      db.transaction().execute(async (trx) => {
        await insert(trx, 1, 'fail')
        stray = later().then(() => settle(insert(trx, 101, 'stray')))
      }),
    )
    expect(DatabaseError.is(err)).toBe(true)
    expectRefused(await stray)
    expect(await ids()).toEqual([])
  })

  it('dbpoolTransaction(): the stray statement is refused and its row is not saved', async () => {
    let stray: Promise<unknown> | undefined
    const err = await settle(
      dbpoolTransaction(db, async (trx) => {
        await insert(trx, 1, 'fail')
        stray = later().then(() => settle(insert(trx, 102, 'stray')))
      }),
    )
    expect(DatabaseError.is(err)).toBe(true)
    expectRefused(await stray)
    expect(await ids()).toEqual([])
  })

  it('dbpoolTransaction(): a statement reaching trx after the transaction committed is refused', async () => {
    let saved: Kysely<Tables> | undefined
    await dbpoolTransaction(db, async (trx) => {
      saved = trx
      await insert(trx, 1, 'ok')
    })
    const err = await settle(insert(saved!, 106, 'stray'))
    expectRefused(err)
    // r12b kysely-leak: once the transaction has ended, the words of dbpool's own released handle
    expect((err as DatabaseError).message).toMatch(/this transaction was released/)
    expect(await ids()).toEqual([1])
  })

  it('startTransaction(): the statement sent while the commit is in flight is refused', async () => {
    const trx = await db.startTransaction().execute()
    await insert(trx, 1, 'fail')
    const stray = later().then(() => settle(insert(trx, 103, 'stray')))
    expect(DatabaseError.is(await settle(trx.commit().execute()))).toBe(true)
    expectRefused(await stray)
    await trx.rollback().execute()
    expect(await ids()).toEqual([])
  })

  it('a statement issued before the callback returned, not awaited, runs inside the transaction and is rolled back with it', async () => {
    let early: Promise<unknown> | undefined
    const err = await settle(
      db.transaction().execute(async (trx) => {
        await insert(trx, 1, 'fail')
        early = settle(insert(trx, 2, 'early'))
      }),
    )
    expect(DatabaseError.is(err)).toBe(true)
    expect(await early).toBe('resolved')
    expect(await ids()).toEqual([])
  })

  it('db.connection(): the connection serves its callback again after a transaction on it, committed or failed', async () => {
    const rows = await db.connection().execute(async (c) => {
      await c.transaction().execute((trx) => insert(trx, 1, 'ok'))
      await settle(c.transaction().execute((trx) => insert(trx, 2, 'fail')))
      return c.selectFrom('t').select('id').execute()
    })
    expect(rows.map((r) => Number(r.id))).toEqual([1])
  })
})
