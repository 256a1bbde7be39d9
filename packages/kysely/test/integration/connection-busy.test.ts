import { dbpoolTransaction, DbpoolDialect } from '@dbpool/kysely'
import { Kysely, sql } from 'kysely'
import { BACKENDS, openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// Kysely runs one thing at a time on the connection of db.connection()'s c (its
// SingleConnectionProvider, whatever the dialect): while c.startTransaction() or c.transaction() holds
// it, dbpoolTransaction(c, fn) waited for that transaction, which waited for it: for ever (no timer
// anywhere). dbpoolTransaction() now asks for c's connection without waiting and refuses at once
// (QUERY_FAILED, detail.reason 'connection-busy'). dbpoolTransaction(c, fn) itself used to hold c's
// provider for its whole transaction, so a statement on c inside fn (instead of trx) waited for ever
// too: c now refuses work while the transaction runs (QUERY_FAILED, 'scope-open'), as dbpool's
// conn.transaction() makes conn refuse it.

jest.setTimeout(120_000)

interface Tables {
  t: { id: number }
}

/** Fails the test (instead of hanging until jest's timeout) when `promise` has not settled after `ms`. */
async function settles<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms: it waits for itself`)), ms)
  })
  try {
    return await Promise.race([promise, hung])
  } finally {
    clearTimeout(timer)
  }
}

const busy = { code: 'QUERY_FAILED', retryable: false, detail: { reason: 'connection-busy' } }
const scopeOpen = { code: 'QUERY_FAILED', retryable: false, detail: { reason: 'scope-open', scope: 'transaction' } }

describe.each(BACKENDS)('a Kysely connection in use is refused, never waited for (%s)', (backend) => {
  let t: KyselyTestDb
  let db: Kysely<Tables>

  beforeAll(async () => {
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

  it.each([
    ['after a statement on c', true],
    ['as the first use of c', false],
  ])(
    'dbpoolTransaction(c) while c.startTransaction() is open on c (%s): QUERY_FAILED connection-busy at once, fn not run; the controlled transaction goes on',
    async (_name, first) => {
      let ran = false
      await settles(
        db.connection().execute(async (c) => {
          if (first) await c.selectFrom('t').select('id').execute()
          const trx = await c.startTransaction().execute()
          await trx.insertInto('t').values({ id: 1 }).execute()
          const err = await rejection(
            dbpoolTransaction(c, async () => {
              ran = true
            }),
          )
          expect(err).toMatchObject(busy)
          expect((err as Error).message).toMatch(/dbpoolTransaction\(trx, fn\)/)
          // Kysely's own rules on a trx answer at once too (a Transaction cannot nest or hand out connections)
          expect(() => trx.transaction()).toThrow(/not supported/)
          expect(() => trx.connection()).toThrow(/not supported/)
          // the way the message names: nested in the open transaction
          await dbpoolTransaction(trx, (sp) => sp.insertInto('t').values({ id: 2 }).execute())
          await trx.commit().execute()
          // c works again once the transaction ended
          await dbpoolTransaction(c, (inner) => inner.insertInto('t').values({ id: 3 }).execute())
        }),
        'dbpoolTransaction(c) during c.startTransaction()',
      )
      expect(ran).toBe(false)
      expect(await ids()).toEqual([1, 2, 3])
    },
  )

  it('dbpoolTransaction(c) inside c.transaction().execute() and inside c.connection() of c: refused; the transaction commits', async () => {
    await settles(
      db.connection().execute(async (c) => {
        await c.transaction().execute(async (trx) => {
          await trx.insertInto('t').values({ id: 1 }).execute()
          expect(await rejection(dbpoolTransaction(c, async () => undefined))).toMatchObject(busy)
        })
        await c.connection().execute(async (c2) => {
          await c2.insertInto('t').values({ id: 2 }).execute()
          expect(await rejection(dbpoolTransaction(c, async () => undefined))).toMatchObject(busy)
        })
      }),
      'dbpoolTransaction(c) during c.transaction()',
    )
    expect(await ids()).toEqual([1, 2])
  })

  it('inside dbpoolTransaction(c, fn): a statement, a stream, c.transaction(), c.startTransaction() and dbpoolTransaction(c) on c are refused (scope-open), not waited for; trx commits', async () => {
    await settles(
      db.connection().execute(async (c) => {
        await c.insertInto('t').values({ id: 1 }).execute()
        await dbpoolTransaction(c, async (trx) => {
          await trx.insertInto('t').values({ id: 2 }).execute()
          expect(await rejection(c.insertInto('t').values({ id: 90 }).execute())).toMatchObject(scopeOpen)
          expect(await rejection(c.selectFrom('t').select('id').execute())).toMatchObject(scopeOpen)
          expect(
            await rejection(
              (async () => {
                for await (const row of c.selectFrom('t').select('id').stream()) void row
              })(),
            ),
          ).toMatchObject(scopeOpen)
          expect(await rejection(c.transaction().execute(async (x) => x.insertInto('t').values({ id: 91 }).execute()))).toMatchObject(
            scopeOpen,
          )
          expect(await rejection(c.startTransaction().execute())).toMatchObject(scopeOpen)
          expect(await rejection(dbpoolTransaction(c, (x) => x.insertInto('t').values({ id: 92 }).execute()))).toMatchObject(scopeOpen)
          await trx.insertInto('t').values({ id: 3 }).execute()
        })
        // c is usable again once the transaction ended
        await c.insertInto('t').values({ id: 4 }).execute()
      }),
      'a statement on c inside dbpoolTransaction(c)',
    )
    expect(await ids()).toEqual([1, 2, 3, 4])
  })

  it('dbpoolTransaction(trx) while a stream of trx is being read: refused (connection-busy) instead of waiting for the loop; the loop goes on', async () => {
    await db
      .insertInto('t')
      .values([{ id: 1 }, { id: 2 }])
      .execute()
    const seen: number[] = []
    await settles(
      db.transaction().execute(async (trx) => {
        for await (const row of trx.selectFrom('t').select('id').orderBy('id').stream(1)) {
          seen.push(Number(row.id))
          expect(await rejection(dbpoolTransaction(trx, (sp) => sp.insertInto('t').values({ id: 10 }).execute()))).toMatchObject(busy)
        }
        await dbpoolTransaction(trx, (sp) => sp.insertInto('t').values({ id: 11 }).execute())
      }),
      'dbpoolTransaction(trx) in a stream loop',
    )
    expect(seen).toEqual([1, 2])
    expect(await ids()).toEqual([1, 2, 11])
  })

  it('dbpoolTransaction(c) inside the loop of a stream on c: refused (connection-busy) instead of waiting for the loop; after it, it runs', async () => {
    await db
      .insertInto('t')
      .values([{ id: 1 }, { id: 2 }])
      .execute()
    await settles(
      db.connection().execute(async (c) => {
        for await (const row of c.selectFrom('t').select('id').orderBy('id').stream(1)) {
          void row
          expect(await rejection(dbpoolTransaction(c, (trx) => trx.insertInto('t').values({ id: 90 }).execute()))).toMatchObject(busy)
        }
        await dbpoolTransaction(c, (trx) => trx.insertInto('t').values({ id: 3 }).execute())
      }),
      'dbpoolTransaction(c) in a stream loop on c',
    )
    expect(await ids()).toEqual([1, 2, 3])
  })

  it("the application's db is never taken for a busy connection: dbpoolTransaction(db) at once with another first use of a new Kysely (its init on its way), and beside a statement", async () => {
    const fresh = new Kysely<Tables>({ dialect: new DbpoolDialect({ pool: t.pool }) })
    await Promise.all([
      fresh.selectFrom('t').select('id').execute(),
      dbpoolTransaction(fresh, (trx) => trx.insertInto('t').values({ id: 1 }).execute()),
      dbpoolTransaction(fresh, (trx) => trx.insertInto('t').values({ id: 2 }).execute()),
    ])
    await Promise.all([
      fresh.insertInto('t').values({ id: 3 }).execute(),
      dbpoolTransaction(fresh, (trx) => trx.insertInto('t').values({ id: 4 }).execute()),
    ])
    await fresh.destroy()
    expect(await ids()).toEqual([1, 2, 3, 4])
    // a destroyed db answers with Kysely's own error, as before
    expect(String(await rejection(dbpoolTransaction(fresh, async () => undefined)))).toMatch(/destroyed/)
  })

  it('a db.connection() inside a transaction callback: a write there ends typed (SQLite: ACQUIRE_TIMEOUT, the writer is its own transaction’s; Postgres: runs on another connection), never hangs', async () => {
    const outcome = await settles(
      dbpoolTransaction(db, async (trx) => {
        await trx.insertInto('t').values({ id: 1 }).execute()
        return db
          .connection()
          .execute((c) => c.insertInto('t').values({ id: 2 }).execute())
          .then(
            () => 'ran',
            (err: unknown) => err,
          )
      }),
      'db.connection() inside dbpoolTransaction(db)',
    )
    if (backend === 'sqlite') {
      expect(outcome).toMatchObject({ code: 'ACQUIRE_TIMEOUT' })
      expect(await ids()).toEqual([1])
    } else {
      expect(outcome).toBe('ran')
      expect(await ids()).toEqual([1, 2])
    }
  })
})
