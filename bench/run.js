'use strict'
// `npm run bench`: runs every suite and writes bench/RESULTS.md; `npm run bench -- <suite>` runs one
// (printed; with BENCH_WRITE=1 its section of RESULTS.md is replaced, and the header says so). BENCH_QUICK=1 shrinks every size to check the harness (never
// written to RESULTS.md); BENCH_ROUNDS sets the rounds (at least 3); BENCH_NOTE adds a line to the
// header (e.g. that the machine was shared). Ratios compare dbpool with its anchor measured in the
// same run and the same rounds, never against a fixed time.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { QUICK, ROUNDS } = require('./lib')
const { sharedPostgres } = require('./pg-server')

const SUITES = [
  {
    name: 'pool-overhead',
    title: 'Pool overhead: an acquire+release cycle through DatabasePool vs raw tarn, same no-op manager',
    meaning:
      'Each round runs each side once in a fresh child process (best of 3 passes after a warm-up). tarn ÷ dbpool is the cost of our layer: target at most 1.25.',
  },
  {
    name: 'wait-queue',
    title: 'Wait-queue scaling: cost per lease with N callers waiting at once',
    meaning:
      "µs per acquire+release when N callers ask at once for one of 4 connections (no-op manager and no-op work), through DatabasePool, raw tarn, and a floor: 4 slots and a FIFO of bare promises, the least any promise-based pool does, whose cost grows too because N callers' promises live at once (they survive young-generation collections and are promoted). dbpool − floor, per round, is the pool's own cost. Every (side, N) runs in a fresh child process, a round runs them all once, and growth is cost(100,000) ÷ cost(1,000) within a round, by wall clock and by CPU time (target at most 1.5: the cost of a lease should not depend on the queue length).",
  },
  {
    name: 'memory',
    title: 'Memory: V8 heap per idle connection and per waiting caller',
    meaning:
      "V8 heap bytes in the data spaces (code left out) after full GCs, in child processes run with --expose-gc, a single-threaded GC and the optimizing compilers off (so a reading is exact and the heap holds data, not JIT output). Per idle connection: the Theil–Sen slope (median of pairwise slopes) of the heap as one pool, or one set of raw clients, grows through the listed counts, so fixed costs cancel and an occasional step of V8's own tables does not count. Per waiting callers: the heap held by 10,000 acquire+release cycles waiting on a 4-connection pool whose connections are all held (same no-op manager on both sides). Native memory (sockets, SQLite's page cache and statements) is not counted: a SQLite connection lives almost entirely there.",
  },
  {
    name: 'sqlite',
    title: 'SQLite: DatabasePool vs raw better-sqlite3',
    meaning:
      'dbpool ÷ raw, per round (the sides alternate within each round). Targets: point read at least 0.9 (stretch 0.95), 50 writers at least 0.8.',
  },
  {
    name: 'postgres',
    title: 'Postgres: pool.query vs pg.Pool({ max: 10 }) and postgres.js ({ max: 10 })',
    meaning:
      'Per case, every round measures pg.Pool, dbpool (and its variants), postgres.js in that order; dbpool ÷ pg.Pool and dbpool ÷ postgres.js are per-round ratios (targets: at least 1.0 against pg.Pool at every concurrency, and ahead of postgres.js).',
  },
  {
    name: 'kysely',
    title: "Kysely: a point select through DbpoolDialect vs Kysely's PostgresDialect (pg.Pool) and SqliteDialect (better-sqlite3)",
    meaning:
      "The same Kysely query on every side; each round measures Kysely's own dialect, then DbpoolDialect. dbpool ÷ Kysely dialect is a per-round ratio (target: at least 1.0 on Postgres at concurrency 16).",
  },
  {
    name: 'stream',
    title: 'Streaming and COPY: pool.stream() heap and event-loop stall, COPY vs INSERT batches',
    meaning:
      'Each read runs in a fresh child process (--expose-gc): heap growth is the highest heapUsed sampled every 1,024 rows minus the heap after full GCs before the read (garbage not yet collected counts), for pool.stream() and, as the anchor, pool.query() holding every row; the stall is the longest gap between two ticks of a 1 ms interval timer during the read. COPY and INSERT batches alternate within each round.',
  },
  {
    name: 'replicas',
    title: 'Read replicas: read throughput on a standby vs the primary alone, and the cost of readYourWrites',
    meaning:
      "A cluster of its own (a primary and one streaming standby on this machine). Each round reads through a pool on the primary alone and through a pool whose read lane is the standby (lane: 'read'), then writes with and without readYourWrites; replica ÷ primary and the cost per write are per-round figures.",
  },
  {
    name: 'tracing',
    title: 'Tracing overhead: pool.query with no OpenTelemetry SDK vs a registered SDK',
    meaning:
      'Per case, each round runs the pool once without an SDK and once with an SDK tracer provider registered, each in a fresh child process that also measures the anchor. SDK ÷ no SDK is the price of a recording span per statement; no SDK ÷ anchor compares with the sqlite and postgres suites (target: no SDK within 3% of the pool before tracing).',
  },
]

