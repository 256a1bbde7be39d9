import { HealthChecker, sql, type DatabaseError } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

// A health probe's timeoutMs bounds its wait for a connection too: at its deadline it leaves the
// queue (ACQUIRE_TIMEOUT), so timed-out probes leave no waiter behind to count against
// maxWaitingClients or to be served before the application's calls (review h4/h7).
const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  try {
    await promise
  } catch (err) {
    return err as DatabaseError
  }
  throw new Error('expected a rejection')
}

/** Holds the connection a write transaction takes until `release()`. */
function holdWriter(pool: ReturnType<typeof createSqlitePool>): { readonly done: Promise<void>; release(): void } {
  let release!: () => void
  const held = new Promise<void>((resolve) => (release = resolve))
  const done = pool.transaction(async (tx) => {
    await tx.query(sql`insert into t (id) values (1)`)
    await held
  })
  return { done, release }
}

describe('SQLite health probes at their deadline', () => {
  it('with the only connection held: ping, backendChecks and HealthChecker leave the queue at their deadline; the app query is not refused', async () => {
    const pool = createSqlitePool(
      tmp.file(`probe-${++n}.db`),
      { acquireTimeoutMs: 20_000, maxWaitingClients: 2, name: 'probe' },
      { readers: 0 },
    )
    try {
      await pool.query('create table t (id integer primary key)')
      const writer = holdWriter(pool)
      await sleep(20)
      expect(pool.stats().used).toBe(1)

      const ping = await rejection(pool.ping(50))
      expect(ping.code).toBe('ACQUIRE_TIMEOUT')
      expect(pool.stats().pending).toBe(0)
      const checks = await rejection(pool.backendChecks({ timeoutMs: 50 }))
      expect(checks.code).toBe('ACQUIRE_TIMEOUT')
      expect(pool.stats().pending).toBe(0)

      const checker = new HealthChecker({ timeoutMs: 50 })
      for (let i = 0; i < 3; i++) {
        const report = await checker.check(pool)
        // busy, not down: degraded (it was unhealthy, 503); the probe left the queue before the report
        expect(report.status).toBe('degraded')
        expect(report.checks[0]).toMatchObject({ name: 'saturation', data: { code: 'ACQUIRE_TIMEOUT' } })
        expect(pool.stats().pending).toBe(0)
      }

      // maxWaitingClients 2: abandoned probes would have filled it (POOL_EXHAUSTED)
      const app = pool.query<{ one: number }>('select 1 as one')
      await sleep(10)
      expect(pool.stats().pending).toBe(1)
      writer.release()
      await writer.done
      expect((await app).rows).toEqual([{ one: 1 }])
    } finally {
      await pool.close()
    }
  })

  it('with readers: a long write transaction does not block the probes (they run on a reader)', async () => {
    const pool = createSqlitePool(
      tmp.file(`probe-${++n}.db`),
      { acquireTimeoutMs: 20_000, maxWaitingClients: 2, name: 'probe' },
      { readers: 2 },
    )
    try {
      await pool.query('create table t (id integer primary key)')
      const writer = holdWriter(pool)
      await sleep(20)
      expect(pool.stats('write').used).toBe(1)
      const report = await new HealthChecker({ timeoutMs: 200 }).check(pool)
      expect(report.status).toBe('healthy')
      expect(report.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['ping', 'wal', 'pages']))
      expect(typeof (await pool.ping(200))).toBe('number')
      expect(pool.stats('write').pending).toBe(0)
      writer.release()
      await writer.done
    } finally {
      await pool.close()
    }
  })

  // review r13 D7: with readers, a writer held with 50 writes queued was `healthy` (saturation summed
  // over both lanes: 1 of 5 in use); it is judged per lane
  it('with readers: the writer held with writes queued is saturation degraded, naming the write lane; /ready stays ready', async () => {
    const pool = createSqlitePool(tmp.file(`probe-${++n}.db`), { acquireTimeoutMs: 20_000, name: 'lanes' }, { readers: 4 })
    try {
      await pool.query('create table t (id integer primary key)')
      const healthy = await new HealthChecker({ timeoutMs: 1_000 }).check(pool)
      expect(healthy.checks.find((c) => c.name === 'saturation')?.status).toBe('healthy')
      const writer = holdWriter(pool)
      await sleep(50)
      const writes = Array.from({ length: 50 }, (_, i) => pool.query(sql`insert into t (id) values (${i + 10})`))
      await sleep(50)
      expect(pool.stats('write').pending).toBe(50)
      const report = await new HealthChecker({ timeoutMs: 1_000 }).check(pool)
      writer.release()
      await Promise.all([writer.done, ...writes])
      expect(report.status).toBe('degraded')
      expect(report.checks.find((c) => c.name === 'saturation')).toMatchObject({
        status: 'degraded',
        data: { utilization: 1, pending: 50, lane: 'write' },
      })
      expect(report.checks.find((c) => c.name === 'saturation')?.message).toMatch(
        /1\/1 connections of the write lane in use with 50 callers waiting/,
      )
    } finally {
      await pool.close()
    }
  })
})
