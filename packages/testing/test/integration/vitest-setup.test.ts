import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

// One small real vitest run (test/vitest) with `globalSetup: ['@dbpool/testing/vitest-setup']`:
// both test files get their databases on one shared server, started by the first of them, and the
// run's teardown removes it. Uses the built package (dist), as an app would.
const root = resolve(__dirname, '..', '..', '..', '..')

it('vitest: one shared server for the run, from the global setup, gone after it', async () => {
  const out = await mkdtemp(join(tmpdir(), 'dbpool-vitest-'))
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, DBPOOL_VITEST_OUT: out }
    delete env.DBPOOL_TEST_PG_URL
    delete env.DBPOOL_TEST_PG_SHARED
    delete env.JEST_WORKER_ID
    // plain output to read (jest's workers get FORCE_COLOR)
    delete env.FORCE_COLOR
    env.NO_COLOR = '1'
    const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs')
    const config = join(__dirname, '..', 'vitest', 'vitest.config.mjs')
    const child = spawn(process.execPath, [vitest, 'run', '--config', config], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    const code = await new Promise<number | null>((done) => child.on('exit', done))
    if (code !== 0) throw new Error(`vitest exited ${code}:\n${output}`)
    // eslint-disable-next-line no-control-regex
    expect(output.replace(/\u001b\[[0-9;]*m/g, '')).toMatch(/Test Files\s+2 passed \(2\)/)
    const a = JSON.parse(await readFile(join(out, 'a.json'), 'utf8')) as { host: string; shared: string }
    const b = JSON.parse(await readFile(join(out, 'b.json'), 'utf8')) as { host: string; shared: string }
    expect(a.shared).toBeTruthy()
    expect(b).toEqual(a)
    // the teardown stopped the server and removed the run's directory
    expect(existsSync(a.shared)).toBe(false)
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}, 240_000)
