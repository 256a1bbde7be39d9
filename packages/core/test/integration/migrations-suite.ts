import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseError, Migrator, PoolFactory, type DatabasePool, type MigrationRunResult } from '@dbpool/core'
import { spawnFixture, watch } from './child-process'

/** How a backend's test file plugs into the migration suite. */
export interface MigrationSuiteSetup {
  readonly backend: 'postgres' | 'sqlite'
  /** A URL of a fresh, empty database; `cleanup` drops it. */
  database(): Promise<{ url: string; cleanup(): Promise<void> }>
  /** A statement that takes a while (widens the race between two migrating processes). */
  readonly slowStatement: string
  /** A procedural object whose body holds semicolons (trigger / function), created on table `accounts`. */
  readonly procedural: string
  /** Whether a table exists. */
  tableExists(pool: DatabasePool<unknown>, name: string): Promise<boolean>
}

function writeMigrations(dir: string, setup: MigrationSuiteSetup): void {
  writeFileSync(
    join(dir, '0001_accounts.sql'),
    `-- migrate:up
create table migration_log (version integer not null);
create table accounts (id integer primary key, name text not null, note text default 'semi;colon');
${setup.slowStatement};
insert into migration_log (version) values (1);
-- migrate:down
drop table accounts;
drop table migration_log;
`,
  )
  writeFileSync(
    join(dir, '0002_audit.up.sql'),
    `create table audit (account_id integer, name text);\n${setup.procedural}\n${setup.slowStatement};\ninsert into migration_log (version) values (2);\n`,
  )
  writeFileSync(join(dir, '0002_audit.down.sql'), 'drop table audit;\ndelete from migration_log where version = 2;\n')
  writeFileSync(
    join(dir, '0003_entries.sql'),
    `-- migrate:up
create table entries (id integer primary key, account_id integer not null references accounts (id), amount integer not null);
${setup.slowStatement};
insert into migration_log (version) values (3);
-- migrate:down
drop table entries;
delete from migration_log where version = 3;
`,
  )
}

