import { mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs'
import type * as FsPromises from 'node:fs/promises'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const RealDate = Date
// the module object itself (an import's namespace copy cannot be spied on): the code under test calls its link
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fsPromises = require('node:fs/promises') as typeof FsPromises

/** Runs `task` with the clock stopped at `ms` (`new Date()` and `Date.now()`): every backup name is the same. */
async function withClockAt<T>(ms: number, task: () => Promise<T>): Promise<T> {
  globalThis.Date = class extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(ms)
      else super(...(args as [number]))
    }
    static override now(): number {
      return ms
    }
  } as DateConstructor
  try {
    return await task()
  } finally {
    globalThis.Date = RealDate
  }
}

const AT = RealDate.UTC(2026, 0, 2, 3, 4, 5, 6)
const NAME = 'app-20260102T030405006Z'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

/** The value stored in a backup (or database) file. */
function valueIn(file: string): string {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    return (db.prepare('select v from t').get() as { v: string }).v
  } finally {
    db.close()
  }
}

async function databaseHolding(dir: string, value: string) {
  const pool = createSqlitePool(tmp.file(`${dir}/app.db`), { name: dir })
  await pool.query('create table t (v text)')
  await pool.query('insert into t values (?)', [value])
  return pool
}

describe('the final name of a backup', () => {
  it('two managers writing a backup in the same millisecond each keep their own: neither replaces the other', async () => {
    const a = await databaseHolding('a', 'from a')
    const b = await databaseHolding('b', 'from b')
    try {
      const directory = tmp.file('bk-two')
      const [ra, rb] = await withClockAt(AT, () =>
        Promise.all([new BackupManager(a, { directory }).backup(), new BackupManager(b, { directory }).backup()]),
      )
      expect(ra.file).not.toBe(rb.file)
      expect(valueIn(ra.file)).toBe('from a')
      expect(valueIn(rb.file)).toBe('from b')
      // each record names its own database
      expect(JSON.parse(readFileSync(`${ra.file}.json`, 'utf8')).source).toBe(realpathSync(tmp.file('a/app.db')))
      expect(JSON.parse(readFileSync(`${rb.file}.json`, 'utf8')).source).toBe(realpathSync(tmp.file('b/app.db')))
      expect(readdirSync(directory).sort()).toEqual([`${NAME}-1.db`, `${NAME}-1.db.json`, `${NAME}.db`, `${NAME}.db.json`])
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('a file put at the name while the backup was being taken is never replaced: the backup takes the next name', async () => {
    const a = await databaseHolding('c', 'from c')
    try {
      const directory = tmp.file('bk-taken')
      const taken = join(directory, `${NAME}.db`)
      const backups = new BackupManager(a, {
        directory,
        onProgress: (p) => {
          // after the name was chosen, before the backup gets it: another process's backup, a user's file
          if (p.phase === 'verify') writeFileSync(taken, 'not to be replaced')
        },
      })
      const result = await withClockAt(AT, () => backups.backup())
      expect(readFileSync(taken, 'utf8')).toBe('not to be replaced')
      expect(result.file).toBe(join(directory, `${NAME}-1.db`))
      expect(valueIn(result.file)).toBe('from c')
    } finally {
      await a.close()
    }
  })

  it("a record put at the name (another run's backup in progress) is never replaced: the backup takes the next name", async () => {
    const a = await databaseHolding('d', 'from d')
    try {
      const directory = tmp.file('bk-record')
      const theirs = join(directory, `${NAME}.db.json`)
      const record = JSON.stringify({ source: '/elsewhere/app.db', host: '00000000', sequence: 7 })
      const backups = new BackupManager(a, {
        directory,
        onProgress: (p) => {
          if (p.phase === 'verify') writeFileSync(theirs, record)
        },
      })
      const result = await withClockAt(AT, () => backups.backup())
      expect(readFileSync(theirs, 'utf8')).toBe(record)
      expect(result.file).toBe(join(directory, `${NAME}-1.db`))
      expect(JSON.parse(readFileSync(`${result.file}.json`, 'utf8')).source).toBe(realpathSync(tmp.file('d/app.db')))
    } finally {
      await a.close()
    }
  })

  it('on a filesystem without hard links (link fails with EPERM) a taken name is still never replaced', async () => {
    const a = await databaseHolding('e', 'from e')
    const b = await databaseHolding('f', 'from f')
    const noLinks = jest.spyOn(fsPromises, 'link').mockImplementation(() => {
      throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' })
    })
    try {
      const directory = tmp.file('bk-nolinks')
      const taken = join(directory, `${NAME}-2.db`)
      mkdirSync(directory)
      writeFileSync(taken, 'not to be replaced')
      const [ra, rb] = await withClockAt(AT, () =>
        Promise.all([new BackupManager(a, { directory, gzip: true }).backup(), new BackupManager(b, { directory }).backup()]),
      )
      const rc = await withClockAt(AT, () => new BackupManager(b, { directory }).backup())
      expect(noLinks).toHaveBeenCalled()
      expect(readFileSync(taken, 'utf8')).toBe('not to be replaced')
      expect(ra.file).toBe(join(directory, `${NAME}.db.gz`))
      expect(valueIn(rb.file)).toBe('from f')
      expect(rb.file).toBe(join(directory, `${NAME}.db`))
      expect(rc.file).toBe(join(directory, `${NAME}-1.db`))
      expect(valueIn(rc.file)).toBe('from f')
      expect(readdirSync(directory).filter((name) => name.startsWith('.'))).toEqual([])
    } finally {
      noLinks.mockRestore()
      await a.close()
      await b.close()
    }
  })

  it('a link answered EEXIST though it was made (NFS, a retransmitted request) counts as placed: no stray second name', async () => {
    const a = await databaseHolding('g', 'from g')
    const link = fsPromises.link
    const retransmitted = jest.spyOn(fsPromises, 'link').mockImplementation(async (from, to) => {
      await link(from, to)
      throw Object.assign(new Error(`EEXIST: file already exists, link '${String(from)}' -> '${String(to)}'`), { code: 'EEXIST' })
    })
    try {
      const directory = tmp.file('bk-nfs')
      const result = await withClockAt(AT, () => new BackupManager(a, { directory }).backup())
      expect(retransmitted).toHaveBeenCalled()
      expect(result.file).toBe(join(directory, `${NAME}.db`))
      expect(valueIn(result.file)).toBe('from g')
      expect(readdirSync(directory).sort()).toEqual([`${NAME}.db`, `${NAME}.db.json`])
    } finally {
      retransmitted.mockRestore()
      await a.close()
    }
  })
})
