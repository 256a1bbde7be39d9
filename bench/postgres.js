'use strict'
// Postgres: dbpool's pool.query against pg.Pool({ max: 10 }) and postgres.js (same max) on the same
// server in one run: SELECT 1 and a point select (random id in a 100,000-row table) at concurrency 1,
// 16 and 64. Every round measures each side once, in the same order (pg.Pool, dbpool, dbpool
// variants, postgres.js, and pgbench at 64), and gives each ratio once; the figures are medians over
// the rounds with the min–max of the per-round ratios.
//
// dbpool's manager options: BENCH_PG_OPTIONS (JSON) for the main dbpool side; BENCH_PG_VARIANTS
// (JSON object, label → options merged over BENCH_PG_OPTIONS) for extra dbpool sides measured in the
// same rounds. Without BENCH_PG_VARIANTS, a `prepare` variant (the opposite of the default) is added
// when the manager accepts a `prepare` option. A variant the manager refuses (CONFIGURATION) is
// skipped with a note, so the harness runs before and after an option exists.
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const pg = require('pg')
const { createPostgresPool } = require('@dbpool/postgres')
const { DatabaseConfig } = require('@dbpool/core')
const { ROUNDS, QUICK, size, ops, spread, ratios, throughput, runStandalone } = require('./lib')
const { openPostgres } = require('./pg-server')

const MAX = 10
const ROWS = 100_000
const CONCURRENCIES = [1, 16, 64]
const MS = size(1_000, 250)
const WARM_MS = size(300, 100)
const PGBENCH_SECONDS = size(2, 1)
const randomId = () => 1 + Math.floor(Math.random() * ROWS)

function jsonEnv(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  try {
    return JSON.parse(raw)
  } catch (err) {
    throw new Error(`${name} is not JSON: ${err.message}`)
  }
}

/** Whether the manager accepts these options (an unknown or invalid option throws CONFIGURATION). */
async function accepted(config, options) {
  try {
    const probe = createPostgresPool(config, { min: 0, max: 1, name: 'bench-probe' }, options)
    await probe.close()
    return true
  } catch (err) {
    if (err && err.code === 'CONFIGURATION') return false
    throw err
  }
}

/** The dbpool sides: `[{ label, options }]`, the main one first; and notes on variants skipped. */
async function dbpoolSides(config) {
  const base = jsonEnv('BENCH_PG_OPTIONS', {})
  let variants = jsonEnv('BENCH_PG_VARIANTS', undefined)
  if (variants === undefined) {
    // prepared statements: measure both ways once the manager has the option
    let preparesByDefault = true
    try {
      const { resolveManagerOptions } = require('@dbpool/postgres')
      const defaults = resolveManagerOptions(base)
      if ('prepare' in defaults) preparesByDefault = defaults.prepare !== false
    } catch {
      // older or newer managers: the probe below decides
    }
    variants = preparesByDefault ? { 'prepare:false': { prepare: false } } : { 'prepare:true': { prepare: true } }
  }
  const label = Object.keys(base).length ? `dbpool ${JSON.stringify(base)}` : 'dbpool'
  if (!(await accepted(config, base))) throw new Error(`BENCH_PG_OPTIONS ${JSON.stringify(base)} is refused by the Postgres manager`)
  const sides = [{ label, options: base }]
  const notes = []
  for (const [name, options] of Object.entries(variants)) {
    const merged = { ...base, ...options }
    if (await accepted(config, merged)) sides.push({ label: `dbpool ${name}`, options: merged })
    else notes.push(`dbpool variant "${name}" (${JSON.stringify(options)}) skipped: the Postgres manager refuses these options.`)
  }
  return { sides, notes }
}

/** pgbench's tps for one run of `script` (null when pgbench is missing or fails). */
function pgbench(url, script, clients, seconds) {
  const u = new URL(url)
  const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }
  const args = ['-h', u.hostname, '-p', u.port, '-U', decodeURIComponent(u.username), '-n', '-c', String(clients), '-j', '2']
  args.push('-T', String(seconds), '-f', script, decodeURIComponent(u.pathname.slice(1)))
  return new Promise((resolve) => {
    execFile('pgbench', args, { env, encoding: 'utf8' }, (err, stdout) => {
      const m = !err && /tps = ([\d.]+)/.exec(stdout)
      resolve(m ? Number(m[1]) : null)
    })
  })
}

async function seed(url) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('drop table if exists bench_kv')
    await client.query('create table bench_kv (id int primary key, v text not null)')
    await client.query(`insert into bench_kv select g, 'value ' || g from generate_series(1, ${ROWS}) g`)
    await client.query('analyze bench_kv')
    const { rows } = await client.query('show server_version')
    return rows[0].server_version
  } finally {
    await client.end()
  }
}

/**
 * What `sessionReset: 'clean'` costs: a lease running one point select (withConnection), released
 * with the session reset round trip, against the same with the default 'none'; concurrency 16.
 */