/** Runs `up()` on `dir` in two child processes released at the same moment; both must exit 0. */
export async function migrateInTwoProcesses(url: string, dir: string): Promise<MigrationRunResult[]> {
  const children = [0, 1].map(() => {
    const child = spawnFixture('migrate-child.ts', [url, dir])
    return { child, out: watch(child) }
  })
  await Promise.all(children.map(({ out }) => out.line(/^ready$/, 90_000)))
  for (const { child } of children) child.stdin?.write('go\n')
  const results = await Promise.all(children.map(async ({ out }) => JSON.parse(await out.line(/^\{/, 90_000)) as MigrationRunResult))
  const codes = await Promise.all(children.map(({ out }) => out.exit()))
  expect(codes).toEqual([0, 0])
  return results
}

/** Up/down/status, failure rollback, checksum drift and two racing processes, on a real database. */
export function defineMigrationSuite(setup: MigrationSuiteSetup): void {
  describe(`Migrator on ${setup.backend}`, () => {
    let dir: string
    let database: { url: string; cleanup(): Promise<void> }
    let pool: DatabasePool<unknown>

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-it-'))
      writeMigrations(dir, setup)
      database = await setup.database()
      pool = await PoolFactory.create(database.url, { min: 1, max: 3, name: 'migrations-it' })
    }, 180_000)

    afterAll(async () => {
      await pool?.close({ timeoutMs: 5_000 })
      await database?.cleanup()
      rmSync(dir, { recursive: true, force: true })
    }, 60_000)

    it('applies every migration, records it, and is a no-op the second time', async () => {
      const migrator = new Migrator(pool, { directory: dir })
      expect((await migrator.status()).map((s) => s.state)).toEqual(['pending', 'pending', 'pending'])
      const result = await migrator.up()
      expect(result.migrations.map((m) => m.version)).toEqual([1, 2, 3])
      expect(result.current).toBe(3)
      for (const table of ['accounts', 'audit', 'entries', 'dbpool_migrations']) expect(await setup.tableExists(pool, table)).toBe(true)
      const status = await migrator.status()
      expect(status.map((s) => [s.version, s.state])).toEqual([
        [1, 'applied'],
        [2, 'applied'],
        [3, 'applied'],
      ])
      expect(status[0]?.appliedAt).toBeInstanceOf(Date)
      expect(Math.abs((status[0]?.appliedAt?.getTime() ?? 0) - Date.now())).toBeLessThan(60_000)
      expect(status[0]?.appliedChecksum).toMatch(/^[0-9a-f]{64}$/)
      expect(status[0]?.durationMs).toBeGreaterThanOrEqual(0)
      // the procedural object (trigger / function body with semicolons) was created whole and works
      await pool.query("insert into accounts (id, name) values (1, 'ada')")
      const { rows } = await pool.query<{ name: string }>('select name from audit where account_id = 1')
      expect(rows).toEqual([{ name: 'ada' }])
      expect((await migrator.up()).migrations).toEqual([])
    }, 60_000)

    it('reverts the last migration and applies it again', async () => {
      const migrator = new Migrator(pool, { directory: dir })
      const down = await migrator.down()
      expect(down.migrations.map((m) => m.version)).toEqual([3])
      expect(down.current).toBe(2)
      expect(await setup.tableExists(pool, 'entries')).toBe(false)
      expect((await migrator.status()).map((s) => s.state)).toEqual(['applied', 'applied', 'pending'])
      expect((await migrator.up()).migrations.map((m) => m.version)).toEqual([3])
      expect(await setup.tableExists(pool, 'entries')).toBe(true)
    }, 60_000)

    it('rolls a failing migration back and names the file and the statement', async () => {
      const broken = join(dir, '0004_broken.sql')
      writeFileSync(
        broken,
        '-- migrate:up\ncreate table t4 (id integer);\ninsert into t4 (id) values (1);\n\ninsert into no_such_table (id) values (1);\ninsert into migration_log (version) values (4);\n',
      )
      try {
        const err = await new Migrator(pool, { directory: dir }).up().then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(DatabaseError.is(err, 'MIGRATION_FAILED')).toBe(true)
        const e = err as DatabaseError
        expect(e.message).toMatch(
          /^migration 0004_broken.sql failed at statement 3 \(line 5\): insert into no_such_table \(id\) values \(1\): /,
        )
        expect(e.detail).toMatchObject({ version: 4, statementIndex: 3, line: 5 })
        expect(e.backend).toBe(setup.backend)
        expect(e.cause).toBeInstanceOf(DatabaseError)
        // nothing of it is left: no table, no row, no record
        expect(await setup.tableExists(pool, 't4')).toBe(false)
        expect(Number((await pool.query<{ n: unknown }>('select count(*) as n from migration_log where version = 4')).rows[0]?.n)).toBe(0)
        expect((await new Migrator(pool, { directory: dir }).status()).find((s) => s.version === 4)?.state).toBe('pending')
        expect(pool.stats().used).toBe(0)
      } finally {
        rmSync(broken)
      }
    }, 60_000)

    it('refuses to run when an applied file was changed', async () => {
      const file = join(dir, '0003_entries.sql')
      const original = readFileSync(file, 'utf8')
      writeFileSync(file, original.replace('amount integer not null', 'amount bigint not null'))
      try {
        const migrator = new Migrator(pool, { directory: dir })
        await expect(migrator.up()).rejects.toMatchObject({
          code: 'MIGRATION_FAILED',
          message: expect.stringMatching(/^migration 0003_entries.sql was changed after it was applied/),
        })
        await expect(migrator.down()).rejects.toMatchObject({ code: 'MIGRATION_FAILED' })
        expect((await migrator.status()).map((s) => s.state)).toEqual(['applied', 'applied', 'changed'])
        expect(await setup.tableExists(pool, 'entries')).toBe(true)
      } finally {
        writeFileSync(file, original)
      }
    }, 60_000)

    it('reverts everything with down(Infinity)', async () => {
      const result = await new Migrator(pool, { directory: dir }).down(Infinity)
      expect(result.migrations.map((m) => m.version)).toEqual([3, 2, 1])
      expect(result.current).toBeNull()
      for (const table of ['accounts', 'audit', 'entries', 'migration_log']) expect(await setup.tableExists(pool, table)).toBe(false)
    }, 60_000)

    it('two processes migrating the same database at once apply each migration exactly once', async () => {
      const fresh = await setup.database()
      try {
        const results = await migrateInTwoProcesses(fresh.url, dir)
        const applied = results.flatMap((r) => r.migrations.map((m) => m.version)).sort()
        const skipped = results.flatMap((r) => r.skipped).sort()
        expect(applied).toEqual([1, 2, 3])
        // a process either applied a migration or found it applied after waiting for the lock (both
        // poll for it, so one process often applies most of them while the other waits and skips)
        expect(skipped.every((v) => applied.includes(v))).toBe(true)
        expect(new Set(skipped).size).toBe(skipped.length)
        expect(results.map((r) => r.current)).toEqual([3, 3])
        const check = await PoolFactory.create(fresh.url, { min: 0, max: 1, name: 'race-check' })
        try {
          const { rows } = await check.query<{ version: unknown; n: unknown }>(
            'select version, count(*) as n from migration_log group by version order by version',
          )
          expect(rows.map((r) => [Number(r.version), Number(r.n)])).toEqual([
            [1, 1],
            [2, 1],
            [3, 1],
          ])
          const recorded = await check.query<{ n: unknown }>('select count(*) as n from dbpool_migrations')
          expect(Number(recorded.rows[0]?.n)).toBe(3)
        } finally {
          await check.close()
        }
      } finally {
        await fresh.cleanup()
      }
    }, 180_000)
  })
}
