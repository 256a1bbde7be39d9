'use strict'
// SQLite point reads and single-row writes: raw better-sqlite3 (the anchor), DatabasePool.query
// (direct path on an idle connection), and a tarn-style lease per statement (withConnection).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Database = require('better-sqlite3')
const { createSqlitePool } = require('@dbpool/sqlite')

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function rate(fn, iterations) {
  const started = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) await fn(i)
  return iterations / (Number(process.hrtime.bigint() - started) / 1e9)
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbpool-bench-'))
  const file = path.join(dir, 'bench.db')
  const seed = new Database(file)
  seed.pragma('journal_mode = WAL')
  seed.exec('create table kv (id integer primary key, v text not null)')
  const insert = seed.prepare('insert into kv (id, v) values (?, ?)')
  seed.transaction(() => {
    for (let i = 1; i <= 10_000; i++) insert.run(i, `value ${i}`)
  })()
  seed.close()

  const raw = new Database(file)
  raw.pragma('journal_mode = WAL')
  raw.pragma('synchronous = FULL')
  const rawRead = raw.prepare('select id, v from kv where id = ?')
  const rawWrite = raw.prepare('update kv set v = ? where id = ?')
  const pool = createSqlitePool(file, { min: 1, max: 4, name: 'bench' }, { synchronous: 'FULL' })
  await pool.query('select 1')

  const N = 100_000
  const W = 5_000
  const rows = { rawRead: [], poolRead: [], leaseRead: [], rawWrite: [], poolWrite: [] }
  for (let round = 0; round < 5; round++) {
    rows.rawRead.push(await rate((i) => rawRead.get((i % 10_000) + 1), N))
    rows.poolRead.push(await rate((i) => pool.query('select id, v from kv where id = ?', [(i % 10_000) + 1]), N))
    rows.leaseRead.push(await rate((i) => pool.withConnection((c) => c.query('select id, v from kv where id = ?', [(i % 10_000) + 1]), { lane: 'read' }), N / 2))
    rows.rawWrite.push(await rate((i) => rawWrite.run(`w${i}`, (i % 10_000) + 1), W))
    rows.poolWrite.push(await rate((i) => pool.query('update kv set v = ? where id = ?', [`p${i}`, (i % 10_000) + 1]), W))
  }
  raw.close()
  await pool.close()
  fs.rmSync(dir, { recursive: true, force: true })
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, Math.round(median(v))]))
  return [
    { case: 'point read', anchor: 'raw better-sqlite3', anchorOpsPerSec: m.rawRead, dbpoolOpsPerSec: m.poolRead, ratio: +(m.rawRead / m.poolRead).toFixed(2) },
    { case: 'point read, lease per statement', anchor: 'raw better-sqlite3', anchorOpsPerSec: m.rawRead, dbpoolOpsPerSec: m.leaseRead, ratio: +(m.rawRead / m.leaseRead).toFixed(2) },
    { case: 'single-row update (synchronous=FULL)', anchor: 'raw better-sqlite3', anchorOpsPerSec: m.rawWrite, dbpoolOpsPerSec: m.poolWrite, ratio: +(m.rawWrite / m.poolWrite).toFixed(2) },
  ]
}

module.exports = { main }
if (require.main === module) main().then((r) => console.table(r))
