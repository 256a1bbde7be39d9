import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineMigrationSuite } from './migrations-suite'

defineMigrationSuite({
  backend: 'sqlite',
  database: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-sqlite-'))
    return { url: `sqlite:${join(dir, 'app.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
  },
  // about 100 ms of work inside the migration's write transaction
  slowStatement: 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000) select count(*) from c',
  procedural:
    'create trigger accounts_audit after insert on accounts begin insert into audit (account_id, name) values (new.id, new.name); end;',
  tableExists: async (pool, name) =>
    (await pool.query('select name from sqlite_master where type = ? and name = ?', ['table', name])).rows.length > 0,
})
