import { closeSync, openSync, writeSync } from 'node:fs'
import { HealthChecker, sql, type DatabasePool, type HealthCheckDetail } from '@dbpool/core'
import { createSqlitePool, integrityCheck, type SqliteDatabase } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { armedMonitor, sleep, tempDir, watchWorkers } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
afterEach(() => jest.restoreAllMocks())

/** About 30 MB with an index: integrity_check reads it all in one native call (a few hundred ms here). */
const big = tmp.file('big.db')
beforeAll(() => {
  const db = new Database(big)
  try {
    db.pragma('journal_mode = WAL')
    db.exec('create table item (id integer primary key, part text not null, payload text not null); create index item_part on item (part)')
    db.prepare(
      'with recursive c(i) as (select 1 union all select i + 1 from c where i < 100000) insert into item (part, payload) select hex(randomblob(16)), hex(randomblob(100)) from c',
    ).run()
  } finally {
    db.close()
  }
}, 60_000)

async function integrityOf(pool: DatabasePool<SqliteDatabase>, deep: boolean, timeoutMs = 30_000): Promise<HealthCheckDetail | undefined> {
  return (await pool.backendChecks({ deep, timeoutMs })).find((c) => c.name === 'integrity')
}

/** What the check gave before it moved to a worker: integrityCheck on the pool's own connection, on the main thread. */
function onMainThread(pool: DatabasePool<SqliteDatabase>, path: string, deep: boolean): Promise<HealthCheckDetail> {
  return pool.withConnection(async (conn) => integrityCheck(conn.native, deep, { path, walCheckpointThresholdBytes: 0 }))
}

function withoutLatency(detail: HealthCheckDetail | undefined): Omit<HealthCheckDetail, 'latencyMs'> | undefined {
  if (detail === undefined) return undefined
  const { latencyMs, ...rest } = detail
  expect(latencyMs).toEqual(expect.any(Number))
  return rest
}

/** A small file: a table with an index, 400 rows over a few dozen pages. */
function smallDatabase(name: string): string {
  const path = tmp.file(name)
  const db = new Database(path)
  db.exec('create table t (id integer primary key, a integer, body text); create index t_a on t (a)')
  const insert = db.prepare('insert into t (a, body) values (?, ?)')
  for (let k = 0; k < 400; k++) insert.run(k, `row ${k} `.repeat(20))
  db.close()
  return path
}

