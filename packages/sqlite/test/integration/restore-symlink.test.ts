import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs'
import { BackupManager, createSqlitePool, restoreDatabaseFile } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

// a deploy layout: data/app.db -> ../volume/app.db (the volume is what persists)
function layout(): { link: string; real: string; dir: string } {
  const dir = tmp.file(`layout-${++n}`)
  mkdirSync(`${dir}/volume`, { recursive: true })
  mkdirSync(`${dir}/data`)
  symlinkSync('../volume/app.db', `${dir}/data/app.db`)
  return { link: `${dir}/data/app.db`, real: `${dir}/volume/app.db`, dir }
}

function values(path: string): string {
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    return String((db.prepare('select group_concat(v) as g from t').get() as { g: string }).g)
  } finally {
    db.close()
  }
}

describe('restore through a symlinked database path', () => {
  it('BackupManager.restore replaces the file the link points to, keeping the link and the file mode', async () => {
    const { link, real, dir } = layout()
    const pool = createSqlitePool(link, { name: 'link' })
    await pool.query('create table t (v text)')
    await pool.query(`insert into t values ('before')`)
    const backups = new BackupManager(pool, { directory: `${dir}/bk` })
    const taken = await backups.backup()
    await pool.query(`insert into t values ('after')`)
    chmodSync(real, 0o640)
    const restored = await backups.restore(taken.file)
    await restored.query(`insert into t values ('written')`)
    await restored.close()
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(values(real)).toBe('before,written')
    expect(statSync(real).mode & 0o777).toBe(0o640)
    expect(readdirSync(`${dir}/data`)).toEqual(['app.db'])
  })

  it('restoreDatabaseFile (the CLI path) does too', async () => {
    const { link, real, dir } = layout()
    const db = new Database(real)
    db.exec(`create table t (v text); insert into t values ('old')`)
    db.close()
    const pool = createSqlitePool(link, { name: 'link2' })
    const taken = await new BackupManager(pool, { directory: `${dir}/bk` }).backup()
    await pool.query(`insert into t values ('newer')`)
    await pool.close()
    chmodSync(real, 0o644)
    await restoreDatabaseFile(link, taken.file)
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(values(real)).toBe('old')
    expect(statSync(real).mode & 0o777).toBe(0o644)
  })
})
