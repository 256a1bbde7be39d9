// Issue 9, item 9: an online backup never finished while another process committed about every
// millisecond (SQLite restarts an online backup whenever another connection writes the source), and it
// held the pool's writer meanwhile. Each test bounds the backup with its own deadline, so the old code
// fails here instead of hanging.
import type { ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import { BackupManager, createSqlitePool, type BackupProgress, type SqliteDatabase } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { exited, lines, sleep, spawnFixture, tempDir } from './helpers'

const tmp = tempDir('dbpool-backup-writer-')
afterAll(() => tmp.cleanup())
let n = 0

type Journal = 'wal' | 'delete'

/** A database of `rows` seed rows (written directly: fast), then a pool on it. */
function seeded(rows: number, journal: Journal): { pool: DatabasePool<SqliteDatabase>; path: string } {
  const path = tmp.file(`src-${++n}.db`)
  const raw = new Database(path)
  raw.pragma(`journal_mode = ${journal === 'wal' ? 'WAL' : 'DELETE'}`)
  raw.exec(`
    create table item (id integer primary key, tx integer not null, part text not null, payload text not null);
    create table counter (id integer primary key, n integer not null);
    insert into counter values (1, 0);
    create table pool_write (id integer primary key, at integer not null);
  `)
  const insert = raw.prepare("insert into item (tx, part, payload) values (0, 'seed', ?)")
  raw.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run('x'.repeat(200))
  })()
  raw.close()
  const options = journal === 'wal' ? {} : { journalMode: 'DELETE' as const }
  const pool = createSqlitePool(path, { name: `backup-writer-${n}`, acquireTimeoutMs: 60_000 }, options)
  return { pool, path }
}

/** Another process committing about every millisecond; resolves once it has committed `warmup` times. */
async function startWriter(path: string, journal: Journal, warmup = 100): Promise<ChildProcess> {
  const child = spawnFixture('backup-writer-child.ts', [path, journal])
  const out = lines(child)
  const commits = (): number => {
    const last = [...out.all].reverse().find((l) => l.startsWith('commits '))
    return last ? Number(last.slice('commits '.length)) : 0
  }
  await out.waitFor(/^ready$/, 30_000)
  const until = Date.now() + 30_000
  while (commits() < warmup) {
    if (Date.now() > until) throw new Error(`writer child committed only ${commits()} times; stderr: ${out.stderr()}`)
    await sleep(20)
  }
  return child
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGKILL')
  await exited(child)
}

/** `promise`, or a rejection naming `what` after `ms` (the old code never finishes: fail, don't hang). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still running after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Copy progress of a backup, and a promise of its first step. */
function copyWatch(): { onProgress(p: BackupProgress): void; steps: BackupProgress[]; started: Promise<void> } {
  const steps: BackupProgress[] = []
  let resolveStarted: () => void = () => undefined
  const started = new Promise<void>((resolve) => (resolveStarted = resolve))
  return {
    steps,
    started,
    onProgress(p) {
      // the step reports of SQLite's backup API (the last step, remaining 0, is reported by the manager)
      if (p.phase !== 'copy' || p.remainingPages === 0) return
      steps.push(p)
      resolveStarted()
    },
  }
}

/**
 * Pool writes issued one after another from the copy's first step while `running()`: each one's wait
 * in ms, and how many copy steps had been reported when it completed.
 */
async function poolWritesDuringCopy(
  pool: DatabasePool<SqliteDatabase>,
  copy: ReturnType<typeof copyWatch>,
  running: () => boolean,
): Promise<{ waitMs: number; stepsBefore: number }[]> {
  await copy.started
  const writes: { waitMs: number; stepsBefore: number }[] = []
  do {
    const issued = performance.now()
    await pool.query(sql`insert into pool_write (at) values (${Date.now()})`)
    writes.push({ waitMs: performance.now() - issued, stepsBefore: copy.steps.length })
    await sleep(5)
  } while (running())
  return writes
}

/** The writer was not held for the copy: the first write completed with copy steps still to come, and none waited long. */
function expectWritesNotHeldUp(writes: { waitMs: number; stepsBefore: number }[], copySteps: number): number {
  expect(writes.length).toBeGreaterThan(0)
  expect(copySteps - (writes[0]?.stepsBefore ?? copySteps)).toBeGreaterThan(0)
  const longest = Math.max(...writes.map((w) => w.waitMs))
  expect(longest).toBeLessThan(1_000) // a correctness bound, not a speed test
  return Math.round(longest)
}

/** The child's last committed transaction number, read through the pool. */
async function counter(pool: DatabasePool<SqliteDatabase>): Promise<number> {
  return Number((await pool.query<{ n: number }>('select n from counter where id = 1')).rows[0]?.n)
}

