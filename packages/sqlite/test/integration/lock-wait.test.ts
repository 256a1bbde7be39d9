import Database from 'better-sqlite3'
import { DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// Another connection (a raw better-sqlite3 handle in this process: another pool, or another process)
// holds a lock. SQLite's own busy handler waited up to `busyTimeoutMs` inside the synchronous call: the
// whole event loop froze, so the holder's own timers (here: the one that commits) could not run, every
// call's `timeoutMs` was ignored, and the statement failed with BUSY after the full wait. Now SQLite waits
// a few ms and the pool retries a statement that changed nothing after a timer.

/** Longest gap between two ticks of a 5 ms interval while `work` runs. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ readonly result: PromiseSettledResult<T>; readonly stallMs: number }> {
  let last = performance.now()
  let stallMs = 0
  const timer = setInterval(() => {
    const now = performance.now()
    stallMs = Math.max(stallMs, now - last)
    last = now
  }, 5)
  try {
    const [result] = await Promise.allSettled([work()])
    stallMs = Math.max(stallMs, performance.now() - last)
    return { result: result!, stallMs }
  } finally {
    clearInterval(timer)
  }
}

function released<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason
  return result.value
}

function rejection(result: PromiseSettledResult<unknown>): DatabaseError {
  if (result.status === 'fulfilled') throw new Error('expected a rejection')
  expect(DatabaseError.is(result.reason)).toBe(true)
  return result.reason as DatabaseError
}

// the event loop of a loaded CI machine can pause a while (GC, other processes); a frozen one paused
// for the whole busyTimeoutMs (10 s here)
const MAX_STALL_MS = 500
const BUSY_TIMEOUT_MS = 10_000

describe('a SQLite lock held by another connection', () => {
  const dir = tempDir('dbpool-lock-')
  afterAll(() => dir.cleanup())

  function setUp(name: string, journalMode: 'WAL' | 'DELETE' = 'WAL', busyTimeoutMs = BUSY_TIMEOUT_MS) {
    const file = dir.file(name)
    const pool = createSqlitePool(file, { max: 2 }, { journalMode, busyTimeoutMs, synchronous: 'OFF' })
    const holder = new Database(file, { timeout: 0 })
    return { pool, holder }
  }

  async function rows(pool: ReturnType<typeof createSqlitePool>): Promise<string[]> {
    return (await pool.query<{ v: string }>('select v from items order by id')).rows.map((r) => r.v)
  }

  it('a lone write waits off the event loop (timers run) and succeeds once the holder commits', async () => {
    const { pool, holder } = setUp('lone.db')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      holder.exec('BEGIN IMMEDIATE')
      holder.prepare("insert into items (v) values ('holder')").run()
      // the holder commits from a timer: only a running event loop lets it
      const commit = setTimeout(() => holder.exec('COMMIT'), 300)
      const { result, stallMs } = await longestStall(() => pool.query("insert into items (v) values ('pool')"))
      clearTimeout(commit)
      expect(released(result).rowCount).toBe(1)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)
      expect(await rows(pool)).toEqual(['holder', 'pool'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('a transaction() waits at BEGIN IMMEDIATE, then runs its statements once, in order', async () => {
    const { pool, holder } = setUp('tx.db')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      holder.exec('BEGIN IMMEDIATE')
      const commit = setTimeout(() => holder.exec('COMMIT'), 300)
      let calls = 0
      const { result, stallMs } = await longestStall(() =>
        pool.transaction(async (tx) => {
          calls++
          // issued together, not awaited one by one: they still run in this order
          await Promise.all([tx.query("insert into items (v) values ('a')"), tx.query("insert into items (v) values ('b')")])
          return 'done'
        }),
      )
      clearTimeout(commit)
      expect(released(result)).toBe('done')
      expect(calls).toBe(1)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)
      expect(await rows(pool)).toEqual(['a', 'b'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('timeoutMs ends the wait at its deadline with QUERY_TIMEOUT (retryable: not run), on a lone statement and on a lease', async () => {
    const { pool, holder } = setUp('deadline.db')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      holder.exec('BEGIN IMMEDIATE')
      const started = performance.now()
      const { result, stallMs } = await longestStall(() => pool.query("insert into items (v) values ('late')", [], { timeoutMs: 300 }))
      const elapsed = performance.now() - started
      const error = rejection(result)
      expect(error.code).toBe('QUERY_TIMEOUT')
      expect(error.retryable).toBe(true)
      expect(error.detail?.timeoutMs).toBe(300)
      expect(DatabaseError.is(error.cause, 'BUSY')).toBe(true)
      // at its deadline, not at busyTimeoutMs
      expect(elapsed).toBeGreaterThanOrEqual(290)
      expect(elapsed).toBeLessThan(BUSY_TIMEOUT_MS / 2)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)

      const onLease = await longestStall(() =>
        pool.withConnection((conn) => conn.query("insert into items (v) values ('lease')", [], { timeoutMs: 200 })),
      )
      expect(rejection(onLease.result).code).toBe('QUERY_TIMEOUT')

      const controller = new AbortController()
      setTimeout(() => controller.abort(new Error('stop')), 200)
      const aborted = await longestStall(() => pool.query("insert into items (v) values ('aborted')", [], { signal: controller.signal }))
      expect(rejection(aborted.result).code).toBe('QUERY_CANCELLED')

      holder.exec('COMMIT')
      // none of them ran
      expect(await rows(pool)).toEqual([])
      await pool.query("insert into items (v) values ('after')")
      expect(await rows(pool)).toEqual(['after'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('busyTimeoutMs is the longest wait: then BUSY, as before, without freezing the event loop', async () => {
    const { pool, holder } = setUp('busy.db', 'WAL', 1_000)
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      holder.exec('BEGIN IMMEDIATE')
      const started = performance.now()
      const { result, stallMs } = await longestStall(() => pool.transaction((tx) => tx.query("insert into items (v) values ('x')")))
      expect(rejection(result).code).toBe('BUSY')
      expect(performance.now() - started).toBeGreaterThanOrEqual(990)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)
      holder.exec('COMMIT')
      expect(await rows(pool)).toEqual([])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  // rollback-journal mode: a reader's SHARED lock keeps a writer from the EXCLUSIVE lock it needs to
  // commit; SQLite then answers the COMMIT with BUSY and keeps the transaction (nothing committed)
  it('rollback journal: a COMMIT kept waiting by a reader is retried, and the transaction body is not run again', async () => {
    const { pool, holder } = setUp('commit.db', 'DELETE')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      holder.exec('BEGIN')
      holder.prepare('select count(*) from items').get()
      const end = setTimeout(() => holder.exec('COMMIT'), 300)
      let calls = 0
      const { result, stallMs } = await longestStall(() =>
        pool.transaction(async (tx) => {
          calls++
          await tx.query("insert into items (v) values ('once')")
        }),
      )
      clearTimeout(end)
      released(result)
      expect(calls).toBe(1)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)
      expect(await rows(pool)).toEqual(['once'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('rollback journal: an auto-commit write whose commit got BUSY (rolled back whole) runs once more, and is kept once', async () => {
    const { pool, holder } = setUp('autocommit.db', 'DELETE')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      holder.exec('BEGIN')
      holder.prepare('select count(*) from items').get()
      const end = setTimeout(() => holder.exec('COMMIT'), 300)
      const { result, stallMs } = await longestStall(() =>
        pool.query("insert into items (v) values ('one'); insert into items (v) values ('two')"),
      )
      clearTimeout(end)
      released(result)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)
      const single = await longestStall(async () => {
        holder.exec('BEGIN')
        holder.prepare('select count(*) from items').get()
        setTimeout(() => holder.exec('COMMIT'), 200)
        return pool.query("insert into items (v) values ('three')")
      })
      released(single.result)
      expect(await rows(pool)).toEqual(['one', 'two', 'three'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('rollback journal: a new connection waits for an exclusive lock off the event loop', async () => {
    const file = dir.file('connect.db')
    const first = createSqlitePool(file, {}, { journalMode: 'DELETE' })
    await first.query('create table items (id integer primary key, v text not null)')
    await first.close()
    const holder = new Database(file, { timeout: 0 })
    const pool = createSqlitePool(file, { min: 0 }, { journalMode: 'DELETE', busyTimeoutMs: BUSY_TIMEOUT_MS })
    try {
      holder.exec('BEGIN EXCLUSIVE')
      const end = setTimeout(() => holder.exec('COMMIT'), 300)
      const { result, stallMs } = await longestStall(() => pool.query("insert into items (v) values ('x')"))
      clearTimeout(end)
      released(result)
      expect(stallMs).toBeLessThan(MAX_STALL_MS)
      expect(await rows(pool)).toEqual(['x'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('rollback journal: a stream whose first batch meets an exclusive lock waits off the event loop, then reads every row', async () => {
    const { pool, holder } = setUp('stream.db', 'DELETE')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      await pool.query("insert into items (v) values ('a'), ('b'), ('c')")
      // EXCLUSIVE from BEGIN: readers are locked out until the holder ends its transaction
      holder.exec('BEGIN EXCLUSIVE')
      const end = setTimeout(() => holder.exec('COMMIT'), 300)
      const { result, stallMs } = await longestStall(async () => {
        const seen: string[] = []
        for await (const row of pool.stream<{ v: string }>('select v from items order by id', [], { batchSize: 2 })) seen.push(row.v)
        return seen
      })
      clearTimeout(end)
      expect(released(result)).toEqual(['a', 'b', 'c'])
      expect(stallMs).toBeLessThan(MAX_STALL_MS)

      // the stream's own deadline ends the wait
      holder.exec('BEGIN EXCLUSIVE')
      const timedOut = await longestStall(async () => {
        for await (const row of pool.stream('select v from items', [], { timeoutMs: 200 })) void row
      })
      expect(rejection(timedOut.result).code).toBe('QUERY_TIMEOUT')
      holder.exec('COMMIT')
      expect(await rows(pool)).toEqual(['a', 'b', 'c'])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it('a write inside a transaction that already read is not retried (SQLite does not wait there either): BUSY, the transaction aborted', async () => {
    const { pool, holder } = setUp('deferred.db')
    try {
      await pool.query('create table items (id integer primary key, v text not null)')
      const outcome = await pool
        .withConnection(async (conn) => {
          await conn.query('BEGIN')
          await conn.query('select count(*) from items')
          holder.exec('BEGIN IMMEDIATE')
          try {
            await conn.query("insert into items (v) values ('x')")
          } finally {
            await conn.query('ROLLBACK')
          }
        })
        .then(
          () => 'ran',
          (err: unknown) => err,
        )
      expect(DatabaseError.is(outcome, 'BUSY')).toBe(true)
      holder.exec('COMMIT')
      expect(await rows(pool)).toEqual([])
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK')
      holder.close()
      await pool.close()
    }
  }, 30_000)

  it.each(['a lone write', 'a transaction'])(
    'close() revoking %s still waiting for the lock: POOL_CLOSED (not retryable; it never ran), nothing written after',
    async (kind) => {
      const { pool, holder } = setUp(kind === 'a lone write' ? 'close-lone.db' : 'close-tx.db')
      try {
        await pool.query('create table items (id integer primary key, v text not null)')
        holder.exec('BEGIN IMMEDIATE')
        const waiting = (
          kind === 'a lone write'
            ? pool.query("insert into items (v) values ('pool')")
            : pool.transaction(async (tx) => tx.query("insert into items (v) values ('pool')"))
        ).then(
          () => 'ran',
          (err: unknown) => err,
        )
        await new Promise((resolve) => setTimeout(resolve, 50))
        const report = await pool.close({ timeoutMs: 50 })
        expect(report.outstandingLeases).toHaveLength(1)
        const err = (await waiting) as DatabaseError
        expect(DatabaseError.is(err)).toBe(true)
        expect(err.code).toBe('POOL_CLOSED')
        expect(err.retryable).toBe(false)
        holder.exec('COMMIT')
        expect(holder.prepare('select count(*) as n from items').get()).toEqual({ n: 0 })
      } finally {
        if (holder.inTransaction) holder.exec('ROLLBACK')
        holder.close()
        await pool.close()
      }
    },
    30_000,
  )
})
