import { copyFileSync, existsSync, readdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseError } from '@dbpool/core'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const RealDate = Date

/** Runs `task` with the system clock `skewMs` ahead (`new Date()` and `Date.now()`), as after an NTP step back. */
async function withClockAhead<T>(skewMs: number, task: () => Promise<T>): Promise<T> {
  globalThis.Date = class extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + skewMs)
      else super(...(args as [number]))
    }
    static override now(): number {
      return RealDate.now() + skewMs
    }
  } as DateConstructor
  try {
    return await task()
  } finally {
    globalThis.Date = RealDate
  }
}

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('the backup just taken', () => {
  it('is never pruned, even when a backup is dated after it (the clock went back)', async () => {
    const pool = createSqlitePool(tmp.file('clock.db'), { name: 'clock' })
    try {
      await pool.query('create table t (x)')
      await pool.query('insert into t values (1)')
      const backups = new BackupManager(pool, { directory: tmp.file('bk-clock'), retention: { keepLast: 1 } })
      const first = await backups.backup()
      // taken while the clock was two hours ahead
      const stamp = /(\d{8}T\d{9}Z)/.exec(first.file)![1]!
      const ahead = new Date(first.createdAt.getTime() + 2 * 3_600_000).toISOString().replace(/[-:.]/g, '')
      const moved = first.file.replace(stamp, ahead)
      renameSync(first.file, moved)
      renameSync(`${first.file}.json`, `${moved}.json`)
      const second = await backups.backup()
      // ordered by the records' sequence, not the names' time: the later-dated one was taken first
      expect(second.deleted).toEqual([moved])
      expect(existsSync(second.file)).toBe(true)
      const third = await backups.backup()
      expect(existsSync(third.file)).toBe(true)
      expect(third.deleted).toEqual([second.file])
      expect(await backups.prune()).toEqual([])
      expect(existsSync(third.file)).toBe(true)
    } finally {
      await pool.close()
    }
  })

  it("is removed, with BACKUP_FAILED whose cause is the callback's error, when onProgress throws at 'done'", async () => {
    const pool = createSqlitePool(tmp.file('done.db'), { name: 'done' })
    try {
      await pool.query('create table t (x)')
      await pool.query('insert into t values (1)')
      const boom = new Error('done boom')
      const directory = tmp.file('bk-done')
      const backups = new BackupManager(pool, {
        directory,
        onProgress: (p) => {
          if (p.phase === 'done') throw boom
        },
      })
      const err = await backups.backup().catch((e: unknown) => e)
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect((err as DatabaseError).cause).toBe(boom)
      expect(readdirSync(directory)).toEqual([])
    } finally {
      await pool.close()
    }
  })

  // retention ordered by the names' time: a backup taken while the clock was a day ahead stayed "the
  // newest", kept keepLast's slot, and a manual prune() with keepLast 1 deleted the only current backup
  it.each([1, 2])('survives a clock stepped back: keepLast %d keeps the newest taken, a manual prune() too', async (keepLast) => {
    const pool = createSqlitePool(tmp.file(`step-${keepLast}.db`), { name: 'step' })
    try {
      await pool.query('create table t (x)')
      const directory = tmp.file(`bk-step-${keepLast}`)
      const ahead = await withClockAhead(86_400_000, () => new BackupManager(pool, { directory }).backup())
      const backups = new BackupManager(pool, { directory, retention: { keepLast } })
      const taken: string[] = []
      for (let i = 0; i < 3; i++) {
        await pool.query('insert into t values (?)', [i])
        taken.push((await backups.backup()).file)
      }
      expect(await backups.prune()).toEqual([])
      const left = readdirSync(directory).filter((f) => f.endsWith('.db'))
      // the last keepLast taken, newest first; the day-ahead one (taken before them) is gone
      expect(left.sort()).toEqual(
        taken
          .slice(-keepLast)
          .map((f) => f.slice(directory.length + 1))
          .sort(),
      )
      expect(existsSync(ahead.file)).toBe(false)
      expect((await backups.list()).find((b) => b.file === taken[2])?.sequence).toBe(4)
    } finally {
      await pool.close()
    }
  })

  // #nextStamp stepped 1 ms at a time past the previous backup's time: an hour behind, a busy loop
  // of 3.6 million dates blocking the event loop for seconds, and a backup dated an hour ahead
  it('after a clock step back is dated by the clock, not stepped past the previous backup', async () => {
    const pool = createSqlitePool(tmp.file('stamp.db'), { name: 'stamp' })
    try {
      await pool.query('create table t (x)')
      const backups = new BackupManager(pool, { directory: tmp.file('bk-stamp') })
      const first = await withClockAhead(3_600_000, () => backups.backup())
      const before = RealDate.now()
      const second = await backups.backup()
      expect(second.createdAt.getTime()).toBeGreaterThanOrEqual(before)
      expect(second.createdAt.getTime()).toBeLessThan(first.createdAt.getTime() - 3_000_000)
      expect(second.file).not.toBe(first.file)
      // two backups within one ms still get distinct, ordered times
      const third = await backups.backup()
      expect(third.createdAt.getTime()).toBeGreaterThan(second.createdAt.getTime())
    } finally {
      await pool.close()
    }
  })

  // the sequence was taken when a backup finished: a slower backup started earlier (older data)
  // outranked one started later and finished first, and its keepLast 1 deleted the newer snapshot
  it('is ranked by when its snapshot started: a newer backup finished meanwhile by another run is kept, and so is this one', async () => {
    const path = tmp.file('overlap.db')
    const pool = createSqlitePool(path, { name: 'overlap' })
    try {
      await pool.query('create table t (x)')
      await pool.query('insert into t values (1)')
      const directory = tmp.file('bk-overlap')
      const seed = await new BackupManager(pool, { directory }).backup()
      let other = ''
      const backups = new BackupManager(pool, {
        directory,
        retention: { keepLast: 1 },
        onProgress: (p) => {
          if (p.phase !== 'verify' || other !== '') return
          // meanwhile another run (started after this one's snapshot) finished its backup
          other = join(directory, `overlap-${new Date(Date.now() + 60_000).toISOString().replace(/[-:.]/g, '')}.db`)
          copyFileSync(seed.file, other)
          writeFileSync(`${other}.json`, JSON.stringify({ source: realpathSync(path), sequence: 2 }))
        },
      })
      const taken = await backups.backup()
      expect(taken.deleted).toEqual([seed.file])
      expect(existsSync(other)).toBe(true)
      expect(existsSync(taken.file)).toBe(true)
      const list = await backups.list()
      expect(list.find((b) => b.file === taken.file)?.sequence).toBe(2)
      // the next run keeps only the newest: the other run's (equal sequence, started later)
      expect(await backups.prune()).toEqual([taken.file])
    } finally {
      await pool.close()
    }
  })
})
