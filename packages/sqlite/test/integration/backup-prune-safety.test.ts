import { existsSync, lstatSync, readFileSync, realpathSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import type * as FsPromises from 'node:fs/promises'
import { join } from 'node:path'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// the module object itself (an import's namespace copy cannot be spied on): the code under test calls its unlink
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fsPromises = require('node:fs/promises') as typeof FsPromises

const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function databaseAt(name: string) {
  const pool = createSqlitePool(tmp.file(`${name}.db`), { name })
  await pool.query('create table t (v text)')
  await pool.query("insert into t values ('x')")
  return pool
}

/** A record beside `file` naming the database at `path` (as a backup of it would have): sequence 1, the oldest. */
function recordOf(file: string, path: string): void {
  writeFileSync(`${file}.json`, JSON.stringify({ source: realpathSync(path), sequence: 1 }))
}

describe('retention never deletes what is not a backup of ours', () => {
  it('a symlink at a backup name, even with a record of this database beside it, is left (and so is what it points to)', async () => {
    const pool = await databaseAt('link')
    try {
      const directory = tmp.file('bk-link')
      const backups = new BackupManager(pool, { directory, prefix: 'app', retention: { keepLast: 1 } })
      const first = await backups.backup()
      const userFile = tmp.file('user-notes.db')
      writeFileSync(userFile, 'the user keeps this')
      const link = join(directory, 'app-20200101T000000000Z.db')
      symlinkSync(userFile, link)
      recordOf(link, tmp.file('link.db'))
      // a regular file whose record is a symlink to a record of ours is not ours either
      const copy = join(directory, 'app-20200102T000000000Z.db')
      writeFileSync(copy, 'a copy the user made')
      symlinkSync(`${link}.json`, `${copy}.json`)
      const second = await backups.backup()
      // only the real older backup goes
      expect(second.deleted).toEqual([first.file])
      expect(lstatSync(link).isSymbolicLink()).toBe(true)
      expect(readFileSync(userFile, 'utf8')).toBe('the user keeps this')
      expect(readFileSync(copy, 'utf8')).toBe('a copy the user made')
      expect((await backups.list()).map((b) => b.file)).not.toContain(link)
    } finally {
      await pool.close()
    }
  })

  it('a file put at the name of an old backup (its record left beside it) is not that backup: retention leaves it', async () => {
    const pool = await databaseAt('moved')
    try {
      const directory = tmp.file('bk-moved')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 1 } })
      const first = await backups.backup()
      const userFile = tmp.file('report.db')
      writeFileSync(userFile, 'a file the user moved here by mistake')
      renameSync(userFile, first.file)
      const second = await backups.backup()
      expect(second.deleted).toEqual([])
      expect(readFileSync(first.file, 'utf8')).toBe('a file the user moved here by mistake')
      expect(existsSync(second.file)).toBe(true)
    } finally {
      await pool.close()
    }
  })

  it('a backup whose retention cannot delete an old one still succeeds: the failure is warned about', async () => {
    const pool = await databaseAt('busy')
    const warnings: string[] = []
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation((message) => {
      warnings.push(String(message))
    })
    let old = ''
    const unlink = fsPromises.unlink
    const busy = jest.spyOn(fsPromises, 'unlink').mockImplementation(async (path) => {
      if (path === old) throw Object.assign(new Error(`EBUSY: resource busy, unlink '${old}'`), { code: 'EBUSY' })
      return unlink(path)
    })
    try {
      const directory = tmp.file('bk-busy')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 1 } })
      old = (await backups.backup()).file
      const second = await backups.backup()
      expect(existsSync(second.file)).toBe(true)
      expect(second.deleted).toEqual([])
      expect(existsSync(old)).toBe(true)
      expect(warnings.join('\n')).toContain(old)
    } finally {
      busy.mockRestore()
      warn.mockRestore()
      await pool.close()
    }
  })

  it('a failed backup prunes nothing', async () => {
    const pool = await databaseAt('failed')
    try {
      const directory = tmp.file('bk-failed')
      const first = await new BackupManager(pool, { directory }).backup()
      const second = await new BackupManager(pool, { directory }).backup()
      const failing = new BackupManager(pool, {
        directory,
        retention: { keepLast: 1 },
        onProgress: (p) => {
          if (p.phase === 'done') throw new Error('the callback fails the backup')
        },
      })
      await expect(failing.backup()).rejects.toMatchObject({ code: 'BACKUP_FAILED' })
      expect(existsSync(first.file)).toBe(true)
      expect(existsSync(second.file)).toBe(true)
      expect((await failing.list()).map((b) => b.file).sort()).toEqual([first.file, second.file].sort())
    } finally {
      await pool.close()
    }
  })
})
