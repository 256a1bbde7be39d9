import { DatabaseError, sql } from '@dbpool/core'
import Database from 'better-sqlite3'
import { createSqlitePool, SqliteConnectionManager } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// a Database handle closed by user code during a lease (conn.native.close()) must never go back to
// the free list: the pool destroys it at release and opens a replacement
describe('a Database handle closed during a lease', () => {
  it.each(['write', 'read'] as const)('on the %s lane: discarded at release, and the next statements succeed', async (lane) => {
    const pool = createSqlitePool(tmp.file(`closed-${lane}.db`), { name: `closed-${lane}`, min: 0 }, { readers: 1 })
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(`${info.lane}: ${info.reason}`))
    try {
      await pool.query('create table t (id integer primary key, note text)')
      const closedId = await pool.withConnection(
        async (conn) => {
          conn.native.close()
          return conn.id
        },
        { lane },
      )
      expect(destroyed).toEqual([`${lane}: unusable`])
      for (let i = 0; i < 3; i++) {
        await pool.query(sql`insert into t (note) values (${`after ${i}`})`)
        expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: i + 1 }])
      }
      const ids = await Promise.all([
        pool.withConnection(async (conn) => ({ id: conn.id, open: conn.native.open }), { lane }),
        pool.transaction(async (tx) => (await tx.query('select count(*) as n from t')).rows),
      ])
      expect(ids[0].open).toBe(true)
      expect(ids[0].id).not.toBe(closedId)
      expect(ids[1]).toEqual([{ n: 3 }])
    } finally {
      await pool.close()
    }
  })

  it('closed while idle (a reference kept past the lease): skipped by pool.query, discarded at the next acquire', async () => {
    const pool = createSqlitePool(tmp.file('closed-idle.db'), { name: 'closed-idle' }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, note text)')
      const kept = await pool.withConnection(async (conn) => conn.native)
      kept.close()
      await pool.query(sql`insert into t (note) values (${'direct'})`)
      await pool.transaction((tx) => tx.query(sql`insert into t (note) values (${'leased'})`))
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 2 }])
      expect(await pool.withConnection(async (conn) => conn.native === kept)).toBe(false)
    } finally {
      await pool.close()
    }
  })

  it('inside a transaction: transaction() rejects with CONNECTION_LOST and the pool recovers', async () => {
    const pool = createSqlitePool(tmp.file('closed-tx.db'), { name: 'closed-tx' }, { readers: 0 })
    try {
      await pool.query('create table t (id integer primary key, note text)')
      const err = await pool
        .transaction(async (tx) => {
          await tx.query(sql`insert into t (note) values (${'lost'})`)
          tx.native.close()
          await tx.query(sql`insert into t (note) values (${'after close'})`)
        })
        .catch((e: unknown) => e)
      expect(DatabaseError.is(err, 'CONNECTION_LOST')).toBe(true)
      await pool.transaction((tx) => tx.query(sql`insert into t (note) values (${'next'})`))
      expect((await pool.query('select note from t')).rows).toEqual([{ note: 'next' }])
      expect(pool.stats('write').size).toBe(1)
    } finally {
      await pool.close()
    }
  })

  // isUsable() reads the connection's state (the pool asks before every lease-free statement), which
  // close() keeps: a handle is still a better-sqlite3 Database, and closing it by any caller counts
  it.each(['write', 'read'] as const)('the manager sees a %s handle closed by its holder as unusable', async (lane) => {
    const manager = new SqliteConnectionManager({ path: tmp.file(`closed-state-${lane}.db`), readers: 1 })
    try {
      const db = await manager.connect(lane, { onLost: () => undefined })
      expect(db).toBeInstanceOf(Database)
      expect(manager.isUsable(db)).toBe(true)
      expect(manager.transactionState(db)).toBe('idle')
      db.close()
      expect(manager.isUsable(db)).toBe(false)
      // not 'idle': a transaction's next statement must say CONNECTION_LOST, not "ended through tx.native"
      expect(manager.transactionState(db)).toBe('unknown')
      await manager.destroy(db)
    } finally {
      await manager.end()
    }
  })
})