function table(rows) {
  const keys = Object.keys(rows[0] ?? {})
  const cell = (v) => (v === null || v === undefined ? '' : String(v).replace(/\|/g, '\\|'))
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(keys), line(keys.map(() => '---')), ...rows.map((r) => line(keys.map((k) => cell(r[k]))))].join('\n')
}

/** A suite's result as markdown: its main table, further tables, notes. */
function section(suite, result) {
  const { rows, tables = [], notes = [] } = Array.isArray(result) ? { rows: result } : result
  const parts = [`## ${suite.title}`, '', suite.meaning, '', table(rows), '']
  for (const t of tables) parts.push(`### ${t.heading}`, '', t.meaning, '', table(t.rows), '')
  if (notes.length) parts.push(...notes.map((n) => `- ${n}`), '')
  return parts.join('\n')
}

function print(result) {
  const { rows, tables = [], notes = [] } = Array.isArray(result) ? { rows: result } : result
  console.table(rows)
  for (const t of tables) {
    console.log(t.heading)
    console.table(t.rows)
  }
  for (const n of notes) console.log(n)
}

async function main() {
  const only = process.argv[2]
  const chosen = only ? SUITES.filter((s) => s.name === only || s.name.includes(only)) : SUITES
  if (chosen.length === 0) throw new Error(`no suite "${only}": one of ${SUITES.map((s) => s.name).join(', ')}`)
  const started = Date.now()
  const loadBefore = os.loadavg()
  const shared = sharedPostgres()
  const sections = []
  try {
    for (const suite of chosen) {
      const t0 = Date.now()
      process.stdout.write(`running ${suite.name} ...\n`)
      const result = await require(`./${suite.name}`).main({ postgres: shared.postgres })
      print(result)
      process.stdout.write(`${suite.name}: ${((Date.now() - t0) / 1000).toFixed(0)} s\n`)
      sections.push(section(suite, result))
    }
  } finally {
    await shared.close()
  }
  const seconds = (Date.now() - started) / 1000
  const loadAfter = os.loadavg()
  process.stdout.write(`bench: ${seconds.toFixed(0)} s\n`)
  if (QUICK) return
  const file = path.join(__dirname, 'RESULTS.md')
  const date = new Date().toISOString().slice(0, 10)
  if (only) {
    if (process.env.BENCH_WRITE === '1') replaceSections(file, chosen, sections, `${date} (${Math.round(seconds)} s)`)
    return
  }
  const cpus = os.cpus()
  const header = [
    '# Benchmark results',
    '',
    `Measured ${date} on ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, Node ${process.version}; \`npm run bench\` took ${Math.round(seconds)} s (load average ${loadBefore[0].toFixed(1)} before, ${loadAfter[0].toFixed(1)} after).`,
    ...(process.env.BENCH_NOTE ? ['', process.env.BENCH_NOTE] : []),
    '',
    `Every figure is the median over ${ROUNDS} interleaved rounds (the wait-queue suite: 3) with, in parentheses, the min–max of the per-round values; every ratio is taken within a round, between sides measured one after the other in the same run, so a ratio's median need not equal the ratio of the ops/s medians.`,
    'Regenerate with `npm run bench` (or `npm run bench -- <suite>` for one suite, printed only, or written over its section with `BENCH_WRITE=1`; `BENCH_QUICK=1` for a fast check of the harness).',
    '',
  ].join('\n')
  fs.writeFileSync(file, `${header}\n${sections.join('\n')}`)
}

/** Replaces the sections of `suites` in RESULTS.md (each runs from its `## ` heading to the next). */
function replaceSections(file, suites, sections, when) {
  let text = fs.readFileSync(file, 'utf8')
  suites.forEach((suite, i) => {
    const start = text.indexOf(`## ${suite.title}\n`)
    if (start < 0) throw new Error(`RESULTS.md has no section "${suite.title}": run the whole bench`)
    const next = text.indexOf('\n## ', start + 3)
    const end = next < 0 ? text.length : next + 1
    text = `${text.slice(0, start)}${sections[i]}${next < 0 ? '' : '\n'}${text.slice(end)}`
    const mark = `\n\nThe "${suite.title.split(':')[0]}" section was re-measured alone on ${when}.`
    text = text.replace(/\n\nEvery figure is the median/, `${mark}\n\nEvery figure is the median`)
  })
  fs.writeFileSync(file, text)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