interface Snapshot {
  integrity: string
  counter: number
  maxTx: number
  txCount: number
  childRows: number
  seedRows: number
  halfTransactions: number
}

/** What a backup file holds: a consistent copy has counter = max(tx) = count(distinct tx), 2 rows each. */
function readCopy(file: string): Snapshot {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    const get = (text: string): number => Number((db.prepare(text).get() as { v: number | null }).v ?? 0)
    return {
      integrity: String(db.pragma('integrity_check', { simple: true })),
      counter: get('select n as v from counter where id = 1'),
      maxTx: get('select max(tx) as v from item'),
      txCount: get('select count(distinct tx) as v from item where tx > 0'),
      childRows: get('select count(*) as v from item where tx > 0'),
      seedRows: get('select count(*) as v from item where tx = 0'),
      halfTransactions: get(
        "select count(*) as v from (select tx from item where tx > 0 group by tx having group_concat(part, '') not in ('ab', 'ba'))",
      ),
    }
  } finally {
    db.close()
  }
}

function expectConsistent(copy: Snapshot, seedRows: number, committedBefore: number): void {
  expect(copy.integrity).toBe('ok')
  expect(copy.seedRows).toBe(seedRows)
  expect(copy.counter).toBeGreaterThanOrEqual(committedBefore) // no older than the moment the backup began
  expect(copy.maxTx).toBe(copy.counter)
  expect(copy.txCount).toBe(copy.counter) // no transaction missing below the newest
  expect(copy.childRows).toBe(2 * copy.counter)
  expect(copy.halfTransactions).toBe(0)
}

