import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PoolFactory, type HealthReport } from '@dbpool/core'
import type { ReadinessBody } from '@dbpool/http'
import { buildCli, runCli, startServe, type RunningServe } from './cli-helpers'

// `dbpool serve` listens on all interfaces by default: what /health and /ready tell a caller without
// the detail (statuses), with --details, and with the bearer token (--token / DBPOOL_SERVE_TOKEN).
const TOKEN = 'cli-serve-token-0123456789abcdef'
let cwd: string
let url: string
const running: RunningServe[] = []

beforeAll(async () => {
  await buildCli()
  cwd = mkdtempSync(join(tmpdir(), 'dbpool-cli-serve-'))
  url = `sqlite:${join(cwd, 'secret-file-name.db')}`
  // serve watches a database, it does not create one
  const pool = await PoolFactory.create(url, { min: 0, max: 1 })
  await pool.query('select 1')
  await pool.close()
}, 240_000)

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()))
})

afterAll(() => rmSync(cwd, { recursive: true, force: true }))

async function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningServe> {
  const server = await startServe(['--url', url, '--port', '0', '--host', '127.0.0.1', ...args], { cwd, env })
  running.push(server)
  return server
}

async function get(url: string, token?: string): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, text: await res.text(), headers: res.headers }
}

describe('dbpool serve: what the endpoint tells strangers', () => {
  it('by default: statuses only, no file name, stats or check messages', async () => {
    const server = await serve([])
    expect(server.stdout()).toContain('; statuses only) for default')
    const ready = await get(`${server.base}/ready`)
    expect(ready.status).toBe(200)
    expect(JSON.parse(ready.text)).toEqual({ status: 'healthy', checkedAt: expect.any(String), pools: { default: { status: 'healthy' } } })
    expect(ready.text).not.toContain('secret-file-name')
    const health = await get(`${server.base}/health`)
    expect(JSON.parse(health.text)).toEqual({ status: 'ok', pools: { default: 'open' } })
    // a token sent to a server that has none changes nothing
    expect(JSON.parse((await get(`${server.base}/ready`, TOKEN)).text).pools.default).toEqual({ status: 'healthy' })
  }, 60_000)

  it('an empty DBPOOL_SERVE_TOKEN (a secret that failed to load) serves statuses only and says so on stderr', async () => {
    const server = await serve([], { DBPOOL_SERVE_TOKEN: '' })
    expect(server.stdout()).toContain('; statuses only) for default')
    expect(server.stderr()).toContain('DBPOOL_SERVE_TOKEN is set but empty')
    expect(JSON.parse((await get(`${server.base}/ready`, TOKEN)).text).pools.default).toEqual({ status: 'healthy' })
  }, 60_000)

  it('--details: every caller sees the target, stats and checks', async () => {
    const server = await serve(['--details'], { DBPOOL_SERVE_TOKEN: TOKEN })
    expect(server.stdout()).toContain('; details for everyone) for default')
    const ready = await get(`${server.base}/ready`)
    expect(ready.status).toBe(200)
    const report = (JSON.parse(ready.text) as ReadinessBody<HealthReport>).pools.default
    expect(report).toMatchObject({ backend: 'sqlite', status: 'healthy', stats: expect.any(Object) })
    expect(report?.target).toContain('secret-file-name.db')
    expect(report?.checks.length).toBeGreaterThan(0)
  }, 60_000)

  it.each([
    ['DBPOOL_SERVE_TOKEN', [], { DBPOOL_SERVE_TOKEN: TOKEN }],
    ['--token', ['--token', TOKEN], {}],
  ])(
    'the bearer token from %s: detail for its holder, statuses without, 401 for a wrong one; never printed',
    async (_, args, env) => {
      const server = await serve(args, env)
      expect(server.stdout()).toContain('; details with the bearer token) for default')
      const insider = await get(`${server.base}/ready`, TOKEN)
      expect(insider.status).toBe(200)
      expect((JSON.parse(insider.text) as ReadinessBody<HealthReport>).pools.default?.target).toContain('secret-file-name.db')
      const stranger = await get(`${server.base}/ready`)
      expect(stranger.status).toBe(200)
      expect(stranger.text).not.toContain('secret-file-name')
      const wrong = await get(`${server.base}/ready`, `${TOKEN}0`)
      expect(wrong.status).toBe(401)
      expect(wrong.headers.get('www-authenticate')).toContain('Bearer')
      expect(wrong.text).not.toContain('secret-file-name')
      // /metrics names the database file (db_namespace): the token's holder only
      const scrape = await get(`${server.base}/metrics`)
      expect(scrape.status).toBe(401)
      expect(scrape.text).not.toContain('secret-file-name')
      expect((await get(`${server.base}/metrics`, TOKEN)).status).toBe(200)
      expect(await server.stop()).toBe(0)
      expect(server.stdout() + server.stderr()).not.toContain(TOKEN)
    },
    60_000,
  )

  it('rejects --details with --token (usage, 64) and a short token (CONFIGURATION, 1) without printing it', async () => {
    const both = await runCli(['serve', '--url', url, '--port', '0', '--details', '--token', TOKEN], { cwd })
    expect(both.code).toBe(64)
    expect(both.stderr).toMatch(/--details.*cannot be used with option '--token/)
    const short = await runCli(['serve', '--url', url, '--port', '0'], { cwd, env: { DBPOOL_SERVE_TOKEN: 'tiny-token' } })
    expect(short.code).toBe(1)
    expect(short.stderr).toContain('--token / DBPOOL_SERVE_TOKEN')
    expect(short.stderr).toContain('must be at least 16 characters')
    expect(short.stderr).not.toContain('tiny-token')
    // not printable ASCII: no request could ever present it (Node.js reads header bytes as Latin-1)
    const accented = await runCli(['serve', '--url', url, '--port', '0'], { cwd, env: { DBPOOL_SERVE_TOKEN: 'é'.repeat(20) } })
    expect(accented.code).toBe(1)
    expect(accented.stderr).toContain('--token / DBPOOL_SERVE_TOKEN')
    expect(accented.stderr).toContain('printable ASCII only')
    expect(accented.stderr).not.toContain('é')
  }, 60_000)
})
