import { readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import { BackupManager, createSqlitePool, restoreDatabaseFile, type SqliteDatabase } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import * as copy from '../../src/backup-copy'
import { tempDir } from './helpers'

// A backup truncated to nothing (disk full, a failed copy) is a common failure. SQLite opens a 0-byte
// file as an empty database (0 pages) that passes integrity_check: such a file used to verify as
// { pages: 0 } and restore as an empty database (the next query: no such table).

const tmp = tempDir()
afterAll(() => tmp.cleanup())
afterEach(() => jest.restoreAllMocks())
let n = 0

async function seeded(): Promise<{ pool: DatabasePool<SqliteDatabase>; path: string; backups: BackupManager }> {
  const path = tmp.file(`empty-src-${++n}.db`)
  const pool = createSqlitePool(path, { name: `empty-${n}` })
  await pool.query('create table accounts (id integer primary key, balance integer not null, note text not null)')
  for (let i = 0; i < 200; i++) await pool.query(sql`insert into accounts (balance, note) values (${i}, ${'x'.repeat(200)})`)
  return { pool, path, backups: new BackupManager(pool, { directory: tmp.file(`out-${n}`) }) }
}

/** Bad backup files, each named by the reason it must be refused with. */
function badFiles(good: string): [string, string][] {
  const bytes = readFileSync(good)
  const files: [string, string][] = []
  const write = (name: string, content: Buffer, reason: string): void => {
    const file = tmp.file(`${++n}-${name}`)
    writeFileSync(file, content)
    files.push([file, reason])
  }
  write('empty.db', Buffer.alloc(0), 'empty')
  write('empty.db.gz', gzipSync(Buffer.alloc(0)), 'empty')
  write('half-page.db', bytes.subarray(0, 4096 + 1000), 'truncated')
  write('half.db', bytes.subarray(0, Math.floor(bytes.length / 4096 / 2) * 4096), 'truncated')
  write('half.db.gz', gzipSync(bytes.subarray(0, Math.floor(bytes.length / 4096 / 2) * 4096)), 'truncated')
  write('header-only.db', bytes.subarray(0, 50), 'not-a-database')
  // a sound database of one page and no schema: not a backup of a database that has tables
  const blank = tmp.file(`${++n}-no-schema.db`)
  const db = new Database(blank)
  db.pragma('user_version = 7')
  db.close()
  files.push([blank, 'no-schema'])
  return files
}

async function rowCount(pool: DatabasePool<SqliteDatabase>): Promise<number> {
  return Number((await pool.query<{ n: number }>('select count(*) as n from accounts')).rows[0]?.n)
}

describe('a file with no pages, no schema or missing pages is never a backup', () => {
  it('verify() and restore() refuse it with BACKUP_FAILED and leave the database as it was', async () => {
    const { pool, backups } = await seeded()
    try {
      const taken = await backups.backup()
      expect(taken.pages).toBeGreaterThan(2)
      for (const [file, reason] of badFiles(taken.file)) {
        const verified = await backups.verify(file).catch((e: unknown) => e)
        expect([file, verified]).toEqual([file, expect.objectContaining({ code: 'BACKUP_FAILED' })])
        expect([file, (verified as DatabaseError).detail?.reason]).toEqual([file, reason])
        const restored = await backups.restore(file).catch((e: unknown) => e)
        expect([file, DatabaseError.is(restored, 'BACKUP_FAILED')]).toEqual([file, true])
        expect((restored as Error).message).toContain(file)
        expect(backups.pool).toBe(pool)
        expect(await rowCount(pool)).toBe(200)
      }
      expect(readdirSync(tmp.dir).filter((f) => f.includes('.tmp-'))).toEqual([])
      // the sound backup still verifies and restores
      expect(await backups.verify(taken.file)).toEqual({ pages: taken.pages })
      const restored = await backups.restore(taken.file)
      expect(await rowCount(restored)).toBe(200)
      await restored.close()
    } finally {
      await backups.pool.close()
    }
  })

  it('restoreDatabaseFile refuses it and leaves the closed database as it was', async () => {
    const { pool, path, backups } = await seeded()
    const taken = await backups.backup()
    await pool.close()
    for (const [file, reason] of badFiles(taken.file)) {
      const err = await restoreDatabaseFile(path, file).catch((e: unknown) => e)
      expect([file, err]).toEqual([file, expect.objectContaining({ code: 'BACKUP_FAILED' })])
      expect([file, (err as DatabaseError).detail?.reason]).toEqual([file, reason])
    }
    const reopened = createSqlitePool(path)
    try {
      expect(await rowCount(reopened)).toBe(200)
    } finally {
      await reopened.close()
    }
  })

  it('a file without schema restores onto a database without schema', async () => {
    const path = tmp.file(`blank-target-${++n}.db`)
    const pool = createSqlitePool(path)
    await pool.query('select 1')
    const blank = tmp.file(`blank-${n}.db`)
    const db = new Database(blank)
    db.pragma('user_version = 7')
    db.close()
    const backups = new BackupManager(pool, { directory: tmp.file(`out-blank-${n}`) })
    try {
      expect(await backups.verify(blank)).toEqual({ pages: 1 })
      const restored = await backups.restore(blank)
      expect((await restored.query('pragma user_version')).rows).toEqual([{ user_version: 7 }])
    } finally {
      await backups.pool.close()
    }
  })

  it('backup() refuses a copy that lost pages (0 bytes, or cut short) instead of reporting success', async () => {
    const { backups } = await seeded()
    const real = copy.copyDatabaseFile
    try {
      for (const size of [0, 4096]) {
        jest.spyOn(copy, 'copyDatabaseFile').mockImplementation(async (options) => {
          const result = await real(options)
          truncateSync(options.target, size) // what a full disk leaves behind
          return result
        })
        const err = await backups.backup().catch((e: unknown) => e)
        expect([size, err]).toEqual([size, expect.objectContaining({ code: 'BACKUP_FAILED' })])
        expect([size, (err as DatabaseError).detail?.reason]).toEqual([size, size === 0 ? 'empty' : 'truncated'])
        expect(await backups.list()).toEqual([])
        expect(readdirSync(backups.directory).filter((f) => f.includes('.tmp-'))).toEqual([])
        jest.restoreAllMocks()
      }
      expect((await backups.backup()).pages).toBeGreaterThan(2)
    } finally {
      await backups.pool.close()
    }
  })

  it('backup() of a database that was never written (0 pages) fails instead of writing a 0-byte backup', async () => {
    const path = tmp.file(`never-written-${++n}.db`)
    writeFileSync(path, '')
    const pool = createSqlitePool(path, {}, { journalMode: 'DELETE' })
    const backups = new BackupManager(pool, { directory: tmp.file(`out-never-${n}`) })
    try {
      await expect(backups.backup()).rejects.toMatchObject({ code: 'BACKUP_FAILED', detail: { reason: 'empty' } })
      expect(await backups.list()).toEqual([])
      await pool.query('create table t (x integer)')
      expect((await backups.backup()).pages).toBeGreaterThanOrEqual(2)
    } finally {
      await pool.close()
    }
  })
})
