import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { PoolFactory } from '@dbpool/core'
import { copyDatabaseFile, createSqlitePool, verifyDatabaseFile } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// The database's missing directories are made one level at a time: Node's mkdirSync({ recursive: true })
// loops forever, spinning a core, where a filesystem answers ENOENT to a directory whose parent exists.
const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe("a database file's directory", () => {
  it('missing levels are made', async () => {
    const path = join(tmp.dir, 'a', 'b', 'c', 'app.db')
    const pool = createSqlitePool(path, { name: 'levels' })
    try {
      expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }])
      expect(existsSync(path)).toBe(true)
    } finally {
      await pool.close()
    }
  })

  const linux = existsSync('/proc/self')
  ;(linux ? it : it.skip)(
    'under /proc (ENOENT for a level whose parent exists): CONNECTION_FAILED naming it, not a spinning mkdir',
    async () => {
      const pool = createSqlitePool('/proc/dbpool-no-such/app.db', { name: 'proc' })
      try {
        await expect(pool.query('select 1')).rejects.toMatchObject({
          code: 'CONNECTION_FAILED',
          message: expect.stringContaining('ENOENT'),
        })
      } finally {
        await pool.close()
      }
    },
  )
})

// better-sqlite3 trims the path and SQLite drops a trailing "/" or "." segment: the pool checked one
// file and SQLite opened another ("./data/" made a database FILE "data", every statement ENOTDIR;
// "./app.db\n" opened app.db, every statement "the file was deleted while it was being opened").
describe('a path SQLite or better-sqlite3 would rewrite is CONFIGURATION naming it, and nothing is created', () => {
  // built as strings: path.join would normalise the very endings under test
  const base = (): string => `${tmp.dir}/rewrite`
  it.each([
    ['a trailing "/"', () => `${base()}/newdir/`],
    ['a trailing "/."', () => `${base()}/dir2/.`],
    ['a trailing "/.."', () => `${base()}/dir3/..`],
    ['a trailing blank', () => `${base()}/space.db `],
    ['a trailing newline (a DATABASE_URL read from a file)', () => `${base()}/line.db\n`],
    ['a leading blank', () => ` ${base()}/lead.db`],
    ['a control character', () => `${base()}/tab\t.db`],
  ])('%s', async (_label, pathOf) => {
    const path = pathOf()
    expect(() => createSqlitePool(path)).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION', detail: expect.objectContaining({ option: 'sqlite.path' }) }),
    )
    await expect(PoolFactory.create(`sqlite:${path}`, { min: 0 })).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringContaining(JSON.stringify(path)),
    })
    expect(existsSync(join(tmp.dir, 'rewrite'))).toBe(false)
  })

  it('the backup functions refuse such a path too', async () => {
    const source = join(tmp.dir, 'src.db ')
    await expect(
      copyDatabaseFile({
        source,
        target: join(tmp.dir, 'copy.db'),
        pagesPerStep: 16,
        timeoutMs: 10_000,
        onStep: () => undefined,
        abortReason: () => undefined,
      }),
    ).rejects.toMatchObject({
      code: 'CONFIGURATION',
      detail: expect.objectContaining({ option: 'copyDatabaseFile.source' }),
    })
    expect(() => verifyDatabaseFile(join(tmp.dir, 'dir/'))).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }))
  })

  it('"." and ".." inside the path and "//" are fine: the OS resolves them as SQLite does', async () => {
    mkdirSync(join(tmp.dir, 'ok', 'x'), { recursive: true })
    const pool = createSqlitePool(`${tmp.dir}/ok/./x/../app.db`, { name: 'dots' })
    try {
      expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    } finally {
      await pool.close()
    }
    const slashes = createSqlitePool(`${tmp.dir}//ok//app.db`, { name: 'slashes' })
    try {
      expect((await slashes.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    } finally {
      await slashes.close()
    }
  })
})
