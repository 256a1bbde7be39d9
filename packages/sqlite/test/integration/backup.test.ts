import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import {
  BackupManager,
  copyDatabaseFile,
  createSqlitePool,
  restoreDatabaseFile,
  type BackupProgress,
  type SqliteDatabase,
} from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { sleep, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

async function seeded(rows: number, options: Record<string, unknown> = {}): Promise<{ pool: DatabasePool<SqliteDatabase>; path: string }> {
  const path = tmp.file(`backup-src-${++n}.db`)
  const pool = createSqlitePool(path, { name: `backup-${n}`, acquireTimeoutMs: 20_000 }, options)
  await pool.query('create table item (id integer primary key, tx integer not null, part text not null, payload text not null)')
  await pool.transaction(async (tx) => {
    for (let i = 0; i < rows; i++) await tx.query(sql`insert into item (tx, part, payload) values (${0}, ${'seed'}, ${'x'.repeat(200)})`)
  })
  return { pool, path }
}

function readBackup(file: string): { ids: Set<number>; txParts: Map<number, string>; integrity: string } {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    const ids = new Set((db.prepare('select id from item').all() as { id: number }[]).map((r) => r.id))
    const txParts = new Map(
      (
        db.prepare("select tx, group_concat(part, '') as parts from item where tx > 0 group by tx").all() as { tx: number; parts: string }[]
      ).map((r) => [r.tx, r.parts]),
    )
    const integrity = String(db.pragma('integrity_check', { simple: true }))
    return { ids, txParts, integrity }
  } finally {
    db.close()
  }
}

