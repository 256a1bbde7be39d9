import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Migrator, type MigrationDefinition } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'

// review r4 item 8: SQLite names are case-insensitive, so `table: 'DbPool_Migrations'` is the default
// table; status() and down() looked it up case-sensitively and saw none, while up() read its rows
describe('Migrator on sqlite: the table option in another letter case', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dbpool-table-case-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('status(), down() and up() all see the migrations applied through the default table', async () => {
    const pool = createSqlitePool(join(dir, 'app.db'), { max: 2 })
    try {
      const migrations: MigrationDefinition[] = [{ version: 1, name: 'a', up: 'create table a (x integer)', down: 'drop table a' }]
      await new Migrator(pool, { migrations }).up()
      const other = new Migrator(pool, { migrations, table: 'DbPool_Migrations' })
      expect((await other.status()).map((s) => [s.version, s.state])).toEqual([[1, 'applied']])
      expect(await other.up()).toMatchObject({ migrations: [], current: 1 })
      expect(await other.down()).toMatchObject({ migrations: [{ version: 1 }], current: null })
      const { rows } = await pool.query("select name from sqlite_master where type = 'table' and name = 'a'")
      expect(rows).toEqual([])
    } finally {
      await pool.close()
    }
  })
})
