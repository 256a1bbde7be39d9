import { DatabaseError } from '@dbpool/core'
import { dbpoolTransaction } from '@dbpool/kysely'
import { sql, type Kysely } from 'kysely'
import { BACKENDS, openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// Where dbpoolTransaction() runs, as db.transaction() in the same place:
// - inside db.connection() after a statement, on the connection the callback holds: it used to call
//   pool.transaction() whatever db held, so on SQLite (after a write: the callback holds the writer)
//   and on a Postgres pool of max 1 it waited for its own caller's connection until ACQUIRE_TIMEOUT
//   (retryable: retry loops repeated it), and on Postgres with max > 1 it ran on another session
//   (the callback's temporary table missing, its advisory lock not held);
// - on a trx: nested, in a savepoint of that transaction (the README's way to nest, which used to
//   throw Kysely's "calling the connection method for a Transaction is not supported").

jest.setTimeout(120_000)

interface Tables {
  t: { id: number }
}

describe.each(BACKENDS)('dbpoolTransaction() scopes on %s', (backend) => {
  let t: KyselyTestDb
  let db: Kysely<Tables>

  beforeAll(async () => {
    // a short acquire timeout: the old code waited for its own caller's connection this long
    t = await openKyselyDb(backend, { acquireTimeoutMs: 1500 })
    db = t.db as unknown as Kysely<Tables>
    await sql`create table t (id integer primary key)`.execute(db)
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

  async function ids(): Promise<number[]> {
    return (await db.selectFrom('t').select('id').orderBy('id').execute()).map((r) => Number(r.id))
  }

  it('inside db.connection() after a write: runs on the connection the callback holds (its temporary table is there), and commits', async () => {
    const seen = await db.connection().execute(async (c) => {
      await sql`create temp table scratch (n integer)`.execute(c)
      await sql`insert into scratch values (1)`.execute(c)
      await c.insertInto('t').values({ id: 1 }).execute()
      return dbpoolTransaction(c, async (trx) => {
        await trx.insertInto('t').values({ id: 2 }).execute()
        return (await sql<{ n: number }>`select count(*) as n from scratch`.execute(trx)).rows.map((r) => Number(r.n))
      })
    })
    expect(seen).toEqual([1])
    expect(await ids()).toEqual([1, 2])
  })

  it('inside db.connection() after a write: rolls back and rethrows when fn throws; the callback goes on on its connection', async () => {
    const after = await db.connection().execute(async (c) => {
      await c.insertInto('t').values({ id: 1 }).execute()
      const err = await rejection(
        dbpoolTransaction(c, async (trx) => {
          await trx.insertInto('t').values({ id: 2 }).execute()
          throw new Error('boom')
        }),
      )
      expect((err as Error).message).toBe('boom')
      await c.insertInto('t').values({ id: 3 }).execute()
      return ids()
    })
    expect(after).toEqual([1, 3])
  })

  it('inside db.connection() after a statement, retry is CONFIGURATION at once (that transaction cannot be replayed on its session)', async () => {
    let ran = false
    const err = await db.connection().execute(async (c) => {
      await c.insertInto('t').values({ id: 1 }).execute()
      return rejection(
        dbpoolTransaction(
          c,
          async () => {
            ran = true
          },
          { retry: true },
        ),
      )
    })
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as Error).message).toMatch(/dbpoolTransaction\.retry/)
    expect(ran).toBe(false)
  })

  it('inside db.connection() before any statement: a transaction of its own, retry allowed', async () => {
    await db.connection().execute((c) => dbpoolTransaction(c, (trx) => trx.insertInto('t').values({ id: 1 }).execute(), { retry: true }))
    expect(await ids()).toEqual([1])
  })

  it('on a dbpoolTransaction() trx: nests a savepoint, rolled back to when its callback throws, released when it returns', async () => {
    await dbpoolTransaction(db, async (trx) => {
      await trx.insertInto('t').values({ id: 1 }).execute()
      const err = await rejection(
        dbpoolTransaction(trx, async (sp) => {
          await sp.insertInto('t').values({ id: 2 }).execute()
          throw new Error('undo 2')
        }),
      )
      expect((err as Error).message).toBe('undo 2')
      const value = await dbpoolTransaction(trx, async (sp) => {
        await sp.insertInto('t').values({ id: 3 }).execute()
        return 'kept'
      })
      expect(value).toBe('kept')
    })
    expect(await ids()).toEqual([1, 3])
  })

  it('on a dbpoolTransaction() trx: the outer trx refuses work while the savepoint is open; the inner trx is refused after it', async () => {
    let inner: Kysely<Tables> | undefined
    await dbpoolTransaction(db, async (trx) => {
      await dbpoolTransaction(trx, async (sp) => {
        inner = sp
        const err = await rejection(trx.insertInto('t').values({ id: 9 }).execute())
        expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
        await sp.insertInto('t').values({ id: 1 }).execute()
      })
      await trx.insertInto('t').values({ id: 2 }).execute()
    })
    const late = await rejection(inner!.insertInto('t').values({ id: 8 }).execute())
    expect(DatabaseError.is(late, 'QUERY_FAILED')).toBe(true)
    expect(await ids()).toEqual([1, 2])
  })

  it('on a controlled transaction and a db.transaction() trx: nests a savepoint', async () => {
    const trx = await db.startTransaction().execute()
    await trx.insertInto('t').values({ id: 1 }).execute()
    await rejection(
      dbpoolTransaction(trx, async (sp) => {
        await sp.insertInto('t').values({ id: 2 }).execute()
        throw new Error('undo 2')
      }),
    )
    await trx.commit().execute()
    await db.transaction().execute(async (outer) => {
      await dbpoolTransaction(outer, (sp) => sp.insertInto('t').values({ id: 3 }).execute())
    })
    expect(await ids()).toEqual([1, 3])
    // a controlled transaction that has ended: Kysely refuses before anything runs
    await expect(dbpoolTransaction(trx, async () => 1)).rejects.toThrow(/already committed/)
  })

  it('on a trx, options are CONFIGURATION (a savepoint has none)', async () => {
    await dbpoolTransaction(db, async (trx) => {
      const err = await rejection(dbpoolTransaction(trx, async () => 1, { isolation: 'serializable' }))
      expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
      expect((err as Error).message).toMatch(/dbpoolTransaction\.options/)
    })
  })

  it('trx.startTransaction() inside dbpoolTransaction() names the way to nest that works there', async () => {
    await dbpoolTransaction(db, async (trx) => {
      const err = await rejection(trx.startTransaction().execute())
      expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
      expect((err as Error).message).toMatch(/nest with dbpoolTransaction\(trx, fn\)/)
      expect((err as Error).message).not.toMatch(/savepoint\(\) of a controlled/)
    })
  })
})
