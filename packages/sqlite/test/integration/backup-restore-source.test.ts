import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs'
import Database from 'better-sqlite3'
import { BackupManager, createSqlitePool, restoreDatabaseFile } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// What a restore reads from its source file: the whole database, commits still in the source's -wal
// included; never the database being restored itself.
const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

/** A WAL database whose last commit is only in its -wal (a writer that died before any checkpoint): a copy of both files. */
function crashedSource(): string {
  const live = tmp.file(`live-${++n}.db`)
  const db = new Database(live)
  db.pragma('journal_mode = WAL')
  db.pragma('wal_autocheckpoint = 0')
  db.exec("create table a (id integer primary key, v text); insert into a values (1, 'old')")
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.exec("insert into a values (100, 'committed, only in the wal')")
  const source = tmp.file(`crashed-${n}.db`)
  copyFileSync(live, source)
  copyFileSync(`${live}-wal`, `${source}-wal`)
  db.close()
  expect(statSync(`${source}-wal`).size).toBeGreaterThan(0)
  return source
}

function ids(path: string): number[] {
  const db = new Database(path, { readonly: true })
  try {
    return (db.prepare('select id from a order by id').all() as { id: number }[]).map((r) => r.id)
  } finally {
    db.close()
  }
}

async function target(): Promise<string> {
  const path = tmp.file(`target-${++n}.db`)
  const pool = createSqlitePool(path)
  await pool.query("create table a (id integer primary key, v text); insert into a values (1, 'target')")
  await pool.close()
  return path
}

describe('restoring from a database file with a -wal beside it', () => {
  it('restoreDatabaseFile and BackupManager.restore/verify include the commits only in the source -wal', async () => {
    const first = await target()
    await restoreDatabaseFile(first, crashedSource())
    expect(ids(first)).toEqual([1, 100])

    const second = await target()
    const pool = createSqlitePool(second)
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    const source = crashedSource()
    try {
      const restored = await backups.restore(source)
      expect((await restored.query<{ id: number }>('select id from a order by id')).rows.map((r) => r.id)).toEqual([1, 100])
      expect(await backups.verify(source)).toMatchObject({ pages: expect.any(Number) })
    } finally {
      await backups.pool.close()
    }
    // the source was only read: its -wal is still there, nothing staged is left
    expect(existsSync(`${source}-wal`)).toBe(true)
    expect(readdirSync(tmp.dir).filter((f) => f.includes('.tmp-'))).toEqual([])
  })

  it('a source that is a symlink: the -wal beside the real file is read (SQLite follows the link), in restoreDatabaseFile, restore and verify', async () => {
    // latest.db -> snap/crashed.db: the -wal is beside crashed.db, none beside latest.db
    const real = crashedSource()
    mkdirSync(tmp.file(`links-${n}`))
    const link = tmp.file(`links-${n}/latest.db`)
    symlinkSync(real, link)
    expect(existsSync(`${link}-wal`)).toBe(false)
    const first = await target()
    await restoreDatabaseFile(first, link)
    expect(ids(first)).toEqual([1, 100])

    const second = await target()
    const pool = createSqlitePool(second)
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    try {
      const restored = await backups.restore(link)
      expect((await restored.query<{ id: number }>('select id from a order by id')).rows.map((r) => r.id)).toEqual([1, 100])
      expect(await backups.verify(link)).toMatchObject({ pages: expect.any(Number) })
    } finally {
      await backups.pool.close()
    }
    expect(statSync(`${real}-wal`).size).toBeGreaterThan(0)
  })

  it('refuses to restore a database onto itself (same file: path, hard link), database and -wal untouched', async () => {
    const path = crashedSource()
    const link = tmp.file(`link-${n}.db`)
    linkSync(path, link)
    for (const file of [path, link])
      await expect(restoreDatabaseFile(path, file)).rejects.toMatchObject({
        code: 'CONFIGURATION',
        detail: { option: 'restoreDatabaseFile.file' },
      })
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0)
    const pool = createSqlitePool(path)
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    try {
      await expect(backups.restore(link)).rejects.toMatchObject({ code: 'CONFIGURATION', detail: { option: 'restore.file' } })
      expect((await backups.pool.query<{ id: number }>('select id from a order by id')).rows.map((r) => r.id)).toEqual([1, 100])
    } finally {
      await backups.pool.close()
    }
  })

  it('a restored WAL database stays WAL: the next restore can tell it is unused and needs no force', async () => {
    const path = await target()
    const backup = tmp.file(`plain-${n}.db`)
    const db = new Database(path)
    db.exec(`vacuum into '${backup}'`)
    db.close()
    await restoreDatabaseFile(path, backup)
    const check = new Database(path, { readonly: true })
    expect(check.pragma('journal_mode', { simple: true })).toBe('wal')
    check.close()
    await restoreDatabaseFile(path, backup)
    expect(ids(path)).toEqual([1])
    expect(readdirSync(tmp.dir).filter((f) => f.includes('.tmp-'))).toEqual([])
  })
})