describe('BackupManager with another process committing about every millisecond', () => {
  it('a WAL backup finishes on one snapshot, consistent, and pool writes issued meanwhile are not held up', async () => {
    const seedRows = 120_000
    const { pool, path } = seeded(seedRows, 'wal')
    let writer: ChildProcess | undefined
    try {
      writer = await startWriter(path, 'wal')
      const directory = tmp.file('out-wal')
      const copy = copyWatch()
      const backups = new BackupManager(pool, { directory, onProgress: copy.onProgress }) // default step size and deadline
      const before = await counter(pool)
      let running = true
      const started = performance.now()
      const backup = backups.backup().finally(() => (running = false))
      const writing = poolWritesDuringCopy(pool, copy, () => running)
      const result = await within(backup, 30_000, 'backup')
      const backupMs = performance.now() - started
      const writes = await within(writing, 30_000, 'pool writes')
      const after = await counter(pool)

      const longest = expectWritesNotHeldUp(writes, copy.steps.length)
      const content = readCopy(result.file)
      expectConsistent(content, seedRows, before)
      expect(after).toBeGreaterThan(content.counter) // the child kept committing past the snapshot
      expect(result.copyMode).toBe('snapshot-steps')
      expect(result.restarts).toBe(0)
      expect(copy.steps.length).toBeGreaterThan(3) // in steps
      expect(readdirSync(directory).filter((f) => f.includes('.tmp-'))).toEqual([])
      console.info(
        `WAL + writer process: backup ${Math.round(backupMs)} ms (copy ${result.copyMs} ms, verify ${result.verifyMs} ms, ${result.pages} pages, ${copy.steps.length + 1} steps, ${result.restarts} restarts), ` +
          `child commits during it ${after - before}, ${writes.length} pool writes during the copy, longest wait ${longest} ms`,
      )
    } finally {
      await stop(writer)
      await pool.close()
    }
  }, 90_000)

  it('a deadline too short fails with BACKUP_FAILED saying why, and leaves no file behind', async () => {
    const { pool, path } = seeded(120_000, 'wal')
    let writer: ChildProcess | undefined
    try {
      writer = await startWriter(path, 'wal')
      const directory = tmp.file('out-deadline')
      // about 6,700 steps of one page: one per event-loop turn, far more than 20 ms of them
      const tight = new BackupManager(pool, { directory, pagesPerStep: 1, timeoutMs: 20 })
      const err = await within(
        tight.backup().catch((e: unknown) => e),
        30_000,
        'backup with timeoutMs 20',
      )
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      const failure = err as DatabaseError
      expect(failure.message).toMatch(/timed out after \d+ ms \(timeoutMs 20\): copied \d+ of \d+ pages in \d+ steps, 0 restarts/)
      expect(failure.detail).toMatchObject({ timeoutMs: 20, restarts: 0 })
      expect(readdirSync(directory)).toEqual([]) // neither a final file nor a temp one
      // nothing stays pinned or held: the pool writes, and a backup with the default deadline succeeds
      await within(pool.query(sql`insert into pool_write (at) values (${Date.now()})`), 5_000, 'pool write')
      const ok = await within(new BackupManager(pool, { directory }).backup(), 30_000, 'backup')
      expect(readCopy(ok.file).integrity).toBe('ok')
      // the backup and the record of its source (retention counts on it)
      expect(readdirSync(directory).sort()).toEqual([ok.file.slice(directory.length + 1), `${ok.file.slice(directory.length + 1)}.json`])
    } finally {
      await stop(writer)
      await pool.close()
    }
  }, 90_000)

  it('a rollback-journal backup whose steps keep restarting copies the rest in one step: consistent, writes not held up', async () => {
    const seedRows = 20_000
    const { pool, path } = seeded(seedRows, 'delete')
    let writer: ChildProcess | undefined
    try {
      writer = await startWriter(path, 'delete')
      const copy = copyWatch()
      // small steps: enough of them that the writer's commits restart the copy 3 times even when a
      // loaded machine slows the writer down (with 16 pages a step, a CI run under load finished the
      // copy online before the third restart)
      const backups = new BackupManager(pool, { directory: tmp.file('out-delete'), pagesPerStep: 4, onProgress: copy.onProgress })
      const before = await counter(pool)
      let running = true
      const started = performance.now()
      const backup = backups.backup().finally(() => (running = false))
      const writing = poolWritesDuringCopy(pool, copy, () => running)
      const result = await within(backup, 30_000, 'backup')
      const backupMs = performance.now() - started
      const writes = await within(writing, 30_000, 'pool writes')

      const longest = expectWritesNotHeldUp(writes, copy.steps.length)
      expectConsistent(readCopy(result.file), seedRows, before)
      expect(result.copyMode).toBe('one-step')
      expect(result.restarts).toBeGreaterThan(0)
      console.info(
        `DELETE + writer process: backup ${Math.round(backupMs)} ms, ${result.pages} pages, ${result.restarts} restarts in ${copy.steps.length} steps before the one-step copy, ` +
          `${writes.length} pool writes, longest wait ${longest} ms`,
      )
    } finally {
      await stop(writer)
      await pool.close()
    }
  }, 90_000)

  it.each(['wal', 'delete'] as const)(
    '%s: with a commit by another connection between every two steps (deterministic restarts), the backup still finishes, consistent',
    async (journal) => {
      const seedRows = 8_000
      const { pool, path } = seeded(seedRows, journal)
      const other = new Database(path, { timeout: 5_000 })
      const insert = other.prepare('insert into item (tx, part, payload) values (?, ?, ?)')
      const setCounter = other.prepare('update counter set n = ? where id = 1')
      let tx = 0
      const commit = other.transaction(() => {
        tx++
        insert.run(tx, 'a', 'other')
        insert.run(tx, 'b', 'other')
        setCounter.run(tx)
      })
      try {
        const backups = new BackupManager(pool, {
          directory: tmp.file(`out-every-step-${journal}`),
          pagesPerStep: 64,
          onProgress: (p) => {
            if (p.phase === 'copy' && p.remainingPages > 0) commit() // SQLite restarts an online backup the source changed under
          },
        })
        const result = await within(backups.backup(), 20_000, 'backup')
        const content = readCopy(result.file)
        expectConsistent(content, seedRows, 0)
        expect(tx).toBeGreaterThan(3)
        if (journal === 'wal') {
          // one snapshot, taken before the first step: none of the commits, and no restart
          expect(result).toMatchObject({ copyMode: 'snapshot-steps', restarts: 0 })
          expect(content.counter).toBe(0)
        } else {
          // every commit restarts the steps; after a few restarts the rest is copied in one step
          expect(result.copyMode).toBe('one-step')
          expect(result.restarts).toBeGreaterThanOrEqual(3)
          expect(content.counter).toBe(tx)
        }
      } finally {
        other.close()
        await pool.close()
      }
    },
    60_000,
  )

  it('a pool closed during the copy stops it with POOL_CLOSED and no file behind', async () => {
    const { pool } = seeded(20_000, 'wal')
    const directory = tmp.file('out-closed')
    let closing: Promise<unknown> | undefined
    const backups = new BackupManager(pool, {
      directory,
      pagesPerStep: 1,
      onProgress: (p) => {
        if (p.phase === 'copy' && p.totalPages - p.remainingPages >= 5) closing ??= pool.close()
      },
    })
    try {
      await expect(within(backups.backup(), 30_000, 'backup')).rejects.toMatchObject({ code: 'POOL_CLOSED' })
      expect(readdirSync(directory)).toEqual([])
    } finally {
      await (closing ?? pool.close())
    }
  }, 60_000)
})
