import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { poolOn } from './helpers'

// Review r1 items 1, 2, 5, 8, 9: how the manager tells the transaction state of a connection with
// statements still unanswered. Statements waiting in dbpool's own queue behind an array check (the
// first use of a text with an array parameter: a Parse/Describe probe) are not sent yet, and count as
// unanswered everywhere; conn.transaction()'s prediction (a lone statement that cannot begin or end a
// transaction is not waited for) reads texts with the package's lexer, and holds inside a transaction.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let proxy: TcpProxy | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  const p = poolOn(db.url, { min: 0, max: 1, name: 'queued-setup' })
  await p.query('create table q_t (id int primary key, tags int[], note text)')
  await p.close()
}, 120_000)

beforeEach(async () => {
  const p = poolOn(db.url, { min: 0, max: 1, name: 'queued-setup' })
  await p.query('truncate q_t')
  await p.close()
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 0 })
  pool = undefined
  await proxy?.close()
  proxy = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** The rows of q_t, read by a pool of its own (what was committed). */
async function committed(): Promise<{ id: number; note: string | null }[]> {
  const p = poolOn(db.url, { min: 0, max: 1, name: 'queued-check' })
  try {
    return (await p.query<{ id: number; note: string | null }>('select id, note from q_t order by id')).rows
  } finally {
    await p.close()
  }
}

const settle = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => 'resolved',
    (err: unknown) => err,
  )

// a text with an array parameter, new on each pool's connection: its first run is checked by a probe
const ARRAY_STATEMENT = 'select count(*) from q_t where tags && $1'

