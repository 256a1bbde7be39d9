import Cursor from 'pg-cursor'
import { sql, type DatabasePool, type PoolConnection } from '@dbpool/core'
import { PostgresConnectionManager, type PostgresConnection, type SessionReset } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// What a lease may assume about the connection it is handed (issue 10, items 3 and 4): classic
// (non-pipeline) mode whatever sessionReset is, and a live pg client.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  jest.restoreAllMocks()
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** Streams every row of `generate_series(1, n)` through pg-cursor on the lease's own pg client. */
async function streamRows(conn: PoolConnection<PostgresConnection>, n: number): Promise<number> {
  const cursor = conn.native.client.query(new Cursor<{ g: number }>(`select g from generate_series(1, ${n}) g`))
  let seen = 0
  try {
    for (;;) {
      const batch = await cursor.read(100)
      if (batch.length === 0) return seen
      for (const row of batch) if (row.g === seen + 1) seen++
    }
  } finally {
    await cursor.close()
  }
}

describe('every lease starts in classic (non-pipeline) mode', () => {
  it.each<SessionReset>(['none', 'clean'])(
    "sessionReset '%s': after pipelined pool.query traffic, a withConnection lease streams all rows with pg-cursor",
    async (sessionReset) => {
      const shared = jest.spyOn(PostgresConnectionManager.prototype, 'executeShared')
      pool = poolOn(db.url, { max: 2, min: 0 }, { pipelineDepth: 8, sessionReset })
      const p = pool
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) => p.query<{ i: number }>(sql`select ${i}::int as i, pg_sleep(0.002)`)),
      )
      expect(answers.map((r) => r.rows[0]?.i)).toEqual(Array.from({ length: 40 }, (_, i) => i))
      expect(shared.mock.calls.length).toBeGreaterThan(0) // the connections did go into pipeline mode
      expect(p.stats().size).toBe(2)
      // both connections at once, so each of them is checked
      const read = await Promise.all([
        p.withConnection((conn) => streamRows(conn, 1_000)),
        p.withConnection((conn) => streamRows(conn, 1_000)),
      ])
      expect(read).toEqual([1_000, 1_000])
    },
    20_000,
  )
})

describe('a connection whose pg client was ended or failed during a lease is never reused', () => {
  it.each([
    ['ended (end() awaited)', (conn: PostgresConnection) => conn.client.end()],
    ['ending (end() not awaited)', (conn: PostgresConnection) => void conn.client.end()],
    [
      'errored (socket destroyed with an error)',
      (conn: PostgresConnection) => void conn.client.connection.stream.destroy(new Error('simulated socket failure')),
    ],
  ])('%s: dropped on release, the next two queries run on new connections', async (_how, breakIt) => {
    pool = poolOn(db.url, { max: 2, min: 0 })
    const p = pool
    const destroyed: string[] = []
    p.on('destroy', ({ reason }) => destroyed.push(reason))
    const pid = await p.withConnection(async (conn) => {
      const { rows } = await conn.query<{ pid: number }>('select pg_backend_pid() as pid')
      await breakIt(conn.native)
      return rows[0]!.pid
    })
    expect(p.stats()).toMatchObject({ size: 0, idle: 0, used: 0 })
    expect(destroyed).toHaveLength(1)
    const next = [
      (await p.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid,
      (await p.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid,
    ]
    expect(next).not.toContain(pid)
  })
})

// The rule SQLite's fairness yield now keeps too (packages/sqlite/test/integration/event-loop-fairness):
// a statement issued on a lease and not awaited runs before the connection serves the next caller,
// and a transaction's statement before its COMMIT (pg.Client's queue keeps the order here).
describe('a statement issued on a lease and not awaited', () => {
  it('runs before the next caller of the connection: resolved means kept, not rolled back with another transaction', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const p = pool
    await p.query('create table late_lease (v text not null)')
    let late: Promise<unknown> | undefined
    const holder = p.withConnection(async (conn) => {
      await conn.query('select 1')
      late = conn.query("insert into late_lease (v) values ('late')")
    })
    const other = p.transaction(async (tx) => {
      await tx.query("insert into late_lease (v) values ('other')")
      throw new Error('the other caller rolls back')
    })
    await holder
    await expect(other).rejects.toThrow('the other caller rolls back')
    await expect(late).resolves.toMatchObject({ rowCount: 1 })
    expect((await p.query('select v from late_lease')).rows).toEqual([{ v: 'late' }])
  })

  it('inside a transaction runs before the COMMIT: its failure rolls the transaction back', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const p = pool
    await p.query('create table late_tx (v text not null)')
    let late: Promise<unknown> | undefined
    const outcome = p.transaction(async (tx) => {
      await tx.query("insert into late_tx (v) values ('a')")
      late = tx.query('insert into late_tx (v) values (null)').catch((err: unknown) => err)
    })
    await expect(outcome).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    expect(await late).toMatchObject({ code: 'NOT_NULL_VIOLATION' })
    expect((await p.query('select v from late_tx')).rows).toEqual([])
  })
})
