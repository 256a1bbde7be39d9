import { sql, Migrator, type Kysely, type Migration } from 'kysely'
import { openKyselyDb, type KyselyTestDb } from './helpers'

jest.setTimeout(60_000)

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>

// A Kysely migration's session-level SET stayed on the pooled Postgres session (default sessionReset
// 'none'): with session_replication_role = replica, the application's next insert skipped its foreign
// key. The connection of a Migrator run is now closed at its release, as the core Migrator's is.
describe("Kysely's Migrator on postgres through DbpoolDialect: the run's session stays with it", () => {
  let t: KyselyTestDb
  beforeEach(async () => {
    // one connection: a session that went back to the pool would be the application's next one
    t = await openKyselyDb('postgres', { max: 1 })
    await sql`create table par (id int primary key)`.execute(t.db)
    await sql`create table kid (id int primary key, par_id int not null references par(id))`.execute(t.db)
  })
  afterEach(async () => {
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  it.each([false, true])('a SET in a migration does not reach the application (disableTransactions %s)', async (disableTransactions) => {
    const bulk: Migration = {
      up: async (db: Db) => {
        await sql`set session_replication_role = replica`.execute(db)
        await sql`insert into par values (1)`.execute(db)
      },
    }
    const { error, results } = await new Migrator({
      db: t.db,
      provider: { getMigrations: async () => ({ '001_bulk': bulk }) },
      disableTransactions,
    }).migrateToLatest()
    expect(error).toBeUndefined()
    expect(results?.map((r) => r.status)).toEqual(['Success'])
    await expect((t.db as Db).insertInto('kid').values({ id: 1, par_id: 999 }).execute()).rejects.toMatchObject({
      code: 'FOREIGN_KEY_VIOLATION',
    })
    expect((await sql<{ role: string }>`select current_setting('session_replication_role') as role`.execute(t.db)).rows).toEqual([
      { role: 'origin' },
    ])
  })
})
