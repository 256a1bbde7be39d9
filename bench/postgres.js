'use strict'
// Postgres: DatabasePool vs pg.Pool({ max: 10 }) (the anchor) on the same server in one run: SELECT 1
// and a point select on a 100,000-row table at concurrency 1, 16 and 64, pool max 10. postgres.js
// (same max) and pgbench (C, 10 clients) are printed as reference lines.
const { execFileSync } = require('node:child_process')
const pg = require('pg')
const { createPostgresPool } = require('@dbpool/postgres')
const { DatabaseConfig } = require('@dbpool/core')
const { startPostgres } = require('@dbpool/testing')

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function rate(fn, concurrency, total) {
  const per = Math.floor(total / concurrency)
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; i < per; i++) await fn(w * per + i)
    }),
  )
  return (per * concurrency) / (Number(process.hrtime.bigint() - started) / 1e9)
}

function pgbench(url, script, clients) {
  try {
    const u = new URL(url)
    const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }
    const args = [
      '-h',
      u.hostname,
      '-p',
      u.port,
      '-U',
      decodeURIComponent(u.username),
      '-n',
      '-c',
      String(clients),
      '-j',
      '2',
      '-T',
      '5',
      '-f',
      script,
      u.pathname.slice(1),
    ]
    const out = execFileSync('pgbench', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const m = /tps = ([\d.]+)/.exec(out)
    return m ? Math.round(Number(m[1])) : null
  } catch {
    return null
  }
}

/** postgres.js with the same max, when installed (a reference line, not an anchor). */
function postgresJs(url, max) {
  try {
    return require('postgres')(url, { max, ssl: false, onnotice: () => undefined })
  } catch {
    return undefined
  }
}

/**
 * What `sessionReset: 'clean'` costs: a lease running one point select (withConnection), released
 * with the session reset round trip, against the same with the default 'none'; concurrency 16.
 */
async function sessionResetCost(url, max) {
  const config = DatabaseConfig.fromUrl(url, { sslMode: 'disable' })
  const plain = createPostgresPool(config, { min: max, max, name: 'bench-reset-none' })
  const clean = createPostgresPool(config, { min: max, max, name: 'bench-reset-clean' }, { sessionReset: 'clean' })
  const leaseOn = (p) => (i) => p.withConnection((conn) => conn.query('select id, v from bench_kv where id = $1', [(i % 100000) + 1]))
  try {
    const a = []
    const b = []
    await rate(leaseOn(plain), 16, 1_000)
    await rate(leaseOn(clean), 16, 1_000)
    for (let r = 0; r < 3; r++) {
      a.push(await rate(leaseOn(plain), 16, 10_000))
      b.push(await rate(leaseOn(clean), 16, 10_000))
    }
    return {
      case: "withConnection point select, sessionReset 'clean' vs 'none', concurrency 16",
      anchor: "dbpool sessionReset 'none'",
      anchorOpsPerSec: Math.round(median(a)),
      dbpoolOpsPerSec: Math.round(median(b)),
      ratio: +(median(b) / median(a)).toFixed(2),
      postgresJsOpsPerSec: null,
    }
  } finally {
    await Promise.all([plain.close(), clean.close()])
  }
}

async function main() {
  const server = await startPostgres()
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  try {
    const setup = new pg.Client({ connectionString: server.url })
    await setup.connect()
    await setup.query('drop table if exists bench_kv')
    await setup.query('create table bench_kv (id int primary key, v text not null)')
    await setup.query("insert into bench_kv select g, 'value ' || g from generate_series(1, 100000) g")
    await setup.query('analyze bench_kv')
    await setup.end()
    const results = []
    const max = 10
    const anchor = new pg.Pool({ connectionString: server.url, max })
    const pool = createPostgresPool(DatabaseConfig.fromUrl(server.url, { sslMode: 'disable' }), { min: max, max, name: 'bench' })
    const sqlJs = postgresJs(server.url, max)
    const queries = [
      ['SELECT 1', 'select 1', () => [], (i) => sqlJs`select 1`],
      [
        'point select',
        'select id, v from bench_kv where id = $1',
        (i) => [(i % 100000) + 1],
        (i) => sqlJs`select id, v from bench_kv where id = ${(i % 100000) + 1}`,
      ],
    ]
    for (const concurrency of [1, 16, 64]) {
      const total = concurrency === 1 ? 5_000 : 20_000
      for (const [name, text, params, viaJs] of queries) {
        const a = []
        const b = []
        const c = []
        await rate((i) => anchor.query(text, params(i)), concurrency, 1_000)
        await rate((i) => pool.query(text, params(i)), concurrency, 1_000)
        if (sqlJs) await rate(viaJs, concurrency, 1_000)
        for (let r = 0; r < 3; r++) {
          a.push(await rate((i) => anchor.query(text, params(i)), concurrency, total))
          b.push(await rate((i) => pool.query(text, params(i)), concurrency, total))
          if (sqlJs) c.push(await rate(viaJs, concurrency, total))
        }
        results.push({
          case: `${name}, concurrency ${concurrency}`,
          anchor: 'pg.Pool',
          anchorOpsPerSec: Math.round(median(a)),
          dbpoolOpsPerSec: Math.round(median(b)),
          ratio: +(median(b) / median(a)).toFixed(2),
          postgresJsOpsPerSec: sqlJs ? Math.round(median(c)) : null,
        })
      }
    }
    await anchor.end()
    await pool.close()
    if (sqlJs) await sqlJs.end({ timeout: 5 })
    results.push(await sessionResetCost(server.url, max))
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbpool-pgbench-'))
    const s1 = path.join(dir, 'select1.sql')
    const s2 = path.join(dir, 'point.sql')
    fs.writeFileSync(s1, 'select 1;\n')
    fs.writeFileSync(s2, '\\set id random(1, 100000)\nselect id, v from bench_kv where id = :id;\n')
    results.push({
      case: 'pgbench SELECT 1, 10 clients',
      anchor: 'pgbench (C)',
      anchorOpsPerSec: pgbench(server.url, s1, 10),
      dbpoolOpsPerSec: null,
      ratio: null,
      postgresJsOpsPerSec: null,
    })
    results.push({
      case: 'pgbench point select, 10 clients',
      anchor: 'pgbench (C)',
      anchorOpsPerSec: pgbench(server.url, s2, 10),
      dbpoolOpsPerSec: null,
      ratio: null,
      postgresJsOpsPerSec: null,
    })
    fs.rmSync(dir, { recursive: true, force: true })
    return results
  } finally {
    await server.stop()
  }
}

module.exports = { main }
if (require.main === module)
  main().then(
    (r) => console.table(r),
    (e) => {
      console.error(e)
      process.exitCode = 1
    },
  )
