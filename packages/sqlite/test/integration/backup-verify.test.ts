import workerThreads from 'node:worker_threads'
import { closeSync, openSync, readdirSync, statSync, writeSync } from 'node:fs'
import { DatabaseError, type PoolLogger } from '@dbpool/core'
import { BackupManager, createSqlitePool, type BackupProgress } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { verifyDatabaseFileOffThread, verifyWorkerSettings } from '../../src/backup-verify'
import { tempDir } from './helpers'

// A backup's integrity_check runs in a worker thread (it used to block the event loop for as long as
// it ran), bounded by the backup's deadline, with a logged fallback to the main thread.

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

/** A WAL database of `rows` rows with an index (250,000 rows: about 34 MB) built with raw better-sqlite3. */
function build(rows: number): string {
  const path = tmp.file(`verify-src-${++n}.db`)
  const db = new Database(path)
  try {
    db.pragma('journal_mode = WAL')
    db.exec('create table t (id integer primary key, k text not null, body text not null)')
    db.exec('create index t_k on t (k)')
    const insert = db.prepare('insert into t (k, body) values (?, ?)')
    db.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(`k${(i * 7919) % rows}`, 'x'.repeat(100))
    })()
    db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    db.close()
  }
  return path
}

/** Overwrites every 4th page from page 3 on (page 1, the header, stays intact: the file still opens). */
function corrupt(path: string): void {
  const pageSize = 4096
  const pages = statSync(path).size / pageSize
  const fd = openSync(path, 'r+')
  const junk = Buffer.alloc(pageSize, 0x5a)
  for (let page = 3; page < pages - 1; page += 4) writeSync(fd, junk, 0, pageSize, page * pageSize)
  closeSync(fd)
}

function capturingLogger(): { logger: PoolLogger; warnings: string[] } {
  const warnings: string[] = []
  const ignore = (): void => undefined
  return { logger: { trace: ignore, debug: ignore, info: ignore, error: ignore, warn: (_obj, msg) => warnings.push(msg) }, warnings }
}

function leftovers(directory: string): string[] {
  return readdirSync(directory).filter((name) => name.includes('.tmp-'))
}

