import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

jest.setTimeout(60_000)

const PACKAGES = resolve(__dirname, '..', '..', '..')

// review r3 item 9: `url` was `sqlite:${path}` unescaped. A child process (built packages): jest's
// sandbox keeps its own copy of process.env, which os.tmpdir() does not read.
describe('createTempSqlite() under a TMPDIR holding URL characters', () => {
  it.each(['r3%41dir', 'r3 tmp%41?#dir'])('its url opens its path (TMPDIR .../%s)', async (name) => {
    const parent = await mkdtemp(join(tmpdir(), 'dbpool-tmpdir-'))
    try {
      await mkdir(join(parent, name))
      const script = `
        const { createTempSqlite } = require(${JSON.stringify(join(PACKAGES, 'testing'))})
        const { PoolFactory } = require(${JSON.stringify(join(PACKAGES, 'core'))})
        ;(async () => {
          const file = await createTempSqlite()
          const pool = await PoolFactory.create(file.url)
          await pool.query('create table t (x integer)')
          await pool.close()
          console.log(JSON.stringify({ path: file.path, dir: file.dir }))
        })().catch((err) => { console.log(JSON.stringify({ error: String(err && err.message) })); process.exitCode = 1 })`
      let out: string
      try {
        out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, TMPDIR: join(parent, name) }, encoding: 'utf8' })
      } catch (err) {
        out = String((err as { stdout?: string }).stdout)
      }
      const result = JSON.parse(out.trim().split('\n').at(-1) as string) as { path?: string; dir?: string; error?: string }
      expect(result.error).toBeUndefined()
      expect(existsSync(result.path as string)).toBe(true)
      // nothing outside the temp directory
      expect(existsSync(join(parent, 'r3Adir'))).toBe(false)
      expect(existsSync(join(parent, 'r3 tmpA'))).toBe(false)
    } finally {
      await rm(parent, { recursive: true, force: true })
    }
  })
})
