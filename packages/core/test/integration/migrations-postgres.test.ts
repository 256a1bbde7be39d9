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
