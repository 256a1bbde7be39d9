import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// A transaction state the server never reports (statements issued on a withConnection connection,
// not awaited, on a server that stopped answering: a blackholed TCP proxy) counts as possibly open,
// never as idle: conn.transaction() refuses rather than send BEGIN + COMMIT (which would commit a
// transaction the un-awaited BEGIN opened), and the callback's return rejects rather than resolve.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let proxy: TcpProxy | undefined

beforeAll(async () => {
  db = await createTestDatabase()
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

it('conn.transaction() after an un-awaited BEGIN the server never answers is refused (transaction-state-unknown), and so is the return: outcome unknown, the connection closed', async () => {
  const target = new URL(db.url)
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
  const blackholed = proxy
  // settledTransactionState waits at most cancelTimeoutMs
  const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'unanswered-state' }, { cancelTimeoutMs: 300 }))
  let inner: unknown
  let ran = false
  let begin: Promise<unknown> | undefined
  const outcome = await p
    .withConnection(async (conn) => {
      await conn.query('select 1')
      blackholed.blackhole()
      begin = conn.query('BEGIN').then(
        () => 'resolved',
        (err: unknown) => err,
      )
      inner = await conn
        .transaction(async () => {
          ran = true
        })
        .catch((err: unknown) => err)
      return 'resolved'
    })
    .catch((err: unknown) => err)
  expect(ran).toBe(false)
  const unknown = { reason: 'transaction-state-unknown', outcome: 'unknown' }
  expect(DatabaseError.is(inner) && { code: inner.code, detail: inner.detail }).toEqual({ code: 'QUERY_FAILED', detail: unknown })
  // never a claim that the work was rolled back: its outcome is unknown, and nobody retries it blindly
  expect(DatabaseError.is(outcome) && { code: outcome.code, retryable: outcome.retryable, detail: outcome.detail }).toEqual({
    code: 'QUERY_FAILED',
    retryable: false,
    detail: unknown,
  })
  // the connection was closed at the release (no ROLLBACK queued behind the BEGIN, no reuse), so the
  // un-awaited statement settled with its fate
  expect(p.stats().size).toBe(0)
  const settled = await begin
  expect(DatabaseError.is(settled) && settled.code).toBe('CONNECTION_LOST')
}, 60_000)

it('a callback returning while the server has not answered its un-awaited statements: outcome unknown (not a rollback claim), the connection closed, the statement settles', async () => {
  const target = new URL(db.url)
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
  const blackholed = proxy
  const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'unanswered-return' }, { cancelTimeoutMs: 300 }))
  let statement: Promise<unknown> | undefined
  const outcome = await p
    .withConnection(async (conn) => {
      await conn.query('select 1')
      blackholed.blackhole()
      statement = conn.query('select 2').then(
        () => 'resolved',
        (err: unknown) => err,
      )
      return 'resolved'
    })
    .catch((err: unknown) => err)
  expect(DatabaseError.is(outcome) && { code: outcome.code, detail: outcome.detail }).toEqual({
    code: 'QUERY_FAILED',
    detail: { reason: 'transaction-state-unknown', outcome: 'unknown' },
  })
  expect(p.stats().size).toBe(0)
  const settled = await statement
  expect(DatabaseError.is(settled) && settled.code).toBe('CONNECTION_LOST')
  // a later caller gets a fresh connection, not one possibly inside a transaction
  blackholed.resume()
  expect(await p.withConnection(async (conn) => (await conn.query<{ n: number }>('select 3 as n')).rows)).toEqual([{ n: 3 }])
}, 60_000)

