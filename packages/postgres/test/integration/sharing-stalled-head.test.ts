import type { DatabaseError, DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn } from './helpers'

// Found by review (r11a t14): with statement sharing, a transaction's harmless pool.query('select 1')
// joined the shared connection behind another caller's UPDATE waiting for the transaction's own row
// lock: each waited for the other, forever (with pipelineDepth: 1 it failed with ACQUIRE_TIMEOUT).

let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, (c) => c.query('create table stalled (id int primary key, v int); insert into stalled values (1, 0)'))
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

const HUNG = 'hung: no answer long after acquireTimeoutMs'

describe('statement sharing behind a blocked statement', () => {
  // r12b sharing-hang: the 25 ms stalled-head rule alone missed a pool.query issued 5 ms after the
  // blocked update (its head still young): only reads are joined now, whatever their age
  for (const [pipelineDepth, delayMs] of [
    [8, 100],
    [8, 5],
    [8, 0],
    [1, 100],
  ] as const) {
    it(`pipelineDepth ${pipelineDepth}, pool.query ${delayMs} ms after the blocked update: a transaction's pool.query does not wait forever behind another caller's statement blocked on the transaction's lock: ACQUIRE_TIMEOUT, then the other statement completes`, async () => {
      pool = poolOn(db.url, { max: 2, min: 0, acquireTimeoutMs: 1_000, name: `stalled-${pipelineDepth}-${delayMs}` }, { pipelineDepth })
      let other: Promise<unknown> | undefined
      const running = pool.transaction(async (tx) => {
        await tx.query('update stalled set v = 1 where id = 1')
        // another caller: its own connection, waiting for the transaction's row lock
        other = pool!.query('update stalled set v = v + 10 where id = 1')
        other.catch(() => undefined)
        await new Promise((resolve) => setTimeout(resolve, delayMs))
        await pool!.query('select 1 as one')
      })
      let watchdog: NodeJS.Timeout | undefined
      const outcome = await Promise.race([
        running.then(
          () => 'committed',
          (err: DatabaseError) => err.code,
        ),
        new Promise<string>((resolve) => (watchdog = setTimeout(() => resolve(HUNG), 15_000))),
      ])
      clearTimeout(watchdog)
      expect(outcome).toBe('ACQUIRE_TIMEOUT')
      // the transaction rolled back: the other caller's update got the lock and ran
      await expect(other).resolves.toMatchObject({ rowCount: 1 })
      expect((await pool.query<{ v: number }>('select v from stalled where id = 1')).rows).toEqual([{ v: 10 }])
      await pool.query('update stalled set v = 0 where id = 1')
    }, 30_000)
  }

  it('r12b sharing-load: with no transaction open, a lone read joins a connection whose read has run for long (pg_sleep) instead of timing out', async () => {
    pool = poolOn(db.url, { max: 2, min: 2, acquireTimeoutMs: 500, name: 'stalled-read' }, { pipelineDepth: 8 })
    await pool.query('select 1')
    const slow = [pool.query('select pg_sleep(1)')]
    await new Promise((resolve) => setTimeout(resolve, 40))
    slow.push(pool.query('select pg_sleep(1)'))
    await new Promise((resolve) => setTimeout(resolve, 50))
    await expect(pool.query('select 1 as x')).resolves.toMatchObject({ rows: [{ x: 1 }] })
    await Promise.all(slow)
  }, 30_000)

  it('statements issued together still share one connection (pipelined: with maxWaitingClients 0 none is refused)', async () => {
    pool = poolOn(db.url, { max: 1, min: 0, maxWaitingClients: 0, name: 'stalled-share' }, { pipelineDepth: 8 })
    const pids = await Promise.all(
      Array.from({ length: 6 }, () => pool!.query<{ pid: number }>('select pg_backend_pid() as pid').then((r) => r.rows[0]!.pid)),
    )
    expect(new Set(pids).size).toBe(1)
  })
})