describe('backup verification off the event loop', () => {
  it('a timer ticking every 10 ms keeps ticking while the integrity_check of a 34 MB backup runs', async () => {
    const path = build(250_000)
    expect(statSync(path).size).toBeGreaterThan(20_000_000)
    const pool = createSqlitePool(path, { name: 'verify-liveness' })
    let ticks = 0
    const ticker = setInterval(() => ticks++, 10)
    try {
      const seen: { phase: BackupProgress['phase']; ticks: number }[] = []
      // gzip: 'compress' is reported right after the verification, with nothing else in between
      const backups = new BackupManager(pool, {
        directory: tmp.file('out-liveness'),
        gzip: true,
        onProgress: (p) => {
          if (p.phase !== 'copy') seen.push({ phase: p.phase, ticks })
        },
      })
      const result = await backups.backup()
      const verify = seen.find((s) => s.phase === 'verify')
      const compress = seen.find((s) => s.phase === 'compress')
      expect(verify).toBeDefined()
      expect(compress).toBeDefined()
      const during = compress!.ticks - verify!.ticks
      // liveness, not speed: the check takes about 200 ms here (more on a loaded machine); on the
      // main thread not one tick could run during it
      expect(during).toBeGreaterThanOrEqual(5)
      expect(result.pages).toBeGreaterThan(5_000)
      expect(result.verifyMs).toBeGreaterThan(0)
    } finally {
      clearInterval(ticker)
      await pool.close()
    }
  }, 60_000)

  it('still catches a corrupted database: backup() and verify() reject with BACKUP_FAILED and leave no file', async () => {
    const path = build(20_000)
    corrupt(path)
    const pool = createSqlitePool(path, { name: 'verify-corrupt', min: 0 })
    const directory = tmp.file('out-corrupt')
    try {
      const backups = new BackupManager(pool, { directory })
      const err = await backups.backup().catch((e: unknown) => e)
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect((err as Error).message).toMatch(/failed integrity_check|is not a sound SQLite database/)
      expect(await backups.list()).toEqual([])
      expect(leftovers(directory)).toEqual([])
      await expect(backups.verify(path)).rejects.toMatchObject({ code: 'BACKUP_FAILED' })
    } finally {
      await pool.close()
    }
  }, 30_000)

  // worker.terminate() cannot interrupt the native scan: each timed-out verification left a thread reading
  it('past its deadline a verification says its scan goes on; the next one of its group never runs beside it', async () => {
    const path = build(250_000)
    const RealWorker = workerThreads.Worker
    let live = 0
    let mostLive = 0
    const spawn = jest.spyOn(workerThreads, 'Worker').mockImplementation((...args: ConstructorParameters<typeof RealWorker>) => {
      const worker = new RealWorker(...args)
      mostLive = Math.max(mostLive, ++live)
      worker.once('exit', () => live--)
      return worker
    })
    try {
      const options = { timeoutMs: 150, deadline: 'timeoutMs 150', warn: () => undefined, group: path }
      const first = await verifyDatabaseFileOffThread(path, 'first', options).catch((e: unknown) => e)
      expect(DatabaseError.is(first, 'BACKUP_FAILED')).toBe(true)
      expect((first as DatabaseError).message).not.toMatch(/stopped/)
      expect((first as DatabaseError).message).toMatch(/goes on reading/)
      // with time, it waits for the lingering thread, then checks
      expect(await verifyDatabaseFileOffThread(path, 'second', { ...options, timeoutMs: 60_000 })).toBeGreaterThan(10)
      expect(spawn).toHaveBeenCalledTimes(2)
      expect(mostLive).toBe(1)
    } finally {
      spawn.mockRestore()
    }
  }, 60_000)

  it("past the backup's deadline the check fails: BACKUP_FAILED naming timeoutMs", async () => {
    const path = build(5_000)
    const pool = createSqlitePool(path, { name: 'verify-deadline' })
    const directory = tmp.file('out-deadline')
    try {
      // vacuum: one synchronous copy the deadline cannot cut short, so the verification starts with the 1 ms spent
      const hurried = new BackupManager(pool, { directory, method: 'vacuum', timeoutMs: 1 })
      const err = await hurried.backup().catch((e: unknown) => e)
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect((err as DatabaseError).message).toMatch(/integrity_check .* did not finish within the deadline \(the backup's timeoutMs 1\b/)
      expect((err as DatabaseError).detail).toMatchObject({ phase: 'verify' })
      expect(await hurried.list()).toEqual([])
      expect(leftovers(directory)).toEqual([])
      // the default deadline leaves it time
      const taken = await new BackupManager(pool, { directory, method: 'vacuum' }).backup()
      expect(taken.pages).toBeGreaterThan(10)
    } finally {
      await pool.close()
    }
  }, 30_000)

  it('falls back to the main thread with a warning on the pool logger when the worker cannot load better-sqlite3', async () => {
    const saved = verifyWorkerSettings.betterSqlite3
    verifyWorkerSettings.betterSqlite3 = tmp.file('no-such-dir/better-sqlite3')
    const { logger, warnings } = capturingLogger()
    const path = build(5_000)
    const pool = createSqlitePool(path, { name: 'verify-fallback' }, {}, { logger })
    try {
      const backups = new BackupManager(pool, { directory: tmp.file('out-fallback') })
      const taken = await backups.backup()
      expect(taken.pages).toBeGreaterThan(10)
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/integrity_check runs on the main thread .*could not load better-sqlite3/)
      // the fallback still catches corruption
      const bad = build(20_000)
      corrupt(bad)
      await expect(backups.verify(bad)).rejects.toMatchObject({ code: 'BACKUP_FAILED' })
      expect(warnings).toHaveLength(2)
    } finally {
      verifyWorkerSettings.betterSqlite3 = saved
      await pool.close()
    }
  }, 30_000)
})
