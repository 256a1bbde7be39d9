import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  DatabaseError,
  DatabasePool,
  isOutcomeUnknown,
  Migrator,
  migrationChecksum,
  type MigrationDefinition,
  type MigrationEvent,
} from '@dbpool/core'
import type { FakeConnection } from '@dbpool/core/testing'
import { FakeMigrationDatabase, MigrationFakeManager } from './migrations-fake'

const pools: DatabasePool<FakeConnection>[] = []
let dir: string

function setup(
  backend: 'postgres' | 'sqlite' = 'postgres',
  db = new FakeMigrationDatabase(),
): { manager: MigrationFakeManager; pool: DatabasePool<FakeConnection>; db: FakeMigrationDatabase } {
  const manager = new MigrationFakeManager(db, backend)
  const pool = new DatabasePool(manager, { min: 0, max: 2 })
  pools.push(pool)
  return { manager, pool, db }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dbpool-migrator-'))
})

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 1_000 })))
  rmSync(dir, { recursive: true, force: true })
})

const write = (name: string, text: string): void => writeFileSync(join(dir, name), text)

function writeStandardFiles(): void {
  write(
    '0001_create_accounts.sql',
    '-- migrate:up\ncreate table accounts (id int);\ncreate index accounts_id on accounts (id);\n-- migrate:down\ndrop table accounts;\n',
  )
  write('0002_create_entries.up.sql', 'create table entries (id int);\n')
  write('0002_create_entries.down.sql', 'drop table entries;\n')
  write('0003_seed.sql', '-- migrate:up\ninsert into accounts values (1);\n-- migrate:down\ndelete from accounts;\n')
}

