'use strict'
// Shared by every suite: the size knobs, rounds, medians with their spread, the cell formats of
// RESULTS.md, timed loops and child processes.
const { execFile } = require('node:child_process')

/** BENCH_QUICK=1: small sizes and short timings, to check the harness (the figures mean little). */
const QUICK = process.env.BENCH_QUICK === '1'

/** Interleaved rounds per figure: BENCH_ROUNDS, else 3 when quick, else 5 (never fewer than 3). */
const ROUNDS = Math.max(3, Number(process.env.BENCH_ROUNDS) || (QUICK ? 3 : 5))

/** `full` normally, `quick` under BENCH_QUICK=1. */
const size = (full, quick) => (QUICK ? quick : full)

function sorted(xs) {
  return [...xs].sort((a, b) => a - b)
}

/** The median (mean of the two middle values for an even count). */
function median(xs) {
  const s = sorted(xs)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/** Median, min and max of per-round values. */
function summary(xs) {
  const s = sorted(xs)
  return { median: median(s), min: s[0], max: s[s.length - 1], n: s.length }
}

/** Per-round ratios a[i] / b[i] of two series measured in the same rounds. */
function ratios(a, b) {
  return a.map((x, i) => x / b[i])
}

/** Digits for a value: 3 significant below 10, else whole numbers. */
function num(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return ''
  if (Math.abs(x) >= 100) return String(Math.round(x))
  return String(Number(x.toPrecision(digits)))
}

/** A ratio with two decimals. */
const fixed2 = (x) => x.toFixed(2)

/** "1.04 (0.98–1.10)": the median of per-round values with their min–max (ratios: two decimals). */
function spread(xs, format = fixed2) {
  if (!xs || xs.length === 0) return ''
  const s = summary(xs)
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`
}

/** A throughput cell: the median ops/s, rounded. */
function ops(xs) {
  return xs && xs.length ? String(Math.round(median(xs))) : ''
}

/**
 * Runs `op(i)` from `concurrency` callers until `ms` have passed; returns completed ops per second.
 * `i` is the caller's running index (distinct across callers).
 */
async function throughput(op, concurrency, ms) {
  let done = 0
  const started = performance.now()
  const end = started + ms
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = w; performance.now() < end; i += concurrency) {
        await op(i)
        done++
      }
    }),
  )
  return done / ((performance.now() - started) / 1000)
}

/** Runs `node [execArgv] file ...args` and parses the JSON it prints last on stdout. */
function runChild(file, args, { execArgv = [], env } = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...execArgv, file, ...args],
      { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, env: env ? { ...process.env, ...env } : process.env },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stderr}`))
        const last = stdout.trim().split('\n').pop()
        try {
          resolve(JSON.parse(last))
        } catch {
          reject(new Error(`${file} ${args.join(' ')} printed no JSON: ${stdout}\n${stderr}`))
        }
      },
    )
  })
}

/** In a child: runs `fn` and prints its JSON result (or fails the process). */
function childMain(fn) {
  fn().then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}

/**
 * Full GCs (the process must run with --expose-gc), then the bytes used in V8's data spaces: code
 * spaces are left out (the JIT compiles and drops code on its own schedule; it is not data the
 * measured objects hold).
 */
async function heapAfterGc() {
  if (typeof global.gc !== 'function') throw new Error('run with --expose-gc')
  for (let i = 0; i < 3; i++) {
    global.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  let used = 0
  for (const space of require('node:v8').getHeapSpaceStatistics()) if (!space.space_name.startsWith('code_')) used += space.space_used_size
  return used
}

/** Runs a suite file directly: `node bench/<suite>.js` prints its rows. */
function runStandalone(main) {
  main().then(
    (result) => {
      const { rows, tables = [], notes = [] } = Array.isArray(result) ? { rows: result } : result
      console.table(rows)
      for (const t of tables) {
        console.log(t.heading)
        console.table(t.rows)
      }
      for (const note of notes) console.log(note)
    },
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}

module.exports = {
  QUICK,
  ROUNDS,
  size,
  median,
  summary,
  ratios,
  num,
  spread,
  ops,
  throughput,
  runChild,
  childMain,
  heapAfterGc,
  runStandalone,
}