describe('statements held behind an array check count as unanswered (review r1 items 1, 2)', () => {
  it('conn.transaction() behind an un-awaited [array statement, BEGIN, insert] nests as a savepoint: the caller ROLLBACK leaves nothing', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-nest' }, { cancelTimeoutMs: 5_000 }))
    const out = await p.withConnection(async (conn) => {
      const issued = [
        settle(conn.query(ARRAY_STATEMENT, [[1, 2]])),
        settle(conn.query('BEGIN')),
        settle(conn.query('insert into q_t (id) values (1)')),
      ]
      const inner = await conn.transaction(async (tx) => (await tx.query('insert into q_t (id) values (2)')).rowCount)
      const statements = await Promise.all(issued)
      await conn.query('ROLLBACK')
      return { inner, statements }
    })
    expect(out).toEqual({ inner: 1, statements: ['resolved', 'resolved', 'resolved'] })
    // before: conn.transaction() read 'idle', sent BEGIN (ignored) and COMMIT, committing rows 1 and 2
    expect(await committed()).toEqual([])
  }, 30_000)

  it.each([
    ['returns', false],
    ['throws', true],
  ])(
    'a callback that %s with [array statement, BEGIN, insert] un-awaited: the transaction is rolled back, the next caller runs outside it and commits',
    async (_how, throws) => {
      const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-release' }, { cancelTimeoutMs: 5_000 }))
      let issued: Promise<unknown>[] = []
      const outcome = await p
        .withConnection(async (conn) => {
          issued = [
            settle(conn.query(ARRAY_STATEMENT, [[1, 2]])),
            settle(conn.query('BEGIN')),
            settle(conn.query('insert into q_t (id) values (1)')),
          ]
          if (throws) throw new Error('callback threw')
          return 'callback returned'
        })
        .catch((err: unknown) => err)
      if (throws) expect(outcome).toEqual(new Error('callback threw'))
      // README: a BEGIN not awaited before return rejects too; the release rolled it back
      else expect(DatabaseError.is(outcome) && outcome.code).toBe('TRANSACTION_ROLLED_BACK')
      expect(await Promise.all(issued)).toEqual(['resolved', 'resolved', 'resolved'])
      // the same (only) connection, outside any transaction: a statement of its own, nothing of row 1
      const { rows } = await p.query<{ n: number; fresh: boolean; xid: string | null }>(
        'select (select count(*)::int from q_t) as n, now() = statement_timestamp() as fresh, txid_current_if_assigned()::text as xid',
      )
      expect(rows).toEqual([{ n: 0, fresh: true, xid: null }])
      expect((await p.query('insert into q_t (id) values (2)')).rowCount).toBe(1)
      expect(p.stats().size).toBe(1)
      await p.close()
      // before: the next caller's insert ran inside the leaked transaction, reported done, never committed
      expect(await committed()).toEqual([{ id: 2, note: null }])
    },
    30_000,
  )

  it('statements held behind an array check and refused before they were sent: the state is known as soon as they are (no wait for cancelTimeoutMs)', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-refused' }, { cancelTimeoutMs: 5_000 }))
    // a JS array where the server reads a scalar is refused (INVALID_PARAMETER): first by the probe,
    // then (the types known on the connection) before anything is sent
    const scalar = 'select count(*) from q_t where id = $1'
    const started = await p.withConnection(async (conn) => {
      await expect(conn.query(scalar, [[1]])).rejects.toMatchObject({ code: 'INVALID_PARAMETER' })
      return 0
    })
    expect(started).toBe(0)
    const t0 = Date.now()
    const issued: Promise<unknown>[] = []
    const out = await p.withConnection(async (conn) => {
      issued.push(conn.query('select count(*) from q_t where note = $1', [['x']]), conn.query(scalar, [[2]]))
      return 'returned'
    })
    expect(out).toBe('returned')
    expect(Date.now() - t0).toBeLessThan(2_500)
    for (const refused of await Promise.allSettled(issued))
      expect(refused.status === 'rejected' && DatabaseError.is(refused.reason) && refused.reason.code).toBe('INVALID_PARAMETER')
    expect(p.stats().size).toBe(1)
  }, 30_000)

  it('an array statement held behind a BEGIN the server never answers: the return is an unknown outcome, the connection closed', async () => {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const blackholed = proxy
    const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'queued-blackhole' }, { cancelTimeoutMs: 300 }))
    const issued: Promise<unknown>[] = []
    const outcome = await p
      .withConnection(async (conn) => {
        await conn.query('select 1')
        blackholed.blackhole()
        issued.push(settle(conn.query(ARRAY_STATEMENT, [[1]])), settle(conn.query('BEGIN')))
        return 'returned'
      })
      .catch((err: unknown) => err)
    expect(DatabaseError.is(outcome) && { code: outcome.code, detail: outcome.detail }).toEqual({
      code: 'QUERY_FAILED',
      detail: { reason: 'transaction-state-unknown', outcome: 'unknown' },
    })
    expect(p.stats().size).toBe(0)
    for (const settled of await Promise.all(issued)) expect(DatabaseError.is(settled) && settled.code).toBe('CONNECTION_LOST')
  }, 30_000)
})

