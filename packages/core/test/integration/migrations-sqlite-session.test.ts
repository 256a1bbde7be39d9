import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Migrator, PoolFactory } from '@dbpool/core'

jest.setTimeout(60_000)

const migrations = [
  {
    version: 1,
    name: 'session_changes',
    up: `create table orders (id integer primary key, amount integer not null check (amount > 0));
PRAGMA ignore_check_constraints = ON;
create temp table orders (id integer, amount integer)`,
  },
]

/** A migration's connection-level changes on SQLite must not follow the writer into the application's statements. */
describe('Migrator on sqlite: the connection a migration changed is not reused', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-session-'))
  })

  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('an application insert after a migration that created a shadowing temp table lands in the real table, checked', async () => {
    const pool = await PoolFactory.create(`sqlite:${join(dir, 'app.db')}`, { min: 1, max: 1, name: 'migrations-session' })
    try {
      await new Migrator(pool, { migrations }).up()
      await pool.query('insert into orders (id, amount) values (1, 10)')
      await expect(pool.query('insert into orders (id, amount) values (2, -5)')).rejects.toMatchObject({ code: 'CHECK_VIOLATION' })
      await pool.withConnection(async (conn) => {
        expect((await conn.query('select count(*) as n from main.orders')).rows[0]).toEqual({ n: 1 })
        expect((await conn.query("select name from sqlite_temp_master where name = 'orders'")).rows).toEqual([])
      })
    } finally {
      await pool.close()
    }
  })

  it('sqlite::memory: keeps its one connection (and so its database)', async () => {
    const pool = await PoolFactory.create('sqlite::memory:', { min: 1, max: 1, name: 'migrations-memory' })
    try {
      await new Migrator(pool, { migrations: [{ version: 1, name: 'a', up: 'create table a (id integer)' }] }).up()
      expect((await pool.query("select name from sqlite_master where name = 'a'")).rows).toEqual([{ name: 'a' }])
    } finally {
      await pool.close()
    }
  })
})
