'use strict'
// Benchmarks of @dbpool/sqlite against raw better-sqlite3, in one run: a point read through
// pool.query vs a prepared .get(), and 50 async writers x 200 transactions through pool.transaction
// vs the same 10,000 transactions one after another on one raw connection. Ratio = pool / raw.
// Run with `npm run bench -- sqlite` (builds first) or `node bench/sqlite.js` after `npm run build`.
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const Database = require('better-sqlite3')
const { sql } = require('@dbpool/core')
const { createSqlitePool } = require('@dbpool/sqlite')

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

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/**
 * Raw .get() and pool.query alternate over `rounds` rounds on the same file, and each side's median
 * round counts: a burst of load from a neighbour on this shared machine then skews one round, not the
 * ratio.
 */
async function pointRead({ dir, rows = 10_000, iterations = 100_000, rounds = 5 }) {
  const path = join(dir, 'point-read.db')
  seed(path, rows)
  const ids = Array.from({ length: iterations }, (_, i) => 1 + ((i * 7919) % rows))
  const text = 'select id, name, balance from account where id = ?'

  const raw = rawConnection(path)
  const stmt = raw.prepare(text)
  const pool = createSqlitePool(path, { name: 'bench-read' }, { readers: 2 })
  try {
    for (let i = 0; i < 10_000; i++) stmt.get(ids[i])
    for (let i = 0; i < 10_000; i++) await pool.query(text, [ids[i]])
    const rawMs = []
    const poolMs = []
    const poolSqlMs = []
    for (let r = 0; r < rounds; r++) {
      let t0 = performance.now()
      for (const id of ids) stmt.get(id)
      rawMs.push(performance.now() - t0)
      t0 = performance.now()
      for (const id of ids) await pool.query(text, [id])
      poolMs.push(performance.now() - t0)
      t0 = performance.now()
      for (const id of ids) await pool.query(sql`select id, name, balance from account where id = ${id}`)
      poolSqlMs.push(performance.now() - t0)
    }
    return report('point read by primary key (pool.query vs raw .get())', iterations, median(rawMs), median(poolMs), {
      sqlTagOpsPerSec: Math.round(iterations / (median(poolSqlMs) / 1000)),
    })
  } finally {
    raw.close()
    await pool.close()
  }
}

async function writers({ dir, writersCount = 50, perWriter = 200 }) {
  const total = writersCount * perWriter
  const rawPath = join(dir, 'writers-raw.db')
  seed(rawPath, 100)
  const raw = rawConnection(rawPath)
  const begin = raw.prepare('BEGIN IMMEDIATE')
  const update = raw.prepare('update account set balance = balance + ? where id = ?')
  const insert = raw.prepare('insert into entry (account_id, amount) values (?, ?)')
  const commit = raw.prepare('COMMIT')
  let t0 = performance.now()
  for (let i = 0; i < total; i++) {
    begin.run()
    update.run(1, 1 + (i % 100))
    insert.run(1 + (i % 100), 1)
    commit.run()
  }
  const rawMs = performance.now() - t0
  raw.close()

  const poolPath = join(dir, 'writers-pool.db')
  seed(poolPath, 100)
  const pool = createSqlitePool(poolPath, { name: 'bench-write', acquireTimeoutMs: 120_000 }, { readers: 2 })
  let errors = 0
  try {
    await pool.query('select 1')
    t0 = performance.now()
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
    const poolMs = performance.now() - t0
    const { rows } = await pool.query('select count(*) as n from entry')
    return report(`${writersCount} async writers x ${perWriter} transactions (pool.transaction vs sequential raw)`, total, rawMs, poolMs, {
      errors,
      committed: rows[0].n,
    })
  } finally {
    await pool.close()
  }
}

function report(name, operations, rawMs, poolMs, extra) {
  const rawOps = operations / (rawMs / 1000)
  const poolOps = operations / (poolMs / 1000)
  return {
    name,
    operations,
    rawOpsPerSec: Math.round(rawOps),
    poolOpsPerSec: Math.round(poolOps),
    ratio: Math.round((poolOps / rawOps) * 1000) / 1000,
    ...extra,
  }
}

async function run({ log = (line) => console.log(line) } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'dbpool-sqlite-bench-'))
  try {
    const results = [await pointRead({ dir }), await writers({ dir })]
    for (const r of results) log(JSON.stringify(r))
    return results
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Rows for bench/RESULTS.md. */
async function main() {
  const results = await run({ log: () => undefined })
  return results.map((r) => ({
    case: r.name,
    anchor: 'raw better-sqlite3',
    anchorOpsPerSec: r.rawOpsPerSec,
    dbpoolOpsPerSec: r.poolOpsPerSec,
    ratio: r.ratio,
    note: r.errors === undefined ? `sql tag: ${r.sqlTagOpsPerSec}/s` : `errors: ${r.errors}, committed: ${r.committed}`,
  }))
}

module.exports = { main, run, pointRead, writers }

if (require.main === module) {
  main().then(
    (rows) => console.table(rows),
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}