describe("conn.transaction()'s prediction (review r1 items 5, 8, 9)", () => {
  it.each(['/* outer /* inner */ still comment */ BEGIN', '/* a */ /* b /* c */ d */\n-- line\nBEGIN', '/* comment */ start transaction'])(
    'an un-awaited %j: waited for, the transaction nests as a savepoint, the caller ROLLBACK leaves nothing',
    async (begin) => {
      const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-comment' }, { cancelTimeoutMs: 5_000 }))
      const out = await p.withConnection(async (conn) => {
        const issued = [settle(conn.query(begin)), settle(conn.query('insert into q_t (id) values (1)'))]
        const inner = await conn.transaction(async (tx) => (await tx.query('insert into q_t (id) values (2)')).rowCount)
        const statements = await Promise.all(issued)
        await conn.query('ROLLBACK')
        return { inner, statements }
      })
      expect(out).toEqual({ inner: 1, statements: ['resolved', 'resolved'] })
      // before (nested comment): taken for a plain statement, the BEGIN + COMMIT committed the caller's transaction
      expect(await committed()).toEqual([])
    },
    30_000,
  )

  it('inside a transaction the callback opened, beside a slow awaited statement: the savepoint waits its turn, nothing refused, the connection kept', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-savepoint' }, { cancelTimeoutMs: 300 }))
    await p.query("insert into q_t (id, note) values (1, 'old')")
    const out = await p.withConnection(async (conn) => {
      await conn.query('BEGIN')
      const [updated, inserted] = await Promise.all([
        conn.query("update q_t set note = 'slow' from pg_sleep(1) where id = 1"),
        conn.transaction(async (tx) => (await tx.query("insert into q_t (id, note) values (2, 'sp')")).rowCount),
      ])
      await conn.query('COMMIT')
      return [updated.rowCount, inserted]
    })
    // before: refused after cancelTimeoutMs as transaction-state-unknown, the lease closed, row 2 lost
    expect(out).toEqual([1, 1])
    expect(await committed()).toEqual([
      { id: 1, note: 'slow' },
      { id: 2, note: 'sp' },
    ])
    expect(p.stats().size).toBe(1)
  }, 30_000)

  it('inside a transaction, beside a slow statement that fails: the savepoint fails as after any error there, never "state unknown"', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-savepoint-fails' }, { cancelTimeoutMs: 300 }))
    let ran = false
    const out = await p.withConnection(async (conn) => {
      await conn.query('BEGIN')
      await conn.query("insert into q_t (id, note) values (1, 'in the transaction')")
      const results = await Promise.allSettled([
        // fails once the sleep is over (a constant 1 / 0 would fail at once, at plan time)
        conn.query('select 1 / (count(*)::int - 1) from pg_sleep(0.6)'),
        conn.transaction(async () => {
          ran = true
        }),
      ])
      await conn.query('ROLLBACK')
      return results.map((r) => (r.status === 'rejected' && DatabaseError.is(r.reason) ? r.reason : r.status))
    })
    expect(ran).toBe(false)
    const [division, savepoint] = out as DatabaseError[]
    expect(division?.sqlState).toBe('22012')
    expect(DatabaseError.is(savepoint) && savepoint.sqlState).toBe('25P02')
    expect(DatabaseError.is(savepoint) && savepoint.detail?.reason).not.toBe('transaction-state-unknown')
    expect(await committed()).toEqual([])
    expect(p.stats().size).toBe(1)
  }, 30_000)

  it('beside an un-awaited slow plain statement: the transaction runs after it (waits as long as it runs, not refused at cancelTimeoutMs)', async () => {
    const p = (pool = poolOn(db.url, { min: 0, max: 1, name: 'queued-after-slow' }, { cancelTimeoutMs: 300 }))
    const t0 = Date.now()
    const out = await p.withConnection(async (conn) => {
      const slow = settle(conn.query("insert into q_t (id, note) select 1, 'slow' from pg_sleep(1)"))
      const inner = await conn.transaction(async (tx) => (await tx.query("insert into q_t (id, note) values (2, 'tx')")).rowCount)
      return { inner, slow: await slow }
    })
    expect(out).toEqual({ inner: 1, slow: 'resolved' })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    expect(await committed()).toEqual([
      { id: 1, note: 'slow' },
      { id: 2, note: 'tx' },
    ])
  }, 30_000)

  it("beside an un-awaited plain statement the server never answers: the statement's own timeoutMs bounds the transaction, which runs nothing", async () => {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const blackholed = proxy
    const p = (pool = poolOn(proxy.urlFor(db.url), { min: 0, max: 1, name: 'queued-bounded' }, { cancelTimeoutMs: 300 }))
    let ran = false
    let statement: Promise<unknown> | undefined
    const t0 = Date.now()
    const outcome = await p
      .withConnection(async (conn) => {
        await conn.query('select 1')
        blackholed.blackhole()
        statement = settle(conn.query('select 2', [], { timeoutMs: 500 }))
        return conn.transaction(async () => {
          ran = true
        })
      })
      .catch((err: unknown) => err)
    expect(ran).toBe(false)
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(DatabaseError.is(outcome)).toBe(true)
    expect(DatabaseError.is(await statement) && ((await statement) as DatabaseError).code).toBe('QUERY_TIMEOUT')
  }, 30_000)
})
