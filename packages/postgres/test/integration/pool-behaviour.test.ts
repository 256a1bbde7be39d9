import { type DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { backends, eventually, poolOn, rejection, terminate, uniqueAppName } from './helpers'

let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  const setup = poolOn(db.url, { min: 0 })
  await setup.query('create table hygiene (id int primary key, note text)')
  await setup.close()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

describe('release hygiene', () => {
  it('a connection released inside an open transaction is rolled back: the next borrower is idle and sees no uncommitted write', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    let pid: number | undefined
    // the callback returned inside its transaction: the release rolls it back, so withConnection rejects
    await expect(
      pool.withConnection(async (conn) => {
        await conn.query('begin')
        await conn.query(sql`insert into hygiene values (${1}, ${'uncommitted'})`)
        pid = (await conn.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
        expect(conn.native.client.getTransactionStatus()).toBe('T')
      }),
    ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    await pool.withConnection(async (conn) => {
      expect(conn.native.client.getTransactionStatus()).toBe('I')
      expect((await conn.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid).toBe(pid) // reused, not replaced
      expect((await conn.query('select * from hygiene')).rows).toEqual([])
    })
  })

  it('a connection released in a failed transaction is rolled back too', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    await expect(
      pool.withConnection(async (conn) => {
        await conn.query('begin')
        await expect(conn.query('select * from no_such_table')).rejects.toThrow()
        // pg settles the failed query before the server's ReadyForQuery, which carries the status;
        // a second statement is only sent after it, so once that one fails the status is known
        await expect(conn.query('select 1')).rejects.toMatchObject({
          code: 'TRANSACTION_ROLLED_BACK',
          sqlState: '25P02',
          message: expect.stringMatching(/current transaction is aborted/),
          cause: { code: 'SYNTAX_ERROR', sqlState: '42P01' },
        })
        expect(conn.native.client.getTransactionStatus()).toBe('E')
      }),
    ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK', cause: { code: 'SYNTAX_ERROR' } })
    await pool.withConnection(async (conn) => {
      expect(conn.native.client.getTransactionStatus()).toBe('I')
      expect((await conn.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }])
    })
  })

  it('a withConnection callback returning before the server reported its aborted transaction still rejects TRANSACTION_ROLLED_BACK (the status is awaited)', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    let failing: Promise<unknown> | undefined
    const done = pool.withConnection(async (conn) => {
      await conn.query('begin')
      await conn.query(sql`insert into hygiene values (${3}, ${'lost'})`)
      // returns with the failing statement in flight: its ReadyForQuery (status E) has not arrived
      failing = conn.query('select 1 / 0').catch((err: unknown) => err)
    })
    await expect(done).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    await failing
    expect((await pool.query('select * from hygiene where id = 3')).rows).toEqual([])
  })

  it('a connection released before the server reported its transaction status is rolled back, not trusted on the stale status', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    let batch: Promise<unknown> | undefined
    // withConnection waits for the status the batch's ReadyForQuery carries (T): the transaction it left open is rolled back, so it rejects
    await expect(
      pool.withConnection((conn) => {
        // released with the batch in flight: the status pg holds is still the idle one from before it
        batch = conn.native.client.query('begin; select pg_sleep(0.3)')
        expect(conn.native.client.getTransactionStatus()).toBe('I')
        return Promise.resolve()
      }),
    ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    await batch
    await pool.withConnection(async (conn) => {
      expect(conn.native.client.getTransactionStatus()).toBe('I')
      // the simple protocol (pg's own, not a named statement): the statement is its own transaction
      expect((await conn.native.client.query<{ open: boolean }>('select now() = statement_timestamp() as open')).rows).toEqual([
        { open: true },
      ])
    })
  })

  it('a connection whose ROLLBACK cannot run is destroyed instead of reused', async () => {
    const appName = uniqueAppName('rollback-fails')
    pool = poolOn(db.url, { max: 1, min: 0 }, {}, { applicationName: appName })
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(info.reason))
    await expect(
      pool.withConnection(async (conn) => {
        await conn.query('begin')
        await conn.query(sql`insert into hygiene values (${2}, ${'lost'})`)
        await terminate(db.url, appName)
        await eventually(() => !conn.native.usable, 2_000, 'the connection to notice')
      }),
    ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    expect(destroyed).toHaveLength(1)
    expect((await pool.query('select * from hygiene where id = 2')).rows).toEqual([])
  })
})

describe('saturation', () => {
  it('ACQUIRE_TIMEOUT with a stats snapshot when every connection is held; POOL_EXHAUSTED past maxWaitingClients', async () => {
    pool = poolOn(db.url, { max: 2, min: 0, acquireTimeoutMs: 300, maxWaitingClients: 1 })
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const holders = Array.from({ length: 2 }, () => pool!.withConnection(() => gate))
    await eventually(() => pool!.stats().used === 2, 2_000, 'both connections leased')

    const started = performance.now()
    const waiting = rejection(pool.query('select 1'))
    await eventually(() => pool!.stats().pending === 1, 1_000, 'one waiter')
    const refusedAt = performance.now()
    const exhausted = await rejection(pool.query('select 1'))
    expect(performance.now() - refusedAt).toBeLessThan(250) // refused at once, not after waiting
    expect(exhausted.code).toBe('POOL_EXHAUSTED')
    expect(exhausted.retryable).toBe(true)
    expect(exhausted.poolStats).toMatchObject({ used: 2, max: 2, pending: 1 })

    const timeout = await waiting
    expect(timeout.code).toBe('ACQUIRE_TIMEOUT')
    expect(timeout.poolStats).toMatchObject({ size: 2, used: 2, idle: 0, max: 2 })
    expect(timeout.message).toContain('300 ms')
    const waited = performance.now() - started
    expect(waited).toBeGreaterThanOrEqual(290)
    expect(waited).toBeLessThan(1_000)

    release()
    await Promise.all(holders)
    expect((await pool.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }])
  })
})

