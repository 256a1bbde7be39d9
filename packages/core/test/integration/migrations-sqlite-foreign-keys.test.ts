import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseError, Migrator, PoolFactory, type DatabasePool } from '@dbpool/core'

jest.setTimeout(60_000)

/** SQLite's table rebuild (create new, copy, drop old, rename) must not fire the children's ON DELETE actions. */
describe('Migrator on sqlite: foreign_keys:off', () => {
  let dir: string
  let pool: DatabasePool<unknown>

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-fk-'))
    pool = await PoolFactory.create(`sqlite:${join(dir, 'app.db')}`, { min: 1, max: 2, name: 'migrations-fk' })
  })

  afterEach(async () => {
    await pool?.close({ timeoutMs: 5_000 })
    rmSync(dir, { recursive: true, force: true })
  })

  const init = (action: string): string => `-- migrate:up
create table authors (id integer primary key, name text not null);
create table books (id integer primary key, author_id integer references authors (id) on delete ${action}, title text);
insert into authors values (1, 'ada'), (2, 'bob');
insert into books values (10, 1, 'b1'), (11, 1, 'b2'), (12, 2, 'b3');
`
  const rebuild = (marker: string, extra = ''): string => `${marker}
create table authors_new (id integer primary key, name text not null, email text);
insert into authors_new (id, name) select id, name from authors ${extra};
drop table authors;
alter table authors_new rename to authors;
`
  const migrations = (files: Record<string, string>): Migrator => {
    const migrationsDir = join(dir, 'migrations')
    rmSync(migrationsDir, { recursive: true, force: true })
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(migrationsDir, { recursive: true })
      writeFileSync(join(migrationsDir, name), text)
    }
    return new Migrator(pool, { directory: migrationsDir })
  }
  const books = async (): Promise<unknown> => (await pool.query('select count(*) as n, count(author_id) as with_author from books')).rows[0]
  const enforced = async (): Promise<unknown> => (await pool.query('PRAGMA foreign_keys')).rows[0]

  it.each(['cascade', 'set null'])('a rebuild of a parent table keeps its children (on delete %s)', async (action) => {
    const m = migrations({ '0001_init.sql': init(action), '0002_rebuild.sql': rebuild('-- migrate:up foreign_keys:off') })
    const result = await m.up()
    expect(result.migrations.map((s) => s.version)).toEqual([1, 2])
    expect(await books()).toEqual({ n: 3, with_author: 3 })
    expect(await enforced()).toEqual({ foreign_keys: 1 })
    // enforcement is back: a dangling reference is refused again
    await expect(pool.query('insert into books values (13, 99, ?)', ['x'])).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' })
  })

  it('the same in code (foreignKeys: false), with SET NULL children', async () => {
    const m = new Migrator(pool, {
      migrations: [
        { version: 1, name: 'init', up: init('set null').replace('-- migrate:up\n', '') },
        { version: 2, name: 'rebuild', up: rebuild(''), foreignKeys: false },
      ],
    })
    await m.up()
    expect(await books()).toEqual({ n: 3, with_author: 3 })
    expect(await enforced()).toEqual({ foreign_keys: 1 })
  })

  it('a rebuild that leaves a violation is rolled back, naming the rows, and enforcement is restored', async () => {
    const m = migrations({
      '0001_init.sql': init('cascade'),
      '0002_rebuild.sql': rebuild('-- migrate:up foreign_keys:off', 'where id = 2'),
    })
    await m.up(1)
    const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(/2 foreign-key violation\(s\): books rowid 1[01] -> authors/)
    expect(err.detail).toMatchObject({ version: 2, violations: [{ table: 'books', parent: 'authors' }, { table: 'books' }] })
    // rolled back: the old table and its rows, not recorded
    expect((await pool.query('select count(*) as n from authors')).rows[0]).toEqual({ n: 2 })
    expect(await books()).toEqual({ n: 3, with_author: 3 })
    expect((await m.status()).map((s) => s.state)).toEqual(['applied', 'pending'])
    expect(await enforced()).toEqual({ foreign_keys: 1 })
  })

  it('refuses PRAGMA foreign_keys inside a migration, naming foreign_keys:off (no silent no-op)', async () => {
    const m = migrations({
      '0001_init.sql': init('cascade'),
      '0002_rebuild.sql': rebuild('-- migrate:up\nPRAGMA foreign_keys = OFF;\nPRAGMA defer_foreign_keys = ON;'),
    })
    const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { source: '0002_rebuild.sql', line: 2, option: 'foreign_keys:off' } })
    expect(err.message).toMatch(/foreign_keys:off/)
    // refused before anything ran
    expect((await pool.query("select name from sqlite_master where type = 'table'")).rows).toEqual([])
  })

  it('refuses PRAGMA foreign_keys run by a function migration, and rolls it back', async () => {
    const m = new Migrator(pool, {
      migrations: [
        { version: 1, name: 'init', up: init('cascade').replace('-- migrate:up\n', '') },
        {
          version: 2,
          name: 'rebuild',
          up: async (conn) => {
            await conn.query('create table marker (id integer)')
            await conn.query('PRAGMA foreign_keys = OFF')
            await conn.query('drop table authors')
          },
        },
      ],
    })
    const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'MIGRATION_FAILED', cause: { code: 'CONFIGURATION', detail: { option: 'foreign_keys:off' } } })
    expect(await books()).toEqual({ n: 3, with_author: 3 })
    expect((await pool.query("select name from sqlite_master where name = 'marker'")).rows).toEqual([])
  })

  it.each([
    'PRAGMA "foreign_keys" = OFF',
    'PRAGMA `foreign_keys` = OFF',
    "PRAGMA 'foreign_keys' = OFF",
    'PRAGMA "main"."foreign_keys" = OFF',
    'PRAGMA [main].[foreign_keys] = OFF',
    'PRAGMA/**/foreign_keys = OFF',
    'PRAGMA main/**/.foreign_keys = OFF',
    'PRAGMA -- x\nforeign_keys = OFF',
    'PRAGMA main./* c */foreign_keys=0',
    'pragma "main" . "foreign_keys" = false',
  ])('refuses a quoted or commented spelling in a file before anything runs: %s', async (pragma) => {
    const m = migrations({ '0001_init.sql': init('cascade'), '0002_rebuild.sql': rebuild(`-- migrate:up\n${pragma};`) })
    const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { source: '0002_rebuild.sql', line: 2, option: 'foreign_keys:off' } })
    expect((await pool.query("select name from sqlite_master where type = 'table'")).rows).toEqual([])
  })

  it.each([
    [
      'a trigger body naming a column begin',
      'alter table books add column begin integer;\ncreate trigger t after insert on books begin update books set begin = 1 where id = new.id; end;\nPRAGMA foreign_keys = OFF;',
    ],
    ['a [bracketed] name holding a quote', "alter table books add column [it's] text;\nPRAGMA foreign_keys = OFF;"],
    ['an EXPLAIN', 'EXPLAIN PRAGMA foreign_keys = OFF;'],
  ])('refuses PRAGMA foreign_keys hidden after %s, before anything runs', async (_label, before) => {
    const m = migrations({ '0001_init.sql': init('cascade'), '0002_rebuild.sql': rebuild(`-- migrate:up\n${before}`) })
    const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { source: '0002_rebuild.sql', option: 'foreign_keys:off' } })
    expect((await pool.query("select name from sqlite_master where type = 'table'")).rows).toEqual([])
  })

  it.each(['transaction', 'stream'] as const)(
    'refuses PRAGMA foreign_keys sent through conn.%s in a function migration: rolled back, no child deleted',
    async (path) => {
      const m = new Migrator(pool, {
        migrations: [
          { version: 1, name: 'init', up: init('cascade').replace('-- migrate:up\n', '') },
          {
            version: 2,
            name: 'rebuild',
            up: async (conn) => {
              if (path === 'transaction') await conn.transaction((tx) => tx.query('PRAGMA foreign_keys = OFF'))
              else for await (const row of conn.stream('PRAGMA "foreign_keys" = OFF')) void row
              for (const s of rebuild('')
                .split(';\n')
                .filter((x) => x.trim() !== ''))
                await conn.query(s)
            },
          },
        ],
      })
      const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
      expect(err).toMatchObject({ code: 'MIGRATION_FAILED', cause: { code: 'CONFIGURATION' } })
      expect(await books()).toEqual({ n: 3, with_author: 3 })
      expect((await m.status()).map((s) => s.state)).toEqual(['applied', 'pending'])
    },
  )

  it('refuses an unknown foreign_keys value in a file and a non-boolean foreignKeys in code', async () => {
    const bad = migrations({ '0001_init.sql': '-- migrate:up foreign_keys:maybe\ncreate table t (id integer);\n' })
    await expect(bad.load()).rejects.toMatchObject({ code: 'CONFIGURATION', detail: { line: 1 } })
    const code = () => new Migrator(pool, { migrations: [{ version: 1, name: 'x', up: 'select 1', foreignKeys: 'no' as never }] })
    expect(code).toThrow(/migrations\[0\]\.foreignKeys/)
  })
})
