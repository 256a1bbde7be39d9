import { mkdirSync, writeFileSync } from 'node:fs'
import { DatabaseError } from '@dbpool/core'
import { BackupManager, createSqlitePool, databaseInUse, databaseUse } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// review r2 item 12: list() / prune() and databaseUse / databaseInUse threw raw Node / SQLite errors
describe('typed errors of the backup helpers', () => {
  it('list() and prune() on a directory that is a file: BACKUP_FAILED naming it, reason ENOTDIR', async () => {
    const pool = createSqlitePool(tmp.file('typed-list.db'), { name: 'typed-list', min: 0 }, { readers: 1 })
    try {
      await pool.query('create table t (id integer primary key)')
      const directory = tmp.file('typed-list-file')
      writeFileSync(directory, 'x')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 1 } })
      for (const run of [() => backups.list(), () => backups.prune()]) {
        const err = await run().then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(DatabaseError.is(err)).toBe(true)
        const e = err as DatabaseError
        expect(e.code).toBe('BACKUP_FAILED')
        expect(e.message).toContain(directory)
        expect(e.detail).toMatchObject({ directory, reason: 'ENOTDIR' })
        expect((e.cause as NodeJS.ErrnoException).code).toBe('ENOTDIR')
      }
    } finally {
      await pool.close()
    }
  })

  it.each([databaseUse, databaseInUse])('%p: a non-database file is CORRUPT, a directory CONNECTION_FAILED, with the cause', (probe) => {
    const garbage = tmp.file(`garbage-${probe.name}.db`)
    writeFileSync(garbage, 'this is not a database, only some text that is long enough '.repeat(20))
    const directory = tmp.file(`dir-${probe.name}`)
    mkdirSync(directory)
    for (const [file, code, sqliteCode] of [
      [garbage, 'CORRUPT', 'SQLITE_NOTADB'],
      [directory, 'CONNECTION_FAILED', 'SQLITE_CANTOPEN'],
    ] as const) {
      let err: unknown
      try {
        probe(file)
      } catch (e) {
        err = e
      }
      expect(DatabaseError.is(err)).toBe(true)
      expect((err as DatabaseError).code).toBe(code)
      expect((err as DatabaseError).message).toContain(file)
      expect(((err as DatabaseError).cause as { code?: string }).code).toBe(sqliteCode)
    }
  })
})
