import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, sleep } from './helpers'

// A withConnection callback returning while the COMMIT it issued (not awaited) was in flight on a
// connection the pool then closed, or one that was lost: the server may have committed it, so the
// callback's return reports the outcome unknown (QUERY_FAILED, transaction-state-unknown), never
// TRANSACTION_ROLLED_BACK ("not committed") and never success (review r1 items 3 and 6).
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let proxy: TcpProxy | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  // a COMMIT that takes a while (a deferred constraint trigger sleeping at commit time: synchronous
  // replication, deferred checks on big sets)
  await admin(db.url, async (c) =>
    c.query(`create table slow_commit (id int primary key);
      create function slow_commit_sleep() returns trigger language plpgsql as $$ begin perform pg_sleep(1); return null; end $$;
      create constraint trigger slow_commit_trigger after insert on slow_commit deferrable initially deferred
        for each row execute function slow_commit_sleep()`),
  )
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 0 })
  pool = undefined
  await proxy?.close()
  proxy = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

let nextId = 1

const unknownOutcome = { code: 'QUERY_FAILED', retryable: false, detail: { reason: 'transaction-state-unknown', outcome: 'unknown' } }

function summary(err: unknown): unknown {
  return DatabaseError.is(err) ? { code: err.code, retryable: err.retryable, detail: err.detail } : err
}

async function committed(id: number): Promise<boolean> {
  // the server finishes the COMMIT after the client is gone
  await sleep(1_500)
  return admin(db.url, async (c) => (await c.query('select 1 from slow_commit where id = $1', [id])).rowCount === 1)
}

it('a COMMIT in flight when conn.transaction() refused (transaction-state-unknown): the return reports the outcome unknown, not TRANSACTION_ROLLED_BACK', async () => {
  const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'commit-in-doubt' }, { cancelTimeoutMs: 300 }))
  const id = nextId++
  let commit: Promise<unknown> | undefined
  let inner: unknown
  const outcome = await p
    .withConnection(async (conn) => {
      await conn.query('BEGIN')
      await conn.query('insert into slow_commit values ($1)', [id])
      commit = conn.query('COMMIT').catch((err: unknown) => err)
      inner = await conn.transaction(async () => 'ran').catch((err: unknown) => err)
      return 'resolved'
    })
    .catch((err: unknown) => err)
  expect(summary(inner)).toMatchObject(unknownOutcome)
  expect(summary(outcome)).toEqual(unknownOutcome)
  expect(summary(await commit)).toMatchObject({ code: 'CONNECTION_LOST', detail: { outcome: 'unknown' } })
  // it did commit: "rolled back" would have been a lie
  expect(await committed(id)).toBe(true)
}, 30_000)

