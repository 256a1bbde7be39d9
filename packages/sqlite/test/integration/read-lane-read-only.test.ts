import Database from 'better-sqlite3'
import type { DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

let n = 0

function rows(path: string): unknown[] {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare('select v from t order by rowid').pluck().all()
  } finally {
    db.close()
  }
}

async function drain(stream: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const row of stream) out.push(row)
  return out
}

/** A temp object made on a reader shadowed the main table of its name for every later read on that reader. */
describe('readers write nothing, temp objects included', () => {
  let pool: DatabasePool<SqliteDatabase>

  beforeEach(async () => {
    pool = createSqlitePool(tmp.file(`ro-temp-${++n}.db`), { acquireTimeoutMs: 2_000 }, { readers: 1 })
    await pool.query('create table t (v integer)')
    await pool.query('insert into t values (1), (2), (3)')
  })

  afterEach(async () => {
    await pool.close({ timeoutMs: 2_000 })
  })

  async function expectMainSeen(): Promise<void> {
    expect(await pool.query('select count(*) as n from t')).toMatchObject({ rows: [{ n: 3 }] })
    expect(await pool.query('select count(*) as n from t', [], { lane: 'read' })).toMatchObject({ rows: [{ n: 3 }] })
    await expect(pool.transaction((tx) => tx.query('select count(*) as n from t'), { readOnly: true })).resolves.toMatchObject({
      rows: [{ n: 3 }],
    })
  }

  it.each([false, true])('create temp table on the read lane (reader open before: %s) is READ_ONLY', async (warm) => {
    if (warm) await pool.query('select 1', [], { lane: 'read' })
    await expect(pool.query('create temp table t (v)', [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
    await expectMainSeen()
  })

  it('VACUUM INTO on a reader (a backup copy) still runs, and the reader stays query-only after it', async () => {
    await pool.query('VACUUM INTO ?', [tmp.file(`ro-temp-${n}-copy.db`)], { lane: 'read' })
    await expect(pool.query('create temp table t (v)', [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
    await expectMainSeen()
  })

  it('through withConnection on the read lane, a script, and a read-only transaction', async () => {
    await expect(pool.withConnection((conn) => conn.query('create temp table t (v)'), { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    await expect(pool.query('create temp table t (v); create temp view w as select 1', [], { lane: 'read' })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    await expect(pool.transaction((tx) => tx.query('create temp table t (v)'), { readOnly: true })).rejects.toMatchObject({
      code: 'READ_ONLY',
    })
    await expectMainSeen()
  })

  it('PRAGMA query_only = 0 on a reader is refused (CONFIGURATION), in a read-only transaction or not', async () => {
    await expect(
      pool.transaction(
        async (tx) => {
          await tx.query('PRAGMA query_only = 0')
          await tx.query('create temp table t (v)')
        },
        { readOnly: true },
      ),
    ).rejects.toMatchObject({ code: 'CONFIGURATION', detail: { pragma: 'query_only' } })
    await expect(
      pool.withConnection(
        async (conn) => {
          await conn.query('PRAGMA query_only = false')
          await conn.query('create temp table t (v)')
        },
        { lane: 'read' },
      ),
    ).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expectMainSeen()
  })

  it('a temp table made through conn.native of a reader: the reader is closed at the release, not reused', async () => {
    await pool
      .withConnection(
        async (conn) => {
          const db = conn.native as Database.Database
          db.pragma('query_only = OFF')
          db.exec('create temp table t (v)')
          // a write through the pool is refused even so
          await expect(conn.query('insert into t values (9)')).rejects.toMatchObject({ code: 'READ_ONLY' })
        },
        { lane: 'read' },
      )
      .catch(() => undefined)
    await expectMainSeen()
  })
})

/**
 * With no readers (`readers: 0`, a rollback-journal file, `:memory:`) the read lane is the writer: work
 * asked there is read-only as on a reader, and the writer writes again after it.
 */
describe('read-lane work on the writer is read-only', () => {
  it.each([
    ['readers: 0, rollback journal', { journalMode: 'DELETE' as const }],
    ['readers: 0, WAL', { readers: 0 }],
  ])('%s: query, withConnection(conn.transaction), stream on the read lane are READ_ONLY', async (_label, options) => {
    const path = tmp.file(`ro-writer-${++n}.db`)
    const pool = createSqlitePool(path, { acquireTimeoutMs: 2_000 }, options)
    try {
      await pool.query('create table t (v text)')
      await expect(pool.query(`insert into t values ('query')`, [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
      await expect(
        pool.withConnection((conn) => conn.transaction((tx) => tx.query(`insert into t values ('conn.transaction')`)), { lane: 'read' }),
      ).rejects.toMatchObject({ code: 'READ_ONLY' })
      await expect(drain(pool.stream(`insert into t values ('stream') returning v`, [], { lane: 'read' }))).rejects.toMatchObject({
        code: 'READ_ONLY',
      })
      await expect(pool.query('create temp table t (v)', [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
      await expect(pool.query('PRAGMA query_only = 0', [], { lane: 'read' })).rejects.toMatchObject({ code: 'CONFIGURATION' })
      // reads on the read lane run; the writer writes again afterwards
      expect(await pool.query('select count(*) as n from t', [], { lane: 'read' })).toMatchObject({ rows: [{ n: 0 }] })
      expect(await drain(pool.stream('select v from t', [], { lane: 'read' }))).toEqual([])
      // VACUUM INTO writes another file (a backup's vacuum copy): it runs on the read lane
      await pool.query('VACUUM INTO ?', [`${path}.copy`], { lane: 'read' })
      await pool.query(`insert into t values ('write lane')`)
      await pool.withConnection((conn) => conn.query(`insert into t values ('write withConnection')`))
    } finally {
      await pool.close({ timeoutMs: 2_000 })
    }
    expect(rows(path)).toEqual(['write lane', 'write withConnection'])
  })

  it(':memory: the same', async () => {
    const pool = createSqlitePool(':memory:', { acquireTimeoutMs: 2_000 })
    try {
      await pool.query('create table t (v text)')
      await expect(pool.query(`insert into t values ('query')`, [], { lane: 'read' })).rejects.toMatchObject({ code: 'READ_ONLY' })
      await pool.query(`insert into t values ('w')`)
      expect(await pool.query('select v from t', [], { lane: 'read' })).toMatchObject({ rows: [{ v: 'w' }] })
    } finally {
      await pool.close({ timeoutMs: 2_000 })
    }
  })
})

/** A read-only transaction on the writer could turn `query_only` off and commit its writes. */
describe('a read-only transaction cannot turn query_only off', () => {
  it.each(['PRAGMA query_only = 0', 'PRAGMA query_only = false', 'pragma main.query_only=OFF'])('%s: CONFIGURATION', async (text) => {
    const path = tmp.file(`ro-tx-${++n}.db`)
    const pool = createSqlitePool(path, { acquireTimeoutMs: 2_000 }, { readers: 0 })
    try {
      await pool.query('create table t (v text)')
      await expect(
        pool.transaction(
          async (tx) => {
            await tx.query(text)
            return tx.query(`insert into t values ('read-only')`)
          },
          { readOnly: true },
        ),
      ).rejects.toMatchObject({ code: 'CONFIGURATION' })
      await expect(
        pool.withConnection((conn) =>
          conn.transaction(
            async (tx) => {
              await tx.query(text)
              return tx.query(`insert into t values ('read-only conn.transaction')`)
            },
            { readOnly: true },
          ),
        ),
      ).rejects.toMatchObject({ code: 'CONFIGURATION' })
      // through conn.native: the pool's next write in that transaction is refused
      await expect(
        pool.withConnection((conn) =>
          conn.transaction(
            async (tx) => {
              ;(tx.native as Database.Database).pragma('query_only = OFF')
              return tx.query(`insert into t values ('native')`)
            },
            { readOnly: true },
          ),
        ),
      ).rejects.toMatchObject({ code: 'READ_ONLY' })
      await pool.query(`insert into t values ('write')`)
    } finally {
      await pool.close({ timeoutMs: 2_000 })
    }
    expect(rows(path)).toEqual(['write'])
  })
})
