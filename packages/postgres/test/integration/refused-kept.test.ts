import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn } from './helpers'

// A result refused in the client after its statement ran inside a transaction (two columns of one
// name; a value the type parsers cannot read exactly) aborts that transaction before the server sees
// the next statement, also when statements were issued beside it (Promise.all) and kept behind it on
// the connection: they are refused (25P02, TRANSACTION_ROLLED_BACK naming the refusal as the cause)
// and nothing commits (review r11 item 2: the next kept statement was handed to pg at the refused
// one's ReadyForQuery, the abort was then skipped, and the transaction committed the refused write).
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => c.query('create table kept (id int primary key)'))
}, 120_000)

beforeEach(async () => {
  await admin(db.url, async (c) => c.query('delete from kept'))
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

function onePool(): DatabasePool<PostgresConnection> {
  return (pool = poolOn(db.url, { min: 0, max: 1, name: 'refused-kept' }))
}

async function committed(): Promise<number[]> {
  return admin(db.url, async (c) => (await c.query<{ id: number }>('select id from kept order by id')).rows.map((r) => r.id))
}

function code(settled: PromiseSettledResult<unknown>): string {
  if (settled.status === 'fulfilled') return 'ok'
  const err = settled.reason as unknown
  return DatabaseError.is(err) ? err.code : String(err)
}

const REFUSALS = [
  {
    kind: 'two columns of one name',
    sql: (id: number) => `insert into kept values (${id}) returning id as a, id as a`,
    code: 'SYNTAX_ERROR',
  },
  {
    kind: 'a value the parsers cannot read',
    sql: (id: number) => `insert into kept values (${id}) returning '290000-01-01'::timestamptz as ts`,
    code: 'QUERY_FAILED',
  },
]

describe.each(REFUSALS)('a write refused for $kind', ({ sql, code: refusal }) => {
  it('in pool.transaction, with statements issued before and after it at once: those after are refused naming it, the transaction rolls back', async () => {
    const p = onePool()
    let settled: PromiseSettledResult<unknown>[] = []
    const tx = await p
      .transaction(async (t) => {
        settled = await Promise.allSettled([
          t.query('insert into kept values (1)'),
          t.query(sql(2)),
          t.query('insert into kept values (3)'),
        ])
      })
      .then(
        () => 'committed',
        (err: unknown) => (DatabaseError.is(err) ? err.code : err),
      )
    expect(settled.map(code)).toEqual(['ok', refusal, 'TRANSACTION_ROLLED_BACK'])
    const after = (settled[2] as PromiseRejectedResult).reason as DatabaseError
    expect(after.cause).toBe((settled[1] as PromiseRejectedResult).reason)
    expect(tx).toBe('TRANSACTION_ROLLED_BACK')
    expect(await committed()).toEqual([])
    // the connection is clean for the next borrower
    expect((await p.query('select 1 as x')).rows).toEqual([{ x: 1 }])
  })

  it('in pool.transaction, with one statement beside it (the repro): the transaction rejects', async () => {
    const p = onePool()
    const tx = await p
      .transaction(async (t) => {
        await Promise.all([t.query(sql(1)).catch(() => undefined), t.query('select 1')]).catch(() => undefined)
      })
      .then(
        () => 'committed',
        (err: unknown) => (DatabaseError.is(err) ? err.code : err),
      )
    expect(tx).toBe('TRANSACTION_ROLLED_BACK')
    expect(await committed()).toEqual([])
  })

  it('on a lease (BEGIN by hand), with a COMMIT issued right behind it: the COMMIT rolls back', async () => {
    const p = onePool()
    const settled = await p.withConnection(async (conn) => {
      await conn.query('begin')
      // with a deadline (that never fires): the guarded path
      return Promise.allSettled([
        conn.query(sql(1), [], { timeoutMs: 10_000 }),
        conn.query('insert into kept values (2)'),
        conn.query('commit'),
      ])
    })
    expect(settled.slice(0, 2).map(code)).toEqual([refusal, 'TRANSACTION_ROLLED_BACK'])
    // the server answers a COMMIT of an aborted transaction with ROLLBACK
    if (settled[2]!.status === 'fulfilled') expect((settled[2].value as { command?: string }).command).toBe('ROLLBACK')
    else expect(code(settled[2]!)).toBe('TRANSACTION_ROLLED_BACK')
    expect(await committed()).toEqual([])
  })

  it('inside a savepoint (conn.transaction in a transaction), caught, with a statement beside it: the savepoint rolls back, the outer transaction goes on', async () => {
    const p = onePool()
    let inner: unknown
    let settled: PromiseSettledResult<unknown>[] = []
    await p.transaction(async (t) => {
      await t.query('insert into kept values (1)')
      inner = await t
        .transaction(async (sp) => {
          // the callback catches the refusal and returns: the savepoint must not be released
          settled = await Promise.allSettled([sp.query(sql(2)), sp.query('insert into kept values (3)')])
        })
        .then(
          () => 'released',
          (err: unknown) => (DatabaseError.is(err) ? err.code : err),
        )
      await t.query('insert into kept values (4)')
    })
    expect(settled.map(code)).toEqual([refusal, 'TRANSACTION_ROLLED_BACK'])
    expect(inner).toBe('TRANSACTION_ROLLED_BACK')
    expect(await committed()).toEqual([1, 4])
  })

  it('outside a transaction (pool.query), with statements beside it: nothing to abort, the others run', async () => {
    const p = onePool()
    const settled = await Promise.allSettled([p.query('select 1'), p.query(sql(1)), p.query('insert into kept values (2)')])
    expect(settled.map(code)).toEqual(['ok', refusal, 'ok'])
    expect(await committed()).toEqual([1, 2])
  })
})
