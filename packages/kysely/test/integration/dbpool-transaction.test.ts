import { DatabaseError } from '@dbpool/core'
import { dbpoolTransaction } from '@dbpool/kysely'
import { CamelCasePlugin, DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler, sql, type Transaction } from 'kysely'
import { BACKENDS, createSchema, openKyselyDb, rejection, type Database, type KyselyTestDb } from './helpers'

// each test opens a database of its own (a new Postgres database is slow on a loaded machine)
jest.setTimeout(60_000)

/** Resolves when `count` callers have arrived. */
function barrier(count: number): () => Promise<void> {
  let arrived = 0
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return () => {
    if (++arrived === count) open()
    return opened
  }
}

describe.each(BACKENDS)('dbpoolTransaction on %s', (backend) => {
  let t: KyselyTestDb

  beforeEach(async () => {
    t = await openKyselyDb(backend)
    await createSchema(t.db, backend)
  })

  afterEach(async () => {
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  it('hands fn a Kysely Transaction, commits its work and returns its value', async () => {
    const id = await dbpoolTransaction(t.db, async (trx) => {
      expect(trx.isTransaction).toBe(true)
      expect(() => trx.transaction()).toThrow()
      const nested = await rejection(trx.startTransaction().execute())
      expect(DatabaseError.is(nested, 'QUERY_FAILED')).toBe(true)
      const { id } = await trx
        .insertInto('person')
        .values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' })
        .returning('id')
        .executeTakeFirstOrThrow()
      await trx.insertInto('pet').values({ owner_id: id, name: 'Babbage', species: 'cat' }).execute()
      return id
    })
    expect(await t.db.selectFrom('pet').select('owner_id').execute()).toEqual([{ owner_id: id }])
  })

  it('rolls back and rethrows when fn throws', async () => {
    const original = new Error('app failure')
    const err = await rejection(
      dbpoolTransaction(t.db, async (trx) => {
        await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
        throw original
      }),
    )
    expect(err).toBe(original)
    expect(await t.db.selectFrom('person').selectAll().execute()).toEqual([])
  })

  it("keeps db's plugins on the transaction", async () => {
    const camel = t.db.withPlugin(new CamelCasePlugin()) as unknown as Kysely<{ person: { id: number; firstName: string; email: string } }>
    const row = await dbpoolTransaction(camel, async (trx) => {
      await trx.insertInto('person').values({ id: 7, firstName: 'Ada', email: 'ada@example.com' }).execute()
      return trx.selectFrom('person').select(['id', 'firstName']).executeTakeFirstOrThrow()
    })
    expect(row).toEqual({ id: 7, firstName: 'Ada' })
  })

  it('replays fn on a retryable error with a fresh transaction each time', async () => {
    let attempts = 0
    const seen: Transaction<Database>[] = []
    const result = await dbpoolTransaction(
      t.db,
      async (trx) => {
        seen.push(trx)
        attempts++
        await trx
          .insertInto('person')
          .values({ first_name: `try${attempts}`, last_name: null, email: `try${attempts}@example.com` })
          .execute()
        if (attempts < 3) throw new DatabaseError('SERIALIZATION_FAILURE', 'simulated', { backend })
        return attempts
      },
      { retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 2 } },
    )
    expect(result).toBe(3)
    expect(new Set(seen).size).toBe(3)
    // the failed attempts were rolled back
    expect(await t.db.selectFrom('person').select('first_name').execute()).toEqual([{ first_name: 'try3' }])
  })

  it('refuses a Kysely that does not run on DbpoolDialect, and invalid options, with CONFIGURATION', async () => {
    const err = await rejection(dbpoolTransaction(t.db, async () => 1, { retry: 0 } as never))
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as Error).message).toMatch(/transaction\.retry 0/)
    const other = new Kysely<Database>({
      dialect: {
        createAdapter: () => new SqliteAdapter(),
        createDriver: () => new DummyDriver(),
        createIntrospector: (db) => new SqliteIntrospector(db),
        createQueryCompiler: () => new SqliteQueryCompiler(),
      },
    })
    const foreign = await rejection(dbpoolTransaction(other, async () => 1))
    expect(DatabaseError.is(foreign, 'CONFIGURATION')).toBe(true)
    expect((foreign as Error).message).toMatch(/DbpoolDialect/)
  })

  // Inside db.connection() after a statement, options that were not an object ('serializable', null)
  // were taken for none: the transaction ran at the default isolation (review r5 item 8)
  it.each(['serializable', null, 5, ['serializable']])(
    'options %p are CONFIGURATION on db, on c before and after a statement, nothing run',
    async (options) => {
      const ran: string[] = []
      const fn = async (): Promise<number> => {
        ran.push('fn')
        return 1
      }
      const calls = [
        () => dbpoolTransaction(t.db, fn, options as never),
        () => t.db.connection().execute((c) => dbpoolTransaction(c, fn, options as never)),
        () =>
          t.db.connection().execute(async (c) => {
            await sql`select 1`.execute(c)
            return dbpoolTransaction(c, fn, options as never)
          }),
      ]
      for (const call of calls) {
        const err = await rejection(call())
        expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
        expect((err as Error).message).toMatch(/^invalid transaction .*must be an object/)
      }
      expect(ran).toEqual([])
    },
  )

  if (backend === 'postgres') {
    it('retries the loser of two concurrent serializable transactions (write skew), ending consistent', async () => {
      await t.db
        .insertInto('person')
        .values([
          { first_name: 'on-call', last_name: 'a', email: 'a@example.com' },
          { first_name: 'on-call', last_name: 'b', email: 'b@example.com' },
        ])
        .execute()
      // each doctor goes off call if someone else is still on call: run together, serializable
      // isolation must fail one of them (40001), and the replay sees the other's commit
      const bothRead = barrier(2)
      let attempts = 0
      const goOffCall = (who: string) =>
        dbpoolTransaction(
          t.db,
          async (trx) => {
            const attempt = ++attempts
            const { n } = await trx
              .selectFrom('person')
              .select((eb) => eb.fn.countAll<string>().as('n'))
              .where('first_name', '=', 'on-call')
              .executeTakeFirstOrThrow()
            if (attempt <= 2) await bothRead()
            if (Number(n) < 2) return 'stayed'
            await trx.updateTable('person').set({ first_name: 'off' }).where('last_name', '=', who).execute()
            return 'left'
          },
          { isolation: 'serializable', retry: { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 20 } },
        )
      const outcomes = await Promise.all([goOffCall('a'), goOffCall('b')])
      expect(outcomes.sort()).toEqual(['left', 'stayed'])
      expect(attempts).toBe(3)
      const onCall = await t.db.selectFrom('person').select('last_name').where('first_name', '=', 'on-call').execute()
      expect(onCall).toHaveLength(1)
    })

    it('without retry, the loser gets SERIALIZATION_FAILURE as a DatabaseError', async () => {
      await t.db.insertInto('person').values({ first_name: 'x', last_name: null, email: 'x@example.com' }).execute()
      const bothRead = barrier(2)
      const bump = (name: string) =>
        t.db
          .transaction()
          .setIsolationLevel('serializable')
          .execute(async (trx) => {
            await trx.selectFrom('person').selectAll().execute()
            await bothRead()
            await trx
              .insertInto('person')
              .values({ first_name: name, last_name: null, email: `${name}@example.com` })
              .execute()
            await sql`select count(*) from person`.execute(trx)
          })
      const results = await Promise.allSettled([bump('p'), bump('q')])
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      expect(failed).toHaveLength(1)
      expect(DatabaseError.is(failed[0]!.reason, 'SERIALIZATION_FAILURE')).toBe(true)
    })
  }
})
