import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('lastInsertRowid of INSERT ... RETURNING', () => {
  it.each([false, true])('is reported as for an INSERT without RETURNING (safeIntegers %s)', async (safeIntegers) => {
    const pool = createSqlitePool(tmp.file(`rowid-${String(safeIntegers)}.db`), { name: 'rowid' }, { safeIntegers })
    try {
      await pool.query('create table t (id integer primary key, v text)')
      const plain = await pool.query(`insert into t (id, v) values (41, 'a')`)
      const returning = await pool.query(`insert into t (v) values ('b') returning v`)
      expect(returning.rows).toEqual([{ v: 'b' }])
      expect(returning.rowCount).toBe(1)
      expect(plain.lastInsertRowid).toEqual(safeIntegers ? 41n : 41)
      expect(returning.lastInsertRowid).toEqual(safeIntegers ? 42n : 42)
      const big = await pool.query(`insert into t (id, v) values (9007199254740993, 'c') returning v`)
      expect(big.lastInsertRowid).toBe(9007199254740993n)
      // a read reports none
      expect((await pool.query('select v from t')).lastInsertRowid).toBeUndefined()
    } finally {
      await pool.close()
    }
  })
})
