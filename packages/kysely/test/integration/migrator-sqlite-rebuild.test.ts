import { sql, Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import { openKyselyDb, type KyselyTestDb } from './helpers'

jest.setTimeout(60_000)

// SQLite's documented table rebuild (create new, copy, drop old, rename) between PRAGMA foreign_keys
// OFF and ON: through DbpoolDialect, Kysely's Migrator runs in one BEGIN IMMEDIATE, where SQLite
// ignores the pragma and DROP TABLE of the parent ran its children's ON DELETE CASCADE (every book
// deleted, migration reported Success). The pragma is now refused there; with disableTransactions the
// rebuild runs as the README shows, and the setting does not outlive the run.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>

const init: Migration = {
  up: async (db: Db) => {
    await sql`create table author (id integer primary key, name text)`.execute(db)
    await sql`create table book (id integer primary key, author_id integer not null references author(id) on delete cascade)`.execute(db)
    await sql`insert into author values (1, 'a'), (2, 'b')`.execute(db)
    await sql`insert into book values (10, 1), (11, 1), (12, 2)`.execute(db)
  },
}

async function rebuildAuthor(db: Db): Promise<void> {
  await sql`create table author_new (id integer primary key, name text not null default '')`.execute(db)
  await sql`insert into author_new select id, coalesce(name, '') from author`.execute(db)
  await sql`drop table author`.execute(db)
  await sql`alter table author_new rename to author`.execute(db)
}

/** The rebuild as written for Kysely's own SqliteDialect (no transaction around it there). */
const naive: Migration = {
  up: async (db: Db) => {
    await sql`PRAGMA foreign_keys = OFF`.execute(db)
    await rebuildAuthor(db)
    await sql`PRAGMA foreign_keys = ON`.execute(db)
  },
}

/** The README's way: with disableTransactions, foreign keys off before the migration's own transaction. */
const documented: Migration = {
  up: async (db: Db) => {
    await sql`PRAGMA foreign_keys = OFF`.execute(db)
    try {
      await db.transaction().execute(async (trx) => {
        await rebuildAuthor(trx)
        const { rows } = await sql`PRAGMA foreign_key_check`.execute(trx)
        if (rows.length > 0) throw new Error(`rebuild leaves ${rows.length} foreign-key violation(s)`)
      })
    } finally {
      await sql`PRAGMA foreign_keys = ON`.execute(db)
    }
  },
}

const provider = (second: Migration): MigrationProvider => ({
  getMigrations: async () => ({ '001_init': init, '002_rebuild': second }),
})

describe("Kysely's Migrator on SQLite through DbpoolDialect: a table rebuild", () => {
  let t: KyselyTestDb
  beforeEach(async () => {
    t = await openKyselyDb('sqlite')
  })
  afterEach(async () => {
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  const books = async (): Promise<number> => Number((await t.pool.query<{ n: number }>('select count(*) as n from book')).rows[0]!.n)

  it('PRAGMA foreign_keys inside the run is refused (CONFIGURATION): nothing of the run kept, no child deleted', async () => {
    await new Migrator({ db: t.db, provider: { getMigrations: async () => ({ '001_init': init }) } }).migrateToLatest()
    const { error, results } = await new Migrator({ db: t.db, provider: provider(naive) }).migrateToLatest()
    expect(error).toMatchObject({ code: 'CONFIGURATION', detail: { pragma: 'foreign_keys' } })
    expect(results?.map((r) => r.status)).toEqual(['Error'])
    expect(await books()).toBe(3)
  })

  it('with disableTransactions, foreign keys off before the transaction: children kept, enforcement back on', async () => {
    const { error, results } = await new Migrator({ db: t.db, provider: provider(documented), disableTransactions: true }).migrateToLatest()
    expect(error).toBeUndefined()
    expect(results?.map((r) => r.status)).toEqual(['Success', 'Success'])
    expect(await books()).toBe(3)
    await expect(t.pool.query('insert into book values (99, 42)')).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' })
  })

  it('with disableTransactions, a migration that turns foreign keys off and fails leaves them on for the app', async () => {
    const failing: Migration = {
      up: async (db: Db) => {
        await sql`PRAGMA foreign_keys = OFF`.execute(db)
        throw new Error('boom')
      },
    }
    const { error } = await new Migrator({ db: t.db, provider: provider(failing), disableTransactions: true }).migrateToLatest()
    expect(String(error)).toMatch(/boom/)
    await expect((t.db as Db).insertInto('book').values({ id: 99, author_id: 42 }).execute()).rejects.toMatchObject({
      code: 'FOREIGN_KEY_VIOLATION',
    })
  })
})
