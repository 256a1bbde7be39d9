import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { DatabaseError } from '@dbpool/core'
import {
  copyDatabaseFile,
  defaultBackupTimeoutMs,
  removeStaleTempFiles,
  replaceDatabaseFile,
  restoreDatabaseFile,
  verifyDatabaseFile,
  verifyDatabaseFileOffThread,
  type FileCopyOptions,
} from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { tempDir } from './helpers'

// copyDatabaseFile's TSDoc said the target "must not exist", and nothing checked: an existing
// database at the target was silently overwritten with the source's tables (data loss through an
// exported API). Bad targets gave raw errors (a bare TypeError, SQLITE_CANTOPEN, SQLITE_NOTADB).
// replaceDatabaseFile(x, x) removed the -wal of a live database (its commits lost), and one staged on
// another filesystem removed the -wal before its rename failed with a raw EXDEV.

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

function database(name: string, table: string, rows = 3): string {
  const file = tmp.file(name)
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(`create table ${table} (x integer)`)
  for (let i = 0; i < rows; i++) db.prepare(`insert into ${table} values (?)`).run(i)
  db.close()
  return file
}

function tablesOf(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    return db.prepare("select name from sqlite_schema where type = 'table'").pluck().all() as string[]
  } finally {
    db.close()
  }
}

function copyOptions(source: string, target: string): FileCopyOptions {
  return { source, target, pagesPerStep: 10, timeoutMs: 5000, onStep: () => undefined, abortReason: () => undefined }
}

describe('copyDatabaseFile writes a new file and never over an existing one', () => {
  it('refuses an existing database, text file, directory or symlink as target with CONFIGURATION, leaving it as it was', async () => {
    const source = database(`src-${++n}.db`, 'source_table')
    const precious = database(`precious-${n}.db`, 'precious')
    const preciousBytes = readFileSync(precious)
    const notes = tmp.file(`notes-${n}.txt`)
    writeFileSync(notes, 'important notes '.repeat(100))
    const dir = tmp.file(`dir-${n}`)
    mkdirSync(dir)
    const link = tmp.file(`link-${n}.db`)
    symlinkSync(tmp.file(`dangling-${n}.db`), link)
    for (const target of [precious, notes, dir, link]) {
      const err = await copyDatabaseFile(copyOptions(source, target)).catch((e: unknown) => e)
      expect([target, err]).toEqual([
        target,
        expect.objectContaining({ code: 'CONFIGURATION', message: expect.stringContaining(`copyDatabaseFile.target "${target}": exists`) }),
      ])
    }
    expect(readFileSync(precious).equals(preciousBytes)).toBe(true)
    expect(tablesOf(precious)).toEqual(['precious'])
    expect(readFileSync(notes, 'utf8')).toBe('important notes '.repeat(100))
    expect(statSync(dir).isDirectory()).toBe(true)
    expect(existsSync(tmp.file(`dangling-${n}.db`))).toBe(false)
  })

  it("refuses a target with SQLite's -journal, -wal or -shm beside it (a foreign -wal would be replayed onto the copy), creating nothing", async () => {
    const source = database(`src-${++n}.db`, 'source_table')
    for (const suffix of ['-journal', '-wal', '-shm']) {
      const target = tmp.file(`side-${n}${suffix.replace('-', '_')}.db`)
      writeFileSync(`${target}${suffix}`, 'not ours')
      await expect(copyDatabaseFile(copyOptions(source, target))).rejects.toMatchObject({
        code: 'CONFIGURATION',
        message: expect.stringContaining(`${target}${suffix}`),
      })
      expect(existsSync(target)).toBe(false)
      expect(readFileSync(`${target}${suffix}`, 'utf8')).toBe('not ours')
    }
  })

  it('gives BACKUP_FAILED naming the target when it cannot be created, never a raw TypeError', async () => {
    const source = database(`src-${++n}.db`, 'source_table')
    const target = tmp.file(`missing-dir-${n}/copy.db`)
    const err = (await copyDatabaseFile(copyOptions(source, target)).catch((e: unknown) => e)) as DatabaseError
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err).toMatchObject({ code: 'BACKUP_FAILED', detail: { target, reason: 'ENOENT' } })
    expect(err.message).toContain(target)
  })

  it('creates the copy 0600 and removes it when the copy fails (deadline), with nothing left beside it', async () => {
    const source = tmp.file(`big-${++n}.db`)
    const big = new Database(source)
    big.pragma('journal_mode = WAL')
    big.exec('create table b (x blob)')
    const insert = big.prepare('insert into b values (randomblob(1000))')
    big.transaction(() => {
      for (let i = 0; i < 3000; i++) insert.run()
    })()
    big.close()
    const target = tmp.file(`failed-${n}.db`)
    await expect(copyDatabaseFile({ ...copyOptions(source, target), pagesPerStep: 1, timeoutMs: 1 })).rejects.toMatchObject({
      code: 'BACKUP_FAILED',
    })
    expect(readdirSync(tmp.dir).filter((f) => f.startsWith(`failed-${n}.db`))).toEqual([])
    const ok = tmp.file(`ok-${n}.db`)
    await copyDatabaseFile(copyOptions(source, ok))
    expect(statSync(ok).mode & 0o777).toBe(0o600)
    expect(tablesOf(ok)).toEqual(['b'])
  })
})