describe('SQLite integrity check on a worker thread', () => {
  it('keeps the event loop running during the check, holds no lease and leaves the database as it was', async () => {
    const pool = createSqlitePool(big, { name: 'big' })
    try {
      await pool.query('create table if not exists note (body text)')
      // the same check on the main thread (how it ran before), as the yardstick: it stalls the loop for all of it
      const reference = await onMainThread(pool, big, true)
      expect(reference.status).toBe('healthy')

      const histogram = await armedMonitor()
      let ticks = 0
      const ticker = setInterval(() => ticks++, 1)
      const started = performance.now()
      let wroteAt = 0
      let checkedAt = 0
      const [detail] = await Promise.all([
        integrityOf(pool, true).finally(() => (checkedAt = performance.now())),
        // the writer is free while the worker reads: the check holds no lease
        pool.query(sql`insert into note (body) values (${'during the check'})`).finally(() => (wroteAt = performance.now())),
      ])
      const wallMs = performance.now() - started
      clearInterval(ticker)
      await sleep(5)
      histogram.disable()
      const stallMs = histogram.max / 1e6
      const quick = await integrityOf(pool, false)
      const quickReference = await onMainThread(pool, big, false)

      console.info(
        `integrity_check of ${big} (${(await pool.query('pragma page_count')).rows[0]?.page_count} pages): on the main thread ${reference.latencyMs} ms, all of it an event-loop stall; in a worker ${detail?.latencyMs} ms (call ${wallMs.toFixed(1)} ms), max event-loop delay ${stallMs.toFixed(1)} ms, ${ticks} ticks of a 1 ms timer; quick_check ${quickReference.latencyMs} ms on the main thread, ${quick?.latencyMs} ms in a worker; a write during the check returned after ${(wroteAt - started).toFixed(1)} ms`,
      )
      expect(withoutLatency(detail)).toEqual(withoutLatency(reference))
      expect(withoutLatency(quick)).toEqual(withoutLatency(quickReference))
      // on the main thread the loop stops for the whole check; in a worker only for a few ms (starting
      // the worker, GC): half of the check's main-thread time is a wide margin either way
      expect(reference.latencyMs).toBeGreaterThan(40)
      expect(stallMs).toBeLessThan(Number(reference.latencyMs) / 2)
      expect(ticks).toBeGreaterThan(wallMs / 20)
      expect(wroteAt).toBeLessThan(checkedAt)
      // the worker's connection is read-only: the live database keeps its journal mode
      expect((await pool.query('pragma journal_mode')).rows).toEqual([{ journal_mode: 'wal' }])
    } finally {
      await pool.close()
    }
  }, 60_000)

  it('reports sound, corrupt and unreadable files as the check on a connection does', async () => {
    // an index whose entries no longer match the schema: integrity_check finds it, quick_check does not look
    const badIndex = smallDatabase('bad-index.db')
    const db = new Database(badIndex)
    db.unsafeMode(true)
    db.pragma('writable_schema = ON')
    db.prepare("update sqlite_schema set sql = 'CREATE INDEX t_a ON t (body)' where name = 't_a'").run()
    db.close()
    // a few pages in the middle scribbled over
    const scribbled = smallDatabase('scribbled.db')
    const fd = openSync(scribbled, 'r+')
    writeSync(fd, Buffer.alloc(4096 * 3, 0x5a), 0, 4096 * 3, 4096 * 4)
    closeSync(fd)

    const seen: Record<string, unknown> = {}
    for (const [what, path] of [
      ['sound', smallDatabase('sound.db')],
      ['bad index', badIndex],
      ['scribbled', scribbled],
    ] as const) {
      const pool = createSqlitePool(path, { name: what }, { journalMode: 'delete' })
      try {
        for (const deep of [false, true]) {
          const before = withoutLatency(await onMainThread(pool, path, deep))
          const after = withoutLatency(await integrityOf(pool, deep))
          expect({ what, deep, ...after }).toEqual({ what, deep, ...before })
          seen[`${what}, ${deep ? 'integrity_check' : 'quick_check'}`] = after?.message ?? after?.status
        }
      } finally {
        await pool.close()
      }
    }
    console.info(seen)
    expect(seen).toMatchObject({
      'sound, quick_check': 'healthy',
      'sound, integrity_check': 'healthy',
      'bad index, quick_check': 'healthy',
      'bad index, integrity_check': expect.stringMatching(/^integrity_check found \d+ problem\(s\): /),
      'scribbled, quick_check': expect.stringMatching(/^quick_check (found|failed)/),
    })

    // a file whose header turns to garbage while the pool has it open: SQLite cannot read it any more
    const unreadable: Record<string, unknown> = {}
    for (const journalMode of ['delete', 'wal'] as const) {
      const path = smallDatabase(`unreadable-${journalMode}.db`)
      const pool = createSqlitePool(path, { name: 'unreadable' }, { journalMode })
      try {
        await pool.query('select count(*) from t')
        const header = openSync(path, 'r+')
        writeSync(header, Buffer.alloc(100, 0x5a), 0, 100, 0)
        closeSync(header)
        for (const deep of [false, true]) {
          const fresh = new Database(path, { readonly: true })
          const onFreshConnection = withoutLatency(integrityCheck(fresh, deep, { path, walCheckpointThresholdBytes: 0 }))
          fresh.close()
          const before = withoutLatency(await onMainThread(pool, path, deep))
          const after = withoutLatency(await integrityOf(pool, deep))
          expect({ deep, ...after }).toEqual({ deep, ...onFreshConnection })
          expect(after).toMatchObject({ status: 'unhealthy', data: { code: 'CORRUPT', sqliteCode: 'SQLITE_NOTADB' } })
          // rollback journal: the pool's connection sees the new header too. WAL: it went on answering
          // from what it had cached ("ok"); the worker's fresh connection tells the truth a restart would meet
          if (journalMode === 'delete') expect(after).toEqual(before)
          else expect(before?.status).toBe('healthy')
          unreadable[`${journalMode}, ${deep}`] = { before: before?.message ?? before?.status, after: after?.message }
        }
      } finally {
        await pool.close()
      }
    }
    console.info(unreadable)
  }, 60_000)

  it('misses its deadline: unhealthy within about timeoutMs, the worker terminated, never two threads at once', async () => {
    const workers = watchWorkers()
    const pool = createSqlitePool(big, { name: 'deadline' })
    try {
      await pool.query('select 1')
      const started = performance.now()
      const checks = await pool.backendChecks({ deep: true, timeoutMs: 30 })
      const tookMs = performance.now() - started
      expect(checks.map((c) => c.name)).toEqual(['integrity', 'wal', 'pages'])
      expect(withoutLatency(checks[0])).toEqual({
        name: 'integrity',
        status: 'unhealthy',
        message: 'integrity_check timed out after 30 ms',
        data: { mode: 'integrity_check', ok: false, code: 'QUERY_TIMEOUT', errors: ['integrity_check timed out after 30 ms'] },
      })
      expect(tookMs).toBeLessThan(30 + 1_000)

      await workers.exitCodes()

      // cut short halfway through SQLite's call: the thread is terminated but runs on until the call
      // returns; a probe meanwhile waits for it (and times out) instead of starting a second thread
      const full = await integrityOf(pool, true)
      expect(full?.status).toBe('healthy')
      const halfMs = Math.round(Number(full?.latencyMs) / 2)
      const cut = await integrityOf(pool, true, halfMs)
      const waiting = await integrityOf(pool, false, 20)
      expect([cut?.message, waiting?.message]).toEqual([
        `integrity_check timed out after ${halfMs} ms`,
        'quick_check timed out after 20 ms',
      ])
      // 3 threads so far, or 4 when the cut one had already returned (a slow machine): the
      // waiting probe then started its own; never two alive at once (checked below)
      const afterCut = workers.started
      expect(afterCut).toBeGreaterThanOrEqual(3)
      expect(afterCut).toBeLessThanOrEqual(4)
      // a roomy deadline gets a real answer once the thread is free (sharing a running quick_check, if any)
      expect(await integrityOf(pool, false, 30_000)).toMatchObject({ status: 'healthy' })
      expect(workers.started - afterCut).toBeLessThanOrEqual(1)
      // under HealthChecker (and /ready) the report's own deadline, which also covers the ping, comes first
      const report = await new HealthChecker({ deep: true, timeoutMs: 30 }).check(pool)
      expect(report.checks).toEqual([{ name: 'deadline', status: 'unhealthy', message: 'health check did not finish within 30 ms' }])
      const exitCodes = await workers.exitCodes()
      console.info(
        `deadline 30 ms: unhealthy after ${tookMs.toFixed(1)} ms; integrity_check ${full?.latencyMs} ms, cut at ${halfMs} ms; ${workers.started} worker(s) for 6 checks, at most ${workers.maxAlive} alive at once, exit codes ${exitCodes.join(', ')}`,
      )
      expect(workers.maxAlive).toBe(1)
      expect(workers.alive).toBe(0)
    } finally {
      await pool.close()
    }
  }, 60_000)

  it('concurrent checks of the same mode share one worker', async () => {
    const workers = watchWorkers()
    const pool = createSqlitePool(big, { name: 'shared' })
    try {
      const checker = new HealthChecker({ deep: true, timeoutMs: 30_000 })
      const [a, b, report] = await Promise.all([integrityOf(pool, true), integrityOf(pool, true), checker.check(pool)])
      expect([a?.status, b?.status, report.status]).toEqual(['healthy', 'healthy', 'healthy'])
      expect(report.checks.map((c) => c.name)).toEqual(['ping', 'saturation', 'integrity', 'wal', 'pages'])
      expect(workers.started).toBe(1)
      await workers.exitCodes()
    } finally {
      await pool.close()
    }
  }, 60_000)

  it('closing the pool during a check terminates the worker: unhealthy, nothing left running', async () => {
    const pool = createSqlitePool(big, { name: 'closing' })
    let closing: Promise<unknown> | undefined
    const workers = watchWorkers((worker) => worker.once('online', () => (closing = pool.close())))
    const detail = await integrityOf(pool, true)
    await closing
    expect(detail).toMatchObject({
      status: 'unhealthy',
      message: expect.stringMatching(/^integrity_check stopped: the database .*big\.db is being closed$/),
      data: { mode: 'integrity_check', ok: false, code: 'QUERY_CANCELLED' },
    })
    expect(await workers.exitCodes()).toHaveLength(1)
    await expect(pool.backendChecks()).rejects.toMatchObject({ code: 'POOL_CLOSED' })
    expect(workers.started).toBe(1)
  }, 60_000)

  it(':memory: keeps the synchronous check on its one connection (no worker)', async () => {
    const workers = watchWorkers()
    const pool = createSqlitePool(':memory:')
    try {
      await pool.query('create table t (x integer)')
      const checks = await pool.backendChecks({ deep: true })
      expect(checks.map((c) => [c.name, c.status])).toEqual([
        ['integrity', 'healthy'],
        ['wal', 'healthy'],
        ['pages', 'healthy'],
      ])
      expect(checks[0]?.data).toEqual({ mode: 'integrity_check', ok: true, errors: [] })
      expect((await new HealthChecker().check(pool)).status).toBe('healthy')
      expect(workers.started).toBe(0)
    } finally {
      await pool.close()
    }
  })
})
