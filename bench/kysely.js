'use strict'
// Kysely on dbpool (DbpoolDialect) against Kysely on its own dialects, in one run: a point select
// (`selectFrom('bench_kv').select(['id', 'v']).where('id', '=', id)`) through the same query builder.
// Postgres: DbpoolDialect on a dbpool pool (max 10) vs PostgresDialect on pg.Pool({ max: 10 }), at
// concurrency 1 and 16. SQLite: DbpoolDialect on a dbpool SQLite pool (2 readers) vs SqliteDialect on
// one better-sqlite3 connection, at concurrency 1 and 16. Every round measures Kysely's dialect, then
// DbpoolDialect; ratio = dbpool ÷ Kysely's dialect per round (median, min–max). Target: at least 1.0
// on Postgres at concurrency 16.
// Run with `npm run bench -- kysely` (builds first) or `node bench/kysely.js` after `npm run build`.
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const pg = require('pg')
const Database = require('better-sqlite3')
const { Kysely, PostgresDialect, SqliteDialect } = require('kysely')
const { DatabaseConfig } = require('@dbpool/core')
const { createPostgresPool } = require('@dbpool/postgres')
const { createSqlitePool } = require('@dbpool/sqlite')
const { DbpoolDialect } = require('@dbpool/kysely')
const { ROUNDS, QUICK, size, ops, spread, ratios, throughput, runStandalone } = require('./lib')
const { openPostgres } = require('./pg-server')

const MAX = 10
const ROWS = 100_000
const SQLITE_ROWS = 10_000
const CONCURRENCIES = [1, 16]
const MS = size(1_000, 250)
const WARM_MS = size(300, 100)

/** The same query on every side: a point select by primary key. */
function pointSelect(db, rows) {
  return () =>
    db
      .selectFrom('bench_kv')
      .select(['id', 'v'])
      .where('id', '=', 1 + Math.floor(Math.random() * rows))
      .executeTakeFirst()
}

/** Warms both sides, then `ROUNDS` rounds of (anchor, dbpool); returns the row of one case. */
async function compare(name, concurrency, anchorLabel, anchor, dbpool) {
  await throughput(anchor, concurrency, WARM_MS)
  await throughput(dbpool, concurrency, WARM_MS)
  const a = []
  const d = []
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await throughput(anchor, concurrency, MS))
    d.push(await throughput(dbpool, concurrency, MS))
  }
  return {
    case: `${name}, concurrency ${concurrency}`,
    anchor: anchorLabel,
    'Kysely on dbpool ops/s': ops(d),
    "Kysely's dialect ops/s": ops(a),
    'dbpool ÷ Kysely dialect': spread(ratios(d, a)),
  }
}

async function seedPostgres(url) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('drop table if exists bench_kv')
    await client.query('create table bench_kv (id int primary key, v text not null)')
    await client.query(`insert into bench_kv select g, 'value ' || g from generate_series(1, ${ROWS}) g`)
    await client.query('analyze bench_kv')
  } finally {
    await client.end()
  }
}

async function postgresRows(ctx) {
  const server = await (ctx.postgres ? ctx.postgres() : openPostgres())
  const open = []
  try {
    await seedPostgres(server.url)
    const anchor = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: server.url, max: MAX }) }) })
    open.push(() => anchor.destroy())
    const config = DatabaseConfig.fromUrl(server.url, { sslMode: 'disable' })
    const pool = createPostgresPool(config, { min: MAX, max: MAX, name: 'bench-kysely' })
    open.push(() => pool.close())
    const dbpool = new Kysely({ dialect: new DbpoolDialect({ pool }) })
    const rows = []
    for (const concurrency of CONCURRENCIES)
      rows.push(
        await compare(
          'Postgres point select',
          concurrency,
          'PostgresDialect on pg.Pool',
          pointSelect(anchor, ROWS),
          pointSelect(dbpool, ROWS),
        ),
      )
    return rows
  } finally {
    while (open.length)
      await open
        .pop()()
        .catch(() => undefined)
    if (!ctx.postgres) await server.close()
  }
}

async function sqliteRows() {
  const dir = mkdtempSync(join(tmpdir(), 'dbpool-bench-kysely-'))
  const path = join(dir, 'kv.db')
  const open = []
  try {
    const seed = new Database(path)
    seed.pragma('journal_mode = WAL')
    seed.exec('create table bench_kv (id integer primary key, v text not null)')
    const insert = seed.prepare('insert into bench_kv (id, v) values (?, ?)')
    seed.transaction(() => {
      for (let i = 1; i <= SQLITE_ROWS; i++) insert.run(i, `value ${i}`)
    })()
    seed.close()
    const raw = new Database(path)
    raw.pragma('journal_mode = WAL')
    const anchor = new Kysely({ dialect: new SqliteDialect({ database: raw }) })
    open.push(() => anchor.destroy())
    const pool = createSqlitePool(path, { name: 'bench-kysely-sqlite' }, { readers: 2 })
    open.push(() => pool.close())
    const dbpool = new Kysely({ dialect: new DbpoolDialect({ pool }) })
    const rows = []
    for (const concurrency of CONCURRENCIES)
      rows.push(
        await compare(
          'SQLite point select',
          concurrency,
          'SqliteDialect on better-sqlite3',
          pointSelect(anchor, SQLITE_ROWS),
          pointSelect(dbpool, SQLITE_ROWS),
        ),
      )
    return rows
  } finally {
    while (open.length)
      await open
        .pop()()
        .catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main(ctx = {}) {
  const rows = [...(await postgresRows(ctx)), ...(await sqliteRows())]
  return {
    rows,
    notes: [
      `${ROUNDS} rounds of ${MS} ms per side${QUICK ? ' (BENCH_QUICK)' : ''}; both sides build and compile the same Kysely query, so the ratio is the driver underneath.`,
      'Kysely on dbpool borrows a connection per query (withConnection, held across Kysely’s acquire/release) and, on Postgres, runs named prepared statements; PostgresDialect sends unnamed statements through pg.Pool.',
    ],
  }
}

module.exports = { main }

if (require.main === module) runStandalone(main)
