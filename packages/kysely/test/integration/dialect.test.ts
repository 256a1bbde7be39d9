import { DatabaseError } from '@dbpool/core'
import { sql } from 'kysely'
import { BACKENDS, createSchema, openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// each test opens a database of its own (a new Postgres database is slow on a loaded machine)
jest.setTimeout(60_000)

describe.each(BACKENDS)('DbpoolDialect on %s', (backend) => {
  let t: KyselyTestDb

  beforeEach(async () => {
    t = await openKyselyDb(backend)
    await createSchema(t.db, backend)
  })

  afterEach(async () => {
    // every path below gives its connections back
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  async function addPerson(first: string, email = `${first.toLowerCase()}@example.com`): Promise<number> {
    const { id } = await t.db
      .insertInto('person')
      .values({ first_name: first, last_name: null, email })
      .returning('id')
      .executeTakeFirstOrThrow()
    return id
  }

  it('creates tables with the schema builder and introspects them', async () => {
    const tables = await t.db.introspection.getTables()
    const names = tables.map((table) => table.name).sort()
    expect(names).toEqual(['person', 'pet'])
    const person = tables.find((table) => table.name === 'person')!
    expect(person.columns.map((c) => c.name)).toEqual(['id', 'first_name', 'last_name', 'email'])
    expect(person.columns.find((c) => c.name === 'last_name')!.isNullable).toBe(true)
    expect(person.columns.find((c) => c.name === 'first_name')!.isNullable).toBe(false)
  })

  it('inserts, updates and deletes with returning, and reports affected rows', async () => {
    const inserted = await t.db
      .insertInto('person')
      .values([
        { first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com' },
        { first_name: 'Alan', last_name: 'Turing', email: 'alan@example.com' },
      ])
      .returning(['id', 'first_name'])
      .execute()
    expect(inserted.map((r) => r.first_name)).toEqual(['Ada', 'Alan'])
    expect(typeof inserted[0]!.id).toBe('number')

    const updated = await t.db
      .updateTable('person')
      .set({ last_name: 'King' })
      .where('id', '=', inserted[0]!.id)
      .returning(['id', 'last_name'])
      .executeTakeFirstOrThrow()
    expect(updated).toEqual({ id: inserted[0]!.id, last_name: 'King' })

    const update = await t.db.updateTable('person').set({ last_name: null }).executeTakeFirstOrThrow()
    expect(update.numUpdatedRows).toBe(2n)

    const plain = await t.db
      .insertInto('person')
      .values({ first_name: 'Grace', last_name: null, email: 'grace@example.com' })
      .executeTakeFirstOrThrow()
    expect(plain.numInsertedOrUpdatedRows).toBe(1n)
    if (backend === 'sqlite') expect(typeof plain.insertId).toBe('bigint')

    const deleted = await t.db.deleteFrom('person').where('first_name', '=', 'Alan').returning('email').execute()
    expect(deleted).toEqual([{ email: 'alan@example.com' }])
    const gone = await t.db.deleteFrom('person').where('first_name', 'in', ['Ada', 'Grace']).executeTakeFirstOrThrow()
    expect(gone.numDeletedRows).toBe(2n)
    expect(await t.db.selectFrom('person').selectAll().execute()).toEqual([])
  })

  it('joins', async () => {
    const ada = await addPerson('Ada')
    const alan = await addPerson('Alan')
    await addPerson('Grace')
    await t.db
      .insertInto('pet')
      .values([
        { owner_id: ada, name: 'Babbage', species: 'cat' },
        { owner_id: ada, name: 'Lord', species: 'dog' },
        { owner_id: alan, name: 'Enigma', species: 'cat' },
      ])
      .execute()
    const inner = await t.db
      .selectFrom('person')
      .innerJoin('pet', 'pet.owner_id', 'person.id')
      .select(['person.first_name', 'pet.name'])
      .where('pet.species', '=', 'cat')
      .orderBy('pet.name')
      .execute()
    expect(inner).toEqual([
      { first_name: 'Ada', name: 'Babbage' },
      { first_name: 'Alan', name: 'Enigma' },
    ])
    const counts = await t.db
      .selectFrom('person')
      .leftJoin('pet', 'pet.owner_id', 'person.id')
      .select(['person.first_name', (eb) => eb.fn.count<number>('pet.id').as('pets')])
      .groupBy('person.first_name')
      .orderBy('person.first_name')
      .execute()
    expect(counts.map((r) => [r.first_name, Number(r.pets)])).toEqual([
      ['Ada', 2],
      ['Alan', 1],
      ['Grace', 0],
    ])
  })

  it('upserts with onConflict (do nothing, do update)', async () => {
    await addPerson('Ada', 'ada@example.com')
    const skipped = await t.db
      .insertInto('person')
      .values({ first_name: 'Other', last_name: null, email: 'ada@example.com' })
      .onConflict((oc) => oc.column('email').doNothing())
      .returning('id')
      .execute()
    expect(skipped).toEqual([])
    const merged = await t.db
      .insertInto('person')
      .values({ first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com' })
      .onConflict((oc) => oc.column('email').doUpdateSet((eb) => ({ last_name: eb.ref('excluded.last_name') })))
      .returning(['first_name', 'last_name'])
      .executeTakeFirstOrThrow()
    expect(merged).toEqual({ first_name: 'Ada', last_name: 'Lovelace' })
    expect(await t.db.selectFrom('person').select('email').execute()).toHaveLength(1)
  })

  it('reports a constraint violation as a DatabaseError with the driver error as cause', async () => {
    await addPerson('Ada', 'ada@example.com')
    const err = await rejection(addPerson('Ada again', 'ada@example.com'))
    expect(DatabaseError.is(err, 'UNIQUE_VIOLATION')).toBe(true)
    // the driver's own error (pg's DatabaseError with code 23505, better-sqlite3's SqliteError), possibly from another realm
    const cause = (err as DatabaseError).cause as { code?: unknown; message?: unknown } | undefined
    expect(DatabaseError.is(cause)).toBe(false)
    expect(typeof cause?.message).toBe('string')
    expect(cause?.code).toBe(backend === 'postgres' ? '23505' : 'SQLITE_CONSTRAINT_UNIQUE')
  })

  it('commits a transaction', async () => {
    const id = await t.db.transaction().execute(async (trx) => {
      const { id } = await trx
        .insertInto('person')
        .values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' })
        .returning('id')
        .executeTakeFirstOrThrow()
      await trx.insertInto('pet').values({ owner_id: id, name: 'Babbage', species: 'cat' }).execute()
      return id
    })
    const pets = await t.db.selectFrom('pet').select('name').where('owner_id', '=', id).execute()
    expect(pets).toEqual([{ name: 'Babbage' }])
  })

  it('rolls a transaction back on a throw, rethrows the original and gives the connection back', async () => {
    const original = new Error('app failure')
    const err = await rejection(
      t.db.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
        expect(t.pool.stats().used).toBe(1)
        throw original
      }),
    )
    expect(err).toBe(original)
    expect(t.pool.stats().used).toBe(0)
    expect(await t.db.selectFrom('person').selectAll().execute()).toEqual([])
  })

  it('rolls back when a statement fails inside a transaction, with the DatabaseError', async () => {
    await addPerson('Ada', 'ada@example.com')
    const err = await rejection(
      t.db.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ first_name: 'Alan', last_name: null, email: 'alan@example.com' }).execute()
        await trx.insertInto('person').values({ first_name: 'Copy', last_name: null, email: 'ada@example.com' }).execute()
      }),
    )
    expect(DatabaseError.is(err, 'UNIQUE_VIOLATION')).toBe(true)
    expect((await t.db.selectFrom('person').select('first_name').execute()).map((r) => r.first_name)).toEqual(['Ada'])
  })

  it('refuses COMMIT or ROLLBACK sent as a statement inside a transaction (the transaction belongs to dbpool)', async () => {
    const err = await rejection(
      t.db.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
        await sql`commit`.execute(trx)
      }),
    )
    expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
    // the refused COMMIT was never sent: the insert was rolled back with the transaction
    expect(await t.db.selectFrom('person').selectAll().execute()).toEqual([])
  })

  it('never reports as committed a transaction whose callback caught a statement error and went on', async () => {
    await addPerson('Ada', 'ada@example.com')
    const attempt = t.db.transaction().execute(async (trx) => {
      await trx.insertInto('person').values({ first_name: 'Alan', last_name: null, email: 'alan@example.com' }).execute()
      const caught = await rejection(
        trx.insertInto('person').values({ first_name: 'Copy', last_name: null, email: 'ada@example.com' }).execute(),
      )
      expect(DatabaseError.is(caught, 'UNIQUE_VIOLATION')).toBe(true)
      return 'done'
    })
    const names = async () =>
      (await t.db.selectFrom('person').select('first_name').orderBy('first_name').execute()).map((r) => r.first_name)
    // the error aborted the transaction (Postgres; dbpool does the same on SQLite): COMMIT would answer ROLLBACK
    const err = await rejection(attempt)
    expect(DatabaseError.is(err, 'TRANSACTION_ROLLED_BACK')).toBe(true)
    expect(DatabaseError.is((err as DatabaseError).cause, 'UNIQUE_VIOLATION')).toBe(true)
    expect(await names()).toEqual(['Ada'])
  })

  it('runs a read-only transaction that refuses writes', async () => {
    await addPerson('Ada')
    const rows = await t.db
      .transaction()
      .setAccessMode('read only')
      .execute((trx) => trx.selectFrom('person').select('first_name').execute())
    expect(rows).toEqual([{ first_name: 'Ada' }])
    const err = await rejection(
      t.db
        .transaction()
        .setAccessMode('read only')
        .execute((trx) => trx.insertInto('person').values({ first_name: 'No', last_name: null, email: 'no@example.com' }).execute()),
    )
    expect(DatabaseError.is(err, 'READ_ONLY')).toBe(true)
  })

  it('sets the isolation level (serializable) on a transaction', async () => {
    const level = await t.db
      .transaction()
      .setIsolationLevel('serializable')
      .execute(async (trx) => {
        if (backend === 'sqlite') return 'serializable'
        const { rows } = await sql<{ transaction_isolation: string }>`show transaction_isolation`.execute(trx)
        return rows[0]!.transaction_isolation
      })
    expect(level).toBe('serializable')
  })

  it('refuses the snapshot isolation level with CONFIGURATION', async () => {
    const err = await rejection(
      t.db
        .transaction()
        .setIsolationLevel('snapshot')
        .execute(async () => 1),
    )
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
  })

  it('runs savepoints of a controlled transaction', async () => {
    const trx = await t.db.startTransaction().execute()
    await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
    const afterAda = await trx.savepoint('after_ada').execute()
    await afterAda.insertInto('person').values({ first_name: 'Alan', last_name: null, email: 'alan@example.com' }).execute()
    const rolledBack = await afterAda.rollbackToSavepoint('after_ada').execute()
    const again = await rolledBack.savepoint('second').execute()
    await again.insertInto('person').values({ first_name: 'Grace', last_name: null, email: 'grace@example.com' }).execute()
    const released = await again.releaseSavepoint('second').execute()
    await released.commit().execute()
    expect(t.pool.stats().used).toBe(0)
    const names = (await t.db.selectFrom('person').select('first_name').orderBy('first_name').execute()).map((r) => r.first_name)
    expect(names).toEqual(['Ada', 'Grace'])
  })

  it('recovers from a failed statement with a savepoint (Postgres aborts the transaction until rollback to)', async () => {
    await addPerson('Ada', 'ada@example.com')
    const trx = await t.db.startTransaction().execute()
    const sp = await trx.savepoint('attempt').execute()
    const err = await rejection(sp.insertInto('person').values({ first_name: 'Copy', last_name: null, email: 'ada@example.com' }).execute())
    expect(DatabaseError.is(err, 'UNIQUE_VIOLATION')).toBe(true)
    const recovered = await sp.rollbackToSavepoint('attempt').execute()
    await recovered.insertInto('person').values({ first_name: 'Alan', last_name: null, email: 'alan@example.com' }).execute()
    await recovered.commit().execute()
    expect(await t.db.selectFrom('person').select('first_name').orderBy('first_name').execute()).toEqual([
      { first_name: 'Ada' },
      { first_name: 'Alan' },
    ])
  })

  it('rolls back a controlled transaction', async () => {
    const trx = await t.db.startTransaction().execute()
    await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
    await trx.rollback().execute()
    expect(t.pool.stats().used).toBe(0)
    expect(await t.db.selectFrom('person').selectAll().execute()).toEqual([])
  })

  it('keeps one session through db.connection(), transactions on it included', async () => {
    // several idle connections: a statement or transaction that took another connection would miss the temp table
    await Promise.all([1, 2, 3].map(() => t.pool.withConnection(() => new Promise((resolve) => setTimeout(resolve, 20)))))
    const names = await t.db.connection().execute(async (conn) => {
      await sql`create temporary table scratch (name text)`.execute(conn)
      await sql`insert into scratch (name) values ('before')`.execute(conn)
      await conn.transaction().execute((trx) => sql`insert into scratch (name) values ('inside')`.execute(trx))
      const controlled = await conn.startTransaction().execute()
      await sql`insert into scratch (name) values ('rolled back')`.execute(controlled)
      await controlled.rollback().execute()
      const { rows } = await sql<{ name: string }>`select name from scratch order by name`.execute(conn)
      return rows.map((r) => r.name)
    })
    expect(names).toEqual(['before', 'inside'])
  })

  it('runs many transactions in parallel, each committed or rolled back whole', async () => {
    const outcomes = Array.from({ length: 30 }, (_, i) => ({ i, fails: i % 3 === 0 }))
    const results = await Promise.allSettled(
      outcomes.map(({ i, fails }) =>
        t.db.transaction().execute(async (trx) => {
          const { id } = await trx
            .insertInto('person')
            .values({ first_name: `P${i}`, last_name: null, email: `p${i}@example.com` })
            .returning('id')
            .executeTakeFirstOrThrow()
          await trx
            .insertInto('pet')
            .values({ owner_id: id, name: `pet${i}`, species: 'cat' })
            .execute()
          if (fails) throw new Error(`fail ${i}`)
        }),
      ),
    )
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(10)
    const people = await t.db.selectFrom('person').select('first_name').execute()
    const pets = await t.db.selectFrom('pet').select('name').execute()
    expect(people).toHaveLength(20)
    expect(pets).toHaveLength(20)
  })

  it('refuses work on an escaped transaction object', async () => {
    let escaped: Parameters<Parameters<ReturnType<typeof t.db.transaction>['execute']>[0]>[0] | undefined
    await t.db.transaction().execute(async (trx) => {
      escaped = trx
    })
    await expect(escaped!.selectFrom('person').selectAll().execute()).rejects.toThrow(/committed/)
  })
})
