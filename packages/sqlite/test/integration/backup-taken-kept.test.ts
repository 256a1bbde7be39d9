import { existsSync, readdirSync, renameSync } from 'node:fs'
import { DatabaseError } from '@dbpool/core'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

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
      expect(second.deleted).toEqual([])
      expect(existsSync(second.file)).toBe(true)
      const third = await backups.backup()
      expect(existsSync(third.file)).toBe(true)
      // the later-dated one counts as the newest; the older of the two new ones goes
      expect(third.deleted).toEqual([second.file])
      expect(existsSync(moved)).toBe(true)
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
})
