import { Client } from 'pg'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, sleep } from './helpers'

// A statement with a JS array parameter whose text's parameter types are not known yet sends an array
// check first (ArrayParameterCheck: a Parse/Describe probe, maybe a pg_type lookup), then itself.
// Re-review r11:
// - item 1: a stream issued after it was handed to pg at the probe's answer, before the statement
//   (inside a transaction it did not see the statement's write; after a BEGIN not awaited it ran in
//   auto-commit). Streams now take their turn behind the check as statements do.
// - item 6: a stream closed (its handle released) while behind its own check failed POOL_CLOSED.
// - item 3: a statement or stream withdrawn (timeoutMs, signal) while its probe was still kept unsent
//   left the probe queued: it was sent later, waited for locks, blocked the lease, aborted the
//   transaction. The probe is now taken out too.
// - item 4: withdrawn while its probe ran on the server: reported "never sent, connection kept" while
//   the probe went on running (the lease's next statements hung behind a lock; pool.query's deadline
//   stretched to cancelTimeoutMs). The probe is now cancelled as a running statement.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let locker: Client | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) =>
    c.query(
      'create table seqd (seq serial primary key, who text); create table acct (id int primary key, balance int); create table lk (id int primary key, tags int[]); create table other (id int)',
    ),
  )
}, 120_000)

beforeEach(async () => {
  await admin(db.url, async (c) =>
    c.query('truncate seqd restart identity; truncate lk; truncate other; delete from acct; insert into acct values (1, 100), (2, 100)'),
  )
})

