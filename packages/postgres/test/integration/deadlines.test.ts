import { type DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, startTcpProxy, type TcpProxy, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn, rejection, uniqueAppName } from './helpers'

// Per-statement deadlines (timeoutMs) and cancellation (AbortSignal), against a live server and
// through a blackholed TCP proxy.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let proxy: TcpProxy | undefined

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
  await proxy?.close()
  proxy = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

async function sleepingBackends(appName: string): Promise<number> {
  return admin(
    db.url,
    async (c) =>
      (
        await c.query("select pid from pg_stat_activity where application_name = $1 and query like '%pg_sleep(30)%' and state = 'active'", [
          appName,
        ])
      ).rowCount ?? 0,
  )
}

describe('timeoutMs', () => {
  it('an answer received before the deadline but not read yet (the event loop blocked past it) is the result, not QUERY_TIMEOUT', async () => {
    pool = poolOn(db.url, { min: 0, max: 1, name: 'deadline-blocked' })
    const result = await pool.withConnection(async (c) => {
      await c.query('select 1')
      const running = c.query<{ one: number }>('select 1 as one', [], { timeoutMs: 100 })
      // once the statement is on the wire: block the loop past the deadline while its answer arrives
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          const end = Date.now() + 400
          while (Date.now() < end);
          resolve()
        }),
      )
      return running
    })
    expect(result.rows).toEqual([{ one: 1 }])
  })

  it('fails with QUERY_TIMEOUT at the deadline, cancels the statement on the server and destroys the connection', async () => {
    const appName = uniqueAppName('deadline')
    pool = poolOn(db.url, { max: 1, min: 0 }, {}, { applicationName: appName })
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(info.reason))
    const pidBefore = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
    const started = performance.now()
    const err = await rejection(pool.query('select pg_sleep(30)', [], { timeoutMs: 300 }))
    const elapsed = performance.now() - started
    expect(err.code).toBe('QUERY_TIMEOUT')
    expect(elapsed).toBeGreaterThanOrEqual(290)
    expect(elapsed).toBeLessThan(1_300)
    expect(destroyed).toEqual(['broken: QUERY_TIMEOUT'])
    // the cancel request reached the server: the statement is not running any more
    await eventually(async () => (await sleepingBackends(appName)) === 0, 2_000, 'the server to cancel pg_sleep(30)')
    const pidAfter = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
    expect(pidAfter).not.toBe(pidBefore)
  }, 20_000)

  it("a statement that waited for its connection and then timed out names the caller's timeoutMs, not what was left of it", async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let holding!: () => void
    const lent = new Promise<void>((resolve) => (holding = resolve))
    const holder = pool.withConnection(async () => {
      holding()
      await held
    })
    await lent
    const timingOut = rejection(pool.query('select pg_sleep(30)', [], { timeoutMs: 400 }))
    await new Promise((resolve) => setTimeout(resolve, 60))
    release()
    await holder
    const err = await timingOut
    expect(err.code).toBe('QUERY_TIMEOUT')
    expect(err.message).toMatch(/exceeded its 400 ms deadline \(query\.timeoutMs; \d+ ms of it spent waiting for a connection\)/)
    expect(err.detail).toMatchObject({ timeoutMs: 400 })
  }, 20_000)

  it('a statement that finishes in time is unaffected and keeps its connection', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const a = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid', [], { timeoutMs: 5_000 })).rows[0]?.pid
    const b = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid', [], { timeoutMs: 5_000 })).rows[0]?.pid
    expect(a).toBe(b)
  })

  it.each<[string, unknown]>([
    ['0', 0],
    ['negative', -1],
    ['NaN', Number.NaN],
    ['fractional', 1.5],
    ['a string', '5000'],
    ['beyond a timer (2^31 ms)', 2 ** 31],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('%s is refused with CONFIGURATION naming query.timeoutMs before anything runs; the connection is kept', async (_what, timeoutMs) => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    const destroyed: string[] = []
    pool.on('destroy', ({ reason }) => destroyed.push(reason))
    const pid = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
    // pg_sleep: with the old code the timer fired at once (or after 1 ms) and closed the connection
    const err = await rejection(pool.query('select pg_sleep(0.2)', [], { timeoutMs: timeoutMs as number }))
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(/^invalid query\.timeoutMs /)
    const inTx = await rejection(pool.transaction((tx) => tx.query('select pg_sleep(0.2)', [], { timeoutMs: timeoutMs as number })))
    expect(inTx.code).toBe('CONFIGURATION')
    expect((await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid).toBe(pid)
    expect(destroyed).toEqual([])
  })

  it('a signal that is not an AbortSignal, or an unknown option, is refused with CONFIGURATION', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    expect((await rejection(pool.query('select 1', [], { signal: {} as AbortSignal }))).message).toMatch(/^invalid query\.signal /)
    expect((await rejection(pool.query('select 1', [], { timeoutMs: 1_000, timeout: 5 } as never))).message).toMatch(
      /^invalid query\.timeout 5: unknown option/,
    )
  })
})