describe('close()', () => {
  it('with a leaked lease: resolves by its deadline, names the lease and where it was taken, and closes its connection', async () => {
    const appName = uniqueAppName('leak')
    pool = poolOn(db.url, { max: 2, min: 0, leakDetectionThresholdMs: 60_000 }, {}, { applicationName: appName })
    const leaked = pool.withConnection(() => new Promise<never>(() => undefined))
    void leaked.catch(() => undefined)
    await eventually(() => pool!.stats().used === 1, 2_000, 'the lease')
    await pool.query('select 1')
    const started = performance.now()
    const report = await pool.close({ timeoutMs: 500 })
    const elapsed = performance.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(490)
    expect(elapsed).toBeLessThan(2_000)
    expect(report.timedOut).toBe(true)
    expect(report.outstandingLeases).toHaveLength(1)
    const lease = report.outstandingLeases[0]!
    expect(lease.leaseId).toBeGreaterThan(0)
    expect(lease.heldForMs).toBeGreaterThanOrEqual(490)
    expect(lease.stack).toContain('pool-behaviour.test.ts')
    await eventually(async () => (await backends(db.url, appName)).length === 0, 2_000, 'every backend of the pool to be gone')
    expect((await rejection(pool.query('select 1'))).code).toBe('POOL_CLOSED')
  })
})

describe('serializable transfers with retry', () => {
  it('N concurrent transfers between few accounts: serialization failures are replayed and the sum of balances stays constant', async () => {
    pool = poolOn(db.url, { max: 8, min: 0 })
    await pool.query('drop table if exists accounts')
    await pool.query('create table accounts (id int primary key, balance bigint not null check (balance >= 0))')
    await pool.query('insert into accounts select g, 1000 from generate_series(1, 3) g')
    let attempts = 0
    const failures: DatabaseError[] = []
    const transfers = 40
    const results = await Promise.all(
      Array.from({ length: transfers }, (_, i) => {
        const from = (i % 3) + 1
        const to = ((i + 1) % 3) + 1
        const amount = BigInt(1 + (i % 7))
        return pool!
          .transaction(
            async (tx) => {
              attempts++
              const { rows } = await tx.query<{ balance: bigint }>(sql`select balance from accounts where id = ${from}`)
              if ((rows[0]?.balance ?? 0n) < amount) return 'skipped'
              await tx.query(sql`update accounts set balance = balance - ${amount} where id = ${from}`)
              await tx.query(sql`update accounts set balance = balance + ${amount} where id = ${to}`)
              return 'moved'
            },
            { isolation: 'serializable', retry: { maxAttempts: 50, baseDelayMs: 2, maxDelayMs: 50 } },
          )
          .catch((err: unknown) => {
            failures.push(err as DatabaseError)
            return 'failed'
          })
      }),
    )
    expect(failures).toEqual([])
    expect(results.filter((r) => r === 'moved').length).toBeGreaterThan(0)
    expect(attempts).toBeGreaterThan(transfers) // contention happened and was replayed
    const { rows } = await pool.query<{ total: bigint }>('select sum(balance)::bigint as total from accounts')
    expect(rows[0]?.total).toBe(3000n)
    process.stdout.write(`serializable transfers: ${transfers} transfers took ${attempts} attempts\n`)
  }, 60_000)
})
