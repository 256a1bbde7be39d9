'use strict'
// What tracing costs: a SQLite point read (pool.query on a reader, as in bench/sqlite.js) and
// Postgres SELECT 1 (pool.query, concurrency 1 and 16), each with no OpenTelemetry SDK (the API's
// no-op tracer: what an app without an SDK pays, the pool then skips all span work) and with an SDK
// registered (BasicTracerProvider, a span processor that drops every span, the async-hooks context
// manager: the price of creating, filling and ending a recording span per statement).
// Every (case, side) runs in a fresh child process (an SDK, once registered, stays for the process),
// alternating none, sdk, none, sdk... over the rounds; each child also measures the anchor (raw
// better-sqlite3 .get(), pg.Pool) so "no SDK ÷ anchor" compares with the sqlite and postgres suites.
// Run with `npm run bench -- tracing` (builds first) or `node bench/tracing.js` after `npm run build`.
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { ROUNDS, QUICK, size, ops, spread, ratios, throughput, runChild, childMain, runStandalone } = require('./lib')
const { openPostgres } = require('./pg-server')

const MS = size(1_500, 300)
const WARM_MS = size(500, 100)
const ROWS = 10_000

/** Registers an SDK tracer provider whose spans record and are then dropped, and the context manager apps use with it. */
function registerSdk() {
  const { context, trace } = require('@opentelemetry/api')
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
  const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base')
  const dropAll = { onStart() {}, onEnd() {}, forceFlush: async () => {}, shutdown: async () => {} }
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [dropAll] }))
}

/** Child: the SQLite point read through the pool and through raw .get(), alternating passes. */
async function sqliteChild(path) {
  const Database = require('better-sqlite3')
  const { createSqlitePool } = require('@dbpool/sqlite')
  const raw = new Database(path, { readonly: true })
  const stmt = raw.prepare('select id, name, balance from account where id = ?')
  const pool = createSqlitePool(path, { name: 'bench-tracing' }, { readers: 2 })
  const text = 'select id, name, balance from account where id = ?'
  const iterations = size(100_000, 20_000)
  const ids = Array.from({ length: iterations }, (_, i) => 1 + ((i * 7919) % ROWS))
  const perSec = (t0) => iterations / ((performance.now() - t0) / 1000)
  try {
    for (let i = 0; i < 20_000; i++) await pool.query(text, [ids[i % iterations]])
    const poolOps = []
    const rawOps = []
    for (let pass = 0; pass < 3; pass++) {
      let t0 = performance.now()
      for (const id of ids) stmt.get(id)
      rawOps.push(perSec(t0))
      t0 = performance.now()
      for (const id of ids) await pool.query(text, [id])
      poolOps.push(perSec(t0))
    }
    return { pool: Math.max(...poolOps), anchor: Math.max(...rawOps) }
  } finally {
    raw.close()
    await pool.close()
  }
}

/** Child: SELECT 1 through the pool and through pg.Pool at `concurrency`, alternating passes. */
async function postgresChild(url, concurrency) {
  const pg = require('pg')
  const { createPostgresPool } = require('@dbpool/postgres')
  const { DatabaseConfig } = require('@dbpool/core')
  const pool = createPostgresPool(DatabaseConfig.fromUrl(url, { sslMode: 'disable' }), { min: 10, max: 10, name: 'bench-tracing' })
  const anchor = new pg.Pool({ connectionString: url, max: 10 })
  try {
    const dbpoolOp = () => pool.query('select 1')
    const anchorOp = () => anchor.query('select 1')
    await throughput(dbpoolOp, concurrency, WARM_MS)
    await throughput(anchorOp, concurrency, WARM_MS)
    const poolOps = []
    const anchorOps = []
    for (let pass = 0; pass < 2; pass++) {
      anchorOps.push(await throughput(anchorOp, concurrency, MS / 2))
      poolOps.push(await throughput(dbpoolOp, concurrency, MS / 2))
    }
    return { pool: Math.max(...poolOps), anchor: Math.max(...anchorOps) }
  } finally {
    await pool.close()
    await anchor.end()
  }
}

async function child([side, kind, target, concurrency]) {
  if (side === 'sdk') registerSdk()
  return kind === 'sqlite' ? sqliteChild(target) : postgresChild(target, Number(concurrency))
}

function seedSqlite(path) {
  const Database = require('better-sqlite3')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec('create table account (id integer primary key, name text not null, balance integer not null)')
  const insert = db.prepare('insert into account (id, name, balance) values (?, ?, 0)')
  db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) insert.run(i, `account ${i}`)
  })()
  db.close()
}

/** Runs one case's rounds: none and sdk children alternate; returns the table row. */
async function measure(label, anchorName, args) {
  const none = []
  const sdk = []
  for (let round = 0; round < ROUNDS; round++) {
    none.push(await runChild(__filename, ['--child', 'none', ...args]))
    sdk.push(await runChild(__filename, ['--child', 'sdk', ...args]))
  }
  const noneOps = none.map((r) => r.pool)
  const sdkOps = sdk.map((r) => r.pool)
  return {
    case: label,
    anchor: anchorName,
    'no SDK ops/s': ops(noneOps),
    'SDK ops/s': ops(sdkOps),
    'SDK ÷ no SDK': spread(ratios(sdkOps, noneOps)),
    'no SDK ÷ anchor': spread(
      ratios(
        noneOps,
        none.map((r) => r.anchor),
      ),
    ),
    'SDK ÷ anchor': spread(
      ratios(
        sdkOps,
        sdk.map((r) => r.anchor),
      ),
    ),
  }
}

async function main(ctx = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'dbpool-tracing-bench-'))
  const server = await (ctx.postgres ? ctx.postgres() : openPostgres())
  try {
    const path = join(dir, 'point-read.db')
    seedSqlite(path)
    const rows = [await measure('SQLite point read (pool.query on a reader)', 'raw .get()', ['sqlite', path])]
    for (const concurrency of [1, 16]) {
      rows.push(await measure(`Postgres SELECT 1, concurrency ${concurrency}`, 'pg.Pool', ['postgres', server.url, String(concurrency)]))
    }
    return {
      rows,
      notes: [
        `Each round: one child process per side (no SDK, then SDK), best of 3 passes (SQLite) or 2 (Postgres) after a warm-up${QUICK ? ' (BENCH_QUICK)' : ''}.`,
        'The SDK side registers BasicTracerProvider with a span processor that drops every span (recording spans, no export) and the AsyncLocalStorage context manager; it records one CLIENT span per statement with the conventions` attributes.',
        'Without an SDK the pool reads one property per statement (is an SDK behind the global tracer provider? is a meter or a slow-statement log set?) and skips all telemetry work: compare "no SDK ÷ anchor" with the same ratio in the sqlite and postgres suites (target: within 3%).',
      ],
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    if (!ctx.postgres) await server.close()
  }
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') childMain(() => child(process.argv.slice(3)))
  else runStandalone(main)
}
