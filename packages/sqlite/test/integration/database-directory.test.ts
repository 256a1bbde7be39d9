import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createSqlitePool } from '@dbpool/sqlite'
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
