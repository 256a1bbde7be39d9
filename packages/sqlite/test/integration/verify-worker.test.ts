import { copyFileSync, readdirSync, writeFileSync } from 'node:fs'
import workerThreads from 'node:worker_threads'
import { DatabaseError } from '@dbpool/core'
import { BackupManager, createSqlitePool, verifyDatabaseFile, verifyDatabaseFileInWorker } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { armedMonitor, sleep, tempDir, watchWorkers } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
afterEach(() => jest.restoreAllMocks())
const RealWorker = workerThreads.Worker

/** About 30 MB with an index: integrity_check takes a few hundred ms here, in one native call. */
const big = tmp.file('big.db')
beforeAll(() => {
  const db = new Database(big)
  try {
    db.exec('create table item (id integer primary key, part text not null, payload text not null); create index item_part on item (part)')
    db.prepare(
      'with recursive c(i) as (select 1 union all select i + 1 from c where i < 100000) insert into item (part, payload) select hex(randomblob(16)), hex(randomblob(100)) from c',
    ).run()
  } finally {
    db.close()
  }
}, 60_000)

/** The longest gap between ticks of a 1 ms timer from `start()` to `stop()`, the last gap included. */
function gapMeter(): { start(): void; stop(): { maxGapMs: number; ticks: number } } {
  let running = false
  let last = 0
  let maxGapMs = 0
  let ticks = 0
  const timer = setInterval(() => {
    if (!running) return
    const now = performance.now()
    maxGapMs = Math.max(maxGapMs, now - last)
    last = now
    ticks++
  }, 1)
  return {
    start() {
      running = true
      last = performance.now()
    },
    stop() {
      if (running) maxGapMs = Math.max(maxGapMs, performance.now() - last)
      running = false
      clearInterval(timer)
      return { maxGapMs, ticks }
    },
  }
}

/** Runs the code under test's worker on another source (a crash, an early exit). */
function replaceWorkerSource(source: string): void {
  jest.spyOn(workerThreads, 'Worker').mockImplementation((_source, options) => new RealWorker(source, { ...options, eval: true }))
}

function copyOf(file: string, name: string): string {
  const copy = tmp.file(name)
  copyFileSync(file, copy)
  return copy
}

async function outcome(run: () => number | Promise<number>): Promise<Record<string, unknown>> {
  try {
    return { pages: await run() }
  } catch (err) {
    const e = err as DatabaseError
    const cause = e.cause as DatabaseError | undefined
    return {
      name: e.name,
      code: e.code,
      message: e.message,
      sqliteCode: e.sqliteCode,
      detail: e.detail,
      cause: cause && { code: cause.code, message: cause.message, sqliteCode: cause.sqliteCode, native: (cause.cause as Error)?.name },
    }
  }
}

