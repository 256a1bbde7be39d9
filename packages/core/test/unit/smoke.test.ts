import { DatabasePool, sql } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'

test('smoke', async () => {
  const m = new FakeConnectionManager()
  const pool = new DatabasePool(m, { min: 1, max: 2 })
  const r = await pool.query(sql`select ${1}`)
  expect(r.rows).toEqual([])
  await pool.transaction(async (tx) => { await tx.query('select 2') })
  expect(pool.stats().used).toBe(0)
  const report = await pool.close()
  expect(report.outstandingLeases).toEqual([])
  expect(m.open.length).toBe(0)
})
