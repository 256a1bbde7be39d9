import { DatabaseError } from '@dbpool/core'
import { sql, type Kysely } from 'kysely'
import { openKyselyDb, type KyselyTestDb } from './helpers'

jest.setTimeout(60_000)

// `PRAGMA foreign_keys = OFF` sent through Kysely on `db` (outside db.connection()) ran alone on a
// connection Kysely acquired for it, and the pool restored the setting when Kysely released that
// connection right after: the call resolved, the next db.transaction() ran with foreign keys ON, and
// DROP TABLE of the parent in the README's rebuild cascaded (every child row deleted).
// pool.query() refuses that PRAGMA (CONFIGURATION); Kysely's call now rejects the same way.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>

async function rebuild(db: Db): Promise<void> {
  await sql`create table author_new (id integer primary key, name text)`.execute(db)
  await sql`insert into author_new select id, name from author`.execute(db)
  await sql`drop table author`.execute(db)
  await sql`alter table author_new rename to author`.execute(db)
}

describe('sqlite: a PRAGMA that sets a connection setting, run through Kysely', () => {
  let t: KyselyTestDb
  let db: Db

  beforeEach(async () => {
    t = await openKyselyDb('sqlite')
    db = t.db as unknown as Db
    await t.pool.query('create table author (id integer primary key, name text)')
    await t.pool.query('create table book (id integer primary key, author_id integer references author(id) on delete cascade)')
    await t.pool.query("insert into author values (1, 'a')")
    await t.pool.query('insert into book values (1, 1), (2, 1)')
  })

  afterEach(() => t.close())

  const books = async (): Promise<number> => Number((await t.pool.query<{ n: unknown }>('select count(*) as n from book')).rows[0]!.n)
  const foreignKeys = async (): Promise<unknown> =>
    (await t.pool.query<{ foreign_keys: unknown }>('PRAGMA foreign_keys')).rows[0]!.foreign_keys

  it('alone on db (outside db.connection()) it rejects with CONFIGURATION, as pool.query() does: the rebuild after it never runs', async () => {
    let err: unknown
    try {
      await sql`PRAGMA foreign_keys = OFF`.execute(db)
      await db.transaction().execute((trx) => rebuild(trx))
    } catch (e) {
      err = e
    }
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as DatabaseError).detail).toMatchObject({ pragma: 'foreign_keys' })
    expect((err as DatabaseError).message).toMatch(/ran alone on a connection Kysely acquired for it/)
    expect((err as DatabaseError).message).toMatch(/db\.connection\(/)
    // it ran (nothing else did): the message says so, never that nothing ran
    expect((err as DatabaseError).detail).toMatchObject({ outcome: 'committed' })
    expect((err as DatabaseError).message).toMatch(/it ran, and anything it wrote is kept \(committed\)/)
    expect((err as DatabaseError).message).toMatch(/no later statement ran under it/)
    expect((err as DatabaseError).message).not.toMatch(/nothing ran/)
    expect(await books()).toBe(2)
    expect(await foreignKeys()).toBe(1)
  })

  it('other spellings and settings, and its stream(), are refused too; reading a setting is not', async () => {
    for (const text of ['PRAGMA main.foreign_keys = 0', 'pragma "foreign_keys"(OFF)', 'PRAGMA recursive_triggers = ON'])
      expect([
        text,
        await sql
          .raw(text)
          .execute(db)
          .then(
            () => 'resolved',
            (e: DatabaseError) => e.code,
          ),
      ]).toEqual([text, 'CONFIGURATION'])
    const drain = async (): Promise<void> => {
      // Kysely's stream path (a query builder's .stream()) on a raw statement
      for await (const row of db.getExecutor().stream(sql`PRAGMA foreign_keys = OFF`.compile(db), 10)) void row
    }
    await expect(drain()).rejects.toMatchObject({ code: 'CONFIGURATION' })
    expect((await sql<{ foreign_keys: unknown }>`PRAGMA foreign_keys`.execute(db)).rows).toEqual([{ foreign_keys: 1 }])
    expect(await foreignKeys()).toBe(1)
  })

  it("the README's rebuild inside db.connection() runs with foreign keys off and keeps every child; they are on again after", async () => {
    await db.connection().execute(async (c) => {
      await sql`PRAGMA foreign_keys = OFF`.execute(c)
      try {
        await c.transaction().execute(async (trx) => {
          await rebuild(trx)
          const { rows } = await sql`PRAGMA foreign_key_check`.execute(trx)
          expect(rows).toEqual([])
        })
      } finally {
        await sql`PRAGMA foreign_keys = ON`.execute(c)
      }
    })
    expect(await books()).toBe(2)
    expect(await foreignKeys()).toBe(1)
  })

  it('a db.connection() callback that leaves it off gets it restored at its release (no refusal: statements ran under it)', async () => {
    await db.connection().execute(async (c) => {
      await sql`PRAGMA foreign_keys = OFF`.execute(c)
      expect((await sql<{ foreign_keys: unknown }>`PRAGMA foreign_keys`.execute(c)).rows).toEqual([{ foreign_keys: 0 }])
    })
    expect(await foreignKeys()).toBe(1)
  })

  it('with other work in the same text, on db or first in db.connection(), it is refused before anything runs, as pool.query() refuses it', async () => {
    const orphans = async (): Promise<number> =>
      Number(
        (await t.pool.query<{ n: unknown }>('select count(*) as n from book where author_id not in (select id from author)')).rows[0]!.n,
      )
    const authors = async (): Promise<number> => Number((await t.pool.query<{ n: unknown }>('select count(*) as n from author')).rows[0]!.n)
    const cases = [
      'PRAGMA foreign_keys = OFF; DELETE FROM author WHERE id = 1',
      "INSERT INTO author VALUES (2, 'b'); PRAGMA recursive_triggers = ON",
    ]
    for (const text of cases) {
      await expect(t.pool.query(text)).rejects.toMatchObject({ code: 'CONFIGURATION' })
      for (const run of [() => sql.raw(text).execute(db), () => db.connection().execute((c) => sql.raw(text).execute(c))]) {
        const err = await run().then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
        expect((err as DatabaseError).detail).toMatchObject({
          pragma: text.includes('foreign_keys') ? 'foreign_keys' : 'recursive_triggers',
        })
        expect((err as DatabaseError).message).toMatch(/nothing of it was run/)
        expect([text, await authors(), await orphans(), await books()]).toEqual([text, 1, 0, 2])
      }
    }
    // later in a db.connection() callback (the setting on a connection the callback holds) it runs
    await db.connection().execute(async (c) => {
      await sql`select 1`.execute(c)
      await sql.raw(cases[0]!).execute(c)
      await sql`PRAGMA foreign_keys = ON`.execute(c)
    })
    expect([await authors(), await orphans()]).toEqual([0, 2])
    expect(await foreignKeys()).toBe(1)
  })
})
