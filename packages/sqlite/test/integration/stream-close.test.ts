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

// A stream on a handle still being read when its callback returns is closed with the lease. The read
// that was waiting, and any later one, reject: ending the iteration quietly looked like the end of
// the rows, an empty or cut result (found by review).
it('a handle stream still being read when its callback returns rejects the reads, not a quiet end', async () => {
  const dir = tempDir()
  try {
    const manager = new SqliteConnectionManager({ path: dir.file('stream-early.db') })
    const pool = new DatabasePool(manager, { min: 0, max: 2 })
    await pool.query('create table t as with recursive s(i) as (select 1 union all select i + 1 from s where i < 100) select i from s')
    let iterator: AsyncIterator<{ i: number }> | undefined
    let waiting: Promise<unknown> | undefined
    await pool.withConnection(async (conn) => {
      iterator = conn.stream<{ i: number }>('select i from t order by i', [], { batchSize: 10 })[Symbol.asyncIterator]()
      waiting = iterator.next().catch((err: unknown) => err)
    })
    for (const read of [await waiting, await iterator!.next().catch((err: unknown) => err)]) {
      expect(DatabaseError.is(read) ? read.code : read).toBe('QUERY_FAILED')
      expect((read as DatabaseError).message).toContain('closed before its last row')
    }
    // the connection is back and usable
    expect((await pool.query<{ n: number }>('select count(*) as n from t')).rows).toEqual([{ n: 100 }])
    await pool.close()
  } finally {
    dir.cleanup()
  }
})

// close() reaching its deadline while the next batch was being read (SQLite: between the read's
// start and its setImmediate): the revoked cursor read as exhausted and the iteration ended normally
// after a few rows, a silently cut result (review r5 item 1). Every run must reject POOL_CLOSED.
it('a stream read while close() revokes its lease rejects POOL_CLOSED, never ends early without an error', async () => {
  const dir = tempDir()
  try {
    const outcomes: Record<string, number> = {}
    for (let run = 0; run < 40; run++) {
      const manager = new SqliteConnectionManager({ path: dir.file(`cut-${run}.db`) })
      const pool = new DatabasePool(manager, { min: 0, max: 2 })
      await pool.query('create table t as with recursive s(i) as (select 1 union all select i + 1 from s where i < 500) select i from s')
      let seen = 0
      const reading = (async () => {
        for await (const row of pool.stream<{ i: number }>('select i from t order by i', [], { batchSize: 5 })) {
          expect(row.i).toBe(++seen)
          // every few rows a pause, so close() lands both inside a read and between two reads
          if (seen % (1 + (run % 7)) === 0) await new Promise((resolve) => setTimeout(resolve, run % 3))
        }
        return `ended after ${seen} of 500 rows`
      })().catch((err: unknown) => (DatabaseError.is(err) ? err.code : String(err)))
      await new Promise((resolve) => setTimeout(resolve, 5 + (run % 5)))
      await pool.close({ timeoutMs: 1 + (run % 4) })
      const outcome = await reading
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
    }
    expect(outcomes).toEqual({ POOL_CLOSED: 40 })
  } finally {
    dir.cleanup()
  }
}, 60_000)
