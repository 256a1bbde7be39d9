import Database from 'better-sqlite3'
import { DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A statement's AbortSignal or timeoutMs that fires while it still waits its turn on its lease
// (behind a statement of the same lease waiting for a lock another connection holds) fails it at
// once, retryable (it never ran), and leaves the statement before it alone; the same contract as on
// Postgres (review r1 items 4 and 7). Before: the abort was seen only when its turn came, and a
// deadline that passed while it was queued was ignored (it ran, and resolved, after its deadline).
describe('a statement queued on a lease behind one waiting for a lock', () => {
  const dir = tempDir('dbpool-queued-')
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

  it('an AbortSignal: QUERY_CANCELLED at once, retryable, never run; the statement before it and the ones after run', async () => {
    const { pool, done } = await setUp('abort.db')
    try {
      const ac = new AbortController()
      setTimeout(() => ac.abort(), 200)
      const started = performance.now()
      let rejectedAfter = 0
      const out = await pool.withConnection((conn) =>
        Promise.all([
          conn.query("insert into items (v) values ('first')").then((r) => r.rowCount),
          conn
            .query("insert into items (v) values ('aborted')", [], { signal: ac.signal })
            .then((r) => r.rowCount)
            .catch((err: unknown) => {
              rejectedAfter = performance.now() - started
              return summary(err)
            }),
          conn.query("insert into items (v) values ('after')").then((r) => r.rowCount),
        ]),
      )
      expect(out).toEqual([1, { code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } }, 1])
      // at the abort, not when the lock came free
      expect(rejectedAfter).toBeLessThan(700)
      expect((await pool.query<{ v: string }>('select v from items order by id')).rows.map((r) => r.v)).toEqual(['first', 'after'])
    } finally {
      await done()
    }
  }, 30_000)

  it('a timeoutMs passing while it is queued: QUERY_TIMEOUT at its deadline, retryable, never run; the statement before it runs', async () => {
    const { pool, done } = await setUp('deadline.db')
    try {
      const out = await pool.withConnection((conn) =>
        Promise.all([
          conn.query("insert into items (v) values ('first')").then((r) => r.rowCount),
          conn
            .query("insert into items (v) values ('timed out')", [], { timeoutMs: 200 })
            .then((r) => r.rowCount)
            .catch((err: unknown) => summary(err)),
          conn.query("insert into items (v) values ('after')", [], { timeoutMs: 5_000 }).then((r) => r.rowCount),
        ]),
      )
      expect(out).toEqual([1, { code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false, timeoutMs: 200 } }, 1])
      expect((await pool.query<{ v: string }>('select v from items order by id')).rows.map((r) => r.v)).toEqual(['first', 'after'])
    } finally {
      await done()
    }
  }, 30_000)

  it('a deadline not reached while queued: it runs when its turn comes', async () => {
    const { pool, done } = await setUp('in-time.db')
    try {
      const out = await pool.withConnection((conn) =>
        Promise.all([
          conn.query("insert into items (v) values ('first')").then((r) => r.rowCount),
          conn.query("insert into items (v) values ('second')", [], { timeoutMs: 5_000 }).then((r) => r.rowCount),
        ]),
      )
      expect(out).toEqual([1, 1])
      expect((await pool.query<{ v: string }>('select v from items order by id')).rows.map((r) => r.v)).toEqual(['first', 'second'])
    } finally {
      await done()
    }
  }, 30_000)
})
