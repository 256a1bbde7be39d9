import { DatabaseError } from '@dbpool/core'
import { CompiledQuery, sql } from 'kysely'
import { BACKENDS, createSchema, openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// each test opens a database of its own (a new Postgres database is slow on a loaded machine)
jest.setTimeout(60_000)

describe.each(BACKENDS)('streaming through DbpoolDialect on %s', (backend) => {
  let t: KyselyTestDb

  beforeEach(async () => {
    t = await openKyselyDb(backend)
    await createSchema(t.db, backend)
    const people = Array.from({ length: 250 }, (_, i) => ({ first_name: `p${i}`, last_name: null, email: `p${i}@example.com` }))
    await t.db.insertInto('person').values(people).execute()
  })

  afterEach(async () => {
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  it('streams every row in order, in chunks', async () => {
    const names: string[] = []
    let maxBorrowed = 0
    for await (const row of t.db.selectFrom('person').select(['id', 'first_name']).orderBy('id').stream(40)) {
      names.push(row.first_name)
      maxBorrowed = Math.max(maxBorrowed, t.pool.stats().used)
    }
    expect(names).toEqual(Array.from({ length: 250 }, (_, i) => `p${i}`))
    // one connection for the whole iteration, given back at its end
    expect(maxBorrowed).toBe(1)
    if (backend === 'sqlite') expect(t.pool.stats('read').max).toBeGreaterThan(0)
  })

  it('gives the connection back when the loop breaks early', async () => {
    let seen = 0
    for await (const row of t.db.selectFrom('person').selectAll().orderBy('id').stream(10)) {
      void row
      if (++seen === 15) break
    }
    expect(seen).toBe(15)
    expect(t.pool.stats().used).toBe(0)
    // the pool is still fine
    expect(
      await t.db
        .selectFrom('person')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow(),
    ).toBeDefined()
  })

  it('gives the connection back when the loop body throws', async () => {
    const original = new Error('consumer failed')
    const err = await rejection(
      (async () => {
        for await (const row of t.db.selectFrom('person').selectAll().stream(20)) {
          void row
          throw original
        }
      })(),
    )
    expect(err).toBe(original)
    expect(t.pool.stats().used).toBe(0)
  })

  it('streams inside a transaction, seeing its own uncommitted rows', async () => {
    const count = await t.db.transaction().execute(async (trx) => {
      await trx.insertInto('person').values({ first_name: 'inside', last_name: null, email: 'inside@example.com' }).execute()
      let n = 0
      for await (const row of trx.selectFrom('person').select('first_name').stream(100)) {
        void row
        n++
      }
      // the transaction's connection works again after the stream
      await trx.insertInto('person').values({ first_name: 'after', last_name: null, email: 'after@example.com' }).execute()
      return n
    })
    expect(count).toBe(251)
    expect(await t.db.selectFrom('person').selectAll().execute()).toHaveLength(252)
  })

  it('streams on the session of db.connection()', async () => {
    const rows = await t.db.connection().execute(async (conn) => {
      await sql`create temporary table scratch as select first_name from person where first_name like 'p1%'`.execute(conn)
      const out: unknown[] = []
      for await (const row of conn
        .selectFrom('scratch' as never)
        .selectAll()
        .stream(7))
        out.push(row)
      return out
    })
    // p1, p10..p19, p100..p199
    expect(rows).toHaveLength(111)
  })

  it('reports a failing statement as a DatabaseError', async () => {
    const err = await rejection(
      (async () => {
        for await (const row of t.db
          .selectFrom('no_such_table' as never)
          .selectAll()
          .stream())
          void row
      })(),
    )
    expect(DatabaseError.is(err)).toBe(true)
    expect((err as DatabaseError).cause).toBeDefined()
  })

  // a COPY exchanging its rows with the client needs copyFrom()/copyTo(): through Kysely it reached pg as
  // any statement (a stream's cursor crashed the process; execute() dropped the rows)
  if (backend === 'postgres')
    it('refuses COPY ... TO STDOUT / FROM STDIN with CONFIGURATION before it is sent, in execute() and stream()', async () => {
      const executed = await rejection(sql`copy person to stdout`.execute(t.db))
      expect(DatabaseError.is(executed, 'CONFIGURATION')).toBe(true)
      expect((executed as DatabaseError).detail).toEqual({ use: 'copyTo' })
      const streamed = await rejection(
        (async () => {
          for await (const row of t.db.getExecutor().stream(CompiledQuery.raw('copy person from stdin'), 10)) void row
        })(),
      )
      expect(DatabaseError.is(streamed, 'CONFIGURATION')).toBe(true)
      expect((streamed as DatabaseError).detail).toEqual({ use: 'copyFrom' })
    })
})
