import { Migrator, PoolFactory } from '@dbpool/core'
import { createTestDatabase } from '@dbpool/testing'
import { defineMigrationSuite } from './migrations-suite'

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
  it('runs migrations under the session lock_timeout and statement_timeout (lifted only while waiting for the lock)', async () => {
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
