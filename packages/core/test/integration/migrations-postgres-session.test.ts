import { Migrator, PoolFactory, type DatabasePool, type MigrationPool, type PoolConnection } from '@dbpool/core'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

jest.setTimeout(60_000)

const schemas = {
  version: 1,
  name: 'schemas',
  up: `create schema archive;
create table archive.orders (id integer primary key, note text);
create table public.orders (id integer primary key, note text);
create table customers (id integer primary key);
create table lines (id integer primary key, customer_id integer not null references customers (id))`,
}
const sessionChanges = {
  version: 2,
  name: 'session_changes',
  up: `set search_path to archive, public;
create index orders_note on orders (note);
set session_replication_role = replica;
select set_config('application_name', 'migration', false);
create temp table scratch (x integer)`,
}

/** A migration's session-level SET must not follow the pooled connection into the application's statements. */
describe('Migrator on postgres: the session a migration changed is not reused', () => {
  let db: TestDatabase
  let pool: DatabasePool<unknown>

  beforeEach(async () => {
    db = await createTestDatabase()
    // one connection: the application's next statement would get the migration's session
    pool = await PoolFactory.create(db.url, { min: 0, max: 1, name: 'migrations-session' })
  })

  afterEach(async () => {
    await pool?.close({ timeoutMs: 5_000 })
    await db?.drop()
  })

  const expectCleanSession = async (): Promise<void> => {
    await pool.query("insert into orders (id, note) values (1, 'customer order')")
    expect((await pool.query('select count(*)::int as n from public.orders')).rows[0]).toEqual({ n: 1 })
    expect((await pool.query('select count(*)::int as n from archive.orders')).rows[0]).toEqual({ n: 0 })
    // FK checks and triggers run again (session_replication_role back to origin)
    await expect(pool.query('insert into lines (id, customer_id) values (1, 999)')).rejects.toMatchObject({
      code: 'FOREIGN_KEY_VIOLATION',
    })
    const { rows } = await pool.query<{ app: string; temp: boolean }>(
      "select current_setting('application_name') as app, to_regclass('pg_temp.scratch') is not null as temp",
    )
    expect(rows[0]).toEqual({ app: expect.not.stringMatching(/^migration$/), temp: false })
  }

  it('an application insert after a migration that set search_path lands in the right table', async () => {
    await new Migrator(pool, { migrations: [schemas, sessionChanges] }).up()
    await expectCleanSession()
  })

  it('the same when a transaction:false migration failed after its SETs (nothing rolled them back)', async () => {
    const failing = {
      version: 2,
      name: 'fails',
      transaction: false,
      up: 'set search_path to archive, public;\nset session_replication_role = replica;\nselect 1 / 0',
    }
    await expect(new Migrator(pool, { migrations: [schemas, failing] }).up()).rejects.toMatchObject({ code: 'MIGRATION_FAILED' })
    await expectCleanSession()
  })

  it('a custom MigrationPool (no way to close the connection) gets the session reset instead', async () => {
    const custom: MigrationPool = {
      backend: pool.backend,
      query: pool.query.bind(pool),
      withConnection: (fn) => pool.withConnection((conn) => fn({ query: conn.query.bind(conn) } as unknown as PoolConnection)),
    }
    await new Migrator(custom, { migrations: [schemas, sessionChanges] }).up()
    await expectCleanSession()
  })

  it('refuses foreign_keys:off (SQLite only) with CONFIGURATION', async () => {
    const m = new Migrator(pool, { migrations: [{ version: 1, name: 'rebuild', up: 'select 1', foreignKeys: false }] })
    await expect(m.up()).rejects.toMatchObject({ code: 'CONFIGURATION', message: expect.stringMatching(/only SQLite supports/) })
  })
})
