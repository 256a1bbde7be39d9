import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createTempSqlite, type TempSqlite } from '@dbpool/testing'
import { buildExample, REPO_ROOT } from './helpers'

jest.setTimeout(240_000)

const run = promisify(execFile)
const root = REPO_ROOT

// What `npm run demo:crm` runs: the compiled demo as a child process, against a temp SQLite file.
describe('the built CRM demo', () => {
  let file: TempSqlite

  beforeAll(async () => {
    file = await createTempSqlite({ fileName: 'crm.db' })
    await buildExample('crm')
  }, 240_000)
  afterAll(() => file?.remove())

  it('exits 0 on SQLite and prints the report', async () => {
    const env = { ...process.env, DATABASE_URL: file.url }
    const { stdout } = await run(process.execPath, ['examples/crm/dist/main.js'], { cwd: root, env, maxBuffer: 16 * 1024 * 1024 })
    expect(stdout).toContain(`crm demo on sqlite (${file.url})`)
    expect(stdout).not.toContain('\r')
    expect(stdout).toContain('== invariants: all hold')
    expect(stdout).toContain('crm demo passed on sqlite')
  })
})
