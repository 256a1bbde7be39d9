import { DatabaseConfig, type DatabasePool } from '@dbpool/core'
import { PostgresConnectionManager, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, rejection } from './helpers'

// What the manager tells core about a transaction (contract.md): transactionState from the server's
// ReadyForQuery status, and the command tag of the last statement.
let db: TestDatabase
let manager: PostgresConnectionManager
let conn: PostgresConnection
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  manager = new PostgresConnectionManager(DatabaseConfig.fromUrl(db.url, { sslMode: 'disable' }))
  conn = await manager.connect('write', { onLost: () => undefined })
  pool = poolOn(db.url, { max: 2, min: 0 })
  await pool.query('create table ledger (id int primary key)')
}, 120_000)

afterAll(async () => {
  if (conn) await manager.destroy(conn)
  await pool?.close({ timeoutMs: 5_000 })
  await db?.drop()
}, 60_000)

const run = (text: string) => manager.execute(conn, { text, params: [] }, {})

describe('transactionState', () => {
  it("is 'idle' outside a transaction, 'open' inside, 'failed' after an error, 'idle' after ROLLBACK", async () => {
    expect(manager.transactionState(conn)).toBe('idle')
    await run('begin')
    expect(manager.transactionState(conn)).toBe('open')
    await run('select 1')
    expect(manager.transactionState(conn)).toBe('open')
    expect((await rejection(run('select 1/0'))).code).toBe('QUERY_FAILED')
    // pg settles the error before ReadyForQuery: 'unknown' until it arrives, then 'failed'
    expect(['unknown', 'failed']).toContain(manager.transactionState(conn))
    await eventually(() => manager.transactionState(conn) === 'failed', 2_000, "the status 'failed'")
    await run('rollback')
    expect(manager.transactionState(conn)).toBe('idle')
  })

  it("is 'unknown' while a statement is in flight", async () => {
    const running = run('select pg_sleep(0.05)')
    expect(manager.transactionState(conn)).toBe('unknown')
    await running
    expect(manager.transactionState(conn)).toBe('idle')
  })
})

describe('QueryResult.command', () => {
  it("is the command tag of the statement, of the last one in a multi-statement text, and 'ROLLBACK' for a COMMIT of an aborted transaction", async () => {
    expect((await run('insert into ledger values (1)')).command).toBe('INSERT')
    expect((await run('select 1')).command).toBe('SELECT')
    expect(
      (await manager.execute(conn, { text: 'update ledger set id = $1 where id = 1', params: [2] }, { timeoutMs: 5_000 })).command,
    ).toBe('UPDATE')
    expect((await run('select 1; delete from ledger where id = 2')).command).toBe('DELETE')
    await run('begin')
    await rejection(run('insert into ledger values (null)'))
    expect((await run('commit')).command).toBe('ROLLBACK')
    await run('begin')
    expect((await run('commit')).command).toBe('COMMIT')
  })
})

describe('transaction() with the Postgres pieces', () => {
  it('a transaction whose callback caught a statement error does not resolve: TRANSACTION_ROLLED_BACK, cause the first error, nothing kept', async () => {
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert into ledger values (10)')
        await tx.query('insert into ledger values (10)').catch(() => undefined) // unique violation, caught
      }),
    )
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect((err.cause as { code?: string } | undefined)?.code).toBe('UNIQUE_VIOLATION')
    expect((await pool.query('select count(*)::int as n from ledger where id = 10')).rows).toEqual([{ n: 0 }])
    // the connection went back clean
    expect((await pool.query('select 1 as ok')).rows).toEqual([{ ok: 1 }])
  })

  it('a savepoint 3 deep whose callback caught a statement error: the first error reaches the top (not the RELEASE failure), nothing kept', async () => {
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert into ledger values (20)')
        await tx.transaction(async (a) =>
          a.transaction(async (b) =>
            b.transaction(async (c) => {
              await c.query('insert into ledger values (21)')
              await c.query('insert into ledger values (21)').catch(() => undefined) // unique violation, caught
            }),
          ),
        )
      }),
    )
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(err.message).toMatch(/^the savepoint was rolled back/)
    expect((err.cause as { code?: string } | undefined)?.code).toBe('UNIQUE_VIOLATION')
    expect((await pool.query('select count(*)::int as n from ledger where id in (20, 21)')).rows).toEqual([{ n: 0 }])
  })

  it('such a savepoint is rolled back, so a caller that catches its rejection goes on and commits the rest', async () => {
    await pool.transaction(async (tx) => {
      await tx.query('insert into ledger values (22)')
      const inner = await rejection(
        tx.transaction(async (sp) => {
          await sp.query('insert into ledger values (23)')
          await sp.query('insert into ledger values (22)').catch(() => undefined) // unique violation, caught
        }),
      )
      expect(inner.code).toBe('TRANSACTION_ROLLED_BACK')
      await tx.query('insert into ledger values (24)')
    })
    expect((await pool.query('select id from ledger where id in (22, 23, 24) order by id')).rows).toEqual([{ id: 22 }, { id: 24 }])
  })

  it('a COMMIT behind a -- comment ended by \\r (Postgres ends the comment there) is refused before it is sent, nothing kept', async () => {
    await pool.query('create table cr_ledger (id int primary key)')
    const failure = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert into cr_ledger values (1)')
        await tx.query('-- step 2\rCOMMIT')
      }),
    )
    expect(failure.message).toMatch(/COMMIT/)
    const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from cr_ledger')
    expect(rows[0]!.n).toBe(0)
  })

  it('a committed transaction resolves and is kept', async () => {
    await pool.transaction((tx) => tx.query('insert into ledger values (11)'))
    expect((await pool.query('select count(*)::int as n from ledger where id = 11')).rows).toEqual([{ n: 1 }])
  })
})