describe('the other exported functions of the backup modules', () => {
  it('replaceDatabaseFile refuses the database itself as the staged file (its -wal would be removed under it)', async () => {
    const live = tmp.file(`live-${++n}.db`)
    const db = new Database(live)
    try {
      db.pragma('journal_mode = WAL')
      db.pragma('wal_autocheckpoint = 0')
      db.exec('create table t (x integer); insert into t values (1), (2)')
      await expect(replaceDatabaseFile(live, live)).rejects.toMatchObject({
        code: 'CONFIGURATION',
        message: expect.stringContaining('replaceDatabaseFile.staged'),
      })
      expect(existsSync(`${live}-wal`)).toBe(true)
      expect(db.prepare('select count(*) from t').pluck().get()).toBe(2)
    } finally {
      db.close()
    }
  })

  it('replaceDatabaseFile and restoreDatabaseFile refuse a directory as the database, and a missing directory, before touching anything', async () => {
    const staged = database(`staged-${++n}.db`, 'staged')
    const dir = tmp.file(`a-dir-${n}`)
    mkdirSync(dir)
    await expect(replaceDatabaseFile(staged, dir)).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringContaining('replaceDatabaseFile.databasePath'),
    })
    await expect(restoreDatabaseFile(dir, staged)).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringContaining('restoreDatabaseFile.target'),
    })
    const nowhere = tmp.file(`no-dir-${n}/app.db`)
    await expect(replaceDatabaseFile(staged, nowhere)).rejects.toMatchObject({ code: 'BACKUP_FAILED', detail: { reason: 'no-directory' } })
    await expect(restoreDatabaseFile(nowhere, staged)).rejects.toMatchObject({ code: 'BACKUP_FAILED', detail: { reason: 'no-directory' } })
    expect(tablesOf(staged)).toEqual(['staged'])
    expect(statSync(dir).isDirectory()).toBe(true)
  })

  it('replaceDatabaseFile refuses a staged file on another filesystem before removing the database -wal', async () => {
    if (!existsSync('/dev/shm') || statSync('/dev/shm').dev === statSync(tmp.dir).dev) return // needs two filesystems
    const staged = `/dev/shm/dbpool-staged-${process.pid}-${++n}.db`
    const db0 = new Database(staged)
    db0.exec('create table staged (x integer)')
    db0.close()
    const live = tmp.file(`live-x-${n}.db`)
    const db = new Database(live)
    try {
      db.pragma('journal_mode = WAL')
      db.pragma('wal_autocheckpoint = 0')
      db.exec('create table t (x integer); insert into t values (1), (2)')
      await expect(replaceDatabaseFile(staged, live)).rejects.toMatchObject({
        code: 'BACKUP_FAILED',
        detail: { reason: 'other-filesystem' },
      })
      expect(existsSync(`${live}-wal`)).toBe(true)
      expect(db.prepare('select count(*) from t').pluck().get()).toBe(2)
    } finally {
      db.close()
      for (const suffix of ['', '-journal', '-wal', '-shm']) rmSync(`${staged}${suffix}`, { force: true })
    }
  })

  it('bad arguments are CONFIGURATION naming them', async () => {
    const configuration = (option: string) =>
      expect.objectContaining({
        code: 'CONFIGURATION',
        message: expect.stringMatching(new RegExp(`^invalid ${option.replace('.', '\\.')} `)),
      })
    await expect(replaceDatabaseFile(undefined as never, tmp.file('x.db'))).rejects.toEqual(configuration('replaceDatabaseFile.staged'))
    expect(() => verifyDatabaseFile(42 as never)).toThrow(configuration('verifyDatabaseFile.file'))
    await expect(verifyDatabaseFileOffThread(tmp.file('x.db'), 'x', undefined as never)).rejects.toEqual(
      configuration('verifyDatabaseFileOffThread options'),
    )
    await expect(removeStaleTempFiles(42 as never, 'x')).rejects.toEqual(configuration('removeStaleTempFiles.directory'))
    expect(() => defaultBackupTimeoutMs('x' as never)).toThrow(configuration('defaultBackupTimeoutMs.bytes'))
  })
})