afterEach(async () => {
  if (locker !== undefined) await locker.end().catch(() => undefined)
  locker = undefined
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

let texts = 0
/** A text not run before (its array check is not known on any connection): the check's probe is sent. */
function fresh(text: string): string {
  return `${text} /* ${++texts} */`
}

function onePool(options: { prepare?: boolean; cancelTimeoutMs?: number } = {}): DatabasePool<PostgresConnection> {
  const created = poolOn(db.url, { min: 0, max: 1, name: 'array-check-turn' }, { cancelTimeoutMs: 2_000, ...options })
  created.on('error', () => undefined)
  return (pool = created)
}

/** Another session holds `lock table lk in access exclusive mode` until the test ends (afterEach). */
async function lockTable(): Promise<void> {
  locker = new Client({ connectionString: db.url })
  await locker.connect()
  await locker.query('begin; lock table lk in access exclusive mode')
}

/** The backends of `pool` waiting for a lock (a probe left running). */
async function lockWaiters(): Promise<unknown[]> {
  return admin(
    db.url,
    async (c) =>
      (
        await c.query(
          "select query from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%into lk%'",
        )
      ).rows,
  )
}

async function drain(stream: AsyncIterable<Record<string, unknown>>): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  for await (const row of stream) out.push(row)
  return out
}

function summary(err: unknown): unknown {
  return DatabaseError.is(err) ? { code: err.code, retryable: err.retryable, detail: err.detail } : err
}

async function who(): Promise<unknown[]> {
  return admin(db.url, async (c) => (await c.query('select who from seqd order by seq')).rows.map((r: { who: string }) => r.who))
}

describe('a stream issued after a statement whose array check is pending runs after it (r11 item 1)', () => {
  it('on a lease: the statement first, then the stream', async () => {
    const p = onePool()
    await p.withConnection((conn) =>
      Promise.all([
        conn.query(fresh('insert into seqd (who) select $1 where 1 = any($2)'), ['statement', [1, 2]]),
        drain(conn.stream("insert into seqd (who) values ('stream') returning seq")),
      ]),
    )
    expect(await who()).toEqual(['statement', 'stream'])
  }, 30_000)

  it('with prepare: false (the check runs every time): in order on every run', async () => {
    const p = onePool({ prepare: false })
    const text = 'insert into seqd (who) select $1 where 1 = any($2)'
    await p.withConnection(async (conn) => {
      for (let run = 0; run < 3; run++)
        await Promise.all([
          conn.query(text, [`statement ${run}`, [1]]),
          drain(conn.stream(`insert into seqd (who) values ('stream ${run}') returning seq`)),
        ])
    })
    expect(await who()).toEqual(['statement 0', 'stream 0', 'statement 1', 'stream 1', 'statement 2', 'stream 2'])
  }, 30_000)

  it('inside a transaction: the stream sees the statement issued before it', async () => {
    const p = onePool()
    const seen = await p.transaction(async (tx) => {
      const [, rows] = await Promise.all([
        tx.query(fresh('update acct set balance = balance - $1 where id = any($2)'), [30, [1, 2]]),
        drain(tx.stream('select id, balance from acct order by id')),
      ])
      return rows
    })
    expect(seen).toEqual([
      { id: 1, balance: 70 },
      { id: 2, balance: 70 },
    ])
  }, 30_000)

  it('a write stream after a BEGIN not awaited runs inside that transaction: the rollback undoes it', async () => {
    const p = onePool()
    await p.withConnection(async (conn) => {
      const first = conn.query(fresh('insert into seqd (who) select $1 where 1 = any($2)'), ['statement', [1]])
      const begin = conn.query('begin')
      const streamed = drain(conn.stream("insert into seqd (who) values ('stream') returning seq"))
      await Promise.all([first, begin, streamed])
      await conn.query('rollback')
    })
    expect(await who()).toEqual(['statement'])
  }, 30_000)

  it("a stream's own array check waits behind the statement's (its probe is not sent before the statement)", async () => {
    const p = onePool()
    const out = await p.withConnection(async (conn) => {
      await conn.query('begin')
      const [, , rows] = await Promise.all([
        conn.query(fresh('select $1::int as one where 1 = any($2)'), [1, [1]]),
        // held behind that check: the stream's check (a Parse of its text) must come after it
        conn.query('create table made_here (id int)'),
        drain(conn.stream(fresh('select id from made_here where id = any($1)'), [[1]])),
      ])
      await conn.query('rollback')
      return rows
    })
    expect(out).toEqual([])
  }, 30_000)
})

describe('a stream closed while behind its own array check (r11 item 6)', () => {
  it('its pending read fails QUERY_FAILED, retryable, never sent (as without an array parameter); nothing written', async () => {
    const p = onePool()
    let pending!: Promise<unknown>
    await p.withConnection(async (conn) => {
      void conn.query('select pg_sleep(0.3)')
      const it = conn.stream(fresh("insert into seqd (who) select 'stream' where 1 = any($1) returning seq"), [[1]])[Symbol.asyncIterator]()
      pending = it.next().catch((err: unknown) => err)
      await sleep(50)
    })
    const err = await pending
    expect(summary(err)).toEqual({ code: 'QUERY_FAILED', retryable: true, detail: { started: false } })
    expect((err as Error).message).toContain('never sent')
    await sleep(300)
    expect(await who()).toEqual([])
    expect((await p.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  }, 30_000)
})

describe('withdrawn while its array check is still kept unsent (r11 item 3)', () => {
  it.each(['timeoutMs', 'signal'] as const)(
    'a statement (%s): its probe is never sent; the lease goes on at once',
    async (how) => {
      await lockTable()
      const p = onePool()
      const started = Date.now()
      const out = await p.withConnection((conn) =>
        Promise.all([
          conn.query('select pg_sleep(0.3)').then(() => 'slept'),
          conn
            .query(
              fresh('insert into lk (id, tags) values ($1, $2)'),
              [1, [1]],
              how === 'timeoutMs' ? { timeoutMs: 100 } : { signal: AbortSignal.timeout(100) },
            )
            .catch(summary),
          conn.query('select 42 as answer').then((r) => [r.rows[0]!.answer, Date.now() - started]),
        ]),
      )
      expect(out[0]).toBe('slept')
      expect(out[1]).toMatchObject({
        code: how === 'timeoutMs' ? 'QUERY_TIMEOUT' : 'QUERY_CANCELLED',
        retryable: true,
        detail: { started: false },
      })
      const [answer, at] = out[2] as [number, number]
      expect(answer).toBe(42)
      // the probe waited for the lock (held until the test ends) before the fix
      expect(at).toBeLessThan(1_500)
      expect(await lockWaiters()).toEqual([])
    },
    30_000,
  )

  it('inside a transaction: the withdrawn statement does not abort it (its probe never reached the server)', async () => {
    await lockTable()
    const p = onePool()
    const out = await p.transaction(async (tx) => {
      await tx.query("set local lock_timeout = '300ms'")
      const [, withdrawn] = await Promise.all([
        tx.query('select pg_sleep(0.3)'),
        tx.query(fresh('insert into lk (id, tags) values ($1, $2)'), [1, [1]], { timeoutMs: 100 }).catch(summary),
      ])
      await tx.query('insert into other values (1)')
      return withdrawn
    })
    expect(out).toMatchObject({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false } })
    expect(await admin(db.url, async (c) => (await c.query('select id from other')).rows)).toEqual([{ id: 1 }])
  }, 30_000)

  it('a stream (timeoutMs): its probe is never sent; the next statement answers at once', async () => {
    await lockTable()
    const p = onePool()
    const started = Date.now()
    const [streamed, next] = await p.withConnection(async (conn) => {
      void conn.query('select pg_sleep(0.3)')
      const streamed = await drain(
        conn.stream(fresh('insert into lk (id, tags) values ($1, $2) returning id'), [1, [1]], { timeoutMs: 100 }),
      ).catch(summary)
      const next = await conn.query('select 42 as answer').then((r) => [r.rows[0]!.answer, Date.now() - started])
      return [streamed, next]
    })
    expect(streamed).toMatchObject({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false } })
    expect(next[0]).toBe(42)
    expect(next[1]).toBeLessThan(1_500)
    expect(await lockWaiters()).toEqual([])
  }, 30_000)
})

describe('withdrawn while its array check runs on the server (r11 item 4)', () => {
  it('timeoutMs on a lease: fails at its deadline, the check cancelled and the connection closed; the next statement does not hang', async () => {
    await lockTable()
    const p = onePool()
    const started = Date.now()
    const [err, at, next, nextAt] = await p.withConnection(async (conn) => {
      const err = await conn
        .query(fresh('insert into lk (id, tags) values ($1, $2)'), [1, [1]], { timeoutMs: 200 })
        .catch((e: unknown) => e)
      const at = Date.now() - started
      const next = await conn.query('select 42 as x').then((r) => r.rows[0]!.x, summary)
      return [err, at, next, Date.now() - started]
    })
    expect(summary(err)).toMatchObject({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false, timeoutMs: 200 } })
    expect((err as Error).message).toContain('array-parameter check')
    expect((err as Error).message).toContain('the connection closed')
    expect(at).toBeLessThan(1_500)
    // the probe held the lease until the lock was released (never, here) before the fix
    expect(nextAt).toBeLessThan(1_500)
    expect(next).toMatchObject({ code: 'CONNECTION_LOST' })
    await sleep(100)
    expect(await lockWaiters()).toEqual([])
  }, 30_000)

  it('a signal on a lease: the check is cancelled (a cancel request), the connection kept; the next statement answers', async () => {
    await lockTable()
    const p = onePool()
    const started = Date.now()
    const [err, next, nextAt] = await p.withConnection(async (conn) => {
      const err = await conn
        .query(fresh('insert into lk (id, tags) values ($1, $2)'), [1, [1]], { signal: AbortSignal.timeout(200) })
        .catch((e: unknown) => e)
      const next = await conn.query('select 42 as x').then((r) => r.rows[0]!.x, summary)
      return [err, next, Date.now() - started]
    })
    expect(summary(err)).toMatchObject({ code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } })
    expect((err as Error).message).toContain('the check was cancelled')
    expect(next).toBe(42)
    expect(nextAt).toBeLessThan(1_500)
    expect(await lockWaiters()).toEqual([])
  }, 30_000)

  it('a signal inside a transaction: the cancelled check aborts it (said), the transaction rolls back', async () => {
    await lockTable()
    const p = onePool()
    let cancelled: unknown
    const started = Date.now()
    const outcome = await p
      .transaction(async (tx) => {
        cancelled = await tx
          .query(fresh('insert into lk (id, tags) values ($1, $2)'), [1, [1]], { signal: AbortSignal.timeout(200) })
          .catch((e: unknown) => e)
        await tx.query('insert into other values (1)')
      })
      .then(() => 'committed', summary)
    expect(Date.now() - started).toBeLessThan(1_500)
    expect(summary(cancelled)).toMatchObject({ code: 'QUERY_CANCELLED', retryable: true, detail: { started: false } })
    expect((cancelled as Error).message).toContain('inside a transaction the cancelled check aborts it')
    expect(outcome).toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    expect(await admin(db.url, async (c) => (await c.query('select id from other')).rows)).toEqual([])
  }, 30_000)

  it('pool.query timeoutMs: rejects at its deadline, not cancelTimeoutMs later', async () => {
    await lockTable()
    const p = onePool({ cancelTimeoutMs: 10_000 })
    const started = Date.now()
    const err = await p.query(fresh('insert into lk (id, tags) values ($1, $2)'), [1, [1]], { timeoutMs: 200 }).catch((e: unknown) => e)
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(summary(err)).toMatchObject({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false } })
    expect((await p.query('select 43 as x', [], { timeoutMs: 1_000 })).rows).toEqual([{ x: 43 }])
  }, 30_000)

  it('pool.stream timeoutMs: rejects at its deadline, not cancelTimeoutMs later', async () => {
    await lockTable()
    const p = onePool({ cancelTimeoutMs: 10_000 })
    const started = Date.now()
    const err = await drain(p.stream(fresh('insert into lk (id, tags) values ($1, $2) returning id'), [1, [1]], { timeoutMs: 200 })).catch(
      (e: unknown) => e,
    )
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(summary(err)).toMatchObject({ code: 'QUERY_TIMEOUT', retryable: true, detail: { started: false } })
    expect((err as Error).message).toContain('array-parameter check')
    expect((await p.query('select 43 as x', [], { timeoutMs: 1_000 })).rows).toEqual([{ x: 43 }])
  }, 30_000)
})
