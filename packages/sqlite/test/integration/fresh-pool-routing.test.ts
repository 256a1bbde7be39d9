import { existsSync } from 'node:fs'
import { sql } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// the README: a read-only statement streams on a reader. On a pool with no connection open yet,
// route() had nothing to prepare on and sent it to the writer, which the stream then held.
describe('routing on a pool with no connection open yet', () => {
  async function seeded(name: string): Promise<string> {
    const path = tmp.file(`${name}.db`)
    const setup = createSqlitePool(path, { name: 'setup' })
    await setup.query('create table jobs (id integer primary key, state text)')
    await setup.query(`insert into jobs (state) values ('new'), ('new'), ('new')`)
    await setup.close()
    return path
  }

  it('streams a SELECT on a reader, so a write in its loop gets the writer', async () => {
    const pool = createSqlitePool(await seeded('stream'), { name: 'fresh', acquireTimeoutMs: 2_000 })
    try {
      let done = 0
      for await (const row of pool.stream<{ id: number }>(sql`select id from jobs where state = 'new' order by id`)) {
        expect(pool.stats('write').used).toBe(0)
        await pool.query(sql`update jobs set state = 'done' where id = ${row.id}`)
        done++
      }
      expect(done).toBe(3)
      expect((await pool.query(`select count(*) as n from jobs where state = 'done'`)).rows).toEqual([{ n: 3 }])
    } finally {
      await pool.close()
    }
  })

  it('a pool whose last connection to close is a reader leaves no -wal behind (a reader cannot delete it)', async () => {
    const path = await seeded('tidy')
    const pool = createSqlitePool(path, { name: 'tidy' })
    expect((await pool.query('select count(*) as n from jobs')).rows).toEqual([{ n: 3 }])
    expect(pool.stats('write').size).toBe(0)
    await pool.close()
    expect(existsSync(`${path}-wal`)).toBe(false)
  })

  it('still sends a write, and a statement on a file that does not exist yet, to the writer', async () => {
    const pool = createSqlitePool(tmp.file('new.db'), { name: 'new', acquireTimeoutMs: 2_000 })
    try {
      await pool.query('create table t (x)')
      await pool.query('insert into t values (1)')
      expect((await pool.query('select x from t')).rows).toEqual([{ x: 1 }])
    } finally {
      await pool.close()
    }
    const again = createSqlitePool(tmp.file('new.db'), { name: 'again', acquireTimeoutMs: 2_000 })
    try {
      const rows: unknown[] = []
      for await (const row of again.stream('insert into t values (2) returning x')) rows.push(row)
      expect(rows).toEqual([{ x: 2 }])
      expect(again.stats('read').size).toBe(0)
    } finally {
      await again.close()
    }
  })
})
