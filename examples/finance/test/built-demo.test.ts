import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createTempSqlite, type TempSqlite } from '@dbpool/testing'
import { buildExample, REPO_ROOT } from './helpers'

jest.setTimeout(240_000)

const run = promisify(execFile)
const root = REPO_ROOT

// What `npm run demo` runs: the compiled demo as a child process, against a temp SQLite file.
describe('the built finance demo', () => {
  let file: TempSqlite

  beforeAll(async () => {
    file = await createTempSqlite({ fileName: 'demo.db' })
    await buildExample('finance')
  }, 240_000)
  afterAll(() => file?.remove())

  it('exits 0 on SQLite, prints the report and ends by exporting the journal to CSV', async () => {
    const exportPath = join(file.dir, 'journal.csv')
    const env = { ...process.env, DATABASE_URL: file.url, DEMO_EXPORT: exportPath }
    const { stdout } = await run(process.execPath, ['examples/finance/dist/main.js'], { cwd: root, env, maxBuffer: 16 * 1024 * 1024 })
    expect(stdout).toContain(`finance demo on sqlite (${file.url})`)
    // not a terminal: progress comes as plain lines, never carriage returns
    expect(stdout).toMatch(/^ {2}transfers 2000\/2000 \(100%\)/m)
    expect(stdout).not.toContain('\r')
    expect(stdout).toContain('== invariants: all hold')
    expect(stdout).toContain('== health: healthy')
    expect(stdout).toContain('finance demo passed on sqlite')
    expect(existsSync(file.path)).toBe(true)
    expect(stdout).toMatch(/journal export has every line: \d+ lines written/)
    const csv = readFileSync(exportPath, 'utf8').trimEnd().split('\n')
    expect(csv[0]).toBe('entry_id,line_no,posted_at,account_id,amount,currency,description,journal_seq,account_seq,balance_after')
    expect(stdout).toContain(`export: ${csv.length - 1} journal lines to ${exportPath}`)
  })

  it('exits 1 with the cause on a configuration error', async () => {
    const env = { ...process.env, DATABASE_URL: file.url, DEMO_TRANSFERS: 'lots' }
    const failure = await run(process.execPath, ['examples/finance/dist/main.js'], { cwd: root, env }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    )
    expect(failure?.code).toBe(1)
    expect(failure?.stderr).toContain('DEMO_TRANSFERS')
  })
})

// review r3 item 8: `npm run demo | head` crashed on an unhandled EPIPE, the pool never closed
describe('the built finance demo with its stdout closed early (| head)', () => {
  let file: TempSqlite

  beforeAll(async () => {
    file = await createTempSqlite({ fileName: 'demo.db' })
    await buildExample('finance')
  }, 240_000)
  afterAll(() => file?.remove())

  it('drops the rest of its output and exits with its own code (0), without a stack trace', async () => {
    const env = { ...process.env, DATABASE_URL: file.url, DEMO_EXPORT: join(file.dir, 'journal.csv'), DEMO_TRANSFERS: '500' }
    const child = spawn(process.execPath, ['examples/finance/dist/main.js'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    // read the first chunk, then go away as head does
    child.stdout.once('data', () => child.stdout.destroy())
    const [code] = (await once(child, 'exit')) as [number | null]
    expect(stderr).not.toContain('EPIPE')
    expect(code).toBe(0)
  })
})
