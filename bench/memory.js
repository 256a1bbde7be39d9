'use strict'
// Memory, in V8 heap bytes (the data spaces, after full GCs, in child processes run with
// --expose-gc):
// - per idle connection: one pool (or one set of raw clients) grows through several connection
//   counts and the heap is read at each; the (Theil–Sen) slope is the bytes per connection, so
//   fixed costs (the pool itself, loaded code) cancel; for a dbpool pool and for raw pg.Client /
//   better-sqlite3 Database objects as anchors;
// - per 10,000 waiting callers: 10,000 acquire+release cycles started while every connection of a
//   4-connection pool is held, through DatabasePool and raw tarn (same no-op manager).
// Native memory (sockets, SQLite's page cache) is not V8 heap and is not counted.
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { SIDES } = require('./noop-sides')
const { ROUNDS, size, median, spread, ratios, runChild, childMain, heapAfterGc, runStandalone } = require('./lib')
const { openPostgres } = require('./pg-server')

/** Connection counts each target is measured at (V8's heap moves in steps: a least-squares slope over several). */
const COUNTS = {
  postgres: size([4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34], [2, 4, 6, 8]),
  // SQLite's connection is mostly native memory: its small heap share needs more connections to show
  sqlite: size([4, 10, 16, 22, 28, 34, 40, 46, 52, 58, 64], [2, 6, 10, 14]),
}
const WAITERS = 10_000
/**
 * V8 flags of the measuring children: GC on the main thread only (with concurrent marking and
 * sweeping, the used size read right after gc() moved by ±200 KB from one reading to the next), no
 * bytecode flushing, no optimizing or baseline compiler and feedback vectors allocated at once, so
 * the heap holds data rather than code and JIT metadata that come and go on the compilers' own
 * schedule (the children only allocate: their speed is irrelevant).
 */
const MEASURE_FLAGS = ['--single-threaded-gc', '--no-flush-bytecode', '--no-opt', '--no-sparkplug', '--no-lazy-feedback-allocation']

