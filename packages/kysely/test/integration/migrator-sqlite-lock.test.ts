import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, mkdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { createTempSqlite } from '@dbpool/testing'
import { sql, Kysely, Migrator, type Migration, type MigrationResultSet } from 'kysely'
import { DbpoolDialect } from '@dbpool/kysely'

jest.setTimeout(60_000)

// Kysely's Migrator takes no lock on SQLite (Kysely's SqliteAdapter relies on its one connection).
// With disableTransactions each statement commits on its own, so two runs at once (two pools, two
// processes) both read "002 pending" and both applied it: a non-idempotent data migration ran twice
// (balance 5 -> 50000 instead of 500), the second run failing only afterwards on the record's
// UNIQUE. Every run through DbpoolDialect now takes an exclusive lock on
// <database>-kysely-migration.lock before it reads what is pending.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>

/**
 * Makes the runs that reach Kysely's state read (`getMigrations()`, called right after
 * acquireMigrationLock) wait for one another, so that without a lock every run reads the state
 * before any applies a migration. A run that is kept out by a lock never arrives: the first one
 * goes on alone after `maxWaitMs` (which only decides how long a locked run idles, not the outcome).
 */
function barrier(parties: number, maxWaitMs = 1500): () => Promise<void> {
  let arrived = 0
  const waiters: Array<() => void> = []
  return async () => {
    arrived++
    if (arrived >= parties) {
      for (const w of waiters.splice(0)) w()
      return
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, maxWaitMs)
      waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
}

function migrations(meet: () => Promise<void>): { getMigrations(): Promise<Record<string, Migration>> } {
  return {
    getMigrations: async () => {
      await meet()
      return {
        '001_account': {
          up: async (db: AnyDb) => {
            await sql`create table if not exists account (id integer primary key, balance integer not null)`.execute(db)
            await sql`insert or ignore into account values (1, 5)`.execute(db)
          },
        },
        // not idempotent: applied twice it multiplies by 10000
        '002_cents': { up: async (db: AnyDb) => void (await sql`update account set balance = balance * 100`.execute(db)) },
      }
    },
  }
}

describe("Kysely's Migrator on SQLite through DbpoolDialect: one run at a time", () => {
  let target: Awaited<ReturnType<typeof createTempSqlite>>
  const pools: DatabasePool[] = []

  beforeEach(async () => {
    target = await createTempSqlite({ fileName: 'migrate-lock.db' })
  })

  afterEach(async () => {
    for (const pool of pools.splice(0)) {
      expect(pool.stats().used).toBe(0)
      await pool.close()
    }
    await target.remove()
  })

  async function kysely(pool?: DatabasePool): Promise<{ db: AnyDb; pool: DatabasePool }> {
    const p = pool ?? (await PoolFactory.create(target.url, { max: 2 }))
    if (pool === undefined) pools.push(p)
    return { db: new Kysely({ dialect: new DbpoolDialect({ pool: p }) }), pool: p }
  }

  async function balance(db: AnyDb): Promise<number> {
    const { rows } = await sql<{ balance: number }>`select balance from account`.execute(db)
    return rows[0]!.balance
  }

  /** Each migration applied by exactly one of the runs, none failed, and 002 ran once. */
  function expectAppliedOnce(runs: MigrationResultSet[], db: AnyDb): Promise<void> {
    for (const run of runs) expect(run.error).toBeUndefined()
    const applied = runs.flatMap((run) => (run.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName))
    expect(applied.sort()).toEqual(['001_account', '002_cents'])
    return balance(db).then((b) => expect(b).toBe(500))
  }

  it.each([
    ['two pools on the file (as two processes), both with disableTransactions', 'two', [true, true]],
    ['one pool, both with disableTransactions', 'one', [true, true]],
    ['two pools, one run with disableTransactions and one in a transaction', 'two', [true, false]],
  ] as const)('%s: each migration is applied once', async (_name, pools, disable) => {
    const a = await kysely()
    const b = pools === 'one' ? await kysely(a.pool) : await kysely()
    const meet = barrier(2)
    const runs = await Promise.all([
      new Migrator({ db: a.db, provider: migrations(meet), disableTransactions: disable[0] }).migrateToLatest(),
      new Migrator({ db: b.db, provider: migrations(meet), disableTransactions: disable[1] }).migrateToLatest(),
    ])
    await expectAppliedOnce(runs, a.db)
    expect(existsSync(`${target.path}-kysely-migration.lock`)).toBe(true)
  })

  it('a lock held by a process that dies is freed with it (no stale lock): the waiting run then goes on', async () => {
    const { db } = await kysely()
    const holder = holdLockInChild(`${target.path}-kysely-migration.lock`)
    try {
      await waitForLine(holder, 'locked')
      const run = new Migrator({ db, provider: migrations(async () => undefined), disableTransactions: true }).migrateToLatest()
      let settled = false
      void run.finally(() => (settled = true))
      // while the other process holds it the run waits, before reading or applying anything
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect(settled).toBe(false)
      expect((await sql<{ n: number }>`select count(*) as n from sqlite_master where name = 'account'`.execute(db)).rows[0]!.n).toBe(0)
      holder.kill('SIGKILL')
      await once(holder, 'exit')
      await expectAppliedOnce([await run], db)
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL')
    }
  })

  // The wait went on after close() (which resolved at once, reporting nothing) up to the lock's 60 s
  // timeout, keeping the process alive past its shutdown (review r5 item 5)
  it.each([true, false])(
    'a run waiting for the lock (disableTransactions %s) ends POOL_CLOSED at once when its pool closes',
    async (disableTransactions) => {
      const holder = holdLockInChild(`${target.path}-kysely-migration.lock`)
      try {
        await waitForLine(holder, 'locked')
        const pool = await PoolFactory.create(target.url, { max: 2 })
        const db: AnyDb = new Kysely({ dialect: new DbpoolDialect({ pool }) })
        const started = performance.now()
        const run = new Migrator({ db, provider: migrations(async () => undefined), disableTransactions }).migrateToLatest()
        await new Promise((resolve) => setTimeout(resolve, 300))
        const report = await pool.close({ timeoutMs: 5_000 })
        const { error, results } = await run
        expect(performance.now() - started).toBeLessThan(3_000)
        expect(error).toMatchObject({ code: 'POOL_CLOSED' })
        expect(results).toBeUndefined()
        expect(report).toMatchObject({ abortedWaiters: 1, timedOut: false })
        await db.destroy()
      } finally {
        holder.kill('SIGKILL')
        await once(holder, 'exit')
      }
    },
  )

  it('an in-memory database takes no lock file and still runs one at a time', async () => {
    const pool = await PoolFactory.create('sqlite::memory:', { max: 1 })
    pools.push(pool)
    const { db } = await kysely(pool)
    const meet = barrier(2)
    const runs = await Promise.all([
      new Migrator({ db, provider: migrations(meet), disableTransactions: true }).migrateToLatest(),
      new Migrator({ db, provider: migrations(meet), disableTransactions: true }).migrateToLatest(),
    ])
    await expectAppliedOnce(runs, db)
  })
})

/** A child process that holds `file`'s SQLite lock (as another process's Migrator run would) until killed. */
function holdLockInChild(file: string): ChildProcess {
  const script = `const D = require(${JSON.stringify(require.resolve('better-sqlite3'))}); const db = new D(${JSON.stringify(file)}); db.exec('BEGIN EXCLUSIVE'); console.log('locked'); setInterval(() => {}, 1000)`
  return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
}

async function waitForLine(child: ChildProcess, line: string): Promise<void> {
  let out = ''
  for await (const chunk of child.stdout!) {
    out += String(chunk)
    if (out.includes(line)) return
  }
  throw new Error(`the child exited before printing ${line}: ${out}`)
}

// A read-only deployment (a readonly pool on a directory the application cannot write, every
// migration applied) ran migrateToLatest() to { error } CONNECTION_FAILED 'unable to open database
// file (...-kysely-migration.lock)' once every run took the lock: a readonly pool applies nothing and
// now takes none. A writable pool whose lock file cannot be created fails with CONFIGURATION naming
// it, never unlocked. A lock path that is a directory cannot be opened even by root; the nobody run
// below is the deployment itself.
describe("Kysely's Migrator on SQLite: a lock file that cannot be made", () => {
  const ci = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'
  let target: Awaited<ReturnType<typeof createTempSqlite>>
  let applied: AnyDb | undefined

  const provider = (extra = false): { getMigrations(): Promise<Record<string, Migration>> } => ({
    getMigrations: async () => ({
      '001_t': { up: async (db: AnyDb) => void (await sql`create table t (v integer)`.execute(db)) },
      ...(extra ? { '002_u': { up: async (db: AnyDb) => void (await sql`create table u (v integer)`.execute(db)) } } : {}),
    }),
  })

  beforeEach(async () => {
    target = await createTempSqlite({ fileName: 'migrate-ro.db' })
    // 001 applied by a writable pool, then the lock path made unopenable (a directory)
    const pool = createSqlitePool(target.path, { max: 1 })
    applied = new Kysely({ dialect: new DbpoolDialect({ pool, closePoolOnDestroy: true }) })
    expect((await new Migrator({ db: applied, provider: provider() }).migrateToLatest()).error).toBeUndefined()
    await applied.destroy()
    rmSync(`${target.path}-kysely-migration.lock`, { force: true })
    mkdirSync(`${target.path}-kysely-migration.lock`)
  })

  afterEach(async () => {
    rmSync(`${target.path}-kysely-migration.lock`, { recursive: true, force: true })
    await target.remove()
  })

  async function run(readonly: boolean, extra: boolean): Promise<MigrationResultSet> {
    const pool = createSqlitePool(target.path, { max: 2 }, { readonly })
    const db = new Kysely({ dialect: new DbpoolDialect({ pool, closePoolOnDestroy: true }) })
    try {
      return await new Migrator({ db, provider: provider(extra) }).migrateToLatest()
    } finally {
      expect(pool.stats().used).toBe(0)
      await db.destroy()
    }
  }

  it('a readonly pool takes no lock: everything applied, migrateToLatest() has nothing to do; a pending migration fails when it writes', async () => {
    expect(await run(true, false)).toEqual({ results: [] })
    const pending = await run(true, true)
    expect(pending.error).toMatchObject({ code: 'READ_ONLY' })
  })

  it('a writable pool whose lock file cannot be opened: { error } CONFIGURATION naming the lock file and the reason, nothing applied', async () => {
    const { error, results } = await run(false, true)
    expect(error).toMatchObject({
      code: 'CONFIGURATION',
      retryable: false,
      detail: { lockFile: `${realpathSync(target.path)}-kysely-migration.lock`, reason: expect.any(String) },
    })
    expect((error as Error).message).toMatch(/kysely-migration\.lock cannot be created or opened/)
    expect(results).toBeUndefined()
    const check = createSqlitePool(target.path, { max: 1 })
    try {
      expect((await check.query(`select count(*) as n from sqlite_master where name = 'u'`)).rows[0]).toEqual({ n: 0 })
    } finally {
      await check.close()
    }
  })

  // needs root to run the deployment as nobody; skipped with a message without root, except with CI set (.ci/run runs as root)
  const asRoot = process.getuid?.() === 0 ? it : ci ? it : it.skip
  if (process.getuid?.() !== 0 && !ci) console.warn('skipped (needs root): the read-only deployment run as nobody')
  asRoot(
    'as nobody on a directory it cannot write (a read-only deployment): a readonly pool has nothing to do and makes no lock file',
    async () => {
      if (process.getuid?.() !== 0) throw new Error('needs root: CI runs as root (.ci/run)')
      rmSync(`${target.path}-kysely-migration.lock`, { recursive: true, force: true })
      const dir = dirname(target.path)
      // nobody may enter the directory (and its parents) and read the database, not write there
      for (let d = dir; d !== '/' && d !== dirname(d); d = dirname(d)) if (d.startsWith(tmpdir())) chmodSync(d, 0o755)
      // a rollback journal (WAL would need its -shm file created in the directory); the file writable by
      // nobody, so only the lock file, first of everything a run does, cannot be made
      const native = new Database(target.path)
      native.pragma('journal_mode = DELETE')
      native.close()
      chmodSync(target.path, 0o666)
      const script = `
      const { Kysely, Migrator, sql } = require(${JSON.stringify(require.resolve('kysely'))})
      const { createSqlitePool } = require(${JSON.stringify(join(__dirname, '../../../sqlite/dist/index.js'))})
      const { DbpoolDialect } = require(${JSON.stringify(join(__dirname, '../../dist/index.js'))})
      const provider = { getMigrations: async () => ({ '001_t': { up: async () => { throw new Error('applied again') } } }) }
      ;(async () => {
        const out = {}
        for (const readonly of [true, false]) {
          const pool = createSqlitePool(${JSON.stringify(target.path)}, { max: 2 }, { readonly })
          const db = new Kysely({ dialect: new DbpoolDialect({ pool, closePoolOnDestroy: true }) })
          const r = await new Migrator({ db, provider }).migrateToLatest()
          out[readonly ? 'readonly' : 'writable'] = r.error ? { code: r.error.code } : r
          await db.destroy()
        }
        console.log(JSON.stringify(out))
      })().catch((e) => { console.log(JSON.stringify({ uncaught: String(e) })) })`
      const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }))
      const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }))
      const out = execFileSync(process.execPath, ['-e', script], { uid, gid, encoding: 'utf8', cwd: '/' })
      expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({
        readonly: { results: [] },
        // a writable pool there fails on its own first write (SQLite's 'attempt to write a readonly
        // database'), typed, not on an unreachable database; the lock file case is the test above
        writable: { code: 'READ_ONLY' },
      })
      expect(existsSync(`${target.path}-kysely-migration.lock`)).toBe(false)
    },
  )
})
