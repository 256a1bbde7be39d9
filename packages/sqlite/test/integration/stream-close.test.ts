import { DatabasePool, DatabaseError } from '@dbpool/core'
import { SqliteConnectionManager, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// close() reaching its deadline while a stream still reads: the lease is revoked and the reader's
// handle really closed (better-sqlite3 refuses to close a handle with a statement iterating).
it('a stream still open at close() deadline is revoked, its cursor ended and its handle closed', async () => {
  const dir = tempDir()
  try {
    const manager = new SqliteConnectionManager({ path: dir.file('stream.db'), readers: 1 })
    const pool = new DatabasePool(manager, { min: 0, max: 2 })
    await pool.query('create table t as with recursive s(i) as (select 1 union all select i + 1 from s where i < 5000) select i from s')
    let reader: SqliteDatabase | undefined
    await pool.withConnection(
      async (conn) => {
        reader = conn.native
      },
      { lane: 'read' },
    )
    const iterator = pool.stream<{ i: number }>('select i from t order by i', [], { batchSize: 10 })[Symbol.asyncIterator]()
    expect((await iterator.next()).value).toEqual({ i: 1 })
    expect(pool.stats('read').used).toBe(1)
    const report = await pool.close({ timeoutMs: 100 })
    expect(report.outstandingLeases).toHaveLength(1)
    expect(reader!.open).toBe(false)
    expect(manager.openConnections).toBe(0)
    const after = await iterator.next().catch((err: unknown) => err)
    expect(DatabaseError.is(after) ? after.code : after).toBe('POOL_CLOSED')
  } finally {
    dir.cleanup()
  }
})
