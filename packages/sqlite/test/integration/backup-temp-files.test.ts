import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { BackupManager, createSqlitePool, removeBackupTempFilesSync, type BackupMethod } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A backup's temp copy holds every row of the database: readable by its owner only from the start,
// and never left behind (a signal handler removes it; a later backup removes one a killed run left).
const tmp = tempDir()
afterAll(() => tmp.cleanup())
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8)

function temps(directory: string): string[] {
  return existsSync(directory) ? readdirSync(directory).filter((f) => f.includes('.tmp-')) : []
}

describe('backup temp files', () => {
  it.each<BackupMethod>(['backup', 'vacuum'])('are 0600 while the %s copy is written and verified, whatever the umask', async (method) => {
    const previous = process.umask(0o022)
    const pool = createSqlitePool(tmp.file(`mode-${method}.db`))
    try {
      await pool.query('create table t (x)')
      await pool.query("insert into t values ('secret')")
      const directory = tmp.file(`bk-mode-${method}`)
      const modes: number[] = []
      const backups = new BackupManager(pool, {
        directory,
        method,
        gzip: true,
        onProgress: (p) => {
          if (p.phase === 'done') return
          for (const f of temps(directory)) modes.push(statSync(join(directory, f)).mode & 0o777)
        },
      })
      await backups.backup()
      expect(modes.length).toBeGreaterThan(0)
      expect(new Set(modes)).toEqual(new Set([0o600]))
      expect(temps(directory)).toEqual([])
    } finally {
      process.umask(previous)
      await pool.close()
    }
  })

  it('removeBackupTempFilesSync (the CLI calls it on SIGINT/SIGTERM) removes the copy in progress; the backup then fails', async () => {
    const pool = createSqlitePool(tmp.file('signal.db'))
    try {
      await pool.query('create table t (x)')
      await pool.query("insert into t values ('secret')")
      const directory = tmp.file('bk-signal')
      let removed: string[] = []
      const backups = new BackupManager(pool, {
        directory,
        onProgress: (p) => {
          if (p.phase === 'verify' && removed.length === 0) removed = removeBackupTempFilesSync()
        },
      })
      await expect(backups.backup()).rejects.toMatchObject({ code: 'BACKUP_FAILED' })
      expect(removed.length).toBeGreaterThan(0)
      expect(readdirSync(directory).filter((f) => !f.endsWith('.json'))).toEqual([])
    } finally {
      await pool.close()
    }
  })

  it("a later backup or prune removes a killed run's stale temp files of its naming, never a live or another host's one", async () => {
    const pool = createSqlitePool(tmp.file('stale.db'))
    try {
      await pool.query('create table t (x)')
      const directory = tmp.file('bk-stale')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 2 } })
      await backups.backup()
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout
      const name = (host: string, pid: string | number, suffix = ''): string =>
        `.stale-20250101T000000000Z.db.tmp-${host}-${pid}-0123abcd${suffix}`
      const stale = [name(HOST, dead), name(HOST, dead, '-journal'), `.stale-20250101T000000000Z.db.json.tmp-${HOST}-${dead}-00aa00aa`]
      const kept = [name(HOST, process.ppid), name('ffffffff', dead), `.other-x.db.tmp-${HOST}-${dead}-0123abcd`]
      for (const f of [...stale, ...kept]) writeFileSync(join(directory, f), 'copy of the database')
      await backups.backup()
      expect(temps(directory).sort()).toEqual([...kept].sort())
      writeFileSync(join(directory, stale[0]!), 'copy of the database')
      await backups.prune()
      expect(temps(directory).sort()).toEqual([...kept].sort())
    } finally {
      await pool.close()
    }
  })
})
