import fc from 'fast-check'
import Database from 'better-sqlite3'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// Statements without a `*` run in better-sqlite3's raw mode and their row objects are built by the
// pool (row-objects.ts): they must be the rows better-sqlite3 itself builds, key for key and value
// for value, in column order, through every path (query, transaction, stream, RETURNING).

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const value = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 12 }).filter((s) => !s.includes('\u0000')),
  fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
)

describe('rows built from raw mode', () => {
  it('equal better-sqlite3 rows for any values, in column order, on every path', async () => {
    const path = tmp.file('raw-rows.db')
    const pool = createSqlitePool(path, { name: 'raw-rows' }, { readers: 1 })
    const native = new Database(path, { readonly: false })
    try {
      await pool.query('create table v (id integer primary key, "b c" any, "Zeta" any, a any) strict')
      let round = 0
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(value, value, value), { minLength: 0, maxLength: 4 }), async (rows) => {
          round++
          await pool.query('delete from v')
          for (const [i, [x, y, z]] of rows.entries()) native.prepare('insert into v values (?, ?, ?, ?)').run(i + 1, x, y, z)
          // a new text each round too, so both a fresh statement and a cached one are compared
          for (const text of [
            'select id, "b c", "Zeta", a from v order by id',
            `select id, "b c", "Zeta", a, ${round} as r from v order by id`,
          ]) {
            const expected = native.prepare(text).all()
            expect((await pool.query(text)).rows).toEqual(expected)
            const fromPool = (await pool.query(text)).rows
            expect(fromPool.map((r) => Object.keys(r as object))).toEqual(expected.map((r) => Object.keys(r as object)))
            await pool.transaction(async (tx) => expect((await tx.query(text)).rows).toEqual(expected))
            const streamed: unknown[] = []
            for await (const row of pool.stream(text, [], { batchSize: 2 })) streamed.push(row)
            expect(streamed).toEqual(expected)
          }
        }),
        { numRuns: 60 },
      )
      const returned = await pool.query('insert into v (id, "b c") values (100, 9007199254740993) returning id, "b c" as big')
      expect(returned.rows).toEqual([{ id: 100, big: 9007199254740993n }])
      // an integer beyond 2^53 read by a plain SELECT: exact (read again with safe integers)
      expect((await pool.query('select "b c", id from v where id = 100')).rows).toEqual([{ 'b c': 9007199254740993n, id: 100 }])
    } finally {
      native.close()
      await pool.close()
    }
  })
})