async function failure(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

describe('Migrator.up', () => {
  it('applies every pending migration in order, each in its own locked transaction, and records it', async () => {
    writeStandardFiles()
    const { pool, db, manager } = setup()
    const events: MigrationEvent[] = []
    const migrator = new Migrator(pool, { directory: dir, onEvent: (e) => events.push(e) })
    const result = await migrator.up()
    expect(result.direction).toBe('up')
    expect(result.migrations.map((m) => [m.version, m.name])).toEqual([
      [1, 'create_accounts'],
      [2, 'create_entries'],
      [3, 'seed'],
    ])
    expect(result.current).toBe(3)
    expect(result.skipped).toEqual([])
    expect(db.committed).toEqual([
      'create table accounts (id int)',
      'create index accounts_id on accounts (id)',
      'create table entries (id int)',
      'insert into accounts values (1)',
    ])
    const row = db.rows.get(1)
    expect(row?.checksum).toBe(migrationChecksum('create table accounts (id int);\ncreate index accounts_id on accounts (id);'))
    expect(row?.name).toBe('create_accounts')
    expect(Number.isNaN(Date.parse(row?.applied_at ?? ''))).toBe(false)
    expect(row?.duration_ms).toBeGreaterThanOrEqual(0)
    expect(events.map((e) => `${e.type}:${e.version}`)).toEqual(['start:1', 'done:1', 'start:2', 'done:2', 'start:3', 'done:3'])
    // every migration: BEGIN, lock, re-read, statements, insert, COMMIT on one connection
    const statements = manager.connections.flatMap((c) => c.statements)
    const at = statements.indexOf('create table accounts (id int)')
    expect(statements.slice(at - 3, at + 4)).toEqual([
      'BEGIN ISOLATION LEVEL READ COMMITTED',
      'select pg_try_advisory_xact_lock($1::bigint) as k0, pg_try_advisory_xact_lock($2::bigint) as k1',
      'select version, name, checksum, applied_at, duration_ms from "public"."dbpool_migrations" order by version',
      'create table accounts (id int)',
      'create index accounts_id on accounts (id)',
      'insert into "public"."dbpool_migrations" (version, name, checksum, applied_at, duration_ms) values ($1, $2, $3, $4, $5)',
      'COMMIT',
    ])
  })

  it('is a no-op when everything is applied', async () => {
    writeStandardFiles()
    const { pool, db } = setup()
    const migrator = new Migrator(pool, { directory: dir })
    await migrator.up()
    const before = db.committed.length
    const again = await migrator.up()
    expect(again.migrations).toEqual([])
    expect(again.current).toBe(3)
    expect(db.committed.length).toBe(before)
  })

  it('stops at the target version', async () => {
    writeStandardFiles()
    const { pool, db } = setup()
    const migrator = new Migrator(pool, { directory: dir })
    const result = await migrator.up(2)
    expect(result.migrations.map((m) => m.version)).toEqual([1, 2])
    expect(result.current).toBe(2)
    expect([...db.rows.keys()]).toEqual([1, 2])
    expect((await migrator.up(0)).migrations).toEqual([])
    await expect(migrator.up(-1)).rejects.toThrow(/migrate up target -1/)
  })

  it('rolls back a failing migration and names the file, statement, line and cause', async () => {
    writeStandardFiles()
    write(
      '0004_broken.sql',
      "-- migrate:up\ncreate table ok_before (id int);\n\nalter table accounts add column password_hint text default 'password hunter2';\nselect 1;\n",
    )
    const { pool, db, manager } = setup()
    manager.queryFaults.push({
      match: /^alter table accounts/,
      fault: {
        kind: 'fail',
        error: new DatabaseError('SYNTAX_ERROR', 'syntax error at or near "alter"', { backend: 'postgres', sqlState: '42601' }),
      },
      fatal: false,
    })
    const migrator = new Migrator(pool, { directory: dir })
    const err = await failure(migrator.up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(/^migration 0004_broken.sql failed at statement 2 \(line 4\): alter table accounts add column/)
    expect(err.message).toMatch(
      /SYNTAX_ERROR: syntax error at or near "alter"; applied before it in this run \(committed and recorded, they stay\): 1, 2, 3$/,
    )
    expect(err.detail?.applied).toEqual([1, 2, 3])
    expect(err.sqlState).toBe('42601')
    expect(err.backend).toBe('postgres')
    expect(err.retryable).toBe(false)
    expect(err.detail).toMatchObject({
      version: 4,
      name: 'broken',
      source: '0004_broken.sql',
      statementIndex: 2,
      line: 4,
      causeCode: 'SYNTAX_ERROR',
      file: '0004_broken.sql',
    })
    expect(DatabaseError.is(err.cause, 'SYNTAX_ERROR')).toBe(true)
    // the earlier migrations stay; the failing one left nothing behind
    expect([...db.rows.keys()]).toEqual([1, 2, 3])
    expect(db.committed).not.toContain('create table ok_before (id int)')
    expect(pool.stats().used).toBe(0)
    const status = await migrator.status()
    expect(status.find((s) => s.version === 4)?.state).toBe('pending')
  })

  it('hides password literals in the failing statement preview', async () => {
    write('0001_user.sql', "create role app login password 'hunter2'")
    const { pool, manager } = setup()
    manager.queryFaults.push({
      match: /^create role/,
      fault: { kind: 'fail', error: new DatabaseError('QUERY_FAILED', 'permission denied') },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { directory: dir }).up())
    expect(err.message).toContain("password '[REDACTED]'")
    expect(err.message).not.toContain('hunter2')
    expect(JSON.stringify(err.detail)).not.toContain('hunter2')
  })

  it("hides every literal of the failing statement (dollar-quoted, E'', U&'', one holding \"--\"), comments read after literals", async () => {
    for (const [sql, shown] of [
      ['alter role app password $$Hunter2Secret$$', 'alter role app password $$[REDACTED]$$'],
      ['alter role app password $pw$Hunter2Secret$pw$', 'alter role app password $pw$[REDACTED]$pw$'],
      ["alter role app password E'Hunter2\\'Secret'", "alter role app password E'[REDACTED]'"],
      ["alter role app password U&'Hunter2Secret'", "alter role app password U&'[REDACTED]'"],
      ["alter role app password 'Hunter2--Secret'", "alter role app password '[REDACTED]'"],
      ["create table \"a--b\" (x text default 'Hunter2Secret') -- note 'x", 'create table "a--b" (x text default \'[REDACTED]\')'],
      // (closed: text ending inside a literal is refused before it runs, review r4 item 5)
      ["select /* c /* nested */ 'x' */ 'Hunter2Secret'", "select '[REDACTED]'"],
    ] as const) {
      write('0001_role.sql', sql)
      const { pool, manager } = setup()
      manager.queryFaults.push({
        match: /Hunter2/,
        fault: { kind: 'fail', error: new DatabaseError('QUERY_FAILED', 'permission denied') },
        fatal: false,
      })
      const err = await failure(new Migrator(pool, { directory: dir }).up())
      expect(err.detail?.statement).toBe(shown)
      expect(err.message + JSON.stringify(err.detail)).not.toContain('Hunter2')
      await pool.close()
    }
  })

  it('truncates a long failing statement to one line', async () => {
    write('0001_long.sql', `select\n${'x, '.repeat(200)}1`)
    const { pool, manager } = setup()
    manager.queryFaults.push({
      match: /^select\s+x,/,
      fault: { kind: 'fail', error: new DatabaseError('QUERY_FAILED', 'plain error') },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { directory: dir }).up())
    expect(err.message).toMatch(/failed at statement 1 \(line 1\): select x, x, .*\.\.\.: QUERY_FAILED: plain error$/)
    expect((err.detail?.statement as string).length).toBe(200)
  })

  it('reports a failing function migration and rolls it back', async () => {
    const { pool, db } = setup()
    const migrations: MigrationDefinition[] = [
      { version: 1, name: 'ok', up: 'create table a (id int)' },
      {
        version: 2,
        name: 'fn',
        up: async (conn) => {
          await conn.query('create table b (id int)')
          throw new Error('data check failed')
        },
      },
    ]
    const err = await failure(new Migrator(pool, { migrations }).up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toBe(
      'migration 2 (fn) failed in its function: data check failed; applied before it in this run (committed and recorded, they stay): 1',
    )
    expect(db.committed).toEqual(['create table a (id int)'])
    expect([...db.rows.keys()]).toEqual([1])
  })

  it('runs function migrations inside the transaction with the connection', async () => {
    const { pool, db } = setup()
    const seen: string[] = []
    await new Migrator(pool, {
      migrations: [
        {
          version: 1,
          name: 'fn',
          up: async (conn) => {
            seen.push(conn.backend)
            await conn.query('insert into t values (1)')
          },
        },
      ],
    }).up()
    expect(seen).toEqual(['postgres'])
    expect(db.committed).toEqual(['insert into t values (1)'])
    expect(db.rows.get(1)?.checksum).toBe('')
  })

  it('refuses to run when an applied file changed (checksum drift), and status says changed', async () => {
    writeStandardFiles()
    const { pool, db } = setup()
    const migrator = new Migrator(pool, { directory: dir })
    await migrator.up(2)
    write('0001_create_accounts.sql', '-- migrate:up\ncreate table accounts (id bigint);\n-- migrate:down\ndrop table accounts;\n')
    const err = await failure(migrator.up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(
      /^migration 0001_create_accounts.sql was changed after it was applied \(checksum [0-9a-f]{12}… recorded, [0-9a-f]{12}… now\): restore the file/,
    )
    expect(err.detail).toMatchObject({ version: 1, appliedChecksum: db.rows.get(1)?.checksum })
    expect([...db.rows.keys()]).toEqual([1, 2])
    const status = await migrator.status()
    expect(status.map((s) => [s.version, s.state])).toEqual([
      [1, 'changed'],
      [2, 'applied'],
      [3, 'pending'],
    ])
    // a changed down section alone is not drift: only the up SQL is checksummed
    write(
      '0001_create_accounts.sql',
      '-- migrate:up\ncreate table accounts (id int);\ncreate index accounts_id on accounts (id);\n-- migrate:down\ndrop table if exists accounts;\n',
    )
    expect((await migrator.up()).migrations.map((m) => m.version)).toEqual([3])
  })

  it('refuses a pending migration older than the newest applied one', async () => {
    const { pool, db } = setup()
    await new Migrator(pool, {
      migrations: [
        { version: 1, name: 'a', up: 'select 1' },
        { version: 5, name: 'late', up: 'select 5' },
      ],
    }).up()
    const migrator = new Migrator(pool, {
      migrations: [
        { version: 1, name: 'a', up: 'select 1' },
        { version: 4, name: 'older', up: 'select 4' },
        { version: 5, name: 'late', up: 'select 5' },
      ],
    })
    const err = await failure(migrator.up())
    expect(err.message).toBe('migration code (version 4) is pending but version 5 is already applied: give it a version above 5')
    expect([...db.rows.keys()]).toEqual([1, 5])
  })

  it('a COMMIT after a function or trigger with a parameter or column named begin is refused, not glued onto it (both backends)', async () => {
    const postgres = `create function my_in_range(begin int, finish int, x int) returns boolean language sql as 'select x between begin and finish';
create table z1 (x int);
commit;
create table z2 (x int)`
    const pg = setup('postgres')
    const err = await failure(new Migrator(pg.pool, { migrations: [{ version: 1, name: 'x', up: postgres }] }).up())
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toBe('migration code line 3: remove "COMMIT": each migration already runs in its own transaction')
    expect(pg.db.committed).toEqual([])
    const trigger = `create trigger t after update of begin on x for each row execute function f();
commit;
create table z2 (x int)`
    await expect(new Migrator(pg.pool, { migrations: [{ version: 1, name: 'x', up: trigger }] }).load()).rejects.toThrow(
      /line 2: remove "COMMIT"/,
    )
    const sqlite = `create table t (begin int, finish int);
create trigger tr after update of begin on t when new.begin > 0 begin update t set begin = 0 where finish = new.begin; end;
commit;
create table z2 (x int)`
    const lite = setup('sqlite')
    await expect(new Migrator(lite.pool, { migrations: [{ version: 1, name: 'x', up: sqlite }] }).load()).rejects.toThrow(
      /line 3: remove "COMMIT"/,
    )
  })

  it('rejects BEGIN/COMMIT inside a migration before running anything', async () => {
    write('0001_tx.sql', 'begin;\ncreate table a (id int);\ncommit;')
    const { pool, db } = setup()
    const err = await failure(new Migrator(pool, { directory: dir }).up())
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toBe('migration 0001_tx.sql line 1: remove "BEGIN": each migration already runs in its own transaction')
    expect(db.tableExists).toBe(false)
    for (const text of ['COMMIT', 'end transaction', 'rollback', 'start transaction read write', 'abort']) {
      const migrator = new Migrator(pool, { migrations: [{ version: 1, name: 'x', up: `select 1; ${text}` }] })
      await expect(migrator.load()).rejects.toThrow(/each migration already runs in its own transaction/)
    }
    // ROLLBACK TO SAVEPOINT and BEGIN ATOMIC ... END function bodies are fine
    const ok = new Migrator(pool, {
      migrations: [
        {
          version: 1,
          name: 'x',
          up: 'savepoint a; rollback to savepoint a; create function f() returns int language sql begin atomic select 1; end',
        },
      ],
    })
    expect(await ok.load()).toHaveLength(1)
  })

  it('rejects a migration with no statement', async () => {
    write('0001_empty.sql', '-- migrate:up\n-- nothing here\n-- migrate:down\ndrop table x;')
    const { pool } = setup()
    await expect(new Migrator(pool, { directory: dir }).up()).rejects.toThrow(
      'migration 0001_empty.sql has an empty section (no SQL statement)',
    )
  })

  it('ignores a throwing event listener', async () => {
    const { pool } = setup()
    const migrator = new Migrator(pool, {
      migrations: [{ version: 1, name: 'a', up: 'select 1' }],
      onEvent: () => {
        throw new Error('listener bug')
      },
    })
    expect((await migrator.up()).migrations).toHaveLength(1)
  })

  it('reports a failed COMMIT as MIGRATION_FAILED naming the migration', async () => {
    const { pool, manager, db } = setup()
    const migrator = new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1' }] })
    await migrator.status()
    await pool.withConnection(async () => undefined)
    db.tableExists = true
    manager.queryFaults.push({
      match: /^COMMIT$/,
      fault: {
        kind: 'fail',
        error: new DatabaseError('FOREIGN_KEY_VIOLATION', 'deferred constraint', { backend: 'postgres', sqlState: '23503' }),
      },
      fatal: false,
    })
    const err = await failure(migrator.up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toBe('migration code failed to commit: FOREIGN_KEY_VIOLATION: deferred constraint')
    expect(err.sqlState).toBe('23503')
    expect(err.detail).toMatchObject({ version: 1, name: 'a' })
  })

  it('a COMMIT whose connection was lost in flight (outcome unknown): MIGRATION_FAILED keeps detail.outcome unknown', async () => {
    const { pool, manager, db } = setup()
    const migrator = new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1' }] })
    await migrator.status()
    await pool.withConnection(async () => undefined)
    db.tableExists = true
    manager.queryFaults.push({
      match: /^COMMIT$/,
      fault: {
        kind: 'fail',
        error: new DatabaseError('CONNECTION_LOST', 'connection lost (it may have committed)', {
          backend: 'postgres',
          retryable: false,
          detail: { outcome: 'unknown' },
        }),
      },
      fatal: false,
    })
    const err = await failure(migrator.up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.detail).toMatchObject({ version: 1, causeCode: 'CONNECTION_LOST' })
  })

  it('reports a failing table creation with its own cause', async () => {
    const { pool, manager } = setup()
    manager.queryFaults.push({
      match: /^create table if not exists/,
      fault: { kind: 'fail', error: new DatabaseError('QUERY_FAILED', 'permission denied for schema public') },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up())
    expect(err.code).toBe('QUERY_FAILED')
    expect(err.message).toContain('permission denied')
  })

  it('creates a schema-qualified table on Postgres', async () => {
    const { pool, manager } = setup()
    await new Migrator(pool, { table: 'ops.schema_history', migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up()
    const statements = manager.connections.flatMap((c) => c.statements)
    expect(statements).toContain(
      'create table if not exists "ops"."schema_history" (version bigint primary key, name text not null, checksum text not null, applied_at timestamptz not null, duration_ms integer not null)',
    )
  })
})

describe('Migrator.down', () => {
  it('reverts the last applied migration by default, then more steps, newest first', async () => {
    writeStandardFiles()
    const { pool, db } = setup()
    const events: MigrationEvent[] = []
    const migrator = new Migrator(pool, { directory: dir, onEvent: (e) => events.push(e) })
    await migrator.up()
    db.committed = []
    events.length = 0
    const one = await migrator.down()
    expect(one.direction).toBe('down')
    expect(one.migrations.map((m) => m.version)).toEqual([3])
    expect(one.current).toBe(2)
    expect(db.committed).toEqual(['delete from accounts'])
    expect(events.map((e) => `${e.type}:${e.direction}:${e.version}`)).toEqual(['start:down:3', 'done:down:3'])
    const rest = await migrator.down(Infinity)
    expect(rest.migrations.map((m) => m.version)).toEqual([2, 1])
    expect(rest.current).toBeNull()
    expect(db.committed).toEqual(['delete from accounts', 'drop table entries', 'drop table accounts'])
    expect(db.rows.size).toBe(0)
    expect((await migrator.down(5)).migrations).toEqual([])
  })

  it('refuses to revert a migration without a down section, before reverting anything', async () => {
    const { pool, db } = setup()
    const migrator = new Migrator(pool, {
      migrations: [
        { version: 1, name: 'one_way', up: 'create table a (id int)' },
        { version: 2, name: 'two', up: 'create table b (id int)', down: 'drop table b' },
      ],
    })
    await migrator.up()
    const err = await failure(migrator.down(2))
    expect(err.message).toBe('cannot revert code: it has no down section')
    expect([...db.rows.keys()]).toEqual([1, 2])
  })

  it('refuses to revert a migration it does not know', async () => {
    const { pool, db } = setup()
    await new Migrator(pool, {
      migrations: [
        { version: 1, name: 'a', up: 'select 1', down: 'select 2' },
        { version: 2, name: 'b', up: 'select 3', down: 'select 4' },
      ],
    }).up()
    const older = new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1', down: 'select 2' }] })
    const err = await failure(older.down())
    expect(err.message).toBe('cannot revert version 2 (b): it is applied but not among the loaded migrations')
    expect(db.rows.size).toBe(2)
    // the older code can still run up (a rolling deploy): nothing to do, no error
    expect((await older.up()).migrations).toEqual([])
    expect((await older.status()).map((s) => [s.version, s.state])).toEqual([
      [1, 'applied'],
      [2, 'missing'],
    ])
  })

  it('refuses to revert a changed migration', async () => {
    const { pool } = setup()
    await new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1', down: 'select 2' }] }).up()
    const err = await failure(new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 10', down: 'select 2' }] }).down())
    expect(err.message).toMatch(/^migration code was changed after it was applied/)
  })

  it('returns an empty result when the table does not exist yet, without creating it', async () => {
    const { pool, db } = setup()
    const result = await new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1', down: 'select 2' }] }).down()
    expect(result).toEqual({ direction: 'down', migrations: [], skipped: [], current: null })
    expect(db.tableExists).toBe(false)
  })

  it('validates steps', async () => {
    const { pool } = setup()
    const migrator = new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1' }] })
    await expect(migrator.down(0)).rejects.toThrow(/migrate down steps 0/)
    await expect(migrator.down(1.5)).rejects.toThrow(/migrate down steps 1.5/)
  })
})

// review r4 item 5: a commented-out marker does not cut the up section short, and a section that ends
// inside a comment or literal is refused, not run without what the comment swallowed
describe.each(['postgres', 'sqlite'] as const)('Migrator on %s: comments and literals around markers', (backend) => {
  it('runs the whole up section when a -- migrate:down line sits inside a /* */ comment', async () => {
    write(
      '0001_a.sql',
      '-- migrate:up\ncreate table a (x int);\n/* old rollback, kept for reference:\n-- migrate:down\ndrop table a;\n*/\ncreate table b (x int);\n',
    )
    const { pool, db } = setup(backend)
    const [loaded] = await new Migrator(pool, { directory: dir }).load()
    expect(loaded?.down).toBeUndefined()
    await new Migrator(pool, { directory: dir }).up()
    expect(db.committed.map((s) => s.replace(/\s+/g, ' '))).toEqual([
      'create table a (x int)',
      '/* old rollback, kept for reference: -- migrate:down drop table a; */ create table b (x int)',
    ])
  })

  it.each([
    [
      '-- migrate:up\ncreate table a (x int);\n/* unterminated\n-- migrate:down\ndrop table a;\n',
      /0001_a.sql line 3: unterminated block comment/,
    ],
    ["-- migrate:up\ninsert into t values ('abc);\n", /0001_a.sql line 2: unterminated string literal/],
    ['-- migrate:up\nselect 1;\n-- migrate:down\nselect "x;\n', /0001_a.sql line 4: unterminated quoted identifier/],
  ])('refuses a section that ends inside a comment or literal (CONFIGURATION naming file and line): %j', async (text, pattern) => {
    write('0001_a.sql', text)
    const { pool, db } = setup(backend)
    const err = await failure(new Migrator(pool, { directory: dir }).up())
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(pattern)
    expect(err.detail).toMatchObject({ source: '0001_a.sql', reason: 'unterminated' })
    expect(db.committed).toEqual([])
  })

  // review r4 item 4: a sectioned file runs its text as written (a CRLF inside a literal stays CRLF),
  // as a marker-less file and a .up.sql file do; the checksum, of normalised line endings, is unchanged
  it('runs CR and CRLF inside literals as written in every layout, with the checksum of the normalised text', async () => {
    const statement = "insert into templates values ('Hello,\r\nyour order shipped.\r\n', 'a\rb')"
    write('0001_sections.sql', `-- migrate:up\r\n${statement};\r\n-- migrate:down\r\ndelete from templates;\r\n`)
    write('0002_plain.sql', `${statement};\r\n`)
    write('0003_pair.up.sql', `${statement};\r\n`)
    const { pool, db } = setup(backend)
    const loaded = await new Migrator(pool, { directory: dir }).load()
    await new Migrator(pool, { directory: dir }).up()
    expect(db.committed).toEqual([statement, statement, statement])
    const normalised = migrationChecksum(statement.replace(/\r\n?/g, '\n') + ';')
    expect(loaded.map((m) => m.checksum)).toEqual([normalised, normalised, normalised])
  })

  it('keeps a lone CR where it is: SQLite reads "-- note\\rdelete ..." as one comment in every layout', async () => {
    write('0001_sections.sql', '-- migrate:up\ncreate table t1 (x int);\n-- disabled:\rdelete from t1;\n')
    const { pool, db } = setup(backend)
    await new Migrator(pool, { directory: dir }).up()
    // Postgres ends a -- comment at \r, SQLite does not: what runs is what the engine reads in the file
    expect(db.committed).toEqual(
      backend === 'sqlite' ? ['create table t1 (x int)'] : ['create table t1 (x int)', '-- disabled:\rdelete from t1'],
    )
  })

  it('refuses unterminated text in a code migration too', async () => {
    const { pool } = setup(backend)
    const err = await failure(new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1; /* x' }] }).load())
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(/migration code line 1: unterminated block comment/)
    // the message names the construct, never the text inside it
    const literal = await failure(new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: "select 'Hunter2Secret" }] }).load())
    expect(literal.message).toMatch(/unterminated string literal/)
    expect(literal.message + JSON.stringify(literal.detail)).not.toContain('Hunter2')
  })
})

describe('Migrator.status and load', () => {
  it('lists pending migrations without creating the table', async () => {
    writeStandardFiles()
    const { pool, db } = setup()
    const status = await new Migrator(pool, { directory: dir }).status()
    expect(status.map((s) => [s.version, s.name, s.state, s.source, s.reversible])).toEqual([
      [1, 'create_accounts', 'pending', '0001_create_accounts.sql', true],
      [2, 'create_entries', 'pending', '0002_create_entries.up.sql', true],
      [3, 'seed', 'pending', '0003_seed.sql', true],
    ])
    expect(db.tableExists).toBe(false)
  })

  it('reports applied_at as a Date and the duration', async () => {
    writeStandardFiles()
    const { pool } = setup('sqlite')
    const migrator = new Migrator(pool, { directory: dir })
    await migrator.up(1)
    const [first] = await migrator.status()
    expect(first?.state).toBe('applied')
    expect(first?.appliedAt).toBeInstanceOf(Date)
    expect(typeof first?.durationMs).toBe('number')
    expect(first?.appliedChecksum).toBe(first?.checksum)
  })

  it('load() returns the migrations without their statements', async () => {
    writeStandardFiles()
    const { pool } = setup()
    const loaded = await new Migrator(pool, { directory: dir }).load()
    expect(loaded.map((m) => Object.keys(m).sort())).toEqual(Array(3).fill(['checksum', 'down', 'name', 'source', 'up', 'version']))
  })
})

/** The loser of a race found some migrations applied after waiting for the lock, each at most once. */
function expectSkippedAfterWaiting(skipped: number[]): void {
  expect(skipped.length).toBeGreaterThan(0)
  expect(skipped.every((v) => [1, 2, 3].includes(v))).toBe(true)
  expect(new Set(skipped).size).toBe(skipped.length)
}

describe('Migrator concurrency', () => {
  it.each(['postgres', 'sqlite'] as const)('%s: two migrators racing apply each migration exactly once', async (backend) => {
    writeStandardFiles()
    const db = new FakeMigrationDatabase()
    db.tableExists = true // both plan the same three migrations, so one waits for the other's lock
    const a = setup(backend, db)
    const b = setup(backend, db)
    a.manager.statementDelayMs = 15
    b.manager.statementDelayMs = 15
    const [ra, rb] = await Promise.all([new Migrator(a.pool, { directory: dir }).up(), new Migrator(b.pool, { directory: dir }).up()])
    expect(db.committed).toEqual([
      'create table accounts (id int)',
      'create index accounts_id on accounts (id)',
      'create table entries (id int)',
      'insert into accounts values (1)',
    ])
    const applied = [...ra.migrations, ...rb.migrations].map((m) => m.version).sort()
    expect(applied).toEqual([1, 2, 3])
    expectSkippedAfterWaiting([...ra.skipped, ...rb.skipped])
    expect(db.contended).toBeGreaterThan(0)
    expect(ra.current).toBe(3)
    expect(rb.current).toBe(3)
  })

  it.each(['postgres', 'sqlite'] as const)(
    '%s: gives up with MIGRATION_FAILED when the lock stays taken past lockTimeoutMs',
    async (backend) => {
      const { pool, db } = setup(backend)
      db.tableExists = true
      db.lockHolder = { id: -1 } as FakeConnection
      const started = Date.now()
      const err = await failure(new Migrator(pool, { lockTimeoutMs: 120, migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up())
      expect(err.code).toBe('MIGRATION_FAILED')
      expect(err.message).toBe(
        'timed out after 120 ms waiting for the migration lock: another process is migrating this database; retry when it is done',
      )
      expect(Date.now() - started).toBeGreaterThanOrEqual(110)
      expect(db.contended).toBeGreaterThan(backend === 'sqlite' ? 2 : 0)
      expect(pool.stats().used).toBe(0)
    },
  )

  it('postgres: lockTimeoutMs 0 tries the lock once', async () => {
    const { pool, db, manager } = setup('postgres')
    db.tableExists = true
    db.lockHolder = { id: -1 } as FakeConnection
    const err = await failure(new Migrator(pool, { lockTimeoutMs: 0, migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up())
    expect(err.message).toMatch(/^timed out after 0 ms waiting for the migration lock/)
    expect(manager.connections.flatMap((c) => c.statements).filter((t) => /pg_try_advisory_xact_lock/.test(t))).toHaveLength(1)
    db.lockHolder = undefined
    expect(
      (await new Migrator(pool, { lockTimeoutMs: 0, migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up()).migrations,
    ).toHaveLength(1)
  })

  it.each(['postgres', 'sqlite'] as const)(
    '%s: keeps waiting past lockTimeoutMs while the other process makes progress',
    async (backend) => {
      const { pool, db } = setup(backend)
      db.tableExists = true
      db.lockHolder = { id: -1 } as FakeConnection
      // another process applies a migration every 40 ms for 900 ms (three times lockTimeoutMs), then lets go
      let version = 100
      const progress = setInterval(() => {
        version++
        db.rows.set(version, { version, name: 'other', checksum: '', applied_at: new Date().toISOString(), duration_ms: 1 })
      }, 40)
      setTimeout(() => {
        clearInterval(progress)
        db.lockHolder = undefined
      }, 900)
      const started = Date.now()
      const result = await new Migrator(pool, { lockTimeoutMs: 300, migrations: [{ version: 1000, name: 'mine', up: 'select 1' }] }).up()
      expect(Date.now() - started).toBeGreaterThanOrEqual(850)
      expect(result.migrations.map((m) => m.version)).toEqual([1000])
    },
  )

  it('sqlite: a non-BUSY error on BEGIN IMMEDIATE is thrown at once', async () => {
    const { pool, manager, db } = setup('sqlite')
    db.tableExists = true
    manager.queryFaults.push({
      match: /^BEGIN IMMEDIATE/,
      fault: { kind: 'fail', error: new DatabaseError('READ_ONLY', 'attempt to write a readonly database') },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up())
    expect(err.code).toBe('READ_ONLY')
  })

  it('postgres: a failing lock query rolls back and is thrown', async () => {
    const { pool, manager, db } = setup('postgres')
    db.tableExists = true
    manager.queryFaults.push({
      match: /pg_try_advisory_xact_lock/,
      fault: { kind: 'fail', error: new DatabaseError('QUERY_FAILED', 'function does not exist') },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'select 1' }] }).up())
    expect(err.message).toBe('function does not exist')
    const statements = manager.connections.flatMap((c) => c.statements)
    expect(statements[statements.length - 1]).toBe('ROLLBACK')
  })
})

describe('Migrator: transaction:false (Postgres)', () => {
  const definitions = (second: string): MigrationDefinition[] => [
    { version: 1, name: 'table', up: 'create table a (x int)' },
    { version: 2, name: 'index', up: second, down: 'drop index concurrently a_x', transaction: false },
    { version: 3, name: 'seed', up: 'insert into a values (1)', down: 'delete from a' },
  ]

  it('runs each statement on its own, outside a transaction, holding the session lock, and records the migration', async () => {
    const { pool, db, manager } = setup('postgres')
    const result = await new Migrator(pool, { migrations: definitions('create index concurrently a_x on a (x); analyze a') }).up()
    expect(result.migrations.map((m) => m.version)).toEqual([1, 2, 3])
    expect(db.committed).toEqual([
      'create table a (x int)',
      'create index concurrently a_x on a (x)',
      'analyze a',
      'insert into a values (1)',
    ])
    const statements = manager.connections.flatMap((c) => c.statements)
    const at = statements.indexOf('create index concurrently a_x on a (x)')
    expect(statements.slice(at - 2, at + 4)).toEqual([
      'select pg_try_advisory_lock($1::bigint) as k0, pg_try_advisory_lock($2::bigint) as k1',
      'select version, name, checksum, applied_at, duration_ms from "public"."dbpool_migrations" order by version',
      'create index concurrently a_x on a (x)',
      'analyze a',
      'insert into "public"."dbpool_migrations" (version, name, checksum, applied_at, duration_ms) values ($1, $2, $3, $4, $5)',
      'select pg_advisory_unlock($1::bigint) as k0, pg_advisory_unlock($2::bigint) as k1',
    ])
    expect(db.sessionLockHolder).toBeUndefined()
    expect([...db.rows.keys()]).toEqual([1, 2, 3])
    // down runs outside a transaction too
    const reverted = await new Migrator(pool, { migrations: definitions('create index concurrently a_x on a (x); analyze a') }).down(2)
    expect(reverted.migrations.map((m) => m.version)).toEqual([3, 2])
    expect(db.committed[db.committed.length - 1]).toBe('drop index concurrently a_x')
    expect(db.sessionLockHolder).toBeUndefined()
  })

  it('a failing statement: MIGRATION_FAILED says the earlier statements stay; nothing recorded; the lock is released', async () => {
    const { pool, db, manager } = setup('postgres')
    manager.queryFaults.push({
      match: /^analyze a$/,
      fault: {
        kind: 'fail',
        error: new DatabaseError('QUERY_FAILED', 'relation "a" does not exist', { backend: 'postgres', sqlState: '42P01' }),
      },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { migrations: definitions('create index concurrently a_x on a (x); analyze a') }).up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(
      /^migration code failed at statement 2 \(line 1\): analyze a: QUERY_FAILED: relation "a" does not exist \(it runs outside a transaction/,
    )
    expect(err.message).toMatch(/statements before the failing one took effect and were not undone/)
    expect(err.sqlState).toBe('42P01')
    expect(err.detail).toMatchObject({ version: 2, statementIndex: 2, transaction: false })
    expect(DatabaseError.is(err.cause)).toBe(true)
    expect(db.committed).toEqual(['create table a (x int)', 'create index concurrently a_x on a (x)'])
    expect([...db.rows.keys()]).toEqual([1])
    expect(db.sessionLockHolder).toBeUndefined()
    expect(pool.stats().used).toBe(0)
  })

  it('a statement lost in flight (outcome unknown): MIGRATION_FAILED says it may itself have taken effect, detail.outcome unknown', async () => {
    const { pool, manager } = setup('postgres')
    manager.queryFaults.push({
      match: /^analyze a$/,
      fault: {
        kind: 'fail',
        error: new DatabaseError('CONNECTION_LOST', 'connection lost (it may have committed)', {
          backend: 'postgres',
          retryable: false,
          detail: { outcome: 'unknown' },
        }),
      },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { migrations: definitions('create index concurrently a_x on a (x); analyze a') }).up())
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(/the failing statement itself may have taken effect too/)
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.detail).toMatchObject({ version: 2, statementIndex: 2, transaction: false })
  })

  it('a statement refused by the server: no outcome', async () => {
    const { pool, manager } = setup('postgres')
    manager.queryFaults.push({
      match: /^analyze a$/,
      fault: { kind: 'fail', error: new DatabaseError('QUERY_FAILED', 'no', { backend: 'postgres', sqlState: '42P01' }) },
      fatal: false,
    })
    const err = await failure(new Migrator(pool, { migrations: definitions('create index concurrently a_x on a (x); analyze a') }).up())
    expect(isOutcomeUnknown(err)).toBe(false)
    expect(err.message).not.toMatch(/itself may have taken effect/)
  })

  it('waits while another process holds either lock, then runs', async () => {
    const { pool, db } = setup('postgres')
    db.tableExists = true
    db.lockHolder = { id: -1 } as FakeConnection
    setTimeout(() => (db.lockHolder = undefined), 80)
    const result = await new Migrator(pool, { migrations: definitions('create index concurrently a_x on a (x)').slice(1, 2) }).up()
    expect(result.migrations.map((m) => m.version)).toEqual([2])
    expect(db.contended).toBeGreaterThan(0)
  })

  it('two migrators racing over a set with a transaction:false migration apply each exactly once', async () => {
    const db = new FakeMigrationDatabase()
    db.tableExists = true
    const a = setup('postgres', db)
    const b = setup('postgres', db)
    a.manager.statementDelayMs = 15
    b.manager.statementDelayMs = 15
    const set = definitions('create index concurrently a_x on a (x); analyze a')
    const [ra, rb] = await Promise.all([new Migrator(a.pool, { migrations: set }).up(), new Migrator(b.pool, { migrations: set }).up()])
    expect(db.committed).toEqual([
      'create table a (x int)',
      'create index concurrently a_x on a (x)',
      'analyze a',
      'insert into a values (1)',
    ])
    expect([...ra.migrations, ...rb.migrations].map((m) => m.version).sort()).toEqual([1, 2, 3])
    expectSkippedAfterWaiting([...ra.skipped, ...rb.skipped])
    expect(db.contended).toBeGreaterThan(0)
  })

  it('SQLite refuses it with CONFIGURATION before anything runs', async () => {
    write('0001_vacuum.sql', '-- migrate:up\ncreate table a (x int);\n-- migrate:down transaction:false\nvacuum;\n')
    const { pool, db } = setup('sqlite')
    const err = await failure(new Migrator(pool, { directory: dir }).up())
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(
      /^migration 0001_vacuum.sql asks to run outside a transaction \(transaction:false\), which only Postgres supports/,
    )
    expect(db.tableExists).toBe(false)
  })

  it('rejects a transaction option that is not a boolean', () => {
    expect(
      () => new Migrator(setup().pool, { migrations: [{ version: 1, name: 'a', up: 'select 1', transaction: 'no' as never }] }),
    ).toThrow(/migrations\[0\].transaction "no": must be true or false/)
  })
})

describe('Migrator options', () => {
  const pool = (): DatabasePool<FakeConnection> => setup().pool
  it.each([
    [{}, /give exactly one of directory/],
    [{ directory: '/x', migrations: [] }, /give exactly one of directory/],
    [{ directory: '' }, /migrations.directory "": must be a non-empty path/],
    [{ migrations: [], extra: 1 }, /migrations.extra 1: unknown option/],
    [{ migrations: [], table: 'bad name' }, /migrations.table "bad name"/],
    [{ migrations: [], table: 'a.b.c' }, /migrations.table "a.b.c"/],
    [{ migrations: [], table: 5 }, /migrations.table 5: must be a string/],
    [{ migrations: [], lockTimeoutMs: -1 }, /migrations.lockTimeoutMs -1/],
    [{ migrations: [], onEvent: 'x' }, /migrations.onEvent "x": must be a function/],
    [{ migrations: [{ version: 1, name: 'a', up: 7 }] }, /migrations\[0\].up 7/],
    [
      { migrations: [{ version: 2 ** 53 + 2, name: 'a', up: 'select 1' }] },
      /version 9007199254740994: must be an integer from 1 to 9007199254740991/,
    ],
    [undefined, /^invalid migrations undefined: give the options \{ directory \}/],
    // review r4 items 3 and 7: the constructor refuses them too, before any call
    [
      { migrations: [{ version: 1, name: 'a', up: 'select 1', foreign_keys: false }] },
      /migrations\[0\]\.foreign_keys \(boolean\): unknown key/,
    ],
    [
      // a hole at index 1, as `[a, , c]` leaves it
      { migrations: Object.assign([{ version: 1, name: 'a', up: 'select 1' }], { 2: { version: 3, name: 'c', up: 'select 3' } }) },
      /migrations\[1\].*a hole in the array/,
    ],
  ])('rejects %j', (options, pattern) => {
    expect(() => new Migrator(pool(), options as never)).toThrow(pattern)
  })

  it('rejects a schema-qualified table on SQLite and a non-pool', () => {
    expect(() => new Migrator(setup('sqlite').pool, { migrations: [], table: 'main.t' })).toThrow(/must be an identifier/)
    expect(() => new Migrator({} as never, { migrations: [] })).toThrow(/migrator pool .*must be a DatabasePool/)
  })
})