describe('AbortSignal', () => {
  it('cancels a running statement through a protocol cancel request (QUERY_CANCELLED), and the connection is reused', async () => {
    const appName = uniqueAppName('abort')
    pool = poolOn(db.url, { max: 1, min: 0 }, {}, { applicationName: appName })
    const pidBefore = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
    const controller = new AbortController()
    const started = performance.now()
    const pending = pool.query('select pg_sleep(30)', [], { signal: controller.signal })
    // a second caller waits: the pool is exhausted, yet the cancel does not need a pooled connection
    const waiting = pool.query<{ pid: number }>('select pg_backend_pid() as pid')
    await eventually(async () => (await sleepingBackends(appName)) === 1, 5_000, 'pg_sleep to run')
    controller.abort()
    const err = await rejection(pending)
    expect(err.code).toBe('QUERY_CANCELLED')
    expect(err.sqlState).toBe('57014')
    expect(performance.now() - started).toBeLessThan(5_000)
    const next = await waiting
    expect(next.rows[0]?.pid).toBe(pidBefore)
  }, 20_000)

  it('an already aborted signal fails at once without running the statement', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    await pool.query('create table if not exists never_inserted (id int)')
    const err = await rejection(pool.query('insert into never_inserted values (1)', [], { signal: AbortSignal.abort() }))
    expect(err.code).toBe('QUERY_CANCELLED')
    expect((await pool.query('select * from never_inserted')).rows).toEqual([])
  })

  it('a QUERY_TIMEOUT caught inside a transaction: transaction() rejects TRANSACTION_ROLLED_BACK whose cause is the timeout, nothing committed', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    await pool.query('create table if not exists timed_out_tx (id int)')
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert into timed_out_tx values (1)')
        // the deadline closes the connection: the server rolls the transaction back with the session
        await tx.query('select pg_sleep(5)', [], { timeoutMs: 100 }).catch(() => undefined)
        return 'carried on'
      }),
    )
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect((err.cause as DatabaseError).code).toBe('QUERY_TIMEOUT')
    expect(err.retryable).toBe(false)
    expect((await pool.query('select * from timed_out_tx')).rows).toEqual([])
  }, 20_000)

  it('cancels inside a transaction: the transaction rolls back and the connection comes back clean', async () => {
    pool = poolOn(db.url, { max: 1, min: 0 })
    await pool.query('create table if not exists cancelled_tx (id int)')
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 200)
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert into cancelled_tx values (1)')
        await tx.query('select pg_sleep(30)', [], { signal: controller.signal })
      }),
    )
    expect(err.code).toBe('QUERY_CANCELLED')
    expect((await pool.query('select * from cancelled_tx')).rows).toEqual([])
    const { rows } = await pool.query<{ s: string }>("select current_setting('transaction_isolation') as s")
    expect(rows).toHaveLength(1)
  }, 20_000)
})

describe('blackhole', () => {
  it('statements fail with QUERY_TIMEOUT within timeout + 1 s, their connections are destroyed, and the pool recovers when traffic flows', async () => {
    const target = new URL(db.url)
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) })
    const timeoutMs = 1_000
    pool = poolOn(
      proxy.urlFor(db.url),
      { max: 4, min: 0, acquireTimeoutMs: 3_000, createTimeoutMs: 1_000, validateAfterIdleMs: 60_000 },
      { cancelTimeoutMs: 500 },
    )
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(info.reason))
    await Promise.all(Array.from({ length: 4 }, () => pool!.query('select pg_sleep(0.05)')))
    expect(pool.stats().size).toBe(4)

    proxy.blackhole()
    const started = performance.now()
    const outcomes = await Promise.all(
      Array.from({ length: 4 }, () =>
        pool!.query('select 1', [], { timeoutMs }).then(
          () => undefined,
          (err: unknown) => ({ err: err as DatabaseError, ms: performance.now() - started }),
        ),
      ),
    )
    for (const outcome of outcomes) {
      expect(outcome?.err.code).toBe('QUERY_TIMEOUT')
      expect(outcome!.ms).toBeLessThan(timeoutMs + 1_000)
    }
    expect(destroyed.filter((r) => r === 'broken: QUERY_TIMEOUT')).toHaveLength(4)
    await eventually(() => pool!.stats().size === 0, 1_000, 'the destroyed connections to leave the pool')

    // while the partition lasts, a new connection cannot be made: fail fast with the connect error
    const during = await rejection(pool.query('select 1', [], { timeoutMs }))
    expect(['CONNECTION_FAILED', 'ACQUIRE_TIMEOUT']).toContain(during.code)
    // a statement's timeoutMs ends its wait (ACQUIRE_TIMEOUT) while the connect it set off goes on to its own
    // deadline; a caller arriving after the partition while that connect is still pending would get its
    // failure (tarn's fail-fast rule: a connect error fails the oldest waiting caller), so let it end first
    await eventually(() => pool!.stats().size === 0, 3_000, 'the connect begun during the partition to end')

    proxy.resume()
    const recoveredAt = performance.now()
    const { rows } = await pool.query<{ n: number }>('select 1 as n', [], { timeoutMs })
    expect(rows).toEqual([{ n: 1 }])
    const recoveryMs = performance.now() - recoveredAt
    expect(recoveryMs).toBeLessThan(2_000)
    process.stdout.write(
      `blackhole: QUERY_TIMEOUT after ${outcomes.map((o) => o!.ms.toFixed(0)).join('/')} ms (timeout ${timeoutMs}), ` +
        `connect during partition failed with ${during.code}, first success ${recoveryMs.toFixed(0)} ms after traffic resumed\n`,
    )
  }, 30_000)
})
