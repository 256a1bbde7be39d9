import type { DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// A json number written with an exponent is read as the exact bigint: `1e9999` (6 bytes) spelled
// 10,000 digits, so a 684 KB json value of them blocked the event loop 31 s and took 400 MB.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { max: 1, min: 0 })
}, 120_000)

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await db?.drop()
}, 60_000)

describe('json integers spelled by exponents have a digit budget per value', () => {
  it('a json value of many 1e9999 is QUERY_FAILED naming the column; one is exact; json[] elements share the budget', async () => {
    await pool.query('create table jd (j json, a json[])')
    await pool.query('insert into jd (j) values ($1::json)', [`[${Array(20_000).fill('1e9999').join(',')}]`])
    const err = await rejection(pool.query('select j from jd'))
    expect(err.code).toBe('QUERY_FAILED')
    expect(err.detail).toMatchObject({ column: 'j', type: 'json', reason: 'out-of-range' })
    expect((await pool.query(`select '{"n": 1e9999}'::json as j`)).rows).toEqual([{ j: { n: 10n ** 9999n } }])
    await pool.query(`update jd set j = null, a = array['1e6000', '1e6000']::json[]`)
    expect((await rejection(pool.query('select a from jd'))).detail).toMatchObject({ column: 'a', reason: 'out-of-range' })
    // the connection goes on
    expect((await pool.query(`select '[1e400, 12345678901234567890]'::json as j`)).rows).toEqual([
      { j: [10n ** 400n, 12345678901234567890n] },
    ])
  })
})
