import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { backends, eventually, poolOn, terminate, watchProcess } from './helpers'

// pg_terminate_backend on every backend of the pool, while callers are busy and while it is idle.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

// Without pipelining only the 8 statements in flight can fail; pipelined 4 deep, all 32 may be in
// flight on the killed backends. Either way: CONNECTION_LOST, retryable, no crash, later ones succeed.
it.each([
  { pipelineDepth: 1, name: 'terminate', mostFailures: 8, title: 'one statement per connection: only in-flight statements fail' },
  { pipelineDepth: 4, name: 'terminate-piped', mostFailures: 32, title: 'pipelined 4 deep: every statement on a killed backend fails' },
])(
  '32 callers on 8 connections, $title with CONNECTION_LOST (retryable); later ones succeed; nothing crashes',
  async ({ pipelineDepth, name: poolName, mostFailures }) => {
    const watch = watchProcess()
    try {
      pool = poolOn(db.url, { max: 8, min: 8, acquireTimeoutMs: 15_000, name: poolName }, { pipelineDepth })
      await Promise.all(Array.from({ length: 32 }, () => pool.query('select 1')))
      const name = await currentAppName(pool)
      await eventually(async () => (await backends(db.url, name)).length === 8, 5_000, '8 backends')

      const results = Array.from({ length: 32 }, () =>
        pool.query('select pg_sleep(0.4), 1 as ok').then(
          () => 'ok' as const,
          (err: unknown) => err,
        ),
      )
      await eventually(
        async () => (await backends(db.url, name)).filter((b) => b.state === 'active').length === 8,
        5_000,
        '8 busy backends',
      )
      const killed = await terminate(db.url, name)
      expect(killed).toBe(8)
      const outcomes = await Promise.all(results)

      const failures = outcomes.filter((o): o is DatabaseError => o !== 'ok')
      expect(failures.length).toBeGreaterThanOrEqual(1)
      expect(failures.length).toBeLessThanOrEqual(mostFailures)
      for (const err of failures) {
        expect(DatabaseError.is(err)).toBe(true)
        expect(err.code).toBe('CONNECTION_LOST')
        expect(err.retryable).toBe(true)
        expect(err.sqlState === '57P01' || err.sqlState === undefined).toBe(true)
      }
      expect(outcomes.filter((o) => o === 'ok').length).toBe(32 - failures.length)

      const later = await Promise.all(Array.from({ length: 32 }, () => pool.query<{ n: number }>('select 1 as n')))
      expect(later.every((r) => r.rows[0]?.n === 1)).toBe(true)
      expect(pool.stats().used).toBe(0)
      expect(watch.failures).toEqual([])
    } finally {
      watch.stop()
    }
  },
  60_000,
)

it('idle connections killed by the server: connectionLost per connection, no crash, the pool refills and serves', async () => {
  const watch = watchProcess()
  try {
    pool = poolOn(db.url, { max: 4, min: 4, name: 'idle-kill' })
    const lost: { err: DatabaseError; idle: boolean }[] = []
    pool.on('connectionLost', (err, info) => lost.push({ err, idle: info.idle }))
    await Promise.all(Array.from({ length: 4 }, () => pool.query('select pg_sleep(0.05)')))
    const name = await currentAppName(pool)
    const before = (await backends(db.url, name)).map((b) => b.pid)
    expect(before).toHaveLength(4)

    expect(await terminate(db.url, name)).toBe(4)
    await eventually(() => lost.length === 4, 5_000, '4 connectionLost events')
    expect(lost.every((l) => l.err.code === 'CONNECTION_LOST' && l.err.retryable && l.err.sqlState === '57P01')).toBe(true)

    // warm-up brings the pool back to min with new backends
    await eventually(async () => (await backends(db.url, name)).length === 4, 5_000, 'the pool to refill to min')
    const after = (await backends(db.url, name)).map((b) => b.pid)
    expect(after.some((pid) => before.includes(pid))).toBe(false)
    // twice more: the first loss starts a sweep and a warm-up that borrow the other idle connections,
    // which no caller holds: every event says idle (review r13 D11: some said idle: false)
    for (let round = 2; round <= 3; round++) {
      await eventually(() => pool.stats().idle === 4, 5_000, 'the pool idle again')
      expect(await terminate(db.url, name)).toBe(4)
      await eventually(() => lost.length === 4 * round, 5_000, `${4 * round} connectionLost events`)
      await eventually(async () => (await backends(db.url, name)).length === 4, 5_000, 'the pool to refill to min')
    }
    expect(lost.map((l) => l.idle)).toEqual(Array.from({ length: 12 }, () => true))
    const { rows } = await pool.query<{ n: number }>('select 1 as n')
    expect(rows).toEqual([{ n: 1 }])
    expect(watch.failures).toEqual([])
  } finally {
    watch.stop()
  }
}, 30_000)

it('a leased connection whose backend dies is destroyed on release, not reused', async () => {
  pool = poolOn(db.url, { max: 1, min: 0, name: 'leased-kill' })
  const destroyed: string[] = []
  pool.on('destroy', (info) => destroyed.push(info.reason))
  const name = await currentAppName(pool)
  const err = await pool
    .withConnection(async (conn) => {
      await conn.query('begin')
      await terminate(db.url, name)
      await new Promise((r) => setTimeout(r, 100))
      await conn.query('select 1')
    })
    .then(
      () => undefined,
      (e: unknown) => e as DatabaseError,
    )
  expect(err?.code).toBe('CONNECTION_LOST')
  expect(destroyed).toHaveLength(1)
  const { rows } = await pool.query<{ s: string }>("select current_setting('transaction_isolation') as s")
  expect(rows).toHaveLength(1)
}, 30_000)

async function currentAppName(p: DatabasePool<PostgresConnection>): Promise<string> {
  const { rows } = await p.query<{ name: string }>("select current_setting('application_name') as name")
  return rows[0]?.name ?? ''
}
