import { DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// a statement whose result columns were unique when it was prepared: a column added later whose name
// another one has must not replace that column's value under its name (SQLite re-prepares silently)
describe('a `*` that gains a column of a name already in the result', () => {
  const join = 'select * from a join b on a.id = b.aid where a.id = ?'
  let n = 0

  async function setup(statementCacheSize: number) {
    const path = tmp.file(`cols-${++n}.db`)
    const pool = createSqlitePool(path, { name: 'cols', acquireTimeoutMs: 2_000 }, { statementCacheSize })
    await pool.query('create table a (id integer primary key, name text)')
    await pool.query('create table b (aid integer, note text)')
    await pool.query(`insert into a values (1, 'alice')`)
    await pool.query(`insert into b values (1, 'n1')`)
    expect((await pool.query(join, [1])).rows).toEqual([{ id: 1, name: 'alice', aid: 1, note: 'n1' }])
    return { pool, path }
  }

  it.each([100, 0])('is refused after another process adds it (statementCacheSize %d)', async (size) => {
    const { pool, path } = await setup(size)
    try {
      const other = new Database(path)
      other.exec(`alter table b add column name text default 'FROM-B'`)
      other.close()
      for (let i = 0; i < 2; i++) {
        const err = await pool.query(join, [1]).catch((e: unknown) => e)
        expect(DatabaseError.is(err, 'SYNTAX_ERROR')).toBe(true)
        expect((err as DatabaseError).detail).toMatchObject({ column: 'name' })
      }
      // a stream on a reader (its schema not read again yet) too
      const streamed = await (async () => {
        for await (const row of pool.stream(join, [1])) void row
      })().catch((e: unknown) => e)
      expect(streamed).toMatchObject({ code: 'SYNTAX_ERROR' })
      // explicit columns are unaffected
      expect((await pool.query('select a.name, b.name as bname from a join b on a.id = b.aid')).rows).toEqual([
        { name: 'alice', bname: 'FROM-B' },
      ])
    } finally {
      await pool.close()
    }
  })

  it('is refused after the pool itself adds it, in and out of a transaction', async () => {
    const { pool } = await setup(100)
    try {
      await pool.query(`alter table b add column name text default 'FROM-B'`)
      await expect(pool.query(join, [1])).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
      await expect(pool.transaction((tx) => tx.query(join, [1]))).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
    } finally {
      await pool.close()
    }
  })

  it('INSERT ... RETURNING * refused after the change keeps nothing it wrote', async () => {
    const { pool, path } = await setup(100)
    try {
      const ret = 'insert into b (aid, note) values (?, ?) returning *'
      expect((await pool.query(ret, [1, 'r1'])).rows).toEqual([{ aid: 1, note: 'r1' }])
      const other = new Database(path)
      other.exec(`alter table b add column aid2 text; alter table b rename column aid2 to note2`)
      other.exec(`create table c (x)`)
      other.close()
      // a new column, no clash: answered with it
      expect((await pool.query(ret, [1, 'r2'])).rows).toEqual([{ aid: 1, note: 'r2', note2: null }])
      const returning = 'insert into b (aid, note) values (?, ?) returning *, note2 as x'
      expect((await pool.query(returning, [1, 'r4'])).rows).toEqual([{ aid: 1, note: 'r4', note2: null, x: null }])
      const third = new Database(path)
      third.exec(`alter table b add column x text`)
      third.close()
      // outside a transaction: rolled back in the pool's own savepoint, no transaction aborted or left open
      for (const run of [() => pool.query(returning, [1, 'r5']), () => pool.withConnection((c) => c.query(returning, [1, 'r5']))]) {
        const refused = await run().catch((e: unknown) => e)
        expect(refused).toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'x' } })
        expect((refused as DatabaseError).message).toMatch(/rolled back: nothing it wrote was kept, no transaction is open/)
        expect((refused as DatabaseError).message).not.toMatch(/aborted|until ROLLBACK/)
      }
      await pool.withConnection(async (c) => {
        await expect(c.query(returning, [1, 'r5'])).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
        expect(c.native.inTransaction).toBe(false)
        expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }])
      })
      // inside the caller's transaction the refusal aborts it, and says so
      const inTx = await pool.transaction((tx) => tx.query(returning, [1, 'r5'])).catch((e: unknown) => e)
      expect((inTx as DatabaseError).message).toMatch(/which is now aborted/)
      const streamed = await (async () => {
        for await (const row of pool.stream(returning, [1, 'r6'])) void row
      })().catch((e: unknown) => e)
      expect(streamed).toMatchObject({ code: 'SYNTAX_ERROR' })
      const notes = (await pool.query<{ note: string }>('select note from b order by rowid')).rows.map((r) => r.note)
      expect(notes).toEqual(['n1', 'r1', 'r2', 'r4'])
    } finally {
      await pool.close()
    }
  })

  // the check read main's schema_version only: a change in an attached database or in the temp schema went unseen
  it('is refused after a change in an ATTACHed database (another process) or a TEMP table shadowing a main one', async () => {
    const main = tmp.file(`cols-${++n}.db`)
    const aux = tmp.file(`cols-${n}-aux.db`)
    const seed = new Database(aux)
    seed.exec(`create table p (id integer primary key, name text); create table c (id integer primary key, pid int, note text)`)
    seed.exec(`insert into p values (1, 'parent'); insert into c values (1, 1, 'n')`)
    seed.close()
    const pool = createSqlitePool(main, { name: 'cols', acquireTimeoutMs: 2_000 }, { readers: 0 })
    try {
      await pool.query(`attach database '${aux}' as aux`)
      const q = 'select c.*, p.name from aux.c c join aux.p p on p.id = c.pid'
      for (let i = 0; i < 2; i++) expect((await pool.query(q)).rows).toEqual([{ id: 1, pid: 1, note: 'n', name: 'parent' }])
      const other = new Database(aux)
      other.exec(`alter table c add column name text default 'CHILD-NAME'`)
      other.close()
      await expect(pool.query(q)).rejects.toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'name' } })

      await pool.query('create table m (id integer primary key, v text)')
      await pool.query(`insert into m values (1, 'main-v')`)
      await pool.query('create table k (id integer primary key, w text)')
      await pool.query(`insert into k values (1, 'k-w')`)
      const q2 = 'select m.*, k.w from m join k on k.id = m.id'
      for (let i = 0; i < 2; i++) expect((await pool.query(q2)).rows).toEqual([{ id: 1, v: 'main-v', w: 'k-w' }])
      // on one lease: a temp object made on the writer is dropped at the end of the call that made it
      await pool.withConnection(async (conn) => {
        await conn.query('create temp table m (id integer primary key, v text, w text)')
        await conn.query(`insert into temp.m values (1, 'temp-v', 'TEMP-W')`)
        await expect(conn.query(q2)).rejects.toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'w' } })
      })
      // detached: the statement over it fails to prepare again, as any statement naming a missing table
      await pool.query('detach database aux')
      await expect(pool.query(q)).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
    } finally {
      await pool.close()
    }
  })

  it('is refused after a TEMP table or an ATTACH made through conn.native (text the pool never saw)', async () => {
    const { pool } = await setup(100)
    const aux = tmp.file(`cols-aux-native-${n}.db`)
    const seed = new Database(aux)
    seed.exec(`create table a (id integer primary key, name text); insert into a values (1, 'aux')`)
    seed.close()
    try {
      await pool.withConnection(async (conn) => {
        for (let i = 0; i < 3; i++) expect((await conn.query(join, [1])).rows).toEqual([{ id: 1, name: 'alice', aid: 1, note: 'n1' }])
        ;(conn.native as Database.Database).exec(
          `create temp table b (aid integer, note text, name text); insert into temp.b values (1, 'tn', 'TEMP-NAME')`,
        )
        await expect(conn.query(join, [1])).rejects.toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'name' } })
        ;(conn.native as Database.Database).exec('drop table temp.b')
        expect((await conn.query(join, [1])).rows).toEqual([{ id: 1, name: 'alice', aid: 1, note: 'n1' }])
      })
      await pool.withConnection(async (conn) => {
        // attached through native; the statement over it ("aux", no "tach" in its text) prepared through the pool
        ;(conn.native as Database.Database).exec(`attach database '${aux}' as aux`)
        const q = 'select x.*, b.note from aux.a x join main.b b on b.aid = x.id'
        for (let i = 0; i < 3; i++) expect((await conn.query(q)).rows).toEqual([{ id: 1, name: 'aux', note: 'n1' }])
        const other = new Database(aux)
        other.exec(`alter table a add column note text default 'AUX-NOTE'`)
        other.close()
        await expect(conn.query(q)).rejects.toMatchObject({ code: 'SYNTAX_ERROR', detail: { column: 'note' } })
      })
    } finally {
      await pool.close()
    }
  })
})
