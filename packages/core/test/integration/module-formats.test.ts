import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

// The built packages (npm test builds them first: `pretest` runs `tsc -b`) load from an ES module and
// from CommonJS, and PoolFactory's on-demand import of a backend works from both.
const root = join(__dirname, '..', '..', '..', '..')
const app = join(root, 'examples', 'finance') // a workspace that depends on the packages

function run(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: app, encoding: 'utf8', timeout: 30_000 })
}

beforeAll(() => {
  for (const pkg of ['core', 'sqlite']) {
    if (!existsSync(join(root, 'packages', pkg, 'dist', 'index.js')))
      throw new Error(`packages/${pkg}/dist is missing: run \`npm run build\` first`)
  }
})

it('loads from an ES module, named exports included, and creates a pool through PoolFactory', () => {
  const out = run([
    '--input-type=module',
    '-e',
    `import { PoolFactory, sql, DatabaseError } from '@dbpool/core'
     import { FakeConnectionManager } from '@dbpool/core/testing'
     const pool = await PoolFactory.create('sqlite::memory:')
     const { rows } = await pool.query(sql\`select \${41} + 1 as n\`)
     await pool.close()
     console.log(JSON.stringify({ n: rows[0].n, error: typeof DatabaseError, fake: typeof FakeConnectionManager }))`,
  ])
  expect(JSON.parse(out)).toEqual({ n: 42, error: 'function', fake: 'function' })
})

it('loads from CommonJS', () => {
  const out = run([
    '-e',
    `const { PoolFactory, sql } = require('@dbpool/core')
     PoolFactory.create('sqlite::memory:').then(async (pool) => {
       const { rows } = await pool.query(sql\`select \${1} as n\`)
       await pool.close()
       console.log(JSON.stringify(rows))
     })`,
  ])
  expect(JSON.parse(out)).toEqual([{ n: 1 }])
})

it('loads the @dbpool/core/internal subpath from an ES module and from CommonJS', () => {
  const esm = run([
    '--input-type=module',
    '-e',
    `import { checkInteger, withDeadline } from '@dbpool/core/internal'
     console.log(JSON.stringify([checkInteger('n', 3, 1), typeof withDeadline]))`,
  ])
  expect(JSON.parse(esm)).toEqual([3, 'function'])
  const cjs = run(['-e', `const { requireObject } = require('@dbpool/core/internal'); console.log(typeof requireObject)`])
  expect(cjs.trim()).toBe('function')
})
