import { existsSync } from 'node:fs'
import { createSqlitePool } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// review r2 item 9: journal_mode changed on a lease is restored at the release, but the writer kept
// the identity of the -wal SQLite deleted, and the next write failed CONNECTION_LOST 'wal deleted'
describe('journal_mode changed on a lease', () => {
  it('restored to WAL at the release: the next writes succeed', async () => {
    const via = 'query'
    const file = tmp.file(`jm-${via}.db`)
    const pool = createSqlitePool(file, { name: `jm-${via}`, min: 0 }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, v text)')
      await pool.query("insert into t (v) values ('before')")
      await pool.withConnection(async (conn) => {
        expect((await conn.query('PRAGMA journal_mode = DELETE')).rows).toEqual([{ journal_mode: 'delete' }])
        await conn.query("insert into t (v) values ('in delete mode')")
      })
      expect(existsSync(`${file}-wal`)).toBe(false)
      expect((await pool.query('PRAGMA journal_mode')).rows).toEqual([{ journal_mode: 'wal' }])
      await sleep(300)
      for (let i = 0; i < 3; i++) {
        await expect(pool.query("insert into t (v) values ('after')")).resolves.toBeDefined()
        await sleep(300)
      }
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 5 }])
    } finally {
      await pool.close()
    }
  })
})
