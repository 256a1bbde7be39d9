import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'

test('smoke', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbpool-sqlite-'))
  const pool = createSqlitePool(join(dir, 'a.db'))
  try {
    await pool.query('create table t (id integer primary key, v text)')
    const r = await pool.query(sql`insert into t (v) values (${'x'})`)
    expect(r.rowCount).toBe(1)
    const q = await pool.query(sql`select * from t`)
    expect(q.rows).toEqual([{ id: 1, v: 'x' }])
    await pool.transaction(async (tx) => { await tx.query(sql`insert into t (v) values (${'y'})`) })
    expect((await pool.query('select count(*) n from t')).rows[0]).toEqual({ n: 2 })
    console.log(pool.stats('read'), pool.stats('write'))
  } finally {
    await pool.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
