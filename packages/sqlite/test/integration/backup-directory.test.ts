import { existsSync, statSync, writeFileSync } from 'node:fs'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// Node's mkdir({ recursive: true }) loops forever on /proc/x (procfs answers ENOENT): a backup into
// it never ended and spun a core
const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('the backup directory', () => {
  it('is made level by level; one that cannot be made is BACKUP_FAILED naming it (under /proc too), not a spin', async () => {
    const pool = createSqlitePool(tmp.file('dir.db'))
    try {
      await pool.query('create table t (x)')
      const deep = tmp.file('a/b/c')
      expect((await new BackupManager(pool, { directory: deep }).backup()).file.startsWith(deep)).toBe(true)
      expect(statSync(deep).isDirectory()).toBe(true)
      const underProc = '/proc/dbpool-backup-test/x'
      if (existsSync('/proc/self'))
        await expect(new BackupManager(pool, { directory: underProc }).backup()).rejects.toMatchObject({
          code: 'BACKUP_FAILED',
          message: expect.stringContaining(`cannot create the backup directory ${underProc}: ENOENT`) as string,
        })
      writeFileSync(tmp.file('a-file'), 'x')
      await expect(new BackupManager(pool, { directory: tmp.file('a-file/sub') }).backup()).rejects.toMatchObject({
        code: 'BACKUP_FAILED',
        message: expect.stringContaining('is not a directory') as string,
      })
    } finally {
      await pool.close()
    }
  })
})
