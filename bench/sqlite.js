'use strict'
// Benchmarks of @dbpool/sqlite against raw better-sqlite3, in one run: a point read through
// pool.query vs a prepared .get(), and 50 async writers x 200 transactions through pool.transaction
// vs the same 10,000 transactions one after another on one raw connection. Ratio = pool / raw, the
// median of the per-round ratios (rounds interleave the two sides) with their min–max.
// Run with `npm run bench -- sqlite` (builds first) or `node bench/sqlite.js` after `npm run build`.
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const Database = require('better-sqlite3')
const { sql } = require('@dbpool/core')
const { createSqlitePool } = require('@dbpool/sqlite')
const { ROUNDS, size, ops, spread, ratios, runStandalone } = require('./lib')

const PRAGMAS = ['journal_mode = WAL', 'synchronous = FULL', 'foreign_keys = ON']

function rawConnection(path) {
  const db = new Database(path, { timeout: 5000 })
  for (const p of PRAGMAS) db.pragma(p)
  return db
}

function seed(path, rows) {
  const db = rawConnection(path)
  db.exec('create table account (id integer primary key, name text not null, balance integer not null)')
  db.exec('create table entry (id integer primary key, account_id integer not null references account(id), amount integer not null)')
  const insert = db.prepare('insert into account (id, name, balance) values (?, ?, 0)')
  db.transaction(() => {
    for (let i = 1; i <= rows; i++) insert.run(i, `account ${i}`)
  })()
  db.close()
}

/**
 * Raw .get() and pool.query (text, then the sql tag) alternate over the rounds on the same file; each
 * round gives a ratio, so a burst of load from a neighbour on a shared machine skews one round, not
 * the figure. The note also gives the ceiling: a raw .all() loop that awaits each result, which is
 * the least any pool.query must do (return every row, as a promise); a pool can come close to it,
 * not above it.
 */
async function pointRead({ dir, rows = 10_000, iterations = size(100_000, 20_000) }) {
  const path = join(dir, 'point-read.db')
  seed(path, rows)
  const ids = Array.from({ length: iterations }, (_, i) => 1 + ((i * 7919) % rows))
  const text = 'select id, name, balance from account where id = ?'

  const raw = rawConnection(path)
  const stmt = raw.prepare(text)
  const pool = createSqlitePool(path, { name: 'bench-read' }, { readers: 2 })
  const perSec = (t0) => iterations / ((performance.now() - t0) / 1000)
  try {
    for (let i = 0; i < 10_000; i++) stmt.get(ids[i % iterations])
    for (let i = 0; i < 10_000; i++) await pool.query(text, [ids[i % iterations]])
    const rawOps = []
    const poolOps = []
    const poolSqlOps = []
    const ceilingOps = []
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now()
      for (const id of ids) stmt.get(id)
      rawOps.push(perSec(t0))
      t0 = performance.now()
      for (const id of ids) await stmt.all(id)
      ceilingOps.push(perSec(t0))
      t0 = performance.now()
      for (const id of ids) await pool.query(text, [id])
      poolOps.push(perSec(t0))
      t0 = performance.now()
      for (const id of ids) await pool.query(sql`select id, name, balance from account where id = ${id}`)
      poolSqlOps.push(perSec(t0))
    }
    return {
      case: 'point read by primary key: pool.query vs raw .get() (target 0.9, stretch 0.95)',
      'dbpool ops/s': ops(poolOps),
      'raw ops/s': ops(rawOps),
      'dbpool ÷ raw': spread(ratios(poolOps, rawOps)),
      note: `sql tag: ${ops(poolSqlOps)}/s, ÷ raw ${spread(ratios(poolSqlOps, rawOps))}; ceiling (raw .all() awaited) ÷ raw ${spread(ratios(ceilingOps, rawOps))}`,
    }
  } finally {
    raw.close()
    await pool.close()
  }
}

/** The same transactions one after another on one raw connection (the anchor); ops/s. */
function rawWriters(path, total) {
  const raw = rawConnection(path)
  const begin = raw.prepare('BEGIN IMMEDIATE')
  const update = raw.prepare('update account set balance = balance + ? where id = ?')
  const insert = raw.prepare('insert into entry (account_id, amount) values (?, ?)')
  const commit = raw.prepare('COMMIT')
  const t0 = performance.now()
  for (let i = 0; i < total; i++) {
    begin.run()
    update.run(1, 1 + (i % 100))
    insert.run(1 + (i % 100), 1)
    commit.run()
  }
  const opsPerSec = total / ((performance.now() - t0) / 1000)
  raw.close()
  return opsPerSec
}

/** `writersCount` async writers through pool.transaction; ops/s, errors and rows committed. */
async function poolWriters(path, writersCount, perWriter) {
  const pool = createSqlitePool(path, { name: 'bench-write', acquireTimeoutMs: 120_000 }, { readers: 2 })
  let errors = 0
  try {
    await pool.query('select 1')
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: writersCount }, async (_, w) => {
        for (let j = 0; j < perWriter; j++) {
          const account = 1 + ((w * perWriter + j) % 100)
          try {
            await pool.transaction(async (tx) => {
              await tx.query('update account set balance = balance + ? where id = ?', [1, account])
              await tx.query('insert into entry (account_id, amount) values (?, ?)', [account, 1])
            })
          } catch {
            errors++
          }
        }
      }),
    )
    const opsPerSec = (writersCount * perWriter) / ((performance.now() - t0) / 1000)
    const { rows } = await pool.query('select count(*) as n from entry')
    return { opsPerSec, errors, committed: Number(rows[0].n) }
  } finally {
    await pool.close()
  }
}

/** Raw and pool alternate over the rounds, each round on fresh files. */
async function writers({ dir, writersCount = 50, perWriter = size(200, 40) }) {
  const total = writersCount * perWriter
  const rawOps = []
  const poolOps = []
  let errors = 0
  let committed = 0
  for (let r = 0; r < ROUNDS; r++) {
    const rawPath = join(dir, `writers-raw-${r}.db`)
    seed(rawPath, 100)
    rawOps.push(rawWriters(rawPath, total))
    const poolPath = join(dir, `writers-pool-${r}.db`)
    seed(poolPath, 100)
    const result = await poolWriters(poolPath, writersCount, perWriter)
    poolOps.push(result.opsPerSec)
    errors += result.errors
    committed += result.committed
  }
  return {
    case: `${writersCount} async writers × ${perWriter} transactions: pool.transaction vs the same run one after another raw (target 0.8)`,
    'dbpool ops/s': ops(poolOps),
    'raw ops/s': ops(rawOps),
    'dbpool ÷ raw': spread(ratios(poolOps, rawOps)),
    note: `errors: ${errors}, committed: ${committed} of ${total * ROUNDS}`,
  }
}

/** Rows for bench/RESULTS.md. */
async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'dbpool-sqlite-bench-'))
  try {
    return [await pointRead({ dir }), await writers({ dir })]
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

module.exports = { main, pointRead, writers }

if (require.main === module) runStandalone(main)