describe('verification on a worker thread', () => {
  it('lets the event loop run while a backup, and a file to restore, is checked', async () => {
    const pool = createSqlitePool(big, { name: 'big' })
    try {
      const meter = gapMeter()
      const backups = new BackupManager(pool, {
        directory: tmp.file('out'),
        onProgress: (p) => {
          if (p.phase === 'verify') meter.start()
          if (p.phase === 'done') meter.stop()
        },
      })
      const taken = await backups.backup()
      const during = meter.stop()

      const histogram = await armedMonitor()
      const started = performance.now()
      expect(await backups.verify(taken.file)).toEqual({ pages: taken.pages })
      const verifyCallMs = performance.now() - started
      await sleep(5)
      histogram.disable()
      const verifyStallMs = histogram.max / 1e6

      console.info(
        `verification: ${taken.pages} pages (${taken.bytes} bytes); backup: verify ${taken.verifyMs} ms, longest event-loop gap from verify to done ${during.maxGapMs.toFixed(1)} ms (${during.ticks} ticks of a 1 ms timer); verify(file): ${verifyCallMs.toFixed(1)} ms, max event-loop delay ${verifyStallMs.toFixed(1)} ms`,
      )
      // on the main thread the event loop stops for the whole check (about verifyMs); in a worker only
      // for a few ms (starting the worker, GC): half of verifyMs is a wide margin either way
      expect(during.maxGapMs).toBeLessThan(taken.verifyMs / 2)
      expect(during.ticks).toBeGreaterThan(taken.verifyMs / 20)
      expect(verifyStallMs).toBeLessThan(taken.verifyMs / 2)
    } finally {
      await pool.close()
    }
  }, 60_000)

  it('gives the same page count and the same errors as the synchronous check', async () => {
    const db = new Database(tmp.file('bad-index.db'))
    db.exec('create table t (a integer, b integer); create index i on t (a)')
    const insert = db.prepare('insert into t values (?, ?)')
    for (let k = 0; k < 50; k++) insert.run(k, 1000 - k)
    // the index holds column a, the schema now says b: integrity_check reports missing rows
    db.unsafeMode(true)
    db.pragma('writable_schema = ON')
    db.prepare("update sqlite_schema set sql = 'CREATE INDEX i ON t (b)' where name = 'i'").run()
    db.close()
    const bogus = tmp.file('bogus.db')
    writeFileSync(bogus, Buffer.alloc(8192, 7))

    const cases: [string, string][] = [
      ['sound', tmp.file('small.db')],
      ['integrity errors', tmp.file('bad-index.db')],
      ['not a database', bogus],
      ['missing', tmp.file('missing.db')],
    ]
    const small = new Database(cases[0]![1])
    small.exec('create table t (x); insert into t values (1)')
    small.close()
    for (const [what, file] of cases) {
      const label = `/backups/${what}.db`
      const copies = what === 'missing' ? [file, file] : [copyOf(file, `${what}-1.db`), copyOf(file, `${what}-2.db`)]
      const sync = await outcome(() => verifyDatabaseFile(copies[0]!, label))
      const inWorker = await outcome(() => verifyDatabaseFileInWorker(copies[1]!, label))
      expect({ what, ...inWorker }).toEqual({ what, ...sync })
    }
    const failures = await Promise.all(cases.slice(1).map(([what, file]) => outcome(() => verifyDatabaseFileInWorker(file, what))))
    expect(failures.map((f) => f.code)).toEqual(['BACKUP_FAILED', 'BACKUP_FAILED', 'BACKUP_FAILED'])
    expect(failures[0]?.message).toMatch(/^integrity errors failed integrity_check: row 1 missing from index i; .*row 10 missing/)
    expect(failures[1]).toMatchObject({ sqliteCode: 'SQLITE_NOTADB', cause: { code: 'CORRUPT', native: 'SqliteError' } })
    expect(failures[2]).toMatchObject({ sqliteCode: 'SQLITE_CANTOPEN', cause: { code: 'CONNECTION_FAILED', native: 'SqliteError' } })
  })

  it('misses its deadline: BACKUP_FAILED, the worker terminated, no temp file left', async () => {
    const workers = watchWorkers()
    const err = await verifyDatabaseFileInWorker(copyOf(big, 'deadline.db'), 'deadline.db', { timeoutMs: 20 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'BACKUP_FAILED', message: 'verification of deadline.db did not finish within 20 ms' })
    // gone, whether it was stopped while starting (exit code 0) or while checking (1)
    expect(await workers.exitCodes()).toHaveLength(1)

    const pool = createSqlitePool(tmp.file('deadline-src.db'))
    try {
      await pool.query('create table t (x)')
      const directory = tmp.file('out-deadline')
      const failed = await new BackupManager(pool, { directory, verifyTimeoutMs: 1 }).backup().catch((e: unknown) => e)
      expect(failed).toMatchObject({ code: 'BACKUP_FAILED', message: expect.stringMatching(/did not finish within 1 ms$/) })
      expect(await workers.exitCodes()).toHaveLength(2)
      expect(readdirSync(directory)).toEqual([])
      expect(() => new BackupManager(pool, { directory, verifyTimeoutMs: 0 })).toThrow(/backup\.verifyTimeoutMs/)
    } finally {
      await pool.close()
    }
  })

  it('closing the pool while a backup is verified terminates the worker and fails the backup', async () => {
    const pool = createSqlitePool(big, { name: 'closing' })
    let closing: Promise<unknown> | undefined
    let closedAt = 0
    // closed once the worker runs: it still has to load better-sqlite3 and read 30 MB
    const workers = watchWorkers((worker) =>
      worker.once('online', () => {
        closedAt = performance.now()
        closing = pool.close()
      }),
    )
    const directory = tmp.file('out-closing')
    const backups = new BackupManager(pool, { directory })
    const err = await backups.backup().catch((e: unknown) => e)
    const rejectedAfterMs = performance.now() - closedAt
    await closing
    expect(err).toMatchObject({ code: 'BACKUP_FAILED', message: expect.stringMatching(/aborted: pool "closing" is closed$/) })
    expect(DatabaseError.is((err as Error).cause, 'POOL_CLOSED')).toBe(true)
    expect(await workers.exitCodes()).toEqual([1])
    expect(readdirSync(directory)).toEqual([])
    console.info(`closing the pool during verification: the backup rejected ${rejectedAfterMs.toFixed(0)} ms after close()`)

    // an aborted signal stops it before any worker starts
    const signal = AbortSignal.abort(new Error('shutting down'))
    await expect(verifyDatabaseFileInWorker(big, 'big.db', { signal })).rejects.toMatchObject({
      code: 'BACKUP_FAILED',
      message: 'verification of big.db aborted: shutting down',
    })
    expect(workers.started).toBe(1)
    await expect(verifyDatabaseFileInWorker(big, 'big.db', { timeoutMs: 0 })).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(verifyDatabaseFileInWorker(big, 'big.db', { signal: 'stop' as never })).rejects.toThrow(/verify\.signal/)
    await expect(verifyDatabaseFileInWorker(big, 'big.db', { timeout: 5 } as never)).rejects.toThrow(/verify\.timeout\b/)
    expect(workers.started).toBe(1)
  }, 30_000)

  it('a worker that crashes or exits without an answer is BACKUP_FAILED with the cause', async () => {
    const file = tmp.file('never-read.db')
    writeFileSync(file, '')
    replaceWorkerSource("throw new RangeError('boom')")
    const crashed = await verifyDatabaseFileInWorker(file, 'a.db').catch((e: unknown) => e)
    expect(crashed).toMatchObject({ code: 'BACKUP_FAILED', message: 'verification worker for a.db crashed: boom' })
    expect((crashed as Error).cause).toMatchObject({ name: 'RangeError', message: 'boom' })

    replaceWorkerSource('process.exit(3)')
    await expect(verifyDatabaseFileInWorker(file, 'b.db')).rejects.toMatchObject({
      code: 'BACKUP_FAILED',
      message: 'verification worker for b.db exited with code 3 before reporting',
    })

    jest.spyOn(workerThreads, 'Worker').mockImplementation(() => {
      throw new Error('no threads left')
    })
    await expect(verifyDatabaseFileInWorker(file, 'c.db')).rejects.toMatchObject({
      code: 'BACKUP_FAILED',
      message: 'verification worker for c.db could not start: no threads left',
    })
  })
})
