import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Client } from 'pg'
import { startPostgres } from '@dbpool/testing'
import { PULL_FAILURE, startOfflineEngine, type OfflineEngine } from '../fixtures/offline-engine'

// A Docker engine that answers but cannot pull: `auto` falls back to the embedded server with one
// line on stderr, an explicit `container` fails with the engine's reason, and the image is chosen by
// DBPOOL_TEST_PG_IMAGE or the `image` option. No real engine is needed (see offline-engine.ts).
const NOTICE =
  /^@dbpool\/testing: the Postgres container \((.+)\) could not start, so the embedded server is used instead: \(HTTP code 500\) server error - Get "https:\/\/registry\.invalid\/v2\/": dial tcp: lookup registry\.invalid: no such host\n$/
const ENV_KEYS = [
  'DOCKER_HOST',
  'DBPOOL_TEST_PG_URL',
  'DBPOOL_TEST_PG_PROVIDER',
  'DBPOOL_TEST_PG_IMAGE',
  'TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE',
] as const

let engine: OfflineEngine
const saved: Partial<Record<(typeof ENV_KEYS)[number], string>> = {}

beforeAll(async () => {
  engine = await startOfflineEngine()
})

beforeEach(() => {
  for (const key of ENV_KEYS) {
    saved[key] = process.env[key]
    delete process.env[key]
  }
  process.env.DOCKER_HOST = engine.dockerHost
})

afterEach(() => {
  for (const key of ENV_KEYS) {
    if (saved[key] === undefined) delete process.env[key]
    else process.env[key] = saved[key]
  }
})

afterAll(() => engine.close())

async function selectOne(url: string): Promise<unknown> {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query('select 1 as n')).rows
  } finally {
    await client.end()
  }
}

it('auto: the container cannot start, so the embedded server is used, with one line on stderr saying why', async () => {
  const lines: string[] = []
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk))
    return true
  })
  let server: Awaited<ReturnType<typeof startPostgres>> | undefined
  try {
    server = await startPostgres()
  } finally {
    spy.mockRestore()
  }
  try {
    expect(server.provider).toBe('embedded')
    expect(await selectOne(server.url)).toEqual([{ n: 1 }])
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(NOTICE)
    expect(NOTICE.exec(lines[0]!)?.[1]).toBe('postgres:18-alpine')
    expect(engine.requests).toContain('POST /images/create')
  } finally {
    await server.stop()
  }
}, 180_000)

it("DBPOOL_TEST_PG_PROVIDER=container fails with the engine's reason", async () => {
  process.env.DBPOOL_TEST_PG_PROVIDER = 'container'
  const failure = startPostgres()
  await expect(failure).rejects.toThrow(/no PostgreSQL available for tests[\s\S]*container: \(HTTP code 500\) server error/)
  await expect(failure).rejects.toThrow(PULL_FAILURE)
}, 180_000)

it('DBPOOL_TEST_PG_IMAGE chooses the image, the image option wins over it, and a blank one is refused', async () => {
  process.env.DBPOOL_TEST_PG_IMAGE = 'mirror.invalid/library/postgres:18-alpine'
  await expect(startPostgres({ provider: 'container' })).rejects.toThrow(PULL_FAILURE)
  expect(engine.requests).toContain('GET /images/mirror.invalid/library/postgres:18-alpine/json')
  await expect(startPostgres({ provider: 'container', image: 'other.invalid/pg:18' })).rejects.toThrow(PULL_FAILURE)
  expect(engine.requests).toContain('GET /images/other.invalid/pg:18/json')
  await expect(startPostgres({ provider: 'container', image: ' ' })).rejects.toThrow('option image=" "')
  process.env.DBPOOL_TEST_PG_IMAGE = '  '
  await expect(startPostgres({ provider: 'container' })).rejects.toThrow('DBPOOL_TEST_PG_IMAGE="  "')
}, 180_000)

it('the shared server of a run (jest or vitest global setup) falls back the same way, with one line', async () => {
  // a run of its own in a child process: global setup, two callers, teardown; its stderr is read whole
  const testing = join(__dirname, '..', '..', 'src', 'index.ts')
  const script = `const t = require(${JSON.stringify(testing)}); const { Client } = require('pg')
    ;(async () => {
      await t.setupTestPostgres()
      const [a, b] = await Promise.all([t.testPostgresUrl(), t.testPostgresUrl()])
      if (a !== b) throw new Error('two servers')
      const c = new Client({ connectionString: a }); await c.connect(); await c.query('select 1'); await c.end()
      await t.teardownTestPostgres()
    })().catch((e) => { console.error(e); process.exit(1) })`
  const env = { ...process.env, DBPOOL_TEST_PG_URL: '', DBPOOL_TEST_PG_SHARED: '', DBPOOL_TEST_PG_IMAGE: 'dbpool-test/does-not-exist:1' }
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  expect(stderr).toMatch(NOTICE)
  expect(NOTICE.exec(stderr)?.[1]).toBe('dbpool-test/does-not-exist:1')
  expect(code).toBe(0)
}, 240_000)