describe('BackupManager', () => {
  it.each(['backup', 'vacuum'] as const)(
    'a %s taken while writers run is valid and holds every row committed before it started',
    async (method) => {
      const { pool } = await seeded(15_000)
      const progress: BackupProgress[] = []
      const backups = new BackupManager(pool, {
        directory: tmp.file(`out-${method}`),
        method,
        pagesPerStep: 64,
        onProgress: (p) => progress.push(p),
      })
      const committed: number[] = []
      const errors: unknown[] = []
      let writing = true
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; writing; i++) {
          const txId = w * 100_000 + i + 1
          try {
            const ids = await pool.transaction(async (tx) => {
              const a = await tx.query(sql`insert into item (tx, part, payload) values (${txId}, ${'a'}, ${'w'})`)
              await sleep(0)
              const b = await tx.query(sql`insert into item (tx, part, payload) values (${txId}, ${'b'}, ${'w'})`)
              return [Number(a.lastInsertRowid), Number(b.lastInsertRowid)]
            })
            committed.push(...ids)
          } catch (err) {
            errors.push(err)
          }
        }
      })
      await sleep(30)
      const before = new Set(committed)
      const beforeCount = Number((await pool.query<{ n: number }>('select count(*) as n from item')).rows[0]?.n)
      const result = await backups.backup()
      await sleep(20)
      writing = false
      await Promise.all(writers)
      try {
        expect(errors).toEqual([])
        expect(result.method).toBe(method)
        expect(result.pages).toBeGreaterThan(100)
        expect(result.file).toMatch(/backup-src-\d+-\d{8}T\d{9}Z\.db$/)
        const content = readBackup(result.file)
        expect(content.integrity).toBe('ok')
        for (const id of before) expect(content.ids.has(id)).toBe(true)
        expect(content.ids.size).toBeGreaterThanOrEqual(beforeCount)
        // every transaction is in the copy whole or not at all
        for (const parts of content.txParts.values()) expect(parts.split('').sort().join('')).toBe('ab')
        expect(progress.map((p) => p.phase)).toEqual(expect.arrayContaining(['verify', 'done']))
        expect(result.copyMode).toBe(method === 'backup' ? 'snapshot-steps' : 'vacuum')
        if (method === 'backup') {
          const copies = progress.filter((p) => p.phase === 'copy')
          expect(copies.length).toBeGreaterThan(3) // copied in steps, the event loop free between them
          expect(copies.at(-1)?.remainingPages).toBe(0)
        }
        console.info(
          `${method}: ${result.pages} pages (${result.bytes} bytes) copy ${result.copyMs} ms, verify ${result.verifyMs} ms, total ${result.durationMs} ms, ${committed.length - before.size} rows committed by writers meanwhile or after`,
        )
      } finally {
        await pool.close()
      }
    },
    60_000,
  )

  it('compresses with gzip, verifies, and restores a round trip from it', async () => {
    const { pool, path } = await seeded(500)
    const backups = new BackupManager(pool, { directory: tmp.file('out-gzip'), gzip: true })
    const taken = await backups.backup()
    expect(taken.file).toMatch(/\.db\.gz$/)
    expect(taken.gzip).toBe(true)
    expect(await backups.verify(taken.file)).toEqual({ pages: taken.pages })

    await pool.query(sql`delete from item where id <= ${400}`)
    await pool.query(sql`insert into item (tx, part, payload) values (${9}, ${'after'}, ${'y'})`)
    expect((await pool.query('select count(*) as n from item')).rows).toEqual([{ n: 101 }])

    const restored = await backups.restore(taken.file)
    try {
      expect(pool.isOpen).toBe(false)
      await expect(pool.query('select 1')).rejects.toMatchObject({ code: 'POOL_CLOSED' })
      expect(backups.pool).toBe(restored)
      expect((await restored.query('select count(*) as n from item')).rows).toEqual([{ n: 500 }])
      expect((await restored.query("select count(*) as n from item where part = 'after'")).rows).toEqual([{ n: 0 }])
      // the restored database is writable, in WAL again, with readers
      await restored.transaction((tx) => tx.query(sql`insert into item (tx, part, payload) values (${1}, ${'new'}, ${'z'})`))
      expect(await restored.withConnection(async (c) => c.native.pragma('journal_mode', { simple: true }))).toBe('wal')
      expect(existsSync(path)).toBe(true)
    } finally {
      await restored.close()
    }
  }, 30_000)

  it('restores a plain backup and removes stale -wal/-shm files', async () => {
    const { pool, path } = await seeded(50)
    const backups = new BackupManager(pool, { directory: tmp.file('out-plain') })
    const taken = await backups.backup()
    await pool.query('delete from item')
    const restored = await backups.restore(taken.file)
    try {
      expect((await restored.query('select count(*) as n from item')).rows).toEqual([{ n: 50 }])
      expect(readdirSync(tmp.dir).filter((f) => f.includes('.tmp-'))).toEqual([])
    } finally {
      await restored.close()
    }
    expect(existsSync(`${path}-wal`)).toBe(false)
  })

  it('restoreDatabaseFile removes a stale -wal left by a crash, which would otherwise be replayed onto the restored file', async () => {
    const { pool, path } = await seeded(30)
    const taken = await new BackupManager(pool, { directory: tmp.file('out-stale') }).backup()
    await pool.close()
    // a valid WAL of the old file, full of frames the backup does not have
    const raw = new Database(path)
    raw.pragma('wal_autocheckpoint = 0')
    raw.prepare('delete from item where id <= 20').run()
    raw.prepare("insert into item (tx, part, payload) values (7, 'stale', 'frames')").run()
    const stale = readFileSync(`${path}-wal`)
    raw.close()
    writeFileSync(`${path}-wal`, stale)
    await restoreDatabaseFile(path, taken.file)
    expect(existsSync(`${path}-wal`)).toBe(false)
    const reopened = createSqlitePool(path)
    try {
      expect((await reopened.query('select count(*) as n from item')).rows).toEqual([{ n: 30 }])
      expect((await reopened.backendChecks({ deep: true })).find((c) => c.name === 'integrity')?.status).toBe('healthy')
    } finally {
      await reopened.close()
    }
  })

  it('refuses a corrupt backup before touching the database', async () => {
    const { pool } = await seeded(20)
    const backups = new BackupManager(pool, { directory: tmp.file('out-bad') })
    const bogus = tmp.file('bogus.db')
    writeFileSync(bogus, Buffer.alloc(8192, 7))
    try {
      const err = await backups.restore(bogus).catch((e: unknown) => e)
      expect(DatabaseError.is(err, 'BACKUP_FAILED')).toBe(true)
      expect((err as Error).message).toContain(bogus)
      expect(pool.isOpen).toBe(true)
      expect(backups.pool).toBe(pool)
      expect((await pool.query('select count(*) as n from item')).rows).toEqual([{ n: 20 }])
      await expect(backups.verify(bogus)).rejects.toMatchObject({ code: 'BACKUP_FAILED' })
      await expect(backups.restore(tmp.file('missing.db'))).rejects.toMatchObject({ code: 'BACKUP_FAILED' })
    } finally {
      await pool.close()
    }
  })

  it('backs up an in-memory database', async () => {
    const pool = createSqlitePool(':memory:')
    try {
      await pool.query('create table t (x integer)')
      await pool.query(sql`insert into t values (${42})`)
      const taken = await new BackupManager(pool, { directory: tmp.file('out-memory') }).backup()
      expect(taken.file).toMatch(/memory-\d{8}T\d{9}Z\.db$/)
      expect(taken.copyMode).toBe('serialize') // one copy in memory under the lease, the file written after
      const db = new Database(taken.file, { readonly: true })
      expect(db.prepare('select x from t').all()).toEqual([{ x: 42 }])
      db.close()
    } finally {
      await pool.close()
    }
  })

  it('validates its options', () => {
    const pool = createSqlitePool(':memory:')
    try {
      expect(() => new BackupManager(pool, { directory: '' })).toThrow(/backup\.directory/)
      expect(() => new BackupManager(pool, { directory: 'x', method: 'copy' as never })).toThrow(/backup\.method/)
      expect(() => new BackupManager(pool, { directory: 'x', retention: { keepLast: 0 } })).toThrow(/backup\.retention\.keepLast/)
      expect(() => new BackupManager(pool, { directory: 'x', retention: { keepDays: -1 } })).toThrow(/backup\.retention\.keepDays/)
      expect(() => new BackupManager(pool, { directory: 'x', retention: {} })).toThrow(/backup\.retention/)
      expect(() => new BackupManager(pool, { directory: 'x', prefix: '../evil' })).toThrow(/backup\.prefix/)
      expect(() => new BackupManager(pool, { directory: 'x', gzipp: true } as never)).toThrow(/backup\.gzipp/)
      for (const timeoutMs of [0, 1.5, -1, '5000', 2 ** 31])
        expect(() => new BackupManager(pool, { directory: 'x', timeoutMs } as never)).toThrow(/backup\.timeoutMs/)
    } finally {
      void pool.close()
    }
  })
})