async function sessionResetCost(config, base) {
  const none = createPostgresPool(config, { min: MAX, max: MAX, name: 'bench-reset-none' }, { ...base, sessionReset: 'none' })
  const clean = createPostgresPool(config, { min: MAX, max: MAX, name: 'bench-reset-clean' }, { ...base, sessionReset: 'clean' })
  const leaseOn = (p) => () => p.withConnection((conn) => conn.query('select id, v from bench_kv where id = $1', [randomId()]))
  try {
    const a = []
    const b = []
    await throughput(leaseOn(none), 16, WARM_MS)
    await throughput(leaseOn(clean), 16, WARM_MS)
    for (let r = 0; r < ROUNDS; r++) {
      a.push(await throughput(leaseOn(none), 16, MS))
      b.push(await throughput(leaseOn(clean), 16, MS))
    }
    return {
      case: 'withConnection + one point select, concurrency 16',
      "'clean' ops/s": ops(b),
      "'none' ops/s": ops(a),
      "'clean' ÷ 'none'": spread(ratios(b, a)),
    }
  } finally {
    await Promise.all([none.close(), clean.close()])
  }
}

async function main(ctx = {}) {
  const server = await (ctx.postgres ? ctx.postgres() : openPostgres())
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbpool-pgbench-'))
  const open = []
  try {
    const version = await seed(server.url)
    const config = DatabaseConfig.fromUrl(server.url, { sslMode: 'disable' })
    const { sides: dbpoolVariants, notes } = await dbpoolSides(config)
    const anchor = new pg.Pool({ connectionString: server.url, max: MAX })
    open.push(() => anchor.end())
    const pools = dbpoolVariants.map(({ label, options }) => {
      const pool = createPostgresPool(config, { min: MAX, max: MAX, name: 'bench' }, options)
      open.push(() => pool.close())
      return { label, pool }
    })
    const sqlJs = require('postgres')(server.url, { max: MAX, ssl: false, onnotice: () => undefined })
    open.push(() => sqlJs.end({ timeout: 5 }))
    const scripts = {
      'SELECT 1': path.join(dir, 'select1.sql'),
      'point select': path.join(dir, 'point.sql'),
    }
    fs.writeFileSync(scripts['SELECT 1'], 'select 1;\n')
    fs.writeFileSync(scripts['point select'], `\\set id random(1, ${ROWS})\nselect id, v from bench_kv where id = :id;\n`)
    const queries = [
      { name: 'SELECT 1', text: 'select 1', params: () => [], js: () => sqlJs`select 1` },
      {
        name: 'point select',
        text: 'select id, v from bench_kv where id = $1',
        params: () => [randomId()],
        js: () => sqlJs`select id, v from bench_kv where id = ${randomId()}`,
      },
    ]

    const rows = []
    const ceiling = []
    for (const concurrency of CONCURRENCIES) {
      for (const q of queries) {
        const sides = [
          { label: 'pg.Pool', op: () => anchor.query(q.text, q.params()) },
          ...pools.map(({ label, pool }) => ({ label, op: () => pool.query(q.text, q.params()) })),
          { label: 'postgres.js', op: q.js },
        ]
        const withPgbench = concurrency === CONCURRENCIES[CONCURRENCIES.length - 1]
        const got = Object.fromEntries(sides.map((s) => [s.label, []]))
        got.pgbench = []
        for (const side of sides) await throughput(side.op, concurrency, WARM_MS)
        for (let r = 0; r < ROUNDS; r++) {
          for (const side of sides) got[side.label].push(await throughput(side.op, concurrency, MS))
          if (withPgbench) got.pgbench.push(await pgbench(server.url, scripts[q.name], 10, PGBENCH_SECONDS))
        }
        for (const { label } of pools) {
          rows.push({
            case: `${q.name}, concurrency ${concurrency}`,
            side: label,
            'dbpool ops/s': ops(got[label]),
            'pg.Pool ops/s': ops(got['pg.Pool']),
            'postgres.js ops/s': ops(got['postgres.js']),
            'dbpool ÷ pg.Pool': spread(ratios(got[label], got['pg.Pool'])),
            'dbpool ÷ postgres.js': spread(ratios(got[label], got['postgres.js'])),
          })
          if (withPgbench) {
            const ok = got.pgbench.every((x) => x !== null)
            ceiling.push({
              case: `${q.name}: pgbench (C), 10 clients vs dbpool, ${concurrency} callers`,
              side: label,
              'pgbench ops/s': ok ? ops(got.pgbench) : 'pgbench not available',
              'dbpool ops/s': ops(got[label]),
              'dbpool ÷ pgbench': ok ? spread(ratios(got[label], got.pgbench)) : '',
            })
          }
        }
      }
    }
    while (open.length) await open.pop()()
    const reset = await sessionResetCost(config, dbpoolVariants[0].options)
    notes.unshift(
      `Server: PostgreSQL ${version} (${server.provider}), on this machine over TCP; ${ROUNDS} rounds of ${MS} ms per side${QUICK ? ' (BENCH_QUICK)' : ''}.`,
      'pg.Pool sends unnamed statements (parsed every time); postgres.js prepares named statements by default; pgbench uses the simple protocol.',
    )
    return {
      rows,
      tables: [
        {
          heading: 'The ceiling: pgbench (C)',
          meaning:
            'pgbench with 10 clients and 2 threads, interleaved in the same rounds as the 64-caller cases; dbpool ÷ pgbench is the fraction of it dbpool reaches with 64 callers on 10 connections.',
          rows: ceiling,
        },
        {
          heading: "sessionReset: 'clean' vs the default 'none'",
          meaning: 'dbpool against itself: the price of the reset round trip on release (no target).',
          rows: [reset],
        },
      ],
      notes,
    }
  } finally {
    while (open.length)
      await open
        .pop()()
        .catch(() => undefined)
    fs.rmSync(dir, { recursive: true, force: true })
    if (!ctx.postgres) await server.close()
  }
}

module.exports = { main }

if (require.main === module) runStandalone(main)
