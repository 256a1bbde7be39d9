import { type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import {
  BackupManager,
  createSqlitePool,
  databaseInUse,
  databaseUse,
  processesWithFileOpen,
  restoreDatabaseFile,
  type SqliteDatabase,
} from '@dbpool/sqlite'
import { exited, lines, spawnFixture, tempDir } from './helpers'

// A restore renames a new file over the database: a process that still has the old one open goes on
// reading (and writing) the deleted file. Such a restore is refused unless forced.
const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

async function seeded(): Promise<{ pool: DatabasePool<SqliteDatabase>; path: string; backup: string }> {
  const path = tmp.file(`in-use-${++n}.db`)
  const pool = createSqlitePool(path, { name: `in-use-${n}` })
  await pool.query('create table item (id integer primary key, v text)')
  await pool.query("insert into item (v) values ('backed up')")
  const { file } = await new BackupManager(pool, { directory: tmp.file(`in-use-backups-${n}`) }).backup()
  await pool.query("insert into item (v) values ('after the backup')")
  return { pool, path, backup: file }
}

async function holder(path: string, journalMode?: 'DELETE'): Promise<ChildProcess> {
  const child = spawnFixture('hold-open-child.ts', journalMode ? [path, journalMode] : [path])
  await lines(child).waitFor(/^ready$/, 60_000)
  return child
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGKILL')
  await exited(child)
}

async function count(pool: DatabasePool<SqliteDatabase>): Promise<number> {
  return Number((await pool.query<{ n: number }>('select count(*) as n from item')).rows[0]?.n)
}

/**
 * The restore-as-another-user tests below need root (to run children as other users, mount /proc,
 * unshare namespaces). Without root they are skipped with a message, except with CI set (.ci/run runs
 * as root), where they fail.
 */
const ci = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'
function asRoot(name: string, test: () => Promise<void>, timeout: number): void {
  if (process.getuid?.() === 0) it(name, test, timeout)
  else if (ci) it(name, () => Promise.reject(new Error('needs root: CI runs as root (.ci/run)')), timeout)
  else {
    console.warn(`skipped (needs root): ${name}`)
    it.skip(name, test, timeout)
  }
}

/** A WAL database in a fresh directory every user may enter: 2 rows; a backup of the first one beside it. */
function sharedDatabase(label: string): { dir: string; path: string; backup: string } {
  const dir = tmp.file(label)
  mkdirSync(dir)
  chmodSync(tmp.dir, 0o755)
  chmodSync(dir, 0o777)
  const path = join(dir, 'app.db')
  const setup = new Database(path)
  setup.pragma('journal_mode = WAL')
  setup.exec("create table item (id integer primary key, v text); insert into item (v) values ('backed up')")
  const backup = join(dir, 'app-backup.db')
  setup.exec(`vacuum into '${backup}'`)
  setup.exec("insert into item (v) values ('after the backup')")
  setup.close()
  chmodSync(backup, 0o644)
  return { dir, path, backup }
}

/** What restore-as-child.ts printed. */
interface Seen {
  use: string
  scan: { pids: number[]; unreadable: number[]; nonDumpable: number[]; hidden?: string }
  error: { code: string; reason: string; pids?: number[]; hidden?: string; message?: string } | null
}

async function restoreAs(
  path: string,
  backup: string,
  options: Parameters<typeof spawnFixture>[2],
  restoreOptions?: { allowHidden: string[] },
): Promise<Seen> {
  const child = spawnFixture('restore-as-child.ts', [path, backup, ...(restoreOptions ? [JSON.stringify(restoreOptions)] : [])], options)
  const out = lines(child)
  const line = await out.waitFor(/^\{/, 60_000).catch((err: unknown) => {
    throw new Error(`${String(err)}: ${out.stderr()}`)
  })
  await exited(child)
  return JSON.parse(line) as Seen
}

function rows(path: string): number {
  const check = new Database(path, { readonly: true })
  try {
    return (check.prepare('select count(*) as n from item').get() as { n: number }).n
  } finally {
    check.close()
  }
}

describe('restoring a database another process has open', () => {
  it('databaseInUse sees an idle connection of another process (WAL), and nothing once it is gone', async () => {
    const { pool, path } = await seeded()
    await pool.close()
    expect(databaseInUse(path)).toBe(false)
    const child = await holder(path)
    try {
      expect(databaseInUse(path)).toBe(true)
      // asking twice changes nothing (the probe leaves the file in WAL mode)
      expect(databaseInUse(path)).toBe(true)
    } finally {
      await kill(child)
    }
    expect(databaseInUse(path)).toBe(false)
    expect(databaseInUse(tmp.file('never-created.db'))).toBe(false)
  }, 90_000)

  it('BackupManager.restore and restoreDatabaseFile refuse (BACKUP_FAILED in-use, database untouched) unless force', async () => {
    const { pool, path, backup } = await seeded()
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    const child = await holder(path)
    try {
      const err = (await backups.restore(backup).catch((e: unknown) => e)) as DatabaseError
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect(err.detail).toMatchObject({ reason: 'in-use' })
      expect(err.message).toContain('has the database open')
      // untouched, and the manager's pool reopened: 2 rows of ours + 1 of the holder
      expect(await count(backups.pool)).toBe(3)
      await backups.pool.close()
      await expect(restoreDatabaseFile(path, backup)).rejects.toMatchObject({ code: 'BACKUP_FAILED', detail: { reason: 'in-use' } })
      // forced: replaced although the holder has it open
      await restoreDatabaseFile(path, backup, { force: true })
      const after = createSqlitePool(path)
      expect(await count(after)).toBe(1)
      await after.close()
    } finally {
      await kill(child)
      await backups.pool.close()
    }
    // alone again: restored without force
    const reopened = createSqlitePool(path)
    await reopened.query("insert into item (v) values ('x')")
    const again = await new BackupManager(reopened, { directory: tmp.file('unused') }).restore(backup)
    expect(await count(again)).toBe(1)
    await again.close()
  }, 90_000)

  it('another pool of this process counts too, also with allowHidden (it waives no such check); force and allowHidden are validated', async () => {
    const { pool, path, backup } = await seeded()
    const other = createSqlitePool(path, { name: 'other' })
    await other.query('select 1')
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    try {
      await expect(backups.restore(backup)).rejects.toMatchObject({ code: 'BACKUP_FAILED', detail: { reason: 'in-use' } })
      await expect(backups.restore(backup, { allowHidden: ['pid-namespace', 'hidepid'] })).rejects.toMatchObject({
        code: 'BACKUP_FAILED',
        detail: { reason: 'in-use' },
      })
      await expect(restoreDatabaseFile(path, backup, { allowHidden: ['pid-namespace'] })).rejects.toMatchObject({
        code: 'BACKUP_FAILED',
        detail: { reason: 'in-use' },
      })
      await expect(backups.restore(backup, { force: 'yes' as never })).rejects.toMatchObject({ code: 'CONFIGURATION' })
      for (const allowHidden of ['pid-namespace', ['unreadable'], [1]])
        await expect(backups.restore(backup, { allowHidden: allowHidden as never })).rejects.toMatchObject({
          code: 'CONFIGURATION',
          detail: { option: 'restore.allowHidden' },
        })
      await other.close()
      const restored = await backups.restore(backup)
      expect(await count(restored)).toBe(1)
    } finally {
      await other.close()
      await backups.pool.close()
    }
  }, 60_000)
})

describe('a WAL database another process has opened but not read (no lock, no -shm mapped)', () => {
  async function unreadHolder(path: string): Promise<ChildProcess> {
    const child = spawnFixture('open-unread-child.ts', [path])
    await lines(child).waitFor(/^ready$/, 60_000)
    return child
  }

  it('is in use: databaseInUse, BackupManager.restore and restoreDatabaseFile refuse it (in-use, its pid), untouched', async () => {
    const { pool, path, backup } = await seeded()
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    const child = await unreadHolder(path)
    const out = lines(child)
    try {
      expect(processesWithFileOpen(path)?.pids).toContain(child.pid)
      const err = (await backups.restore(backup).catch((e: unknown) => e)) as DatabaseError
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect(err.detail).toMatchObject({ reason: 'in-use', pids: [child.pid] })
      expect(err.message).toContain(`process ${child.pid} has the database open`)
      await backups.pool.close()
      expect(databaseInUse(path)).toBe(true)
      await expect(restoreDatabaseFile(path, backup)).rejects.toMatchObject({
        code: 'BACKUP_FAILED',
        detail: { reason: 'in-use', pids: [child.pid] },
      })
      // the holder writes: its row joins ours in the one (unreplaced) file
      child.kill('SIGUSR1')
      await out.waitFor(/^wrote$/, 30_000)
      const check = createSqlitePool(path)
      expect(await count(check)).toBe(3)
      expect((await check.query('pragma integrity_check')).rows).toEqual([{ integrity_check: 'ok' }])
      await check.close()
    } finally {
      await kill(child)
      await backups.pool.close()
    }
    // gone: restored without force
    await restoreDatabaseFile(path, backup)
    const after = createSqlitePool(path)
    expect(await count(after)).toBe(1)
    await after.close()
  }, 90_000)

  it('a connection of this process that has not read counts too (its pid is this one)', async () => {
    const { pool, path, backup } = await seeded()
    const raw = new Database(path)
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    try {
      const err = (await backups.restore(backup).catch((e: unknown) => e)) as DatabaseError
      expect(err.detail).toMatchObject({ reason: 'in-use', pids: [process.pid] })
      expect(err.message).toContain(`this process (pid ${process.pid}) still has the database open`)
      raw.close()
      const restored = await backups.restore(backup)
      expect(await count(restored)).toBe(1)
    } finally {
      if (raw.open) raw.close()
      await backups.pool.close()
    }
  }, 60_000)
})

describe("another user's process, whose open files this one may not read", () => {
  // needs root to run the two children as two other users; root itself reads every process's files
  asRoot(
    'that could write the database makes it unknown: restore refused (in-use-unknown, its pid), untouched',
    async () => {
      const dir = tmp.file('other-user')
      mkdirSync(dir)
      chmodSync(tmp.dir, 0o755)
      chmodSync(dir, 0o777)
      const path = join(dir, 'shared.db')
      const setup = new Database(path)
      setup.pragma('journal_mode = WAL')
      setup.exec("create table item (id integer primary key, v text); insert into item (v) values ('backed up')")
      const backup = join(dir, 'shared-backup.db')
      setup.exec(`vacuum into '${backup}'`)
      setup.exec("insert into item (v) values ('after the backup')")
      setup.close()
      // owned by the application's user; the restoring user may write it through the group
      chownSync(path, 4242, 65534)
      chmodSync(path, 0o664)
      chmodSync(backup, 0o644)
      const holder = spawnFixture('open-unread-child.ts', [path], { uid: 4242, gid: 4242 })
      try {
        await lines(holder).waitFor(/^ready$/, 60_000)
        const child = spawnFixture('restore-as-child.ts', [path, backup], { uid: 65534, gid: 65534 })
        const out = lines(child)
        const line = await out.waitFor(/^\{/, 60_000)
        await exited(child)
        const seen = JSON.parse(line) as {
          use: string
          scan: { pids: number[]; unreadable: number[] }
          error: { code: string; reason: string; pids: number[] }
        }
        expect(seen.use).toBe('unknown')
        expect(seen.scan.pids).toEqual([])
        expect(seen.scan.unreadable).toContain(holder.pid)
        expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown' })
        expect(seen.error.pids).toContain(holder.pid)
        // root sees it
        expect(processesWithFileOpen(path)?.pids).toEqual([holder.pid])
      } finally {
        await kill(holder)
      }
      const check = new Database(path, { readonly: true })
      expect(check.prepare('select count(*) as n from item').get()).toEqual({ n: 2 })
      check.close()
    },
    90_000,
  )
})

describe('a non-dumpable process of the restoring user (an application that dropped root, or an agent)', () => {
  asRoot(
    'an application started as root that switched to this user and has the database open (not read): refused, in-use-unknown with its pid, untouched',
    async () => {
      const { path, backup } = sharedDatabase('dropped-holder')
      for (const file of [path, backup]) chownSync(file, 65534, 65534)
      const holder = spawnFixture('dropped-holder-child.ts', ['65534', '65534', path])
      const out = lines(holder)
      try {
        await out.waitFor(/^ready$/, 60_000)
        const seen = await restoreAs(path, backup, { uid: 65534, gid: 65534 })
        // its uids are all the restorer's: only its being unreadable tells it may hold the file
        expect(seen.scan.pids).toEqual([])
        expect(seen.scan.nonDumpable).toContain(holder.pid)
        expect(seen.scan.unreadable).toContain(holder.pid)
        expect(seen.use).toBe('unknown')
        expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown' })
        expect(seen.error?.pids).toContain(holder.pid)
        // root sees it
        expect(processesWithFileOpen(path)?.pids).toEqual([holder.pid])
        // its write lands in the file it has open: the database, not replaced (a restored file would get it on top)
        holder.kill('SIGUSR1')
        await out.waitFor(/^wrote$/, 30_000)
      } finally {
        await kill(holder)
      }
      expect(rows(path)).toBe(3)
    },
    90_000,
  )

  asRoot(
    'an agent (non-dumpable, never opens the database) cannot be told from it: in-use-unknown naming it, untouched',
    async () => {
      const { path, backup } = sharedDatabase('agent')
      for (const file of [path, backup]) chownSync(file, 65534, 65534)
      const agent = spawnFixture('dropped-holder-child.ts', ['65534', '65534'])
      try {
        await lines(agent).waitFor(/^ready$/, 60_000)
        const seen = await restoreAs(path, backup, { uid: 65534, gid: 65534 })
        expect(seen.scan.nonDumpable).toContain(agent.pid)
        expect(seen.use).toBe('unknown')
        expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown' })
        expect(seen.error?.pids).toContain(agent.pid)
        // named with its command, and why it counts
        expect(seen.error?.message).toContain(`${agent.pid} (node)`)
        expect(seen.error?.message).toContain('non-dumpable processes of this user')
      } finally {
        await kill(agent)
      }
      expect(rows(path)).toBe(2)
      // gone: no longer counted; restored unless another non-dumpable process of that user runs on the
      // machine (another test's or another program's, not this one's: then it is named instead)
      const seen = await restoreAs(path, backup, { uid: 65534, gid: 65534 })
      expect(seen.scan.nonDumpable).not.toContain(agent.pid)
      expect(seen.error?.pids ?? []).not.toContain(agent.pid)
      if (seen.scan.nonDumpable.length === 0 && seen.scan.unreadable.length === 0) {
        expect(seen.error).toBeNull()
        expect(rows(path)).toBe(1)
      } else {
        expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown' })
        expect(rows(path)).toBe(2)
      }
    },
    120_000,
  )
})

describe('processes hidden from the restore', () => {
  asRoot(
    'a restore in a PID namespace of its own (a container sharing the volume) is refused: in-use-unknown, hidden pid-namespace, untouched',
    async () => {
      const { path, backup } = sharedDatabase('pid-namespace')
      // the application, outside the restore's PID namespace, has opened the database and not read it
      const holder = spawnFixture('open-unread-child.ts', [path])
      try {
        await lines(holder).waitFor(/^ready$/, 60_000)
        const seen = await restoreAs(path, backup, { wrap: ['unshare', '--pid', '--fork', '--mount-proc'] })
        expect(seen.scan).toMatchObject({ pids: [], hidden: 'pid-namespace' })
        expect(seen.use).toBe('unknown')
        expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown', hidden: 'pid-namespace' })
      } finally {
        await kill(holder)
      }
      expect(rows(path)).toBe(2)
    },
    90_000,
  )

  // every Docker/Kubernetes deployment restores in a PID namespace of its own: allowHidden waives that
  // one reason (the caller vouches that nothing outside has the database open), and only that one
  asRoot(
    "allowHidden ['pid-namespace']: a restore in a PID namespace of its own goes through when nothing holds the database; a holder outside that has read it (its lock) is still refused, and so is /proc mounted hidepid there",
    async () => {
      const { path, backup } = sharedDatabase('pid-namespace-allowed')
      // (its -wal and -shm take its mode: the restore as nobody below can open them)
      chmodSync(path, 0o666)
      const namespace = ['unshare', '--pid', '--fork', '--mount-proc']
      const allowed = { allowHidden: ['pid-namespace'] }
      const app = await holder(path)
      try {
        const seen = await restoreAs(path, backup, { wrap: namespace }, allowed)
        expect(seen.scan).toMatchObject({ pids: [], hidden: 'pid-namespace', hiddenBy: ['pid-namespace'] })
        expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use' })
      } finally {
        await kill(app)
      }
      expect(rows(path)).toBe(3)
      // hidepid in the namespace, the restore as nobody: hidden for a reason not waived
      const hidepid = [
        'unshare',
        '--pid',
        '--fork',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t proc -o hidepid=2 proc /proc && exec "$@"',
        'sh',
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
      ]
      const both = await restoreAs(path, backup, { wrap: hidepid }, allowed)
      expect(both.scan).toMatchObject({ hidden: 'pid-namespace', hiddenBy: ['pid-namespace', 'hidepid'] })
      expect(both.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown', hidden: 'hidepid' })
      expect(both.error?.message).toContain("allowHidden: ['hidepid']")
      expect(rows(path)).toBe(3)
      // nothing holds it: refused without the option (the message names it), restored with it
      const refused = await restoreAs(path, backup, { wrap: namespace })
      expect(refused.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown', hidden: 'pid-namespace' })
      expect(refused.error?.message).toContain("allowHidden: ['pid-namespace']")
      expect(rows(path)).toBe(3)
      const restored = await restoreAs(path, backup, { wrap: namespace }, allowed)
      expect(restored.error).toBeNull()
      expect(rows(path)).toBe(1)
    },
    120_000,
  )

  for (const hidepid of ['1', '2', 'invisible']) {
    asRoot(
      `/proc mounted hidepid=${hidepid}: another user's process that could write the database cannot be seen, so it is unknown (in-use-unknown, hidden hidepid); root still sees it`,
      async () => {
        const { path, backup } = sharedDatabase(`hidepid-${hidepid}`)
        chmodSync(path, 0o666)
        const holder = spawnFixture('open-unread-child.ts', [path], { uid: 4242, gid: 4242 })
        // a /proc of its own, mounted hidepid, in a mount namespace of its own; the restore as nobody
        const hidden = (asUser: boolean): string[] => [
          'unshare',
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          `mount -t proc -o hidepid=${hidepid} proc /proc && exec "$@"`,
          'sh',
          ...(asUser ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : []),
        ]
        try {
          await lines(holder).waitFor(/^ready$/, 60_000)
          const seen = await restoreAs(path, backup, { wrap: hidden(true) })
          expect(seen.scan).toMatchObject({ pids: [], hidden: 'hidepid' })
          expect(seen.use).toBe('unknown')
          expect(seen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use-unknown', hidden: 'hidepid' })
          // root sees through hidepid: the holder, in use
          const asRootSeen = await restoreAs(path, backup, { wrap: hidden(false) })
          expect(asRootSeen.scan.hidden).toBeUndefined()
          expect(asRootSeen.scan.pids).toEqual([holder.pid])
          expect(asRootSeen.error).toMatchObject({ code: 'BACKUP_FAILED', reason: 'in-use', pids: [holder.pid] })
        } finally {
          await kill(holder)
        }
        expect(rows(path)).toBe(2)
      },
      120_000,
    )
  }
})

describe('the in-use probe', () => {
  it('the probe leaves a database it was alone on in WAL mode, with every committed row', async () => {
    const { pool, path } = await seeded()
    await pool.close()
    expect(databaseInUse(path)).toBe(false)
    const check = createSqlitePool(path)
    try {
      expect((await check.query<{ journal_mode: string }>('pragma journal_mode')).rows[0]?.journal_mode).toBe('wal')
      expect(await count(check)).toBe(2)
    } finally {
      await check.close()
    }
  })
})

describe('a rollback-journal database (in use cannot be told)', () => {
  it('restore and restoreDatabaseFile refuse (BACKUP_FAILED in-use-unknown, untouched) unless force, also while another process holds it idle', async () => {
    const path = tmp.file(`journal-${++n}.db`)
    const pool = createSqlitePool(path, { name: `journal-${n}` }, { journalMode: 'DELETE' })
    await pool.query('create table item (id integer primary key, v text)')
    await pool.query("insert into item (v) values ('backed up')")
    const { file: backup } = await new BackupManager(pool, { directory: tmp.file(`journal-backups-${n}`) }).backup()
    await pool.query("insert into item (v) values ('after the backup')")
    const backups = new BackupManager(pool, { directory: tmp.file('unused') })
    // an idle connection of another process: no lock, invisible to any probe
    const child = await holder(path, 'DELETE')
    try {
      // seen open in /proc (Linux); without /proc it could not be told
      expect(databaseUse(path)).toBe(process.platform === 'linux' ? 'in-use' : 'unknown')
      const err = (await backups.restore(backup).catch((e: unknown) => e)) as DatabaseError
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect(err.detail).toMatchObject({ reason: 'in-use-unknown' })
      expect(err.message).toContain('rollback-journal database')
      expect(await count(backups.pool)).toBe(3)
      await backups.pool.close()
      await expect(restoreDatabaseFile(path, backup)).rejects.toMatchObject({
        code: 'BACKUP_FAILED',
        detail: { reason: 'in-use-unknown' },
      })
    } finally {
      await kill(child)
      await backups.pool.close()
    }
    // nobody left, but that still cannot be told: only force restores it
    await expect(restoreDatabaseFile(path, backup)).rejects.toMatchObject({ detail: { reason: 'in-use-unknown' } })
    await restoreDatabaseFile(path, backup, { force: true })
    const after = createSqlitePool(path, {}, { journalMode: 'DELETE' })
    expect(await count(after)).toBe(1)
    await after.close()
  }, 90_000)
})