describe('copyDatabaseFile on a locked rollback-journal file', () => {
  it('a first step refused with SQLITE_BUSY (another process holds the lock) is copied again once the lock is gone, never reported done with 0 pages', async () => {
    const source = tmp.file('locked-source.db')
    const seed = new Database(source)
    seed.pragma('journal_mode = DELETE')
    seed.exec('create table item (id integer primary key, payload text not null)')
    const insert = seed.prepare('insert into item (payload) values (?)')
    seed.transaction(() => {
      for (let i = 0; i < 100; i++) insert.run('x'.repeat(200))
    })()
    seed.close()
    const other = new Database(source, { timeout: 0 })
    const target = tmp.file('locked-copy.db')
    try {
      const copying = copyDatabaseFile({
        source,
        target,
        pagesPerStep: 16,
        timeoutMs: 10_000,
        onStep: () => undefined,
        abortReason: () => undefined,
      })
      // the copy has read the source's settings; its first backup step comes after this
      other.exec('BEGIN EXCLUSIVE')
      setTimeout(() => other.exec('COMMIT'), 50)
      const result = await copying
      expect(result.totalPages).toBeGreaterThan(1)
      const copy = new Database(target, { readonly: true })
      try {
        expect((copy.prepare('select count(*) as n from item').get() as { n: number }).n).toBe(100)
      } finally {
        copy.close()
      }
    } finally {
      if (other.inTransaction) other.exec('COMMIT')
      other.close()
    }
  })
})

