import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { DatabaseError, Migrator, type DatabasePool } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'

// The Migrator's lockTimeoutMs bounds its wait for SQLite's write lock held by another connection
// (another process, another pool): SQLite's BEGIN IMMEDIATE is given what is left of it, instead of
// waiting the pool's busyTimeoutMs (here 20 s) before the first retry.
describe('Migrator on SQLite: lockTimeoutMs bounds the wait for a write lock held elsewhere', () => {
  let dir: string
  let pool: DatabasePool | undefined
  let holder: Database.Database | undefined

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-lock-'))
  })

  afterEach(async () => {
    holder?.close()
    holder = undefined
    await pool?.close()
    pool = undefined
    rmSync(dir, { recursive: true, force: true })
  })

  it('fails with MIGRATION_FAILED at lockTimeoutMs, not after busyTimeoutMs, and applies nothing', async () => {
    const file = join(dir, 'app.db')
    pool = createSqlitePool(file, { max: 1 }, { busyTimeoutMs: 20_000, synchronous: 'OFF' })
    await pool.query('create table if not exists seed (id integer primary key)')
    holder = new Database(file)
    holder.exec('begin immediate')
    const migrator = new Migrator(pool, {
      lockTimeoutMs: 400,
      migrations: [{ version: 1, name: 'one', up: async (conn) => void (await conn.query('create table one (id integer)')) }],
    })
    const started = Date.now()
    const err = await migrator.up().then(
      () => undefined,
      (e: unknown) => e,
    )
    const waited = Date.now() - started
    expect(DatabaseError.is(err, 'MIGRATION_FAILED')).toBe(true)
    expect((err as Error).message).toMatch(/timed out after 400 ms waiting for the migration lock/)
    // the old code waited busyTimeoutMs (20 s) in its first try: the test's own timeout
    expect(waited).toBeLessThan(10_000)
    holder.exec('rollback')
    const { rows } = await pool.query<{ n: number }>("select count(*) as n from sqlite_master where name = 'one'")
    expect(rows[0]?.n).toBe(0)
  }, 30_000)

  it('takes the lock as soon as the other connection commits, within lockTimeoutMs', async () => {
    const file = join(dir, 'app.db')
    pool = createSqlitePool(file, { max: 1 }, { busyTimeoutMs: 20_000, synchronous: 'OFF' })
    await pool.query('select 1')
    holder = new Database(file)
    holder.exec('begin immediate')
    const release = setTimeout(() => holder?.exec('commit'), 300)
    try {
      const migrator = new Migrator(pool, {
        lockTimeoutMs: 15_000,
        migrations: [{ version: 1, name: 'one', up: async (conn) => void (await conn.query('create table one (id integer)')) }],
      })
      const result = await migrator.up()
      expect(result.current).toBe(1)
      expect(result.migrations).toHaveLength(1)
    } finally {
      clearTimeout(release)
    }
  }, 30_000)
})
