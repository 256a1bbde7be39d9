import { execFileSync } from 'node:child_process'
import fc from 'fast-check'
import Database from 'better-sqlite3'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// Rows must be the rows better-sqlite3 itself builds (a fresh connection on the same file), key for
// key and value for value, in column order, through every path (query, transaction, stream,
// RETURNING), also after schema changes made by this pool or another process. (Statements with a
// `__proto__` column run in raw mode, their rows built by row-objects.ts: see result-columns.test.ts.)

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

describe('result rows', () => {
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
  }, 30_000)
})

/** Runs `sql` on the file from another process (plain better-sqlite3): a schema change this pool never sees. */
function elsewhere(path: string, sql: string): void {
  execFileSync(
    process.execPath,
    ['-e', `const D = require('better-sqlite3'); const d = new D(${JSON.stringify(path)}); d.exec(${JSON.stringify(sql)}); d.close()`],
    { env: process.env },
  )
}

/** What better-sqlite3 itself returns for `text` now (a fresh connection). */
function nativeRows(path: string, text: string, params: unknown[] = []): unknown[] {
  const db = new Database(path)
  try {
    return db.prepare(text).all(...params)
  } finally {
    db.close()
  }
}

// Keys after schema changes: never a name another column had (a review found rowid aliases keyed by a
// real column's old name, and first runs keyed by the connection's stale schema).
describe('row keys after a schema change', () => {
  it("a rowid alias follows what SQLite names it now, after a change made by another process (not a real column's old name)", async () => {
    const path = tmp.file('rowid-alias.db')
    const pool = createSqlitePool(path, { name: 'rowid-alias' }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, name text)')
      await pool.query("insert into t values (7, 'x')")
      for (const text of ['select rowid, name from t', 'select oid, name from t', 'select _rowid_ as r, name from t'])
        expect((await pool.query(text)).rows).toEqual(nativeRows(path, text))
      elsewhere(path, "alter table t rename column id to legacy_id; alter table t add column id text; update t set id = 'A-42'")
      for (const text of ['select rowid, name from t', 'select oid, name from t']) {
        const rows = (await pool.query(text)).rows
        expect(rows).toEqual(nativeRows(path, text))
        expect(rows).toEqual([{ legacy_id: 7, name: 'x' }])
      }
    } finally {
      await pool.close()
    }
  })

  it('the first run of a text after another process changed the schema: keys of the plan that ran (query and stream)', async () => {
    const path = tmp.file('stale-prepare.db')
    const pool = createSqlitePool(path, { name: 'stale-prepare' }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, name text)')
      await pool.query("insert into t values (1, 'x')")
      await pool.query('select id, name from t')
      elsewhere(path, 'alter table t rename column name to Name')
      // new texts, prepared against the schema this connection read before the rename
      expect((await pool.query('select id, name from t where id = 1')).rows).toEqual([{ id: 1, Name: 'x' }])
      const streamed: unknown[] = []
      for await (const row of pool.stream('select id, name from t where id >= 1')) streamed.push(row)
      expect(streamed).toEqual([{ id: 1, Name: 'x' }])
    } finally {
      await pool.close()
    }
  })

  it('a rename this pool made on one connection: a statement cached on another connection takes the new name at its next run', async () => {
    const path = tmp.file('epoch.db')
    const pool = createSqlitePool(path, { name: 'epoch' }, { readers: 1 })
    try {
      await pool.query('create table t (id integer primary key, name text)')
      await pool.query("insert into t values (1, 'x')")
      const text = 'select id, name from t where id = ?'
      expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, name: 'x' }])
      await pool.query('alter table t rename column name to Name')
      expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, Name: 'x' }])
      expect((await pool.query(text, [1])).rows).toEqual(nativeRows(path, text, [1]))
      // through conn.native, which the pool never sees: taken into account at the lease's release
      await pool.withConnection(async (conn) => conn.native.exec('alter table t rename column Name to NAME'), { lane: 'write' })
      expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, NAME: 'x' }])
    } finally {
      await pool.close()
    }
  })

  it('a rename rolled back after a statement of the same transaction read its columns: the statement goes back to the old name', async () => {
    const path = tmp.file('rolled-back.db')
    for (const end of ['throw', 'savepoint'] as const) {
      const pool = createSqlitePool(path, { name: 'rolled-back' }, { readers: 0 })
      try {
        await pool.query('create table if not exists users (id integer primary key, email text)')
        await pool.query("insert or ignore into users values (1, 'a@x')")
        const text = 'select id, email from users where id = ?'
        await pool
          .transaction(async (tx) => {
            if (end === 'savepoint') await tx.query('savepoint s')
            await tx.query('alter table users rename column email to EMAIL')
            expect((await tx.query(text, [1])).rows).toEqual([{ id: 1, EMAIL: 'a@x' }])
            if (end === 'savepoint') {
              await tx.query('rollback to s')
              await tx.query('release s')
              expect((await tx.query(text, [1])).rows).toEqual([{ id: 1, email: 'a@x' }])
            } else throw new Error('roll back')
          })
          .catch(() => undefined)
        expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, email: 'a@x' }])
        expect((await pool.query(text, [1])).rows).toEqual(nativeRows(path, text, [1]))
      } finally {
        await pool.close()
      }
    }
  })

  it('a rename that gives a rowid alias the name of another result column: refused (SYNTAX_ERROR), not a value dropped', async () => {
    const path = tmp.file('rowid-duplicate.db')
    const pool = createSqlitePool(path, { name: 'rowid-duplicate' }, { readers: 1 })
    try {
      await pool.query('create table orders (pk integer primary key, customer_id integer)')
      await pool.query('create table customers (id integer primary key, name text)')
      await pool.query("insert into customers values (7, 'c7')")
      await pool.query('insert into orders values (100, 7)')
      const text = 'select o.rowid, c.id, c.name from orders o join customers c on c.id = o.customer_id where c.id = ?'
      expect((await pool.query(text, [7])).rows).toEqual([{ pk: 100, id: 7, name: 'c7' }])
      await pool.query('alter table orders rename column pk to id')
      await expect(pool.query(text, [7])).rejects.toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'id' } })
      await expect(pool.transaction((tx) => tx.query(text, [7]))).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
      const streamed = (async () => {
        for await (const row of pool.stream(text, [7])) void row
      })()
      await expect(streamed).rejects.toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'id' } })
      elsewhere(path, 'alter table orders rename column id to pk')
      expect((await pool.query(text, [7])).rows).toEqual([{ pk: 100, id: 7, name: 'c7' }])
    } finally {
      await pool.close()
    }
  })

  it('a statement refused against a stale schema (two columns of one name) runs once the schema is read again', async () => {
    const path = tmp.file('stale-duplicate.db')
    const pool = createSqlitePool(path, { name: 'stale-duplicate' }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, name text)')
      await pool.query("insert into t values (7, 'x')")
      elsewhere(path, "alter table t rename column id to legacy_id; alter table t add column id text; update t set id = 'A-42'")
      // prepared against the old schema, rowid would be named "id" like the new column: not a duplicate now
      const text = 'select rowid, id, name from t'
      expect((await pool.query(text)).rows).toEqual([{ legacy_id: 7, id: 'A-42', name: 'x' }])
      expect((await pool.query(text)).rows).toEqual(nativeRows(path, text))
    } finally {
      await pool.close()
    }
  })
})
