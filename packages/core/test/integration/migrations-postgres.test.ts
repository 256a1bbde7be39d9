import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type DatabaseError, Migrator, PoolFactory, type DatabasePool, type MigrationRunResult } from '@dbpool/core'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { defineMigrationSuite, migrateInTwoProcesses } from './migrations-suite'

defineMigrationSuite({
  backend: 'postgres',
  database: async () => {
    const db = await createTestDatabase()
    return { url: db.url, cleanup: () => db.drop() }
  },
  slowStatement: 'select pg_sleep(0.2)',
  procedural: `create function audit_account() returns trigger language plpgsql as $$
begin
  insert into audit (account_id, name) values (new.id, new.name);
  return new;
end;
$$;
create trigger accounts_audit after insert on accounts for each row execute function audit_account();`,
  tableExists: async (pool, name) =>
    (await pool.query<{ found: boolean }>('select to_regclass($1) is not null as found', [name])).rows[0]?.found === true,
})

describe('Migrator on postgres: session settings', () => {
  it('runs migrations under the session lock_timeout and statement_timeout', async () => {
    const db = await createTestDatabase()
    const pool = await PoolFactory.create(
      db.url,
      { min: 0, max: 1, name: 'settings' },
      { database: { lockTimeoutMs: 4321, statementTimeoutMs: 8765 } },
    )
    try {
      const seen: Record<string, unknown>[] = []
      await new Migrator(pool, {
        migrations: [
          {
            version: 1,
            name: 'probe',
            up: async (conn) => {
              seen.push(
                (await conn.query("select current_setting('lock_timeout') as lock, current_setting('statement_timeout') as statement"))
                  .rows[0] ?? {},
              )
            },
          },
        ],
      }).up()
      expect(seen).toEqual([{ lock: '4321ms', statement: '8765ms' }])
    } finally {
      await pool.close()
      await db.drop()
    }
  }, 120_000)
})