describe('per-call options of backups', () => {
  it('are refused with CONFIGURATION naming them before anything runs', async () => {
    const { pool, path } = await seeded(10)
    const directory = tmp.file('out-call-options')
    const backups = new BackupManager(pool, { directory })
    const configuration = (option: string) =>
      expect.objectContaining({ code: 'CONFIGURATION', message: expect.stringMatching(new RegExp(`^invalid ${option} `)) })
    try {
      await expect(backups.restore(path, { closeTimeoutMs: -1 })).rejects.toEqual(configuration('restore.closeTimeoutMs'))
      await expect(backups.restore(path, { bogus: 1 } as never)).rejects.toEqual(configuration('restore.bogus'))
      await expect(backups.restore(42 as never)).rejects.toEqual(configuration('restore.file'))
      await expect(backups.verify('')).rejects.toEqual(configuration('verify.file'))
      // arguments the calls do not take (they used to be ignored)
      const loose = backups as unknown as { backup(...a: unknown[]): Promise<unknown>; verify(...a: unknown[]): Promise<unknown> }
      await expect(loose.backup({ timeoutMs: 5 })).rejects.toEqual(configuration('backup argument'))
      await expect(loose.verify(path, { timeoutMs: 5 })).rejects.toEqual(configuration('verify argument'))
      expect(existsSync(directory)).toBe(false)
      await expect(backups.prune('yesterday' as never)).rejects.toEqual(configuration('prune.now'))
      await expect(restoreDatabaseFile(undefined as never, path)).rejects.toEqual(configuration('restoreDatabaseFile.target'))
      const copy = {
        source: path,
        target: tmp.file('copy.db'),
        pagesPerStep: 16,
        timeoutMs: undefined,
        onStep: () => undefined,
        abortReason: () => undefined,
      }
      await expect(copyDatabaseFile({ ...copy, pagesPerStep: 0 })).rejects.toEqual(configuration('copyDatabaseFile.pagesPerStep'))
      await expect(copyDatabaseFile({ ...copy, timeoutMs: -5 })).rejects.toEqual(configuration('copyDatabaseFile.timeoutMs'))
      await expect(copyDatabaseFile({ ...copy, bogus: 1 } as never)).rejects.toEqual(configuration('copyDatabaseFile.bogus'))
      expect(existsSync(tmp.file('copy.db'))).toBe(false)
      expect(pool.isOpen).toBe(true)
      expect(backups.pool).toBe(pool)
      expect((await pool.query('select count(*) as n from item')).rows).toEqual([{ n: 10 }])
    } finally {
      await pool.close()
    }
  })
})

describe('retention across databases sharing a directory', () => {
  it('a/app.db and b/app.db with keepLast 1 keep their own newest backup each (the old code deleted the other backups)', async () => {
    const dir = tmp.file('shared-backups')
    const pools = ['a', 'b'].map((name) => {
      mkdirSync(tmp.file(name), { recursive: true })
      return createSqlitePool(tmp.file(`${name}/app.db`), { name })
    })
    try {
      for (const pool of pools) await pool.query('create table t (x integer)')
      const [a, b] = pools.map(
        (pool) => new BackupManager(pool as DatabasePool<SqliteDatabase>, { directory: dir, retention: { keepLast: 1 } }),
      )
      const a1 = await a!.backup()
      const b1 = await b!.backup()
      expect(b1.deleted).toEqual([])
      expect(existsSync(a1.file)).toBe(true)
      const a2 = await a!.backup()
      expect(a2.deleted).toEqual([a1.file])
      expect(existsSync(b1.file)).toBe(true)
      const b2 = await b!.backup()
      expect(b2.deleted).toEqual([b1.file])
      expect(existsSync(a2.file)).toBe(true)
      expect(JSON.parse(readFileSync(`${a2.file}.json`, 'utf8'))).toEqual({
        source: expect.stringMatching(/[/\\]a[/\\]app\.db$/),
        host: expect.stringMatching(/^[0-9a-f]{8}$/),
        sequence: 2,
        bytes: a2.bytes,
      })
      expect(readdirSync(dir).sort()).toEqual(
        [a2.file, `${a2.file}.json`, b2.file, `${b2.file}.json`].map((f) => f.slice(dir.length + 1)).sort(),
      )
    } finally {
      for (const pool of pools) await pool.close()
    }
  })
})

