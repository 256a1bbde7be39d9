import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import parsePrometheus from 'parse-prometheus-text-format'
import { openPool, resolveConfig, type BenchReport } from '@dbpool/cli'
import { PoolFactory, type ManagerHealthReport, type MigrationStatus } from '@dbpool/core'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { buildCli, runCli, spawnCli, startDelayProxy, type CliResult } from './cli-helpers'

// The built CLI run as a child process against a Postgres database of its own.
let cwd: string
let db: TestDatabase
let password: string
const outputs: CliResult[] = []

async function cli(...args: string[]): Promise<CliResult> {
  const result = await runCli(args, { cwd })
  outputs.push(result)
  return result
}

beforeAll(async () => {
  ;[db] = await Promise.all([createTestDatabase(), buildCli()])
  password = decodeURIComponent(new URL(db.url).password)
  expect(password.length).toBeGreaterThan(0)
  cwd = mkdtempSync(join(tmpdir(), 'dbpool-cli-pg-'))
  mkdirSync(join(cwd, 'migrations'))
  writeFileSync(
    join(cwd, 'migrations', '0001_accounts.sql'),
    `-- migrate:up
create table accounts (id bigint primary key, balance bigint not null default 0);
create function touch() returns trigger language plpgsql as $$
begin
  new.balance := coalesce(new.balance, 0);
  return new;
end;
$$;
-- migrate:down
drop table accounts;
drop function touch();
`,
  )
}, 240_000)

afterAll(async () => {
  // no command printed the password, whatever it did
  for (const { stdout, stderr } of outputs) expect(stdout + stderr).not.toContain(password)
  rmSync(cwd, { recursive: true, force: true })
  await db?.drop()
}, 60_000)