describe('Migrator on postgres: transaction:false', () => {
  let db: TestDatabase
  let pool: DatabasePool<unknown>
  let dir: string

  beforeAll(async () => {
    db = await createTestDatabase()
    pool = await PoolFactory.create(db.url, { min: 0, max: 2, name: 'no-transaction' })
  }, 120_000)

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-notx-'))
  })

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true })
    await pool.query('drop table if exists dbpool_migrations, items, migration_log')
  })

  afterAll(async () => {
    await pool?.close()
    await db?.drop()
  }, 60_000)

  const write = (name: string, text: string): void => writeFileSync(join(dir, name), text)
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
  // this database's only: other test files on the same server hold advisory locks of their own
  const advisoryLocks = async (): Promise<number> =>
    Number(
      (
        await pool.query<{ n: unknown }>(
          "select count(*) as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())",
        )
      ).rows[0]?.n,
    )

  it('CREATE INDEX CONCURRENTLY: refused by the server inside a transaction, applied and valid with transaction:false', async () => {
    write(
      '0001_items.sql',
      '-- migrate:up\ncreate table items (id int primary key, sku text not null);\n-- migrate:down\ndrop table items;\n',
    )
    write(
      '0002_items_sku.sql',
      '-- migrate:up\ncreate index concurrently items_sku on items (sku);\n-- migrate:down\ndrop index items_sku;\n',
    )
    const inTransaction = await new Migrator(pool, { directory: dir }).up().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(inTransaction).toMatchObject({ code: 'MIGRATION_FAILED', sqlState: '25001' })
    expect((inTransaction as DatabaseError).message).toMatch(/cannot run inside a transaction block/)

    write(
      '0002_items_sku.sql',
      '-- migrate:up transaction:false\ncreate index concurrently if not exists items_sku on items (sku);\n-- migrate:down transaction:false\ndrop index concurrently items_sku;\n',
    )
    const migrator = new Migrator(pool, { directory: dir })
    expect((await migrator.up()).migrations.map((m) => m.version)).toEqual([2])
    const { rows } = await pool.query<{ valid: unknown }>(
      "select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = 'items_sku'",
    )
    expect(rows).toEqual([{ valid: true }])
    expect((await migrator.status()).map((m) => m.state)).toEqual(['applied', 'applied'])
    expect(await advisoryLocks()).toBe(0)
    expect((await migrator.down()).migrations.map((m) => m.version)).toEqual([2])
    expect((await pool.query("select 1 from pg_class where relname = 'items_sku'")).rows).toEqual([])
    expect(await advisoryLocks()).toBe(0)
  }, 60_000)

  it('a COPY ... FROM STDIN in a script (pg_dump style) fails the migration with CONFIGURATION naming copyFrom(), before it is sent', async () => {
    // the script runner sends statements as pool.query() does, which cannot feed a COPY (it was QUERY_CANCELLED)
    write(
      '0001_items.sql',
      '-- migrate:up\ncreate table items (id int primary key, sku text not null);\ncopy items (id, sku) from stdin;\n',
    )
    const err = await new Migrator(pool, { directory: dir }).up().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code: 'MIGRATION_FAILED', detail: { version: 1, causeCode: 'CONFIGURATION' } })
    expect(((err as DatabaseError).cause as DatabaseError).message).toContain('copyFrom()')
    // the migration's transaction was rolled back
    expect((await pool.query("select 1 from pg_class where relname = 'items'")).rows).toEqual([])
    expect(await advisoryLocks()).toBe(0)
  }, 60_000)

  it('a failing statement leaves the earlier ones applied, records nothing, releases the lock, and reruns once fixed', async () => {
    write('0001_items.sql', 'create table items (id int primary key, sku text not null);\n')
    write(
      '0002_indexes.sql',
      '-- migrate:up transaction:false\ncreate index concurrently if not exists items_sku on items (sku);\ncreate index concurrently items_bad on items (no_such_column);\n',
    )
    const err = await new Migrator(pool, { directory: dir }).up().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({
      code: 'MIGRATION_FAILED',
      sqlState: '42703',
      detail: { version: 2, statementIndex: 2, transaction: false },
    })
    expect((err as DatabaseError).message).toMatch(/statements before the failing one took effect and were not undone/)
    expect((await pool.query("select relname from pg_class where relname like 'items\\_%' order by relname")).rows).toEqual([
      { relname: 'items_pkey' },
      { relname: 'items_sku' },
    ])
    expect(await advisoryLocks()).toBe(0)
    const migrator = new Migrator(pool, { directory: dir })
    expect((await migrator.status()).map((m) => m.state)).toEqual(['applied', 'pending'])

    write(
      '0002_indexes.sql',
      '-- migrate:up transaction:false\ncreate index concurrently if not exists items_sku on items (sku);\ncreate index concurrently if not exists items_id_sku on items (id, sku);\n',
    )
    expect((await migrator.up()).migrations.map((m) => m.version)).toEqual([2])
  }, 60_000)

  it('a migrator waiting for the lock while another runs CREATE INDEX CONCURRENTLY does not deadlock with it', async () => {
    // a waiter that sat in the server's lock queue inside a transaction would hold a snapshot that
    // CREATE INDEX CONCURRENTLY waits for, while it waits for the index builder's lock: deadlock
    const table = 'create table items (id int primary key, sku text not null)'
    const index = 'select pg_sleep(0.5); create index concurrently if not exists items_sku on items (sku)'
    const other = { pool: await PoolFactory.create(db.url, { min: 0, max: 1, name: 'waiter' }) }
    try {
      let waiter: Promise<unknown> | undefined
      const builder = new Migrator(pool, {
        migrations: [
          { version: 1, name: 'items', up: table },
          { version: 2, name: 'items_sku', up: index, transaction: false },
        ],
        onEvent: (e) => {
          if (e.type === 'start' && e.version === 2) {
            waiter = sleep(150).then(() =>
              new Migrator(other.pool, {
                migrations: [
                  { version: 1, name: 'items', up: table },
                  { version: 3, name: 'note', up: 'alter table items add column note text' },
                ],
              }).up(),
            )
          }
        },
      })
      const built = await builder.up()
      const waited = (await waiter) as MigrationRunResult
      expect(built.migrations.map((m) => m.version)).toEqual([1, 2])
      expect(waited.migrations.map((m) => m.version)).toEqual([3])
      expect((await new Migrator(pool, { migrations: [] }).status()).map((m) => [m.version, m.state])).toEqual([
        [1, 'missing'],
        [2, 'missing'],
        [3, 'missing'],
      ])
    } finally {
      await other.pool.close()
    }
  }, 60_000)

  it('two processes racing over a set with a CREATE INDEX CONCURRENTLY migration apply each exactly once, without deadlock', async () => {
    const fresh = await createTestDatabase()
    try {
      write(
        '0001_items.sql',
        'create table items (id int primary key, sku text not null);\ncreate table migration_log (version int not null);\nselect pg_sleep(0.2);\ninsert into migration_log values (1);\n',
      )
      write(
        '0002_items_sku.sql',
        '-- migrate:up transaction:false\nselect pg_sleep(0.2);\ncreate index concurrently if not exists items_sku on items (sku);\ninsert into migration_log values (2);\n',
      )
      write('0003_more.sql', 'alter table items add column note text;\nselect pg_sleep(0.2);\ninsert into migration_log values (3);\n')
      const results = await migrateInTwoProcesses(fresh.url, dir)
      expect(results.flatMap((r) => r.migrations.map((m) => m.version)).sort()).toEqual([1, 2, 3])
      expect(results.map((r) => r.current)).toEqual([3, 3])
      const check = await PoolFactory.create(fresh.url, { min: 0, max: 1, name: 'race-check' })
      try {
        const { rows } = await check.query<{ version: unknown }>('select version from migration_log order by version')
        expect(rows.map((r) => Number(r.version))).toEqual([1, 2, 3])
      } finally {
        await check.close()
      }
    } finally {
      await fresh.drop()
    }
  }, 180_000)
})
