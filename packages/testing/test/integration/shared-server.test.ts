import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'pg'
import { setupTestPostgres, teardownTestPostgres, testPostgresUrl } from '@dbpool/testing'
import type * as Testing from '@dbpool/testing'

// The shared server of a jest run, end to end in a child process: started lazily by the first
// caller, shared by later ones, stopped by the teardown, and stopped by its watchdog when the
// process that owns it dies without a teardown.
const TS_NODE = ['-r', 'ts-node/register/transpile-only']

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 100))
  }
  return true
}

it('starts once on first use, serves several callers, and stops at teardown', async () => {
  const savedUrl = process.env.DBPOOL_TEST_PG_URL
  const savedShared = process.env.DBPOOL_TEST_PG_SHARED
  delete process.env.DBPOOL_TEST_PG_URL
  delete process.env.DBPOOL_TEST_PG_SHARED
  try {
    await setupTestPostgres()
    const dir = process.env.DBPOOL_TEST_PG_SHARED!
    // two callers at once: one starts it, the other waits for it
    // a module instance of its own: this worker's cached URL (the run's server) stays untouched
    let module!: typeof Testing
    await jest.isolateModulesAsync(async () => {
      module = await import('@dbpool/testing')
    })
    const [a, b] = await Promise.all([module.testPostgresUrl(), readUrlFromOtherCaller()])
    expect(a).toBe(b)
    const client = new Client({ connectionString: a })
    await client.connect()
    expect((await client.query('select 1 as n')).rows).toEqual([{ n: 1 }])
    await client.end()
    const state = JSON.parse(await readFile(join(dir, 'server.json'), 'utf8')) as { pid: number }
    expect(alive(state.pid)).toBe(true)
    await teardownTestPostgres()
    expect(alive(state.pid)).toBe(false)
    expect(existsSync(dir)).toBe(false)
  } finally {
    if (savedUrl === undefined) delete process.env.DBPOOL_TEST_PG_URL
    else process.env.DBPOOL_TEST_PG_URL = savedUrl
    if (savedShared === undefined) delete process.env.DBPOOL_TEST_PG_SHARED
    else process.env.DBPOOL_TEST_PG_SHARED = savedShared
  }
}, 180_000)

/** Another process resolving the same shared server (as a second jest worker would). */
function readUrlFromOtherCaller(): Promise<string> {
  const script = `require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'shared-postgres.ts'))}).testPostgresUrl().then((u) => { process.stdout.write(u); }, (e) => { console.error(e); process.exit(1) })`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TS_NODE, '-e', script], {
      env: { ...process.env, DBPOOL_TEST_PG_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`caller exited ${code}: ${err}`))))
  })
}

it('a server whose owner dies without teardown is stopped by its watchdog', async () => {
  // the owner: sets up, starts the shared server, prints its pid and data dir, then is killed
  const testing = join(__dirname, '..', '..', 'src', 'index.ts')
  const script = `const t = require(${JSON.stringify(testing)});
    t.setupTestPostgres().then(() => t.testPostgresUrl()).then(() => {
      const fs = require('fs'); const dir = process.env.DBPOOL_TEST_PG_SHARED
      const state = JSON.parse(fs.readFileSync(dir + '/server.json', 'utf8'))
      const spec = JSON.parse(fs.readFileSync(dir + '/spec.json', 'utf8'))
      process.stdout.write(JSON.stringify({ pid: state.pid, dataDir: spec.dir, sharedDir: dir }) + '\\n')
      setInterval(() => undefined, 1000)
    }, (e) => { console.error(e); process.exit(1) })`
  const env: NodeJS.ProcessEnv = { ...process.env, DBPOOL_TEST_PG_URL: '', DBPOOL_TEST_PG_SHARED: '' }
  const owner = spawn(process.execPath, [...TS_NODE, '-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    owner.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolve(out.trim())
    })
    owner.on('exit', (code) => reject(new Error(`owner exited early (${code})`)))
  })
  const { pid, dataDir, sharedDir } = JSON.parse(line) as { pid: number; dataDir: string; sharedDir: string }
  expect(alive(pid)).toBe(true)
  expect(existsSync(dataDir)).toBe(true)
  owner.kill('SIGKILL')
  expect(await waitUntil(() => !alive(pid), 20_000)).toBe(true)
  expect(await waitUntil(() => !existsSync(dataDir), 5_000)).toBe(true)
  expect(await waitUntil(() => !existsSync(sharedDir), 5_000)).toBe(true)
}, 180_000)

