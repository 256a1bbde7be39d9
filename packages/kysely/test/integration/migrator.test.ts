import { sql, Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import { BACKENDS, openKyselyDb, type KyselyTestDb } from './helpers'

// each test opens a database of its own (a new Postgres database is slow on a loaded machine)
jest.setTimeout(60_000)

/** Two migrations, the second one failing when `failSecond` is set (to see the first one kept). */
function migrations(failSecond: boolean): MigrationProvider {
  const first: Migration = {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    up: async (db: Kysely<any>) => {
      await db.schema
        .createTable('account')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .execute()
      await db.insertInto('account').values({ id: 1, name: 'cash' }).execute()
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    down: async (db: Kysely<any>) => {
      await db.schema.dropTable('account').execute()
    },
  }
  const second: Migration = {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    up: async (db: Kysely<any>) => {
      await db.schema
        .alterTable('account')
        .addColumn('balance', 'integer', (c) => c.notNull().defaultTo(0))
        .execute()
      if (failSecond) await sql`select * from no_such_table`.execute(db)
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    down: async (db: Kysely<any>) => {
      await db.schema.alterTable('account').dropColumn('balance').execute()
    },
  }
  return { getMigrations: async () => ({ '001_account': first, '002_balance': second }) }
}

describe.each(BACKENDS)("Kysely's Migrator through DbpoolDialect on %s", (backend) => {
  let t: KyselyTestDb

  beforeEach(async () => {
    t = await openKyselyDb(backend)
  })

  afterEach(async () => {
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  async function columns(): Promise<string[]> {
    const tables = await t.db.introspection.getTables()
    return (tables.find((table) => table.name === 'account')?.columns ?? []).map((c) => c.name)
  }

  it('migrates to latest, then down, recording each step', async () => {
    const migrator = new Migrator({ db: t.db, provider: migrations(false) })
    const up = await migrator.migrateToLatest()
    expect(up.error).toBeUndefined()
    expect(up.results?.map((r) => [r.migrationName, r.status])).toEqual([
      ['001_account', 'Success'],
      ['002_balance', 'Success'],
    ])
    expect(await columns()).toEqual(['id', 'name', 'balance'])
    const state = await migrator.getMigrations()
    expect(state.map((m) => m.executedAt !== undefined)).toEqual([true, true])

    const down = await migrator.migrateDown()
    expect(down.results?.map((r) => [r.migrationName, r.direction, r.status])).toEqual([['002_balance', 'Down', 'Success']])
    expect(await columns()).toEqual(['id', 'name'])
  })

  it('runs a migration set in one transaction: a failing migration leaves nothing of the set', async () => {
    const failing = await new Migrator({ db: t.db, provider: migrations(true) }).migrateToLatest()
    expect(failing.error).toBeDefined()
    expect(failing.results?.map((r) => [r.migrationName, r.status])).toEqual([
      ['001_account', 'Success'],
      ['002_balance', 'Error'],
    ])
    // both backends run DDL in transactions: the first migration was rolled back with the second
    expect(await columns()).toEqual([])
    const retried = await new Migrator({ db: t.db, provider: migrations(false) }).migrateToLatest()
    expect(retried.error).toBeUndefined()
    expect(await columns()).toEqual(['id', 'name', 'balance'])
  })

  it('lets two migrators race: each migration runs once', async () => {
    const [a, b] = await Promise.all([
      new Migrator({ db: t.db, provider: migrations(false) }).migrateToLatest(),
      new Migrator({ db: t.db, provider: migrations(false) }).migrateToLatest(),
    ])
    expect(a.error).toBeUndefined()
    expect(b.error).toBeUndefined()
    const ran = [...(a.results ?? []), ...(b.results ?? [])].map((r) => r.migrationName).sort()
    expect(ran).toEqual(['001_account', '002_balance'])
    const rows = await t.db
      .selectFrom('kysely_migration' as never)
      .select(sql<number>`count(*)`.as('n'))
      .executeTakeFirstOrThrow()
    expect(Number((rows as { n: number }).n)).toBe(2)
  })
})
