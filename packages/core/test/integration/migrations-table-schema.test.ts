import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseError, Migrator, PoolFactory, type DatabasePool, type MigrationDefinition } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

jest.setTimeout(60_000)

// The Migrator fixes its table's schema when it starts and names it schema-qualified from then on: a
// migration's `SET search_path` (or, on SQLite, a temporary table of the same name) cannot send its
// record to another table, and the lock follows the table, not the spelling of the `table` option.

async function versions(pool: DatabasePool<unknown>, table: string): Promise<number[]> {
  const { rows } = await pool.query<{ version: unknown }>(`select version from ${table} order by version`)
  return rows.map((r) => Number(r.version))
}

describe('Migrator on postgres: the migrations table is resolved once, schema-qualified', () => {
  let db: TestDatabase
  let pool: DatabasePool<unknown>
  let other: DatabasePool<unknown> | undefined

  beforeEach(async () => {
    db = await createTestDatabase()
    pool = await PoolFactory.create(db.url, { max: 2, name: 'table-schema' })
  })

  afterEach(async () => {
    await other?.close({ timeoutMs: 5_000 })
    other = undefined
    await pool?.close({ timeoutMs: 5_000 })
    await db?.drop()
  })

  /** App B keeps its migrations in schema reporting, in a table of the same default name. */
  async function reportingApp(): Promise<MigrationDefinition[]> {
    await pool.query('create schema reporting')
    const b: MigrationDefinition[] = [
      { version: 1, name: 'b_init', up: 'create table reporting.b_t (x int)' },
      { version: 2, name: 'b_second', up: 'create table reporting.b_second (x int)' },
    ]
    await new Migrator(pool, { table: 'reporting.dbpool_migrations', migrations: b.slice(0, 1) }).up()
    return b
  }

  it.each([
    ['a SQL migration', 'set search_path = reporting, public; create table a_report (x int)'],
    [
      'a function migration',
      async (conn: Parameters<Extract<MigrationDefinition['up'], (...args: never[]) => unknown>>[0]): Promise<void> => {
        await conn.query('set search_path = reporting, public')
        await conn.query('create table a_report (x int)')
      },
    ],
  ] as const)("%s that sets search_path to another app's schema records itself in its own table", async (_kind, up) => {
    const b = await reportingApp()
    const a: MigrationDefinition[] = [
      { version: 1, name: 'a_init', up: 'create table a_t (x int)' },
      { version: 2, name: 'a_reporting', up },
    ]
    const result = await new Migrator(pool, { migrations: a }).up()
    expect(result.migrations.map((m) => m.version)).toEqual([1, 2])
    expect(await versions(pool, 'public.dbpool_migrations')).toEqual([1, 2])
    expect(await versions(pool, 'reporting.dbpool_migrations')).toEqual([1])
    expect((await new Migrator(pool, { migrations: a }).status()).map((s) => `${s.version}:${s.state}`)).toEqual(['1:applied', '2:applied'])
    // B's own migration 2 is pending for B, and runs
    const rb = await new Migrator(pool, { table: 'reporting.dbpool_migrations', migrations: b }).up()
    expect(rb).toMatchObject({ migrations: [{ version: 2 }], skipped: [] })
    expect(await versions(pool, 'reporting.dbpool_migrations')).toEqual([1, 2])
  })

  it('a migration that sets search_path to a schema without the table is recorded (no raw "relation does not exist")', async () => {
    const a: MigrationDefinition[] = [
      { version: 1, name: 'app_schema', up: 'create schema app; set search_path = app; create table accounts (id int)' },
    ]
    await expect(new Migrator(pool, { migrations: a }).up()).resolves.toMatchObject({ migrations: [{ version: 1 }] })
    expect(await versions(pool, 'public.dbpool_migrations')).toEqual([1])
    expect((await pool.query<{ found: boolean }>("select to_regclass('app.accounts') is not null as found")).rows[0]?.found).toBe(true)
  })

  it("uses the schema the table already exists in through the pool's search_path, else current_schema()", async () => {
    await pool.query('create schema tools')
    await pool.query('create schema scratch')
    const on = (path: string): string =>
      `${db.url}${db.url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${path}`)}`
    const defs: MigrationDefinition[] = [{ version: 1, name: 'one', up: 'create table public.one (x int)' }]
    // no table yet: created in current_schema() (tools)
    other = await PoolFactory.create(on('tools,public'), { max: 1, name: 'table-schema-tools' })
    await new Migrator(other, { migrations: defs }).up()
    expect(await versions(pool, 'tools.dbpool_migrations')).toEqual([1])
    await other.close()
    // current_schema() is scratch, but the table exists in tools, further on the path: that one is used
    other = await PoolFactory.create(on('scratch,tools'), { max: 1, name: 'table-schema-scratch' })
    const again = await new Migrator(other, { migrations: defs }).up()
    expect(again.migrations).toEqual([])
    expect(
      (await pool.query<{ found: boolean }>("select to_regclass('scratch.dbpool_migrations') is not null as found")).rows[0]?.found,
    ).toBe(false)
  })

  it('a schema-qualified table whose schema does not exist: up() is MIGRATION_FAILED naming migrations.table and the schema, nothing runs; status() and down() find nothing applied', async () => {
    const defs: MigrationDefinition[] = [
      { version: 1, name: 'schema', up: 'create schema app; create table app.t (x int)', down: 'drop schema app cascade' },
    ]
    const migrator = new Migrator(pool, { table: 'app.dbpool_migrations', migrations: defs })
    expect((await migrator.status()).map((s) => `${s.version}:${s.state}`)).toEqual(['1:pending'])
    await expect(migrator.down()).resolves.toMatchObject({ migrations: [], current: null })
    const err = await migrator.up().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(DatabaseError)
    const e = err as DatabaseError
    expect(e.code).toBe('MIGRATION_FAILED')
    expect(e.message).toMatch(/app\.dbpool_migrations cannot be created: schema app does not exist; create it before migrating/)
    expect(e.detail).toMatchObject({ option: 'migrations.table', reason: 'no-schema', schema: 'app', table: 'app.dbpool_migrations' })
    expect((e.cause as DatabaseError).sqlState).toBe('3F000')
    expect((await pool.query<{ found: boolean }>("select to_regnamespace('app') is not null as found")).rows[0]?.found).toBe(false)
    // once the schema exists, it migrates
    await pool.query('create schema app')
    const ok = new Migrator(pool, {
      table: 'app.dbpool_migrations',
      migrations: [{ version: 1, name: 't', up: 'create table app.t (x int)' }],
    })
    await expect(ok.up()).resolves.toMatchObject({ migrations: [{ version: 1 }] })
    expect(await versions(pool, 'app.dbpool_migrations')).toEqual([1])
  })

  it('an unqualified table and a search_path naming no existing schema: status() all pending, down() nothing to do, up() MIGRATION_FAILED', async () => {
    other = await PoolFactory.create(`${db.url}${db.url.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c search_path=app')}`, {
      max: 1,
      name: 'table-schema-nowhere',
    })
    const defs: MigrationDefinition[] = [{ version: 1, name: 'one', up: 'create table public.one (x int)', down: 'drop table public.one' }]
    const migrator = new Migrator(other, { migrations: defs })
    expect((await migrator.status()).map((s) => `${s.version}:${s.state}`)).toEqual(['1:pending'])
    await expect(migrator.down()).resolves.toEqual({ direction: 'down', migrations: [], skipped: [], current: null })
    await expect(migrator.up()).rejects.toMatchObject({
      code: 'MIGRATION_FAILED',
      detail: { option: 'migrations.table', reason: 'no-schema', table: 'dbpool_migrations' },
    })
    // the schema appears: the same Migrator resolves it now
    await pool.query('create schema app')
    await expect(migrator.up()).resolves.toMatchObject({ migrations: [{ version: 1 }] })
    expect(await versions(pool, 'app.dbpool_migrations')).toEqual([1])
  })

  it("an error of the record's insert is MIGRATION_FAILED naming the migration and the table; the migration is rolled back", async () => {
    const a: MigrationDefinition[] = [
      { version: 1, name: 'init', up: 'create table t (x int)' },
      {
        version: 2,
        name: 'guard',
        up: `create table u (x int);
create function refuse_record() returns trigger language plpgsql as $$ begin raise exception 'no record'; end $$;
create trigger refuse_record before insert on public.dbpool_migrations for each row execute function refuse_record()`,
      },
    ]
    const err = await new Migrator(pool, { migrations: a }).up().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(DatabaseError)
    const e = err as DatabaseError
    expect(e.code).toBe('MIGRATION_FAILED')
    expect(e.message).toMatch(/migration 2_guard|migration code|guard/)
    expect(e.message).toMatch(/could not be written to public\.dbpool_migrations/)
    expect(e.detail).toMatchObject({ version: 2, table: 'public.dbpool_migrations', applied: [1] })
    expect((e.cause as DatabaseError).message).toMatch(/no record/)
    expect((await pool.query<{ found: boolean }>("select to_regclass('public.u') is not null as found")).rows[0]?.found).toBe(false)
    expect(await versions(pool, 'public.dbpool_migrations')).toEqual([1])
  })

  it("'dbpool_migrations' and 'public.dbpool_migrations' take one lock: a transaction:false migration runs once", async () => {
    await pool.query('create table runlog (n int)')
    other = await PoolFactory.create(db.url, { max: 2, name: 'table-schema-b' })
    let runs = 0
    let bStarted!: () => void
    const started = new Promise<void>((resolve) => (bStarted = resolve))
    const defs: MigrationDefinition[] = [
      {
        version: 1,
        name: 'backfill',
        transaction: false,
        up: async (conn) => {
          runs++
          // the first run holds the lock until the other Migrator has planned and gone for the lock
          await started
          await new Promise((resolve) => setTimeout(resolve, 100))
          await conn.query('insert into runlog values (1)')
        },
      },
    ]
    const a = new Migrator(pool, { migrations: defs }).up()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const b = new Migrator(other, {
      migrations: defs,
      table: 'public.dbpool_migrations',
      onEvent: (e) => e.type === 'start' && bStarted(),
    }).up()
    const [ra, rb] = await Promise.allSettled([a, b])
    expect(ra).toMatchObject({ status: 'fulfilled', value: { migrations: [{ version: 1 }] } })
    expect(rb).toMatchObject({ status: 'fulfilled', value: { migrations: [], skipped: [1] } })
    expect(runs).toBe(1)
    expect((await pool.query<{ n: number }>('select count(*)::int as n from runlog')).rows[0]?.n).toBe(1)
  })

  it.each([true, false])(
    "waits for the lock of an earlier dbpool version (key from the table option's text) during a rolling upgrade (transaction: %s)",
    async (transaction) => {
      other = await PoolFactory.create(db.url, { max: 1, name: 'table-schema-old' })
      // the earlier version derived its key from the option's text, 'dbpool_migrations'
      const legacyKey = createHash('sha256').update('dbpool:migrations:dbpool_migrations').digest().readBigInt64BE(0).toString()
      const defs: MigrationDefinition[] = [{ version: 1, name: 'a', transaction, up: 'create table a (x int)' }]
      await other.withConnection(async (old) => {
        await old.query('select pg_advisory_lock($1::bigint)', [legacyKey])
        const err = await new Migrator(pool, { migrations: defs, lockTimeoutMs: 300 }).up().then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(DatabaseError)
        expect((err as DatabaseError).code).toBe('MIGRATION_FAILED')
        expect((err as DatabaseError).message).toMatch(/waiting for the migration lock/)
        expect((await pool.query<{ found: boolean }>("select to_regclass('public.a') is not null as found")).rows[0]?.found).toBe(false)
        await old.query('select pg_advisory_unlock($1::bigint)', [legacyKey])
      })
      // once the old process is done, the new one migrates; no advisory lock is left behind
      await expect(new Migrator(pool, { migrations: defs }).up()).resolves.toMatchObject({ migrations: [{ version: 1 }] })
      const { rows } = await pool.query<{ n: number }>(
        "select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())",
      )
      expect(rows[0]?.n).toBe(0)
    },
  )
})

