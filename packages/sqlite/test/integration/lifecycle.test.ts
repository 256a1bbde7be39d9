import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { exited, lines, sleep, spawnFixture, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const opened: DatabasePool<SqliteDatabase>[] = []
afterEach(async () => {
  for (const pool of opened.splice(0)) await pool.close({ timeoutMs: 2_000 })
})

let n = 0
function sqlitePool(options: Parameters<typeof createSqlitePool>[1] = {}): DatabasePool<SqliteDatabase> {
  const pool = createSqlitePool(tmp.file(`life-${++n}.db`), { min: 0, name: 'life', ...options })
  opened.push(pool)
  return pool
}

async function codes(promises: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(promises)
  return settled.map((r) => (r.status === 'fulfilled' ? 'ok' : DatabaseError.is(r.reason) ? r.reason.code : String(r.reason)))
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

describe('close() on SQLite lets the work issued before it finish', () => {
  it('20 queries issued before close() on a pool of max 1 all complete (cold pool)', async () => {
    const path = tmp.file('drain.db')
    const setup = createSqlitePool(path, { min: 0 })
    await setup.query('create table t (id integer primary key, v integer not null)')
    await setup.close()

    const pool = createSqlitePool(path, { min: 0, max: 1 })
    const queries = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0 ? pool.query(sql`insert into t (v) values (${i})`) : pool.query('select count(*) as n from t'),
    )
    const report = await pool.close({ timeoutMs: 5_000 })
    expect(await codes(queries)).toEqual(Array(20).fill('ok'))
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })

    const check = createSqlitePool(path, { min: 0 })
    expect((await check.query('select count(*) as n from t')).rows).toEqual([{ n: 10 }])
    await check.close()
  })

  it('transactions and leases issued before close() on a warm pool complete; calls after it are refused', async () => {
    const pool = sqlitePool({ min: 1, max: 1 })
    await pool.query('create table t (v integer)')
    const before = [
      pool.transaction((tx) => tx.query('insert into t values (1)')),
      pool.withConnection((conn) => conn.query('insert into t values (2)')),
      pool.query('insert into t values (3)'),
    ]
    const closing = pool.close({ timeoutMs: 5_000 })
    expect(await codes([pool.query('select 1'), pool.transaction(async () => 1)])).toEqual(['POOL_CLOSED', 'POOL_CLOSED'])
    expect(await codes(before)).toEqual(['ok', 'ok', 'ok'])
    expect((await closing).timedOut).toBe(false)
  })
})

describe('lifetime and idle timeout on SQLite', () => {
  it('an idle connection is retired at its max lifetime without a borrow, and a min 0 pool empties', async () => {
    const pool = sqlitePool({ max: 1, maxLifetimeMs: 400, maxLifetimeJitter: 0 })
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(info.reason))
    await pool.query('create table t (v integer)')
    await pool.query('select * from t')
    expect(pool.stats().size).toBeGreaterThan(0)
    await until(() => pool.stats().size === 0, 400 + 1_000, 'every connection to be retired')
    expect(destroyed.every((r) => r === 'max lifetime')).toBe(true)
    await sleep(100)
    expect(pool.stats().size).toBe(0)
  })

  it('idle connections beyond min are closed after idleTimeoutMs, keepalive pings notwithstanding', async () => {
    const pool = sqlitePool({ max: 2, idleTimeoutMs: 300, keepaliveIntervalMs: 50 })
    await pool.query('create table t (v integer)')
    await Promise.all([
      pool.transaction((tx) => tx.query('insert into t values (1)')),
      pool.withConnection(() => sleep(10), { lane: 'read' }),
    ])
    await until(() => pool.stats().size === 0, 300 + 1_500, 'the idle connections to close')
  })
})

describe('process exit on SQLite', () => {
  it.each([
    ['with allowExitOnIdle', 'true'],
    ['without allowExitOnIdle (no sockets, and the pool`s timers are unref`d)', 'false'],
  ])(
    '%s, a script that runs one query and never calls close() exits',
    async (_label, allow) => {
      const child = spawnFixture('one-query-child.ts', [tmp.file(`exit-${allow}.db`), allow])
      const out = lines(child)
      await out.waitFor(/^completed 1$/, 45_000)
      let timer: NodeJS.Timeout | undefined
      const running = new Promise<'running'>((resolve) => (timer = setTimeout(() => resolve('running'), 10_000)))
      const outcome = await Promise.race([exited(child), running])
      clearTimeout(timer)
      if (outcome === 'running') child.kill('SIGKILL')
      expect(outcome).toMatchObject({ code: 0 })
    },
    60_000,
  )
})