describe('a slow un-awaited autocommit insert', () => {
  beforeAll(async () => {
    const p = poolOn(db.url, { min: 0, max: 1, name: 'unanswered-setup' })
    await p.query('create table unawaited_w (v int)')
    await p.close()
  })

  beforeEach(async () => {
    const p = poolOn(db.url, { min: 0, max: 1, name: 'unanswered-setup' })
    await p.query('truncate unawaited_w')
    await p.close()
  })

  const rows = async (p: DatabasePool<PostgresConnection>): Promise<number[]> =>
    (await p.query<{ v: number }>('select v from unawaited_w order by v', [], { lane: 'read' })).rows.map((r) => r.v)

  it('answered within cancelTimeoutMs: committed, so withConnection resolves and the insert resolves', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 2, name: 'unanswered-late' }, { cancelTimeoutMs: 10_000 }))
    let insert: Promise<unknown> | undefined
    const r = await p.withConnection(async (conn) => {
      await conn.query('insert into unawaited_w values (1)')
      insert = conn.query('insert into unawaited_w select 2 from pg_sleep(0.5)').then(() => 'resolved')
      return 'ret'
    })
    expect(r).toBe('ret')
    expect(await insert).toBe('resolved')
    expect(await rows(p)).toEqual([1, 2])
  }, 60_000)

  it('answered within cancelTimeoutMs inside an un-awaited BEGIN: rolled back for sure (TRANSACTION_ROLLED_BACK)', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 2, name: 'unanswered-late-trx' }, { cancelTimeoutMs: 10_000 }))
    const issued: Promise<unknown>[] = []
    const outcome = await p
      .withConnection(async (conn) => {
        issued.push(conn.query('BEGIN'), conn.query('insert into unawaited_w select 2 from pg_sleep(0.5)'))
        return 'ret'
      })
      .catch((err: unknown) => err)
    expect(DatabaseError.is(outcome) && outcome.code).toBe('TRANSACTION_ROLLED_BACK')
    await Promise.allSettled(issued)
    expect(await rows(p)).toEqual([])
  }, 60_000)

  it('not answered within cancelTimeoutMs: outcome unknown (it may commit: it does), the release does not wait for it, the connection is closed', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 2, name: 'unanswered-slow' }, { cancelTimeoutMs: 300 }))
    let insert: Promise<unknown> | undefined
    const outcome = await p
      .withConnection(async (conn) => {
        await conn.query('insert into unawaited_w values (1)')
        insert = conn.query('insert into unawaited_w select 2 from pg_sleep(4)').then(
          () => 'resolved',
          (err: unknown) => err,
        )
        return 'ret'
      })
      .catch((err: unknown) => err)
    expect(DatabaseError.is(outcome) && { code: outcome.code, retryable: outcome.retryable, detail: outcome.detail }).toEqual({
      code: 'QUERY_FAILED',
      retryable: false,
      detail: { reason: 'transaction-state-unknown', outcome: 'unknown' },
    })
    // the release closed the connection rather than wait (a ROLLBACK behind the 4 s statement): its insert is still running
    expect(await rows(p)).toEqual([1])
    const settled = await insert
    expect(DatabaseError.is(settled) && { code: settled.code, outcome: settled.detail?.outcome }).toEqual({
      code: 'CONNECTION_LOST',
      outcome: 'unknown',
    })
    // the server finishes the autocommit insert although the client went: "unknown" was the truth
    let now = await rows(p)
    for (let i = 0; i < 100 && now.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      now = await rows(p)
    }
    expect(now).toEqual([1, 2])
  }, 60_000)
})

// review r21a: conn.transaction() beside a slow statement the callback awaits (Promise.all) was refused
// after cancelTimeoutMs, and the connection closed under the statement (which committed: outcome
// unknown for a write that was done). A lone statement that cannot open or end a transaction, from an
// idle session, leaves it idle: the BEGIN queues behind it, as pg would run them anyway
it('conn.transaction() beside a slow awaited statement (Promise.all) waits its turn: both done, nothing refused, the connection kept', async () => {
  const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'unanswered-beside' }, { cancelTimeoutMs: 300 }))
  await p.query('drop table if exists beside; create table beside (id int primary key, note text)')
  await p.query("insert into beside values (1, 'old')")
  const [updated, inserted] = await p.withConnection(async (conn) =>
    Promise.all([
      conn.query("update beside set note = 'slow' from pg_sleep(1) where id = 1"),
      conn.transaction(async (tx) => (await tx.query("insert into beside values (2, 'tx')")).rowCount),
    ]),
  )
  expect(updated.rowCount).toBe(1)
  expect(inserted).toBe(1)
  expect((await p.query<{ id: number; note: string }>('select id, note from beside order by id')).rows).toEqual([
    { id: 1, note: 'slow' },
    { id: 2, note: 'tx' },
  ])
  // the connection was not closed (nothing unknown about it)
  expect(p.stats().size).toBe(1)
}, 30_000)
