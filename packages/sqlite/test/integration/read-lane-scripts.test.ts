import { DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// Read-lane work on a pool without readers (`readers: 0`, `:memory:`) runs on the writer with
// query_only on. A read-only script, with or without its own BEGIN/COMMIT, reads there as on a
// reader; the implicit transaction around it must not take the write lock (SQLite refuses BEGIN
// IMMEDIATE under query_only: "attempt to write a readonly database"). A script that writes is
// still READ_ONLY (re-review r10 item 4).
const tmp = tempDir()
afterAll(() => tmp.cleanup())

const READS = [
  'select count(*) as n from t; select 2 as two',
  'select count(*) as n from t; begin; select 2 as two; commit',
  'begin; select count(*) as n from t; commit; select 2 as two',
]

describe.each([
  ['a file, readers: 0', () => tmp.file(`read-lane-script-${Math.random().toString(36).slice(2)}.db`), { readers: 0 }],
  [':memory:', () => ':memory:', {}],
])('%s', (_label, where, options) => {
  it.each(READS)('reads %j on the read lane (pool.query and withConnection)', async (text) => {
    const pool = createSqlitePool(where(), { name: 'read-lane-scripts' }, options)
    try {
      await pool.query('create table t (x integer)')
      await pool.query('insert into t values (1)')
      await expect(pool.query(text, [], { lane: 'read' })).resolves.toBeDefined()
      await expect(pool.withConnection((conn) => conn.query(text), { lane: 'read' })).resolves.toBeDefined()
      // the writer is a writer again after the read-lane work
      await pool.query('insert into t values (2)')
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 2 }])
    } finally {
      await pool.close()
    }
  })

  it('a script that writes on the read lane is still READ_ONLY, nothing kept', async () => {
    const pool = createSqlitePool(where(), { name: 'read-lane-scripts' }, options)
    try {
      await pool.query('create table t (x integer)')
      for (const text of [
        'select 1; insert into t values (9)',
        'begin; insert into t values (9); commit',
        'insert into t values (9); commit',
      ]) {
        const err = await pool.query(text, [], { lane: 'read' }).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(DatabaseError.is(err) && err.code).toBe('READ_ONLY')
      }
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
    } finally {
      await pool.close()
    }
  })
})