it('testPostgresUrl() in this worker is the run’s server and answers', async () => {
  const client = new Client({ connectionString: await testPostgresUrl() })
  await client.connect()
  expect((await client.query('select 1 as n')).rows).toEqual([{ n: 1 }])
  await client.end()
}, 120_000)

/** Runs `fn` with the shared-server environment given (restored after), on a module instance of its own. */
async function withSharedEnv<T>(env: Record<string, string | undefined>, fn: (module: typeof Testing) => Promise<T>): Promise<T> {
  const names = ['DBPOOL_TEST_PG_URL', 'DBPOOL_TEST_PG_SHARED', 'DBPOOL_TEST_PG_PROVIDER', ...Object.keys(env)]
  const saved = new Map(names.map((n) => [n, process.env[n]]))
  delete process.env.DBPOOL_TEST_PG_URL
  delete process.env.DBPOOL_TEST_PG_SHARED
  delete process.env.DBPOOL_TEST_PG_PROVIDER
  for (const [k, v] of Object.entries(env)) if (v !== undefined) process.env[k] = v
  try {
    let module!: typeof Testing
    await jest.isolateModulesAsync(async () => {
      module = await import('@dbpool/testing')
    })
    return await fn(module)
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

async function sharedDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dbpool-shared-test-'))
  await writeFile(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid }))
  return dir
}

// jest's timeout is what fails these on a hang: a caller used to wait 2 x 180 s for a report that never came
it('a start that throws before publishing fails every later caller at once with its cause', async () => {
  const dir = await sharedDir()
  try {
    await withSharedEnv({ DBPOOL_TEST_PG_SHARED: dir, DBPOOL_TEST_PG_PROVIDER: 'embeded' }, async (module) => {
      // the starter: the typo is its own error
      await expect(module.testPostgresUrl()).rejects.toThrow('DBPOOL_TEST_PG_PROVIDER="embeded"')
      // the same worker again, and another worker (a process of its own): the published cause
      await expect(module.testPostgresUrl()).rejects.toThrow(/could not start: DBPOOL_TEST_PG_PROVIDER="embeded"/)
      await expect(readUrlFromOtherCaller()).rejects.toThrow(/caller exited 1: .*could not start: DBPOOL_TEST_PG_PROVIDER="embeded"/)
      expect(process.env.DBPOOL_TEST_PG_URL).toBeUndefined()
    })
    // the teardown has no runner to stop (the failed report names none) and removes the directory
    process.env.DBPOOL_TEST_PG_SHARED = dir
    await teardownTestPostgres()
    expect(existsSync(dir)).toBe(false)
  } finally {
    delete process.env.DBPOOL_TEST_PG_SHARED
    await rm(dir, { recursive: true, force: true })
  }
}, 30_000)

it('a starter killed before publishing fails the waiting callers within a poll, naming it', async () => {
  const dir = await sharedDir()
  // owner.json as a FIFO: the starter blocks reading it, after it took the lock, until it is killed
  await rm(join(dir, 'owner.json'))
  execFileSync('mkfifo', [join(dir, 'owner.json')])
  const script = `require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'shared-postgres.ts'))}).testPostgresUrl()`
  const starter = spawn(process.execPath, [...TS_NODE, '-e', script], {
    env: { ...process.env, DBPOOL_TEST_PG_URL: '', DBPOOL_TEST_PG_SHARED: dir, DBPOOL_TEST_PG_PROVIDER: 'embedded' },
    stdio: 'ignore',
  })
  try {
    expect(await waitUntil(() => existsSync(join(dir, 'lock', 'starter.json')), 20_000)).toBe(true)
    await withSharedEnv({ DBPOOL_TEST_PG_SHARED: dir }, async (module) => {
      const waiting = module.testPostgresUrl()
      waiting.catch(() => undefined)
      starter.kill('SIGKILL')
      await expect(waiting).rejects.toThrow(`process ${starter.pid}, which exited before it reported`)
    })
  } finally {
    starter.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}, 30_000)