describe('dbpool on Postgres (child process)', () => {
  it('health, check and stats through --url, never printing the password', async () => {
    const health = await cli('--url', db.url, 'health')
    expect(health.code).toBe(0)
    expect(health.stdout).toMatch(new RegExp(`^default: healthy {2}postgres://[^:@]+@[^ ]+/${db.name} {2}\\(postgres, `))
    const json = JSON.parse((await cli('--url', db.url, 'health', '--json')).stdout) as ManagerHealthReport
    expect(json.status).toBe('healthy')
    const check = await cli('--url', db.url, 'check')
    expect(check.code).toBe(0)
    expect(check.stdout).toMatch(/^default: ok {2}postgres:\/\/.*\(postgres\)\n {2}connect {10}ok \([\d.]+ ms\)\n {2}server_version {3}\d+/)
    expect(check.stdout).toContain(`database         ${db.name}`)
    const stats = await cli('--url', db.url, 'stats', '--json')
    expect(stats.code).toBe(0)
    const report = JSON.parse(stats.stdout) as {
      pools: { default: { backend: string; database: { name: string; size_bytes: number; max_connections: number } } }
    }
    expect(report.pools.default.backend).toBe('postgres')
    expect(report.pools.default.database.name).toBe(db.name)
    expect(report.pools.default.database.size_bytes).toBeGreaterThan(0)
    expect(report.pools.default.database.max_connections).toBeGreaterThan(0)
  }, 60_000)

  it('bench: throughput, latency and errors of a statement through the pool; a statement past its deadline is cancelled and counted', async () => {
    const res = await cli('--url', db.url, 'bench', '--duration', '1', '--concurrency', '8', '--json')
    expect(res.code).toBe(0)
    const report = JSON.parse(res.stdout) as BenchReport
    expect(report).toMatchObject({ pool: 'default', backend: 'postgres', query: 'select 1', concurrency: 8, errors: {} })
    expect(report.operations).toBeGreaterThan(100)
    expect(report.durationMs).toBeGreaterThanOrEqual(1_000)
    // JSON keeps the measured values unrounded
    expect(report.opsPerSec).toBeCloseTo(report.operations / (report.durationMs / 1000), 9)
    expect(report.latencyMs.p50).toBeGreaterThan(0)
    expect(report.latencyMs.p50).toBeLessThanOrEqual(report.latencyMs.p99)
    expect(report.latencyMs.p99).toBeLessThanOrEqual(report.latencyMs.max)
    expect(report.poolStats).toMatchObject({ max: 10, acquireTimeouts: 0 })
    // every statement outlives its 50 ms deadline (the warm-up already fails): one line, exit 1; fewer
    // callers than connections, so none waits for one (a deadline that also bounds that wait made it
    // ACQUIRE_TIMEOUT or QUERY_TIMEOUT by a race: flaky, 1 run in 6)
    const slow = await cli(
      '--url',
      db.url,
      'bench',
      '--duration',
      '1',
      '--concurrency',
      '4',
      '--query',
      'select pg_sleep(0.2)',
      '--statement-timeout',
      '50',
    )
    expect(slow.code).toBe(1)
    expect(slow.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^dbpool: QUERY_TIMEOUT: /)])
    const human = await cli('--url', db.url, 'bench', '--duration', '0.5', '--concurrency', '2')
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(
      /^default: postgres:\/\/.* \(postgres\)\n {2}"select 1" from 2 callers for \d+(\.\d{1,2})? s: \d+ statements, \d+(\.\d{1,2})?\/s\n {2}latency {3}p50 \d+(\.\d{1,2})? ms, p95 \d+(\.\d{1,2})? ms, p99 \d+(\.\d{1,2})? ms, max \d+(\.\d{1,2})? ms\n {2}errors {4}none\n {2}pool {6}max 10, size \d+, acquire timeouts 0\n$/,
    )
  }, 60_000)

  it('migrates up, down and up again', async () => {
    const env = { DATABASE_URL: db.url }
    const up = await runCli(['migrate', 'up'], { cwd, env })
    outputs.push(up)
    expect(up.code).toBe(0)
    expect(up.stdout).toMatch(/applied 1 accounts \(\d+ ms\)\napplied 1 migration: at version 1\n$/)
    const status = JSON.parse((await runCli(['migrate', 'status', '--json'], { cwd, env })).stdout) as MigrationStatus[]
    expect(status).toMatchObject([{ version: 1, state: 'applied', name: 'accounts' }])
    const down = await runCli(['migrate', 'down'], { cwd, env })
    expect(down.stdout).toMatch(/reverted 1 migration: no migration applied\n$/)
    expect((await runCli(['migrate', 'up'], { cwd, env })).code).toBe(0)
  }, 60_000)

  it('a wrong password: one line naming AUTHENTICATION_FAILED, without the password, even with --verbose', async () => {
    const url = new URL(db.url)
    url.password = 'Wrong-Pass-4242'
    const res = await cli('--url', url.toString(), 'stats')
    expect(res.code).toBe(1)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/^dbpool: AUTHENTICATION_FAILED: .* \(check the user name and password \(in the URL or PGPASSWORD\)\)\n$/)
    const verbose = await cli('--url', url.toString(), 'stats', '--verbose')
    expect(verbose.stderr).toMatch(/\n {4}at /)
    for (const r of [res, verbose]) expect(r.stdout + r.stderr).not.toContain('Wrong-Pass-4242')
    const health = await cli('--url', url.toString(), 'health')
    expect(health.code).toBe(2)
    expect(health.stdout + health.stderr).not.toContain('Wrong-Pass-4242')
  }, 60_000)

  it('PGSSLMODE fills in what DATABASE_URL leaves out, as libpq: require refuses the dev server, which has no TLS', async () => {
    const probe = await PoolFactory.create(db.url, { min: 0, max: 1 })
    const ssl = await probe.query<{ ssl: string }>(`select current_setting('ssl') as ssl`).finally(() => probe.close())
    if (ssl.rows[0]?.ssl !== 'on') {
      const res = await runCli(['stats'], { cwd, env: { DATABASE_URL: db.url.replace(/[?&]sslmode=[^&]*/, ''), PGSSLMODE: 'require' } })
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(/CONNECTION_FAILED: .*does not support SSL/)
    }
    const bare = db.url.replace(/[?&]sslmode=[^&]*/, '')
    const sslCert = await runCli(['stats'], { cwd, env: { DATABASE_URL: bare, PGSSLCERT: '/etc/client.crt' } })
    expect(sslCert.stderr).toMatch(/CONFIGURATION: .*PGSSLCERT/)
    // libpq reads PGSSLCERT only for a TLS connection: with sslmode=disable the command runs (r20a item 2)
    const plain = `${bare}${bare.includes('?') ? '&' : '?'}sslmode=disable`
    const disabled = await runCli(['stats'], { cwd, env: { DATABASE_URL: plain, PGSSLCERT: '/etc/client.crt' } })
    expect(disabled.stderr).not.toContain('CONFIGURATION')
    expect(disabled.code).toBe(0)
  }, 60_000)

  // libpq's other security variables were ignored: `dbpool check` connected in plaintext and exited 0
  it('PGREQUIRESSL=1 is sslmode require; PGCHANNELBINDING=require, PGGSSENCMODE=require, PGREQUIREAUTH... are CONFIGURATION naming them', async () => {
    const probe = await PoolFactory.create(db.url, { min: 0, max: 1 })
    const ssl = await probe.query<{ ssl: string }>(`select current_setting('ssl') as ssl`).finally(() => probe.close())
    const bare = db.url.replace(/[?&]sslmode=[^&]*/, '')
    if (ssl.rows[0]?.ssl !== 'on') {
      const res = await runCli(['check'], { cwd, env: { DATABASE_URL: bare, PGREQUIRESSL: '1' } })
      expect(res.code).not.toBe(0)
      expect(res.stdout + res.stderr).toMatch(/does not support SSL/)
    }
    for (const [name, value] of [
      ['PGCHANNELBINDING', 'require'],
      ['PGGSSENCMODE', 'require'],
      ['PGREQUIREAUTH', 'scram-sha-256'],
      ['PGSSLCRL', '/etc/ssl/root.crl'],
      ['PGSSLMINPROTOCOLVERSION', 'TLSv1.3'],
    ]) {
      const res = await runCli(['check'], { cwd, env: { DATABASE_URL: bare, [name!]: value } })
      expect(res.code).not.toBe(0)
      expect(res.stderr).toMatch(new RegExp(`CONFIGURATION: invalid ${name}`))
    }
    const harmless = await runCli(['check'], { cwd, env: { DATABASE_URL: db.url, PGCHANNELBINDING: 'prefer', PGGSSENCMODE: 'disable' } })
    expect(harmless.code).toBe(0)
  }, 60_000)

  // a replica URL without sslmode took the primary's sslmode=disable over PGSSLMODE=require (plaintext password);
  // the CLI's environment (not only process.env) is the one that fills in the replicas' URLs
  it("replica URLs (backend.replicas, DATABASE_REPLICA_URLS) take the CLI's PGSSLMODE before the primary's sslmode=disable", async () => {
    const probe = await PoolFactory.create(db.url, { min: 0, max: 1 })
    const ssl = await probe.query<{ ssl: string }>(`select current_setting('ssl') as ssl`).finally(() => probe.close())
    if (ssl.rows[0]?.ssl === 'on') return // a server with TLS cannot show the downgrade
    const bare = db.url.replace(/[?&]sslmode=[^&]*/, '')
    const primary = `${bare}${bare.includes('?') ? '&' : '?'}sslmode=disable`
    writeFileSync(
      join(cwd, 'replicas.toml'),
      `[pools.main]\nurl = ${JSON.stringify(primary)}\nbackend = { replicas = [${JSON.stringify(bare)}] }\n`,
    )
    for (const [flags, env] of [
      [{ config: join(cwd, 'replicas.toml') }, { PGSSLMODE: 'require' }],
      [{ url: primary }, { PGSSLMODE: 'require', DATABASE_REPLICA_URLS: bare }],
    ] as const) {
      const [def] = (await resolveConfig(flags, env, cwd)).pools
      const pool = await openPool(def!)
      try {
        await pool.query('select 1', undefined, { lane: 'read' })
        // over plaintext it would connect and be found 'not-standby' (the dev server is a primary)
        expect(pool.replicaStats()?.replicas[0]?.reason).toBe('unreachable')
      } finally {
        await pool.close()
      }
    }
  }, 60_000)

  it('a password equal to the database or user name is shown as that name, as the library does: a gap beside it would tell it', async () => {
    // not recorded in `outputs`: these runs print the password where it is the database or user name
    const u = new URL(db.url)
    const user = decodeURIComponent(u.username)
    const runs: [string[], NodeJS.ProcessEnv][] = [
      [['--url', `postgres://${u.username}:${u.password}@${u.host}/${u.password}`, 'check'], {}],
      [['check'], { PGPASSWORD: password, DATABASE_URL: `postgres://${u.username}@${u.host}/${u.password}` }],
    ]
    for (const [args, env] of runs) {
      const { code, stdout, stderr } = await runCli(args, { cwd, env: { PGUSER: '', ...env } })
      expect(code).toBe(2)
      expect(stdout + stderr).toContain(`/${u.password} failed: database "${password}" does not exist`)
      expect(stdout + stderr).not.toContain('[REDACTED]')
    }
    // PGPASSWORD equal to the URL's user name (PGUSER unset): a wrong password, reported for that user
    expect(password).not.toBe(user)
    const wrong = await runCli(['check'], {
      cwd,
      env: { PGUSER: '', PGPASSWORD: user, DATABASE_URL: `postgres://${u.username}@${u.host}/${db.name}` },
    })
    expect(wrong.code).toBe(2)
    expect(wrong.stdout + wrong.stderr).toContain(`failed for user "${user}"`)
    expect(wrong.stdout + wrong.stderr).not.toContain('[REDACTED]')
  })

  it('an unreachable server: health exit 2, check FAILED exit 2', async () => {
    const url = `postgres://app:Unreachable-Secret@127.0.0.1:1/${db.name}`
    const health = await cli('--url', url, 'health', '--timeout', '2000')
    expect(health.code).toBe(2)
    expect(health.stdout).toMatch(/ping {9}unhealthy {2}CONNECTION_FAILED: /)
    const check = await cli('--url', url, 'check')
    expect(check.code).toBe(2)
    expect(check.stdout).toMatch(/^default: FAILED {2}postgres:\/\/app@127.0.0.1:1\//)
    for (const r of [health, check]) expect(r.stdout + r.stderr).not.toContain('Unreachable-Secret')
  }, 60_000)

  it('a slow network: health exit 1 (degraded)', async () => {
    const target = new URL(db.url)
    const proxy = await startDelayProxy({ host: target.hostname, port: Number(target.port || 5432) }, 150)
    try {
      const url = new URL(db.url)
      url.hostname = '127.0.0.1'
      url.port = String(proxy.port)
      url.searchParams.set('sslmode', 'disable')
      const res = await cli('--url', url.toString(), 'health', '--json', '--timeout', '20000')
      const report = JSON.parse(res.stdout) as ManagerHealthReport
      expect(report.status).toBe('degraded')
      expect(report.pools.default?.checks.find((c) => c.name === 'ping')?.message).toMatch(/^ping took [\d.]+ ms \(> 1000 ms\)$/)
      expect(res.code).toBe(1)
    } finally {
      await proxy.close()
    }
  }, 60_000)

  it('serve: one endpoint for a Postgres and a SQLite pool from dbpool.toml, password from the environment', async () => {
    const url = new URL(db.url)
    url.password = ''
    writeFileSync(
      join(cwd, 'dbpool.toml'),
      `[pools.ledger]\nurl = "${url.toString()}"\nprimary = true\nmax = 3\n\n[pools.cache]\nurl = "sqlite:./cache.db"\nmax = 2\n`,
    )
    // serve watches the SQLite database, it does not create it
    const cache = await PoolFactory.create(`sqlite:${join(cwd, 'cache.db')}`, { min: 0, max: 1 })
    await cache.query('select 1')
    await cache.close()
    const child = spawnCli(['serve', '--port', '0', '--host', '127.0.0.1'], { cwd, env: { PGPASSWORD: password } })
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      const deadline = Date.now() + 30_000
      while (!/listening on (http:\/\/\S+)/.test(stdout)) {
        if (Date.now() > deadline) throw new Error(`serve did not start: ${stdout} ${stderr}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      const base = (/listening on (http:\/\/\S+)/.exec(stdout) as RegExpExecArray)[1] as string
      const ready = await fetch(`${base}/ready`)
      const body = await ready.text()
      expect(ready.status).toBe(200)
      expect(body).not.toContain(password)
      expect(Object.keys((JSON.parse(body) as { pools: object }).pools)).toEqual(['ledger', 'cache'])
      const text = await (await fetch(`${base}/metrics`)).text()
      const families = new Map(parsePrometheus(text).map((f) => [f.name, f]))
      const max = new Map(
        (families.get('db_client_connection_max')?.metrics ?? []).map((m) => [m.labels?.db_client_connection_pool_name, m.value]),
      )
      expect(max.get('ledger')).toBe('3')
      expect(max.get('cache')).toBe('3')
      expect(families.get('db_client_connection_create_time')?.type).toBe('HISTOGRAM')
      child.kill('SIGINT')
      expect(await exited).toBe(0)
      outputs.push({ code: 0, stdout, stderr })
    } finally {
      child.kill('SIGKILL')
    }
  }, 60_000)
})
