import Database from 'better-sqlite3'
import { DatabaseError, isOutcomeUnknown } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A single SQLite statement has no commit-unknown window (it runs in process, to its end, inside the
// call). A multi-statement script run outside a transaction runs inside BEGIN IMMEDIATE ... COMMIT (all
// or nothing, as Postgres runs a text as one implicit transaction), so it has none either. A script
// with its own transaction control runs as written: exec() commits its blocks one by one, so a
// retryable failure of a later statement (BUSY: another process holds the lock of an attached
// database) comes after the first ones committed, and a retry would apply them twice.
const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function failure(work: Promise<unknown>): Promise<DatabaseError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

describe('a multi-statement script that fails with BUSY part-way', () => {
  it('outside a transaction, without transaction control: BUSY, retryable, nothing kept (the script is one transaction); a retry applies it once', async () => {
    const main = tmp.file('script-atomic.db')
    const other = tmp.file('script-atomic-other.db')
    const locker = new Database(other)
    locker.exec('create table t (x integer)')
    const pool = createSqlitePool(main, { name: 'script-atomic' }, { busyTimeoutMs: 50 })
    try {
      await pool.query('create table ledger (id integer primary key)')
      await pool.query(`attach database '${other}' as other`)
      locker.exec('begin immediate')
      const script = 'insert into ledger (id) values (1); insert into other.t (x) values (1)'
      const err = await failure(pool.query(script))
      expect(err).toMatchObject({ code: 'BUSY', retryable: true })
      expect(isOutcomeUnknown(err)).toBe(false)
      expect((await pool.query('select id from ledger')).rows).toEqual([])
      locker.exec('rollback')
      await pool.query(script)
      expect((await pool.query('select id from ledger')).rows).toEqual([{ id: 1 }])
    } finally {
      if (locker.inTransaction) locker.exec('rollback')
      locker.close()
      await pool.close()
    }
  })

  it('with its own BEGIN ... COMMIT, failing after that block committed: BUSY, not retryable, outcome unknown; the block is there', async () => {
    const main = tmp.file('script-main.db')
    const other = tmp.file('script-other.db')
    const locker = new Database(other)
    locker.exec('create table t (x integer)')
    const pool = createSqlitePool(main, { name: 'script' }, { busyTimeoutMs: 50 })
    try {
      await pool.query('create table ledger (id integer primary key)')
      await pool.query(`attach database '${other}' as other`)
      locker.exec('begin immediate')
      const err = await failure(pool.query('begin; insert into ledger (id) values (1); commit; insert into other.t (x) values (1)'))
      expect(err.code).toBe('BUSY')
      expect(err.retryable).toBe(false)
      expect(isOutcomeUnknown(err)).toBe(true)
      expect(err.message).toContain('its outcome is unknown')
      // what a retry on `retryable: true` would have inserted twice (here: a UNIQUE_VIOLATION at best)
      expect((await pool.query('select id from ledger')).rows).toEqual([{ id: 1 }])
    } finally {
      if (locker.inTransaction) locker.exec('rollback')
      locker.close()
      await pool.close()
    }
  })

  // rollback-journal mode: another connection's read lock keeps COMMIT from its exclusive lock; SQLite
  // keeps the transaction open, so nothing of the script committed (it was restated outcome unknown)
  it('BEGIN ... COMMIT whose COMMIT got BUSY (transaction still open): BUSY, retryable, not outcome unknown; nothing kept, a retry applies it once', async () => {
    const main = tmp.file('script-commit-busy.db')
    const other = tmp.file('script-commit-busy-other.db')
    const pool = createSqlitePool(main, { name: 'script-commit-busy' }, { journalMode: 'DELETE', busyTimeoutMs: 50 })
    const reader = new Database(main)
    const otherReader = new Database(other)
    try {
      otherReader.exec('create table t (x integer)')
      await pool.query('create table ledger (id integer primary key)')
      await pool.query(`attach database '${other}' as other`)
      reader.exec('begin')
      reader.prepare('select count(*) from ledger').get()
      const script = 'BEGIN; insert into ledger (id) values (1); COMMIT'
      const err = await failure(pool.query(script))
      expect(err).toMatchObject({ code: 'BUSY', retryable: true })
      expect(isOutcomeUnknown(err)).toBe(false)
      expect(err.message).not.toContain('committed')
      reader.exec('commit')
      expect((await pool.query('select id from ledger')).rows).toEqual([])
      await pool.query(script)
      expect((await pool.query('select id from ledger')).rows).toEqual([{ id: 1 }])

      // a statement that autocommitted before the script's own BEGIN was kept: still outcome unknown
      otherReader.exec('begin')
      otherReader.prepare('select count(*) from t').get()
      const mixed = await failure(pool.query('insert into ledger (id) values (5); BEGIN; insert into other.t (x) values (6); COMMIT'))
      expect(mixed).toMatchObject({ code: 'BUSY', retryable: false })
      expect(isOutcomeUnknown(mixed)).toBe(true)
      otherReader.exec('commit')
      expect((await pool.query('select id from ledger order by id')).rows).toEqual([{ id: 1 }, { id: 5 }])
    } finally {
      if (reader.inTransaction) reader.exec('commit')
      if (otherReader.inTransaction) otherReader.exec('commit')
      reader.close()
      otherReader.close()
      await pool.close()
    }
  })

  // on a lease the same connection runs the script again: the transaction it opened must be gone, not
  // left open and aborted (every retry was TRANSACTION_ROLLED_BACK, still 'retryable')
  it('BEGIN ... COMMIT whose COMMIT got BUSY inside withConnection: rolled back at once, so running it again on the connection works', async () => {
    const main = tmp.file('script-commit-busy-lease.db')
    const pool = createSqlitePool(main, { name: 'script-commit-busy-lease' }, { journalMode: 'DELETE', busyTimeoutMs: 50 })
    const reader = new Database(main)
    try {
      await pool.query('create table ledger (id integer primary key)')
      reader.exec('begin')
      reader.prepare('select count(*) from ledger').get()
      const script = 'BEGIN; insert into ledger (id) values (1); COMMIT'
      const outcome = await pool.withConnection(async (c) => {
        const busy = await failure(c.query(script))
        expect(busy).toMatchObject({ code: 'BUSY', retryable: true })
        // no transaction left: a statement runs (it was refused TRANSACTION_ROLLED_BACK)
        expect((await c.query('select count(*) as n from ledger')).rows).toEqual([{ n: 0 }])
        const again = await failure(c.query(script))
        expect(again).toMatchObject({ code: 'BUSY', retryable: true })
        reader.exec('commit')
        await c.query(script)
        return (await c.query('select id from ledger')).rows
      })
      expect(outcome).toEqual([{ id: 1 }])
      // a failure that is not retryable leaves the script's transaction aborted for its owner, as on Postgres
      const left = await pool.withConnection(async (c) => {
        const dup = await failure(c.query('BEGIN; insert into ledger (id) values (2); insert into ledger (id) values (1); COMMIT'))
        expect(dup).toMatchObject({ code: 'UNIQUE_VIOLATION', retryable: false })
        expect(await failure(c.query('select 1'))).toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
        return (await c.query('COMMIT')).command
      })
      expect(left).toBe('ROLLBACK')
      expect((await pool.query('select id from ledger')).rows).toEqual([{ id: 1 }])
    } finally {
      if (reader.inTransaction) reader.exec('commit')
      reader.close()
      await pool.close()
    }
  })

  it('failing on its first statement (nothing written), or inside a transaction, BUSY stays retryable', async () => {
    const main = tmp.file('script-main-2.db')
    const other = tmp.file('script-other-2.db')
    const locker = new Database(other)
    locker.exec('create table t (x integer)')
    const pool = createSqlitePool(main, { name: 'script-2' }, { busyTimeoutMs: 50 })
    try {
      await pool.query('create table ledger (id integer primary key)')
      await pool.query(`attach database '${other}' as other`)
      locker.exec('begin immediate')
      const first = await failure(pool.query('insert into other.t (x) values (1); insert into ledger (id) values (1)'))
      expect(first).toMatchObject({ code: 'BUSY', retryable: true })
      expect(isOutcomeUnknown(first)).toBe(false)
      const inside = await failure(
        pool.transaction(async (tx) => {
          await tx.query('insert into ledger (id) values (2); insert into other.t (x) values (2)')
        }),
      )
      expect(inside).toMatchObject({ code: 'BUSY', retryable: true })
      expect((await pool.query('select id from ledger')).rows).toEqual([])
    } finally {
      if (locker.inTransaction) locker.exec('rollback')
      locker.close()
      await pool.close()
    }
  })
})

// review r2 item 5: a script that failed after statements it committed was reported as a plain
// failure when the error was not retryable (`...; commit` outside a transaction, a unique violation)
describe('a script with its own transaction control failing after statements it committed', () => {
  it.each([
    ["insert into t (v) values ('a'); commit", 'a'],
    ["insert into t (v) values ('b'); rollback", 'b'],
    ["insert into t (v) values ('c'); release s", 'c'],
    ["insert into t (v) values ('f'); savepoint s; insert into t (v) values ('f')", 'f'],
  ])('%s: rejected with detail.outcome unknown, not retryable (the first insert is kept)', async (text, v) => {
    const pool = createSqlitePool(tmp.file(`trailing-${v}.db`), { name: `trailing-${v}`, min: 0 }, { readers: 1 })
    try {
      await pool.query('create table t (id integer primary key, v text unique)')
      const err = await failure(pool.query(text))
      expect(err.retryable).toBe(false)
      expect(isOutcomeUnknown(err)).toBe(true)
      expect(err.message).toMatch(/may have been committed/)
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 1 }])
    } finally {
      await pool.close()
    }
  })

  it('a failure before anything was written is reported as it is', async () => {
    const pool = createSqlitePool(tmp.file('trailing-none.db'), { name: 'trailing-none', min: 0 }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, v text unique)')
      const err = await failure(pool.query("commit; insert into t (v) values ('x')"))
      expect(isOutcomeUnknown(err)).toBe(false)
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 0 }])
    } finally {
      await pool.close()
    }
  })
})