describe('a COMMIT not awaited, the connection lost (the server commits it)', () => {
  // 'reset': the link cut with an RST (pg fails the query on the socket's error first); 'fin': closed
  // with a FIN, as a server, PgBouncer or a load balancer closes it (the socket's end comes first)
  async function run(dropAfterReturn: boolean, how: 'reset' | 'fin' = 'reset'): Promise<{ outcome: unknown; commit: unknown; id: number }> {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const net = proxy
    const drop = (): void => (how === 'reset' ? net.resetAll() : void net.close())
    const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'commit-in-doubt' }, { cancelTimeoutMs: 3_000 }))
    const id = nextId++
    let commit: Promise<unknown> | undefined
    const outcome = await p
      .withConnection(async (conn) => {
        await conn.query('BEGIN')
        await conn.query('insert into slow_commit values ($1)', [id])
        commit = conn.query('COMMIT').catch((err: unknown) => err)
        if (dropAfterReturn) {
          setTimeout(drop, 300)
          return 'resolved'
        }
        await sleep(300)
        drop()
        await sleep(200)
        return 'resolved'
      })
      .catch((err: unknown) => err)
    return { outcome, commit: await commit, id }
  }

  it('lost before the callback returned: outcome unknown, not success', async () => {
    const { outcome, commit, id } = await run(false)
    expect(summary(commit)).toMatchObject({ code: 'CONNECTION_LOST', detail: { outcome: 'unknown' } })
    expect(summary(outcome)).toEqual(unknownOutcome)
    expect(await committed(id)).toBe(true)
  }, 30_000)

  it('lost after the callback returned (while its answer was awaited): the same', async () => {
    const { outcome, commit, id } = await run(true)
    expect(summary(commit)).toMatchObject({ code: 'CONNECTION_LOST', detail: { outcome: 'unknown' } })
    expect(summary(outcome)).toEqual(unknownOutcome)
    expect(await committed(id)).toBe(true)
  }, 30_000)

  it.each([false, true])(
    'closed with a FIN (returned before: %s): outcome unknown, never TRANSACTION_ROLLED_BACK (re-review r7 item 1)',
    async (dropAfterReturn) => {
      const { outcome, commit, id } = await run(dropAfterReturn, 'fin')
      expect(summary(commit)).toMatchObject({ code: 'CONNECTION_LOST', detail: { outcome: 'unknown' } })
      // transaction-state-unknown, or connection-lost-in-transaction when the socket's end came first
      expect(summary(outcome)).toMatchObject({ code: 'QUERY_FAILED', retryable: false, detail: { outcome: 'unknown' } })
      expect(await committed(id)).toBe(true)
    },
    30_000,
  )

  it('awaited by the callback, which returns its error: the callback saw it, withConnection resolves', async () => {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const net = proxy
    const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'commit-in-doubt' }, { cancelTimeoutMs: 3_000 }))
    const id = nextId++
    const outcome = await p.withConnection(async (conn) => {
      await conn.query('BEGIN')
      await conn.query('insert into slow_commit values ($1)', [id])
      setTimeout(() => net.resetAll(), 300)
      return conn.query('COMMIT').catch((err: unknown) => err)
    })
    expect(summary(outcome)).toMatchObject({ code: 'CONNECTION_LOST', detail: { outcome: 'unknown' } })
    expect(await committed(id)).toBe(true)
  }, 30_000)

  it('a COMMIT not awaited, then an awaited statement whose CONNECTION_LOST the callback handled: outcome unknown, not success (re-review r7 item 2)', async () => {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const net = proxy
    const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'commit-in-doubt' }, { cancelTimeoutMs: 3_000 }))
    const id = nextId++
    let commit: Promise<unknown> | undefined
    let probe: unknown
    const outcome = await p
      .withConnection(async (conn) => {
        await conn.query('BEGIN')
        await conn.query('insert into slow_commit values ($1)', [id])
        commit = conn.query('COMMIT').catch((err: unknown) => err)
        setTimeout(() => net.resetAll(), 300)
        // the callback sees this statement's loss, not the COMMIT's doubt
        probe = await conn.query('select 1').catch((err: unknown) => err)
        return 'resolved'
      })
      .catch((err: unknown) => err)
    expect(summary(await commit)).toMatchObject({ code: 'CONNECTION_LOST', detail: { outcome: 'unknown' } })
    expect(summary(probe)).toMatchObject({ code: 'CONNECTION_LOST' })
    expect(summary(outcome)).toEqual(unknownOutcome)
    expect(await committed(id)).toBe(true)
  }, 30_000)
})

it('a session lost inside conn.transaction() whose error the callback handled, every statement answered: TRANSACTION_ROLLED_BACK caused by the CONNECTION_LOST, without the "COMMIT before returning" advice (review r5 item 7, r7 item 3)', async () => {
  const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'lost-in-transaction' }))
  const id = nextId++
  let inner: unknown
  const outcome = await p
    .withConnection(async (conn) => {
      // an earlier statement error the callback handled is not the cause named
      await conn.query('select 1/0').catch(() => undefined)
      inner = await conn
        .transaction(async (tx) => {
          await tx.query('insert into slow_commit values ($1)', [id])
          const { rows } = await tx.query<{ pid: number }>('select pg_backend_pid() as pid')
          await admin(db.url, (c) => c.query('select pg_terminate_backend($1)', [rows[0]?.pid]))
          await sleep(50)
          await tx.query('select 2')
        })
        .catch((err: unknown) => err)
      return 'callback value'
    })
    .catch((err: unknown) => err)
  expect(summary(inner)).toMatchObject({ code: 'CONNECTION_LOST' })
  // nothing was in flight when the session ended: the server rolled the transaction back
  expect(DatabaseError.is(outcome, 'TRANSACTION_ROLLED_BACK')).toBe(true)
  const err = outcome as DatabaseError
  expect(err.message).toMatch(/connection was lost inside a transaction .*nothing in it was committed/)
  expect(err.retryable).toBe((err.cause as DatabaseError).retryable)
  expect(err.message).not.toMatch(/COMMIT before returning/)
  expect(DatabaseError.is(err.cause, 'CONNECTION_LOST')).toBe(true)
  expect(await admin(db.url, async (c) => (await c.query('select 1 from slow_commit where id = $1', [id])).rowCount)).toBe(0)
}, 30_000)
