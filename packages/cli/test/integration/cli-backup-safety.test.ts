import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { buildCli, runCli, spawnCli } from './cli-helpers'

// `dbpool backup` / `dbpool restore` (the built CLI, child processes) where a wrong step loses data.
let cwd: string

beforeAll(async () => {
  await buildCli()
  cwd = mkdtempSync(join(tmpdir(), 'dbpool-cli-backup-safety-'))
}, 240_000)

afterAll(() => rmSync(cwd, { recursive: true, force: true }))

const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(args, { cwd })

function rows(path: string, table: string): number[] {
  const db = new Database(path, { readonly: true })
  try {
    return (db.prepare(`select id from ${table} order by id`).all() as { id: number }[]).map((r) => r.id)
  } finally {
    db.close()
  }
}

describe('dbpool restore', () => {
  it('refuses a rollback-journal database another process holds idle (in-use-unknown), untouched; --force restores', async () => {
    const path = join(cwd, 'journal.db')
    const app = new Database(path)
    app.pragma('journal_mode = DELETE')
    app.exec('create table a (id integer primary key); insert into a values (1)')
    const backup = join(cwd, 'journal-backup.db')
    app.exec(`vacuum into '${backup}'`)
    app.exec('insert into a values (2)')
    // the application keeps its connection open, idle: it holds no lock
    try {
      const res = await cli('--url', `sqlite:${path}`, 'restore', backup)
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(/^dbpool: BACKUP_FAILED: cannot restore .*journal\.db: it is a rollback-journal database/)
      expect(res.stderr).toContain('(--force once no other process can have it open)')
      expect(String(app.pragma('journal_mode', { simple: true }))).toBe('delete')
      expect(app.prepare('select count(*) as n from a').get()).toEqual({ n: 2 })
    } finally {
      app.close()
    }
    expect(rows(path, 'a')).toEqual([1, 2])
    const forced = await cli('--url', `sqlite:${path}`, 'restore', backup, '--force')
    expect(forced.code).toBe(0)
    expect(rows(path, 'a')).toEqual([1])
    // the restored database keeps its journal mode: the CLI's pool (WAL by default) made it WAL
    const after = new Database(path, { readonly: true })
    try {
      expect(String(after.pragma('journal_mode', { simple: true }))).toBe('delete')
    } finally {
      after.close()
    }
  }, 60_000)
})

describe('dbpool restore of a WAL database another process has opened but not read', () => {
  it('is refused (in-use, naming the pid): that connection holds no lock yet but keeps the old file open', async () => {
    const path = join(cwd, 'unread.db')
    const setup = new Database(path)
    setup.pragma('journal_mode = WAL')
    setup.exec('create table a (id integer primary key); insert into a values (1)')
    const backup = join(cwd, 'unread-backup.db')
    setup.exec(`vacuum into '${backup}'`)
    setup.exec('insert into a values (2)')
    setup.close()
    // this test process is the other application: opened, no statement run (no SHARED lock, no -shm)
    const app = new Database(path)
    try {
      const res = await cli('--url', `sqlite:${path}`, 'restore', backup)
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(/^dbpool: BACKUP_FAILED: cannot restore .*unread\.db: process (\d+, )*\d+ ha(s|ve) the database open/m)
      expect(res.stderr).toContain(String(process.pid))
      expect(res.stderr).toContain('(stop the processes that have the database open, or pass --force)')
      // its write goes to the one file, which still holds every row
      app.exec('insert into a values (99)')
    } finally {
      app.close()
    }
    expect(rows(path, 'a')).toEqual([1, 2, 99])
    const alone = await cli('--url', `sqlite:${path}`, 'restore', backup)
    expect(alone.code).toBe(0)
    expect(rows(path, 'a')).toEqual([1])
  }, 60_000)
})

// root only (unshare): skipped with a message without root, except with CI set (.ci/run runs as root), where it fails
const ci = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'
function asRoot(name: string, test: () => Promise<void>, timeout: number): void {
  if (process.getuid?.() === 0) it(name, test, timeout)
  else if (ci) it(name, () => Promise.reject(new Error('needs root: CI runs as root (.ci/run)')), timeout)
  else {
    console.warn(`skipped (needs root): ${name}`)
    it.skip(name, test, timeout)
  }
}

describe('dbpool restore in a PID namespace of its own (a container)', () => {
  asRoot(
    'is refused in-use-unknown naming --allow-hidden, untouched; --allow-hidden pid-namespace restores (a bad reason is refused)',
    async () => {
      const path = join(cwd, 'container.db')
      const setup = new Database(path)
      setup.pragma('journal_mode = WAL')
      setup.exec('create table a (id integer primary key); insert into a values (1)')
      const backup = join(cwd, 'container-backup.db')
      setup.exec(`vacuum into '${backup}'`)
      setup.exec('insert into a values (2)')
      setup.close()
      const wrap = ['unshare', '--pid', '--fork', '--mount-proc']
      const refused = await runCli(['--url', `sqlite:${path}`, 'restore', backup], { cwd, wrap })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(
        /^dbpool: BACKUP_FAILED: cannot restore .*container\.db: this process runs in a PID namespace of its own/m,
      )
      expect(refused.stderr).toContain('(--allow-hidden pid-namespace once no hidden process can have it open')
      expect(rows(path, 'a')).toEqual([1, 2])
      const bad = await runCli(['--url', `sqlite:${path}`, 'restore', backup, '--allow-hidden', 'unreadable'], { cwd, wrap })
      expect(bad.code).not.toBe(0)
      expect(bad.stderr).toContain('--allow-hidden')
      expect(rows(path, 'a')).toEqual([1, 2])
      const allowed = await runCli(['--url', `sqlite:${path}`, 'restore', backup, '--allow-hidden', 'pid-namespace'], { cwd, wrap })
      expect(allowed.stderr).not.toContain('dbpool: ')
      expect(allowed.code).toBe(0)
      expect(rows(path, 'a')).toEqual([1])
    },
    90_000,
  )
})

