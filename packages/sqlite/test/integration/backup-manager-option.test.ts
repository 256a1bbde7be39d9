import { DatabaseError } from '@dbpool/core'
import { BackupManager, createSqlitePool, sqliteManagerOf } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// review r2 item 7: another pool's manager was accepted; backups of A were named, recorded and pruned as B's
describe('BackupManager manager option', () => {
  it("refuses a manager that is not the pool's own, accepts its own", async () => {
    const a = createSqlitePool(tmp.file('mm-a.db'), { name: 'mm-a', min: 0 }, { readers: 1 })
    const b = createSqlitePool(tmp.file('mm-b.db'), { name: 'mm-b', min: 0 }, { readers: 1 })
    try {
      const directory = tmp.file('mm-backups')
      let err: unknown
      try {
        new BackupManager(a, { directory, method: 'vacuum', manager: sqliteManagerOf(b) })
      } catch (e) {
        err = e
      }
      expect(DatabaseError.is(err)).toBe(true)
      expect((err as DatabaseError).code).toBe('CONFIGURATION')
      expect((err as DatabaseError).message).toContain('backup.manager')
      expect(() => new BackupManager(a, { directory, manager: sqliteManagerOf(a) })).not.toThrow()
    } finally {
      await a.close()
      await b.close()
    }
  })
})
