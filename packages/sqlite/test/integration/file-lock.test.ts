import { existsSync, mkdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { createTempSqlite } from '@dbpool/testing'
import { createSqlitePool } from '../../src'
import { lockFileNextTo } from '../../src/sqlite-file-lock'

// The lock `pool.exclusiveLock()` takes on SQLite (Kysely's Migrator runs take it, see
// packages/kysely/test/integration/migrator-sqlite-lock.test.ts for the runs and a holder process that dies).
describe('SQLite exclusive lock next to the database (DatabasePool.exclusiveLock)', () => {
  let target: Awaited<ReturnType<typeof createTempSqlite>>
  let pool: DatabasePool

  beforeEach(async () => {
    target = await createTempSqlite({ fileName: 'locked.db' })
    pool = await PoolFactory.create(target.url, { max: 1 })
  })

  afterEach(async () => {
    await pool.close()
    await target.remove()
  })

  it('keeps a second holder in this process out until the first releases, then lets it in', async () => {
    const first = await pool.exclusiveLock('run', 1_000)
    expect(first).toBeDefined()
    const err = await pool.exclusiveLock('run', 30).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code: 'BUSY', retryable: true, detail: { lockFile: `${target.path}-run.lock`, timeoutMs: 30 } })
    first!.release()
    first!.release() // idempotent
    const second = await pool.exclusiveLock('run', 1_000)
    second!.release()
  })

  it('locks of two names, or a lock and the database itself, do not exclude each other', async () => {
    const a = await pool.exclusiveLock('a', 100)
    const b = await pool.exclusiveLock('b', 100)
    await pool.transaction((tx) => tx.query('create table t (x integer)'))
    a!.release()
    b!.release()
  })

  it('a pool reaching the file through a symbolic link locks the same file (the link resolved)', async () => {
    await pool.query('create table t (x integer)') // the file exists before the link to it
    const link = join(target.dir, 'link.db')
    symlinkSync(target.path, link)
    const other = await PoolFactory.create(`sqlite:${link}`, { max: 1 })
    try {
      const held = await pool.exclusiveLock('run', 1_000)
      await expect(other.exclusiveLock('run', 30)).rejects.toMatchObject({ code: 'BUSY', detail: { lockFile: `${target.path}-run.lock` } })
      held!.release()
      ;(await other.exclusiveLock('run', 1_000))!.release()
    } finally {
      await other.close()
    }
  })

  it('refuses a name that cannot be part of a file name (CONFIGURATION), before creating anything', async () => {
    await expect(lockFileNextTo(target.path, '../x', 10)).rejects.toMatchObject({ code: 'CONFIGURATION' })
  })

  it('an in-memory pool takes none (nothing else can open its database)', async () => {
    const memory = await PoolFactory.create('sqlite::memory:', { max: 1 })
    try {
      const a = await memory.exclusiveLock('run', 10)
      const b = await memory.exclusiveLock('run', 10)
      a!.release()
      b!.release()
    } finally {
      await memory.close()
    }
  })

  it('a lock file that cannot be created or opened is CONFIGURATION naming it and the reason (not CONNECTION_FAILED): never taken as unlocked', async () => {
    mkdirSync(`${target.path}-run.lock`)
    const err = await pool.exclusiveLock('run', 100).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({
      code: 'CONFIGURATION',
      retryable: false,
      detail: { lockFile: `${target.path}-run.lock`, reason: expect.any(String) },
    })
    expect(String((err as Error).message)).toMatch(/run\.lock cannot be created or opened/)
  })

  it('a readonly pool takes none and makes no file (it writes nothing; a read-only deployment may not write the directory)', async () => {
    const readonly = createSqlitePool(target.path, { max: 1 }, { readonly: true })
    try {
      const lock = await readonly.exclusiveLock('ro', 100)
      lock!.release()
      expect(existsSync(`${target.path}-ro.lock`)).toBe(false)
    } finally {
      await readonly.close()
    }
  })

  // close() did not end a wait for the lock: it resolved at once, the wait went on to its timeout
  // (60 s for Kysely's Migrator) and kept the process alive, then failed (review r5 item 5)
  it('close() ends a wait for the lock at once with POOL_CLOSED, counted as an aborted waiter', async () => {
    const holder = await pool.exclusiveLock('run', 1_000)
    const other = await PoolFactory.create(target.url, { max: 1 })
    const started = performance.now()
    const waiting = other.exclusiveLock('run', 20_000).then(
      () => 'taken',
      (e: unknown) => e,
    )
    await new Promise((resolve) => setTimeout(resolve, 100))
    const report = await other.close({ timeoutMs: 5_000 })
    expect(await waiting).toMatchObject({ code: 'POOL_CLOSED' })
    expect(performance.now() - started).toBeLessThan(2_000)
    expect(report).toMatchObject({ abortedWaiters: 1, timedOut: false })
    // the waiter took nothing: the holder's release lets a new one in at once
    holder!.release()
    const next = await pool.exclusiveLock('run', 100)
    next!.release()
  })

  it('a closed pool refuses with POOL_CLOSED', async () => {
    const other = await PoolFactory.create(target.url, { max: 1 })
    await other.close()
    await expect(other.exclusiveLock('run', 10)).rejects.toMatchObject({ code: 'POOL_CLOSED' })
  })
})
