import Database from 'better-sqlite3'
import { DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A stream (conn.stream) issued on a lease behind a statement still waiting its turn (here: waiting
// for a lock another connection holds) and stopped by its AbortSignal or timeoutMs before its turn
// came never ran: it fails at once, retryable, `detail.started: false`, as a statement does, and the
// statement before it is not touched (review r9 item 3, the kind on SQLite: it was QUERY_CANCELLED /
// QUERY_TIMEOUT `retryable: false`, reported only once the statement before it had finished).
describe('a stream stopped while it waits its turn behind a statement of its lease', () => {
  const dir = tempDir('dbpool-stream-turn-')
  afterAll(() => dir.cleanup())

  async function setUp(name: string) {
    const file = dir.file(name)
    const pool = createSqlitePool(file, { max: 1 }, { busyTimeoutMs: 10_000, synchronous: 'OFF' })
    await pool.query('create table items (id integer primary key, v text not null)')
    const holder = new Database(file, { timeout: 0 })
    holder.exec('BEGIN IMMEDIATE')
    // the holder commits from a timer: the pool's first write waits for it off the event loop
    const commit = setTimeout(() => holder.exec('COMMIT'), 800)
    const done = async (): Promise<void> => {
      clearTimeout(commit)
      if (holder.inTransaction) holder.exec('COMMIT')
      holder.close()
      await pool.close()
    }
    return { pool, done }
  }

  function summary(err: unknown): unknown {
    return DatabaseError.is(err) ? { code: err.code, retryable: err.retryable, detail: err.detail } : err
  }

  async function firstRow(stream: AsyncIterable<unknown>): Promise<unknown> {
    for await (const row of stream) return row
    return undefined
  }

  for (const how of ['signal', 'timeoutMs'] as const) {
    it(`its ${how}: at once, retryable, never run; the statement before it runs`, async () => {
      const { pool, done } = await setUp(`${how}.db`)
      try {
        const ac = new AbortController()
        setTimeout(() => ac.abort(), 200)
        const started = performance.now()
        let rejectedAfter = 0
        const out = await pool.withConnection((conn) =>
          Promise.all([
            conn.query("insert into items (v) values ('first')", [], { timeoutMs: 5_000 }).then((r) => r.rowCount),
            firstRow(
              conn.stream(
                "insert into items (v) values ('by the stream') returning v",
                [],
                how === 'signal' ? { signal: ac.signal } : { timeoutMs: 200 },
              ),
            ).catch((err: unknown) => {
              rejectedAfter = performance.now() - started
              return summary(err)
            }),
          ]),
        )
        expect(out).toEqual([
          1,
          {
            code: how === 'signal' ? 'QUERY_CANCELLED' : 'QUERY_TIMEOUT',
            retryable: true,
            detail: expect.objectContaining({ started: false }),
          },
        ])
        // at the abort / deadline, not when the lock came free
        expect(rejectedAfter).toBeLessThan(700)
        expect((await pool.query<{ v: string }>('select v from items order by id')).rows.map((r) => r.v)).toEqual(['first'])
      } finally {
        await done()
      }
    }, 30_000)
  }

  // re-review r11 item 7: closed by its handle (the callback returned) while it waited its turn, it
  // failed 'closed before its last row', retryable false, as if it had run; it never ran (as on Postgres)
  it('closed by its handle while it waits its turn: QUERY_FAILED, retryable, never run; it never runs later', async () => {
    const { pool, done } = await setUp('closed.db')
    try {
      let pending: Promise<unknown> | undefined
      await pool.withConnection(async (conn) => {
        void conn.query("insert into items (v) values ('first')", [], { timeoutMs: 5_000 })
        const rows = conn.stream("insert into items (v) values ('by the stream') returning v")[Symbol.asyncIterator]()
        pending = rows.next().then(
          () => 'resolved',
          (err: unknown) => summary(err),
        )
        await new Promise((resolve) => setTimeout(resolve, 50))
      })
      expect(await pending).toEqual({ code: 'QUERY_FAILED', retryable: true, detail: { started: false } })
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect((await pool.query<{ v: string }>('select v from items order by id')).rows.map((r) => r.v)).toEqual(['first'])
    } finally {
      await done()
    }
  }, 30_000)
})
