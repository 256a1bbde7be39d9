import { Client } from 'pg'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { copyFrom, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, within } from './helpers'

// Review r3 item 12: statements issued at once on one connection (`Promise.all` of tx.query, a
// withConnection lease) were handed straight to pg.Client.query, which pg 8.23 answers with
// "DeprecationWarning: Calling client.query() when the client is already executing a query is
// deprecated and will be removed in pg@9.0". dbpool now keeps them itself and hands pg one at a time:
// every client.query() of this file's pools finds pg idle (no statement in hand, none in its queue),
// while order, withdrawal, loss, cursors and COPY behave as before.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

interface PgState {
  readonly _queryQueue: readonly unknown[]
  readonly _activeQuery: unknown
  readonly readyForQuery: boolean
  readonly pipeline: boolean
  readonly _queryable: boolean
  readonly _ending: boolean
}

/** client.query() calls that found pg busy (a statement in hand or queued), outside pipeline mode. */
const busyCalls: string[] = []
const originalQuery = Client.prototype.query

function textOf(query: unknown): string {
  if (typeof query === 'string') return query
  const text = (query as { text?: unknown } | null)?.text
  return typeof text === 'string' ? text : String((query as object | null)?.constructor?.name)
}

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => c.query('create table issued (id serial primary key, v text); create sequence issued_seq'))
  Client.prototype.query = function (this: Client, ...args: unknown[]) {
    const pg = this as unknown as PgState
    const busy = pg._activeQuery != null || pg._queryQueue.length > 0 || pg.readyForQuery !== true
    if (busy && !pg.pipeline && pg._queryable && !pg._ending) busyCalls.push(textOf(args[0]))
    return (originalQuery as (...a: unknown[]) => unknown).apply(this, args)
  } as typeof Client.prototype.query
}, 120_000)

beforeEach(async () => {
  busyCalls.length = 0
  await admin(db.url, async (c) => c.query('truncate issued restart identity'))
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
  expect(busyCalls).toEqual([])
}, 15_000)

afterAll(async () => {
  Client.prototype.query = originalQuery
  await db?.drop()
}, 60_000)

function onePool(): DatabasePool<PostgresConnection> {
  return (pool = poolOn(db.url, { min: 0, max: 1, name: 'one-in-pg' }, { cancelTimeoutMs: 2_000 }))
}

it('Promise.all of statements in a transaction: pg is handed one at a time, each answered, in the order issued', async () => {
  const p = onePool()
  const results = await p.transaction((tx) =>
    Promise.all(
      [1, 2, 3, 4, 5].map((i) => tx.query<{ n: number; s: string }>('select $1::int as n, nextval($2)::text as s', [i, 'issued_seq'])),
    ),
  )
  expect(results.map((r) => r.rows[0])).toEqual([1, 2, 3, 4, 5].map((n) => ({ n, s: String(n) })))
  expect(busyCalls).toEqual([])
})

it('on a lease: writes, an array check (held), a failing statement and plain texts run in the order issued', async () => {
  const p = onePool()
  const outcome = await p.withConnection((conn) =>
    Promise.all([
      conn.query("insert into issued (v) values ('a')"),
      // the first array parameter of a text holds the connection for its Parse/Describe probe
      conn.query('insert into issued (v) select x::text from unnest($1::int[]) as x', [[1, 2]]),
      conn.query('select 1/0').catch((err: unknown) => (DatabaseError.is(err) ? err.code : err)),
      conn.query("insert into issued (v) values ('b')"),
      conn.query('select count(*)::int as n from issued'),
    ]),
  )
  expect(outcome[2]).not.toBeInstanceOf(Error)
  expect((outcome[4] as unknown as { rows: { n: number }[] }).rows[0]!.n).toBe(4)
  const { rows } = await p.query<{ v: string }>('select v from issued order by id')
  expect(rows.map((r) => r.v)).toEqual(['a', '1', '2', 'b'])
})

it('an AbortSignal or timeoutMs on a statement dbpool still holds: withdrawn unsent (started false), the others run', async () => {
  const p = onePool()
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 100)
  const [slow, aborted, timedOut, after] = await p.withConnection((conn) =>
    Promise.all([
      conn.query('select pg_sleep(0.5)'),
      conn.query("insert into issued (v) values ('aborted')", [], { signal: ac.signal }).catch((err: unknown) => err),
      conn.query("insert into issued (v) values ('timed out')", [], { timeoutMs: 150 }).catch((err: unknown) => err),
      conn.query("insert into issued (v) values ('after') returning v"),
    ]),
  )
  expect(slow.rowCount).toBe(1)
  expect(aborted).toMatchObject({ code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } })
  expect(timedOut).toMatchObject({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false } })
  expect(after.rows).toEqual([{ v: 'after' }])
  const { rows } = await p.query<{ v: string }>('select v from issued order by id')
  expect(rows).toEqual([{ v: 'after' }])
})

it('a connection lost with statements held by dbpool: every one of them rejects (no hang), none ran', async () => {
  const p = onePool()
  const pid = (await p.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
  let settled: Promise<PromiseSettledResult<unknown>[]> | undefined
  const lease = p
    .withConnection((conn) => {
      settled = Promise.allSettled([
        conn.query('select pg_sleep(5)'),
        conn.query("insert into issued (v) values ('x')"),
        conn.query('select 2'),
        conn.query('select $1::int[] as a', [[1]]),
      ])
      return settled
    })
    .catch((err: unknown) => err)
  await new Promise((resolve) => setTimeout(resolve, 200))
  await admin(db.url, (c) => c.query('select pg_terminate_backend($1)', [pid]))
  const outcome = await within(settled!, 5_000)
  expect(outcome).not.toBe('pending')
  expect(await within(lease, 5_000)).not.toBe('pending')
  const results = (outcome as { value: PromiseSettledResult<unknown>[] }).value
  expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected'])
  for (const r of results.slice(1)) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'CONNECTION_LOST' })
  expect((await admin(db.url, (c) => c.query('select count(*)::int as n from issued'))).rows[0].n).toBe(0)
})

it('a stream opened behind a statement in flight, and a statement issued behind a COPY, wait their turn', async () => {
  const p = onePool()
  const [streamed, counted] = await p.withConnection(async (conn) => {
    const slow = conn.query('select pg_sleep(0.2)')
    const rows: number[] = []
    for await (const row of conn.stream<{ n: number }>('select generate_series(1, 3) as n')) rows.push(row.n)
    await slow
    const copying = copyFrom(conn, 'copy issued (v) from stdin', [['c1'], ['c2'], ['c3']])
    const count = conn.query<{ n: number }>('select count(*)::int as n from issued')
    await copying
    return [rows, (await count).rows[0]!.n] as const
  })
  expect(streamed).toEqual([1, 2, 3])
  expect(counted).toBe(3)
})

it('close() drains statements dbpool still holds on a lease', async () => {
  const p = onePool()
  const work = p.withConnection((conn) =>
    Promise.all([conn.query('select pg_sleep(0.2)'), conn.query("insert into issued (v) values ('drained') returning v")]),
  )
  await new Promise((resolve) => setTimeout(resolve, 50))
  await p.close({ timeoutMs: 5_000 })
  const [, inserted] = await work
  expect(inserted.rows).toEqual([{ v: 'drained' }])
  pool = undefined
})
