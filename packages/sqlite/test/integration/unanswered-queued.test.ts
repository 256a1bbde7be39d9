import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'

// Review r1 items 1, 2 on SQLite: statements queued on a lease behind one that waits for the event
// loop (a statement with a timeoutMs runs through the async path; those issued after it queue behind
// it, lease.pending) count before the state is read: conn.transaction() nests as a savepoint behind
// an un-awaited BEGIN, and the release rolls back a transaction they opened before the next caller.
let dir: string
let pool: DatabasePool<SqliteDatabase> | undefined

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbpool-queued-'))
  pool = createSqlitePool(path.join(dir, 'queued.db'), { max: 2 })
  await pool.query('create table q_t (id integer primary key)')
})

afterEach(async () => {
  await pool?.close()
  pool = undefined
  fs.rmSync(dir, { recursive: true, force: true })
})

const settle = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => 'resolved',
    (err: unknown) => err,
  )

const ids = async (p: DatabasePool<SqliteDatabase>): Promise<number[]> =>
  (await p.query<{ id: number }>('select id from q_t order by id')).rows.map((r) => r.id)

it('conn.transaction() behind an un-awaited [queued statement, BEGIN, insert] nests as a savepoint: the caller ROLLBACK leaves nothing', async () => {
  const p = pool!
  const out = await p.withConnection(async (conn) => {
    const issued = [
      settle(conn.query('select count(*) from q_t', [], { timeoutMs: 5_000 })),
      settle(conn.query('BEGIN')),
      settle(conn.query('insert into q_t (id) values (1)')),
    ]
    const inner = await conn.transaction(async (tx) => (await tx.query('insert into q_t (id) values (2)')).rowCount)
    const statements = await Promise.all(issued)
    await conn.query('ROLLBACK')
    return { inner, statements }
  })
  expect(out).toEqual({ inner: 1, statements: ['resolved', 'resolved', 'resolved'] })
  expect(await ids(p)).toEqual([])
})

it.each([
  ['returns', false],
  ['throws', true],
])('a callback that %s with [queued statement, BEGIN, insert] un-awaited: rolled back, the next caller commits', async (_how, throws) => {
  const p = pool!
  let issued: Promise<unknown>[] = []
  const outcome = await p
    .withConnection(async (conn) => {
      issued = [
        settle(conn.query('select count(*) from q_t', [], { timeoutMs: 5_000 })),
        settle(conn.query('BEGIN')),
        settle(conn.query('insert into q_t (id) values (1)')),
      ]
      if (throws) throw new Error('callback threw')
      return 'callback returned'
    })
    .catch((err: unknown) => err)
  if (throws) expect(outcome).toEqual(new Error('callback threw'))
  else expect(DatabaseError.is(outcome) && outcome.code).toBe('TRANSACTION_ROLLED_BACK')
  expect(await Promise.all(issued)).toEqual(['resolved', 'resolved', 'resolved'])
  expect((await p.query('insert into q_t (id) values (2)')).rowCount).toBe(1)
  await p.close()
  const reopened = (pool = createSqlitePool(path.join(dir, 'queued.db'), { max: 1 }))
  expect(await ids(reopened)).toEqual([2])
})
