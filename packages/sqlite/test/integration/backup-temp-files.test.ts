import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { BackupManager, createSqlitePool, removeBackupTempFilesSync, type BackupMethod } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A backup's temp copy holds every row of the database: readable by its owner only from the start,
// and never left behind (a signal handler removes it; a later backup removes one a killed run left).
const tmp = tempDir()
afterAll(() => tmp.cleanup())
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8)
/** What temp names are tagged with: host name, boot id and PID namespace (see backup-temp.ts). */
const SPACE = createHash('sha256')
  .update(`${hostname()}\n${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n${readlinkSync('/proc/self/ns/pid')}`)
  .digest('hex')
  .slice(0, 8)

/** A process's start time (field 22 of /proc/<pid>/stat). */
function startOf(pid: number): string {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] as string
}

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

  it("a later backup or prune removes a killed run's stale temp files of its naming, never a live, another host's or another PID namespace's one", async () => {
    const pool = createSqlitePool(tmp.file('stale.db'))
    try {
      await pool.query('create table t (x)')
      const directory = tmp.file('bk-stale')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 2 } })
      await backups.backup()
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout
      const name = (space: string, pid: string | number, start: string, suffix = ''): string =>
        `.stale-20250101T000000000Z.db.tmp-${space}-${pid}-${start}-0-0123abcd${suffix}`
      const stale = [
        name(SPACE, dead, '1'),
        name(SPACE, dead, '1', '-journal'),
        `.stale-20250101T000000000Z.db.json.tmp-${SPACE}-${dead}-1-0-00aa00aa`,
        // a live pid with another start time: a later process that was given the pid of a killed one
        name(SPACE, process.ppid, '1'),
      ]
      const kept = [
        name(SPACE, process.ppid, startOf(process.ppid)),
        // another host, or the same host name in another PID namespace (another container of a pod): its pid means nothing here
        name('ffffffff', dead, '1'),
        // an older version's name: its pid cannot be told either
        `.stale-20250101T000000000Z.db.tmp-${HOST}-${dead}-0123abcd`,
        `.other-x.db.tmp-${SPACE}-${dead}-1-0-0123abcd`,
      ]
      for (const f of [...stale, ...kept]) writeFileSync(join(directory, f), 'copy of the database')
      await backups.backup()
      expect(temps(directory).sort()).toEqual([...kept].sort())
      writeFileSync(join(directory, stale[0]!), 'copy of the database')
      await backups.prune()
      expect(temps(directory).sort()).toEqual([...kept].sort())
      // one that cannot be told dead is removed once untouched for STALE_TEMP_MS (a live one is touched every minute)
      const old = new Date(Date.now() - 2 * 3_600_000)
      for (const f of kept.slice(1, 3)) utimesSync(join(directory, f), old, old)
      await backups.prune()
      expect(temps(directory).sort()).toEqual([kept[0], kept[3]].sort())
    } finally {
      await pool.close()
    }
  })

  it("a backup in progress in a worker thread keeps its temp copy when the main thread's prune cleans up", async () => {
    const pool = createSqlitePool(tmp.file('worker.db'))
    const directory = tmp.file('bk-worker')
    try {
      await pool.query('create table t (id integer primary key, v text)')
      await pool.query('insert into t (v) select hex(randomblob(2000)) from (select 1 union all select 2 union all select 3)')
      const shared = new Int32Array(new SharedArrayBuffer(4))
      // the built package: a worker thread runs plain Node, not jest's TypeScript transform
      const sqlite = join(__dirname, '..', '..', 'dist', 'index.js')
      const worker = new Worker(
        `const { workerData, parentPort } = require('node:worker_threads')
        const { createSqlitePool, BackupManager } = require(workerData.sqlite)
        const pool = createSqlitePool(workerData.db, { name: 'w' })
        let once = false
        const b = new BackupManager(pool, { directory: workerData.directory, pagesPerStep: 1, onProgress: (p) => {
          if (p.phase !== 'copy' || once) return
          once = true
          Atomics.store(workerData.shared, 0, 1); Atomics.notify(workerData.shared, 0)
          Atomics.wait(workerData.shared, 0, 1, 10000)
        } })
        b.backup().then((r) => parentPort.postMessage('ok'), (e) => parentPort.postMessage(e.code + ': ' + e.message)).finally(() => pool.close())`,
        { eval: true, workerData: { sqlite, db: tmp.file('worker.db'), directory, shared } },
      )
      let failed: unknown
      worker.once('error', (err) => (failed = err))
      const result = new Promise<unknown>((resolve) => {
        worker.once('message', resolve)
        worker.once('exit', () => resolve(failed ?? 'exited'))
      })
      for (let i = 0; i < 500 && Atomics.load(shared, 0) === 0 && failed === undefined; i++) await new Promise((r) => setTimeout(r, 20))
      expect(failed).toBeUndefined()
      expect(temps(directory).length).toBeGreaterThan(0)
      await new BackupManager(pool, { directory }).prune()
      expect(temps(directory).length).toBeGreaterThan(0)
      Atomics.store(shared, 0, 2)
      Atomics.notify(shared, 0)
      expect(await result).toBe('ok')
      await new Promise((r) => worker.once('exit', r))
    } finally {
      await pool.close()
    }
  }, 30_000)
})