describe('dbpool restore FILE with a -wal beside FILE', () => {
  /** A WAL database whose last commit is only in its -wal (its writer died before a checkpoint): copies of both files. */
  function crashed(name: string): string {
    const live = join(cwd, `${name}-live.db`)
    const db = new Database(live)
    db.pragma('journal_mode = WAL')
    db.pragma('wal_autocheckpoint = 0')
    db.exec('create table a (id integer primary key); insert into a values (1)')
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.exec('insert into a values (100)')
    const path = join(cwd, `${name}.db`)
    copyFileSync(live, path)
    copyFileSync(`${live}-wal`, `${path}-wal`)
    db.close()
    return path
  }

  it('restores the commits only in the source -wal; refuses the database itself as its source', async () => {
    const target = join(cwd, 'target.db')
    const db = new Database(target)
    db.pragma('journal_mode = WAL')
    db.exec('create table a (id integer primary key); insert into a values (1)')
    db.close()
    const res = await cli('--url', 'sqlite:./target.db', 'restore', crashed('src'))
    expect(res.code).toBe(0)
    expect(rows(target, 'a')).toEqual([1, 100])

    const self = crashed('self')
    const again = await cli('--url', 'sqlite:./self.db', 'restore', 'self.db')
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/^dbpool: CONFIGURATION: invalid restore\.file/)
    expect(statSync(`${self}-wal`).size).toBeGreaterThan(0)
    expect(rows(self, 'a')).toEqual([1, 100])
  }, 60_000)
})

describe('dbpool backup interrupted', () => {
  it('a SIGTERM while the copy is written removes it (0600 while it existed) and ends the process by the signal', async () => {
    const path = join(cwd, 'big.db')
    const db = new Database(path)
    db.pragma('journal_mode = WAL')
    db.exec('create table t (id integer primary key, pad blob)')
    const insert = db.prepare('insert into t (pad) values (randomblob(2000))')
    db.transaction(() => {
      for (let i = 0; i < 12_000; i++) insert.run()
    })()
    db.close()
    const out = join(cwd, 'bk-signal')
    const child = spawnCli(['--url', 'sqlite:./big.db', 'backup', '--out', 'bk-signal', '--gzip'], { cwd })
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
    const modes: number[] = []
    for (let i = 0; i < 3000 && modes.length === 0 && child.exitCode === null; i++) {
      const found = existsSync(out) ? readdirSync(out).filter((f) => f.includes('.tmp-')) : []
      for (const f of found) {
        try {
          modes.push(statSync(join(out, f)).mode & 0o777)
        } catch {
          // renamed meanwhile
        }
      }
      if (modes.length === 0) await new Promise((r) => setTimeout(r, 5))
    }
    child.kill('SIGTERM')
    const signal = await exited
    expect(modes.length).toBeGreaterThan(0)
    expect(new Set(modes)).toEqual(new Set([0o600]))
    expect(signal).toBe('SIGTERM')
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([])
  }, 60_000)
})

describe('dbpool restore interrupted after the database was replaced', () => {
  // the signal handlers went as soon as the restore resolved: a SIGINT while its result was read and
  // printed, or the pools closed, ended the process (exit 130) with no word that the database was
  // already restored
  it('a SIGINT once the restored file is in place says so on stderr, and the database is the backup', async () => {
    const path = join(cwd, 'late.db')
    const backup = join(cwd, 'late-backup.db')
    const app = new Database(path)
    app.pragma('journal_mode = WAL')
    app.exec('create table t (id integer primary key, pad blob)')
    const insert = app.prepare('insert into t (pad) values (randomblob(1000))')
    app.transaction(() => {
      for (let i = 0; i < 3_000; i++) insert.run()
    })()
    app.exec(`vacuum into '${backup}'`)
    app.exec('delete from t where id > 10')
    app.close()
    let interrupted = 0
    for (let attempt = 0; attempt < 8 && interrupted === 0; attempt++) {
      const before = statSync(path).ino
      const child = spawnCli(['--url', 'sqlite:./late.db', 'restore', 'late-backup.db'], { cwd })
      let stderr = ''
      let stdout = ''
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      )
      // the moment the path leads to the restored file: the command is past the rename
      const giveUpAt = Date.now() + 60_000
      while (Date.now() < giveUpAt && child.exitCode === null && child.signalCode === null) {
        const now = statSync(path, { throwIfNoEntry: false })
        if (now !== undefined && now.ino !== before) {
          child.kill('SIGINT')
          break
        }
        await new Promise((r) => setImmediate(r))
      }
      const { code, signal } = await exited
      expect({ stderr, rows: rows(path, 't').length }).toMatchObject({ rows: 3_000 })
      if (signal === null) {
        // the command ended before the signal: the next attempt tries again
        expect(code).toBe(0)
        continue
      }
      if (!stderr.includes('after the database was replaced') && /^restored .*late-backup\.db/m.test(stdout)) {
        // the signal came after the command had printed its result and taken its handlers away (the
        // last instants before the process exits): the default action ended it, the restore was
        // reported done on stdout; the next attempt tries again
        continue
      }
      interrupted++
      expect(signal).toBe('SIGINT')
      expect(stderr).toMatch(
        /dbpool: restore: SIGINT after the database was replaced: .*late\.db is restored from .*late-backup\.db \(verified\); only the command's end was cut short/,
      )
      // put the short table back for the next attempt
      const db = new Database(path)
      db.exec('delete from t where id > 10')
      db.close()
    }
    expect(interrupted).toBeGreaterThan(0)
  }, 120_000)
})