describe('Migrator on sqlite: the migrations table is main.<table>', () => {
  let dir: string
  let pool: DatabasePool<unknown>

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dbpool-table-schema-'))
    pool = createSqlitePool(join(dir, 'app.db'), { max: 2 }, { synchronous: 'OFF' })
  })

  afterEach(async () => {
    await pool?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a migration that creates a temporary table of the same name does not take its record (it would vanish with the session)', async () => {
    const defs: MigrationDefinition[] = [
      { version: 1, name: 'init', up: 'create table t (x integer)' },
      {
        version: 2,
        name: 'scratch',
        up: 'create temp table dbpool_migrations (version integer primary key, name text, checksum text, applied_at text, duration_ms integer); create table u (x integer)',
      },
    ]
    const result = await new Migrator(pool, { migrations: defs }).up()
    expect(result.migrations.map((m) => m.version)).toEqual([1, 2])
    expect(await versions(pool, 'main.dbpool_migrations')).toEqual([1, 2])
    const again = await new Migrator(pool, { migrations: defs }).up()
    expect(again.migrations).toEqual([])
    expect((await new Migrator(pool, { migrations: defs }).status()).map((s) => `${s.version}:${s.state}`)).toEqual([
      '1:applied',
      '2:applied',
    ])
  })
})
