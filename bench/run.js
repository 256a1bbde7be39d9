'use strict'
// `npm run bench`: runs every suite and writes bench/RESULTS.md; `npm run bench -- <suite>` runs one
// (printed, RESULTS.md untouched). BENCH_QUICK=1 shrinks every size to check the harness (never
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
      'µs per acquire+release when N callers ask at once for one of 4 connections (no-op manager), through DatabasePool and raw tarn; every (side, N) runs in a fresh child process, a round runs them all once, and growth is cost(100,000) ÷ cost(1,000) within a round (dbpool target at most 1.5: the cost of a lease should not depend on the queue length).',
  },
  {
    name: 'memory',
    title: 'Memory: V8 heap per idle connection and per waiting caller',
    meaning:
      'heapUsed after full GCs (--expose-gc, child processes). Per idle connection: least-squares slope of the heap as one pool (or one set of raw clients) grows through the listed counts, so fixed costs cancel ("dbpool fixed" is the intercept). Per waiting callers: the heap held by 10,000 acquire+release cycles waiting on a 4-connection pool whose connections are all held (same no-op manager on both sides). Native memory (sockets, SQLite page cache) is not counted.',
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
  if (only || QUICK) return
  const cpus = os.cpus()
  const header = [
    '# Benchmark results',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, Node ${process.version}; \`npm run bench\` took ${Math.round(seconds)} s (load average ${loadBefore[0].toFixed(1)} before, ${loadAfter[0].toFixed(1)} after).`,
    ...(process.env.BENCH_NOTE ? ['', process.env.BENCH_NOTE] : []),
    '',
    `Every figure is the median over ${ROUNDS} interleaved rounds (the wait-queue suite: 3) with, in parentheses, the min–max of the per-round values; every ratio is taken within a round, between sides measured one after the other in the same run.`,
    'Regenerate with `npm run bench` (or `npm run bench -- <suite>` for one suite, printed only; `BENCH_QUICK=1` for a fast check of the harness).',
    '',
  ].join('\n')
  fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), `${header}\n${sections.join('\n')}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