describe('retention', () => {
  const day = 86_400_000
  const now = new Date('2025-06-15T12:00:00.000Z')

  function stampOf(date: Date): string {
    return date.toISOString().replace(/[-:.]/g, '')
  }

  function fixture(name: string, ages: number[]): { backups: BackupManager; files: string[]; close(): Promise<unknown> } {
    const dir = tmp.file(name)
    const pool = createSqlitePool(':memory:')
    mkdirSync(dir, { recursive: true })
    const files = ages.map((ageDays) => {
      const file = `${dir}/app-${stampOf(new Date(now.getTime() - ageDays * day))}.db`
      writeFileSync(file, 'not checked by prune')
      // the record naming the database it was taken from: the in-memory one below
      writeFileSync(`${file}.json`, JSON.stringify({ source: ':memory:' }))
      return file
    })
    // files that are not ours (other prefix, temp files, other names) are never touched
    for (const other of ['other-20200101T000000000Z.db', '.app-20200101T000000000Z.db.tmp-1-abcd', 'app.db', 'notes.txt'])
      writeFileSync(`${dir}/${other}`, '')
    return {
      backups: new BackupManager(pool, { directory: dir, prefix: 'app', retention: policyFor(name) }),
      files,
      close: () => pool.close(),
    }
  }

  const policies: Record<string, { keepLast?: number; keepDays?: number }> = {
    last: { keepLast: 3 },
    days: { keepDays: 7 },
    both: { keepLast: 2, keepDays: 7 },
    old: { keepDays: 1 },
  }
  function policyFor(name: string): { keepLast?: number; keepDays?: number } {
    return policies[name] ?? {}
  }

  it('keepLast keeps the newest N', async () => {
    const f = fixture('last', [0.5, 1, 2, 3, 10, 30])
    try {
      const deleted = await f.backups.prune(now)
      expect(deleted.sort()).toEqual([f.files[3], f.files[4], f.files[5]].sort())
      expect((await f.backups.list()).map((b) => b.file)).toEqual(f.files.slice(0, 3))
      expect(readdirSync(f.backups.directory)).toEqual(expect.arrayContaining(['other-20200101T000000000Z.db', 'app.db', 'notes.txt']))
    } finally {
      await f.close()
    }
  })

  it('keepDays keeps those younger than N days', async () => {
    const f = fixture('days', [0.5, 6.9, 7.1, 30])
    try {
      expect((await f.backups.prune(now)).sort()).toEqual([f.files[2], f.files[3]].sort())
    } finally {
      await f.close()
    }
  })

  it('with both, keeps what either rule keeps', async () => {
    const f = fixture('both', [8, 9, 10, 11])
    try {
      expect((await f.backups.prune(now)).sort()).toEqual([f.files[2], f.files[3]].sort())
    } finally {
      await f.close()
    }
  })

  it('counts and deletes only backups recorded as this database, never those of another database or unrecorded ones', async () => {
    const f = fixture('last', [0.5, 1, 2, 3])
    const dir = f.backups.directory
    const foreign = [0.1, 0.2, 5].map((ageDays) => `${dir}/app-${stampOf(new Date(now.getTime() - ageDays * day))}.db`)
    for (const file of foreign) writeFileSync(file, 'of another database')
    writeFileSync(`${foreign[0] as string}.json`, JSON.stringify({ source: '/elsewhere/b/app.db' }))
    writeFileSync(`${foreign[1] as string}.json`, 'not json')
    try {
      // keepLast 3 of this database's four; the newer foreign ones neither count nor go
      expect(await f.backups.prune(now)).toEqual([f.files[3]])
      expect(existsSync(`${f.files[3] as string}.json`)).toBe(false)
      for (const file of foreign) expect(existsSync(file)).toBe(true)
      const sources = new Map((await f.backups.list()).map((b) => [b.file, b.source]))
      expect(sources.get(foreign[0] as string)).toBe('/elsewhere/b/app.db')
      expect(sources.get(foreign[2] as string)).toBeUndefined()
      expect(sources.get(f.files[0] as string)).toBe(':memory:')
    } finally {
      await f.close()
    }
  })

  it('never deletes the newest backup, however old', async () => {
    const f = fixture('old', [40, 50, 60])
    try {
      expect((await f.backups.prune(now)).sort()).toEqual([f.files[1], f.files[2]].sort())
      expect((await f.backups.list()).map((b) => b.file)).toEqual([f.files[0]])
    } finally {
      await f.close()
    }
  })
})

describe('scheduled backups', () => {
  it('run on an unref’d timer, apply retention, and stop', async () => {
    const { pool } = await seeded(10)
    const errors: unknown[] = []
    const backups = new BackupManager(pool, {
      directory: tmp.file('out-scheduled'),
      retention: { keepLast: 2 },
      onError: (e) => errors.push(e),
    })
    try {
      backups.start(40)
      expect(() => backups.start(40)).toThrow(/already scheduled/)
      const deadline = Date.now() + 10_000
      let taken = 0
      while (Date.now() < deadline) {
        taken = (await backups.list()).length
        if (taken >= 2) break
        await sleep(20)
      }
      expect(taken).toBe(2)
      await sleep(200) // more runs happen, retention keeps two
      await backups.stop()
      expect(backups.scheduled).toBe(false)
      const settled = (await backups.list()).map((b) => b.file)
      expect(settled).toHaveLength(2)
      await sleep(150)
      expect((await backups.list()).map((b) => b.file)).toEqual(settled)
      expect(errors).toEqual([])
    } finally {
      await backups.stop()
      await pool.close()
    }
  })
})