/** Polls `done()` every 5 ms until it holds (or throws after `ms`). */
async function until(done, what, ms = 60_000) {
  const deadline = performance.now() + ms
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * `make(target)` returns `{ grow(n), close() }`: `grow(n)` leaves n connections open and idle, opening
 * only the missing ones, so one pool (or one set of clients) grows through the counts and nothing is
 * closed between the measurements.
 */
const TARGETS = {
  'postgres-dbpool': ({ url }) => {
    const { createPostgresPool } = require('@dbpool/postgres')
    const { DatabaseConfig } = require('@dbpool/core')
    const pool = createPostgresPool(DatabaseConfig.fromUrl(url, { sslMode: 'disable' }), { min: 0, max: 1_000, name: 'bench-memory' })
    return { grow: (n) => holdAtOnce(pool, n, 'write'), close: () => pool.close() }
  },
  'postgres-raw': ({ url }) => {
    const pg = require('pg')
    const clients = []
    return {
      grow: async (n) => {
        const more = Array.from({ length: n - clients.length }, () => new pg.Client({ connectionString: url }))
        await Promise.all(more.map((c) => c.connect()))
        clients.push(...more)
      },
      close: () => Promise.all(clients.map((c) => c.end())),
    }
  },
  'sqlite-dbpool': ({ path }) => {
    const { createSqlitePool } = require('@dbpool/sqlite')
    // min 0: only the readers the measurement asks for open (the writer never does)
    const pool = createSqlitePool(path, { min: 0, max: 64, name: 'bench-memory' }, { readers: 64 })
    return { grow: (n) => holdAtOnce(pool, n, 'read'), close: () => pool.close() }
  },
  'sqlite-raw': ({ path }) => {
    const Database = require('better-sqlite3')
    const dbs = []
    return {
      grow: async (n) => {
        while (dbs.length < n) {
          const db = new Database(path, { timeout: 5000 })
          for (const p of ['journal_mode = WAL', 'synchronous = FULL', 'foreign_keys = ON']) db.pragma(p)
          dbs.push(db)
        }
      },
      close: async () => dbs.forEach((db) => db.close()),
    }
  },
}

/** Holds n leases of a lane at once, so the pool opens n connections, then releases them (they stay idle). */
async function holdAtOnce(pool, n, lane) {
  const release = []
  const held = Array.from({ length: n }, () => pool.withConnection(() => new Promise((resolve) => release.push(resolve)), { lane }))
  await until(() => release.length === n, `${n} leases held`)
  for (const r of release) r()
  await Promise.all(held)
  await until(() => pool.stats(lane).idle === n, `${n} idle connections`)
}

/** Child: bytes per idle connection (the slope over the counts). */
async function idleChild(which, target) {
  const counts = COUNTS[which.split('-')[0]]
  // warm-up on a throwaway instance: code and caches allocated on first use are not per connection
  const warm = TARGETS[which](target)
  await warm.grow(2)
  await warm.close()
  const subject = TARGETS[which](target)
  const h0 = await heapAfterGc()
  const heaps = []
  for (const n of counts) {
    await subject.grow(n)
    heaps.push((await heapAfterGc()) - h0)
  }
  await subject.close()
  return { perConnection: theilSen(counts, heaps) }
}

/**
 * Theil–Sen slope: the median of the slopes between every two points. V8's heap moves in steps now
 * and then (a table grows, a cache is aged out): a least-squares line would follow such a step, the
 * median slope ignores it.
 */
function theilSen(xs, ys) {
  const slopes = []
  for (let i = 0; i < xs.length; i++) for (let j = i + 1; j < xs.length; j++) slopes.push((ys[j] - ys[i]) / (xs[j] - xs[i]))
  return median(slopes)
}

/** Child: heap bytes held by WAITERS callers waiting for one of 4 held connections. */
async function waitersChild(which) {
  const side = SIDES[which](4)
  const once = async (measure) => {
    const release = []
    const held = Array.from({ length: 4 }, () => side.cycle(() => new Promise((resolve) => release.push(resolve))))
    await until(() => release.length === 4, 'the 4 connections held')
    const waiting = new Array(WAITERS).fill(undefined)
    const before = measure ? await heapAfterGc() : 0
    for (let i = 0; i < WAITERS; i++) waiting[i] = side.cycle()
    const after = measure ? await heapAfterGc() : 0
    for (const r of release) r()
    await Promise.all([...held, ...waiting])
    return after - before
  }
  await once(false)
  const bytes = await once(true)
  await side.close()
  return bytes
}

const bytes = (x) => `${Math.round(x)} B`
const mib = (x) => `${(x / 1024 / 1024).toFixed(2)} MiB`

async function main(ctx = {}) {
  const pg = await (ctx.postgres ? ctx.postgres() : openPostgres())
  const dir = mkdtempSync(join(tmpdir(), 'dbpool-memory-bench-'))
  const sqlitePath = join(dir, 'memory.db')
  try {
    const Database = require('better-sqlite3')
    const seed = new Database(sqlitePath)
    seed.pragma('journal_mode = WAL')
    seed.exec('create table t (id integer primary key)')
    seed.close()
    const sides = [
      ['postgres-dbpool', { url: pg.url }],
      ['postgres-raw', { url: pg.url }],
      ['sqlite-dbpool', { path: sqlitePath }],
      ['sqlite-raw', { path: sqlitePath }],
    ]
    const idle = Object.fromEntries(sides.map(([which]) => [which, { perConnection: [] }]))
    const waiters = { dbpool: [], tarn: [] }
    const gc = { execArgv: ['--expose-gc', ...MEASURE_FLAGS] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [which, target] of sides) {
        const r = await runChild(__filename, ['--child', 'idle', which, JSON.stringify(target)], gc)
        idle[which].perConnection.push(r.perConnection)
      }
      for (const which of ['dbpool', 'tarn']) waiters[which].push(await runChild(__filename, ['--child', 'waiters', which], gc))
    }
    const row = (what, dbpool, anchorName, anchor, format = bytes) => ({
      case: what,
      dbpool: spread(dbpool, format),
      anchor: anchorName,
      'anchor heap': spread(anchor, format),
      'dbpool ÷ anchor': spread(ratios(dbpool, anchor)),
    })
    return {
      rows: [
        row(
          `heap bytes per idle Postgres connection (${COUNTS.postgres.join(', ')} open)`,
          idle['postgres-dbpool'].perConnection,
          'raw pg.Client',
          idle['postgres-raw'].perConnection,
        ),
        row(
          `heap bytes per idle SQLite connection (${COUNTS.sqlite.join(', ')} readers)`,
          idle['sqlite-dbpool'].perConnection,
          'raw better-sqlite3 Database',
          idle['sqlite-raw'].perConnection,
        ),
        row(`heap per ${WAITERS.toLocaleString('en-US')} waiting callers (max 4, all held)`, waiters.dbpool, 'raw tarn', waiters.tarn, mib),
      ],
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    if (!ctx.postgres) await pg.close()
  }
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') {
    const [, , , kind, which, target] = process.argv
    childMain(() => (kind === 'idle' ? idleChild(which, JSON.parse(target)) : waitersChild(which)))
  } else runStandalone(main)
}
