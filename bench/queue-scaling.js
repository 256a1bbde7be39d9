'use strict'
// The wait queue's cost per lease as the queue grows, with a floor to read it against:
// N callers call withConnection(noop) at once on a 4-connection pool (no-op manager), so N - 4 of
// them wait; µs per lease = burst time ÷ N, wall clock and CPU time (user + system, GC threads
// included: steadier than wall time on a loaded machine). Three sides, each (side, N) in a fresh
// child process, interleaved over rounds, medians with min–max:
// - dbpool: DatabasePool, its wait queue in front of tarn;
// - tarn: raw tarn, whose queue is an array (shift() per hand-out, indexOf + splice per timeout);
// - floor: the least any promise-based pool can do: a 4-slot FIFO of bare promises, 20 lines. Its
//   cost grows too, from the burst itself: N callers' promises (and Promise.all's reactions) live
//   at once, are promoted to the old generation and marked, and are cold in the cache when served.
//   "dbpool − floor" is the pool's own cost per lease.
// Plus heap bytes per waiting caller (10,000 callers waiting on 4 held connections, after full
// GCs, V8 flags as in memory.js). `node bench/queue-scaling.js`; BENCH_ROUNDS, BENCH_QUICK.
const { SIDES, work } = require('./noop-sides')
const { QUICK, size, median, spread, ratios, runChild, childMain, heapAfterGc, runStandalone } = require('./lib')

const MAX = 4
const ROUNDS = Math.max(3, Number(process.env.BENCH_ROUNDS) || 3)
const CALLERS = QUICK ? [1_000, 10_000] : [1_000, 10_000, 100_000]
const WAITERS = 10_000
const MEASURE_FLAGS = [
  '--expose-gc',
  '--single-threaded-gc',
  '--no-flush-bytecode',
  '--no-opt',
  '--no-sparkplug',
  '--no-lazy-feedback-allocation',
]

/** A pool reduced to its queue: `max` slots, then a FIFO of bare promises (no deadline, no validation). */
function floorSide(max) {
  let free = max
  let queue = []
  let head = 0
  const acquire = () => {
    if (free > 0 && head === queue.length) {
      free--
      return Promise.resolve()
    }
    return new Promise((resolve) => queue.push(resolve))
  }
  const release = () => {
    if (head === queue.length) {
      free++
      return
    }
    const next = queue[head]
    queue[head++] = undefined
    if (head === queue.length) {
      queue = []
      head = 0
    }
    next()
  }
  const lend = async (fn) => {
    try {
      return await fn()
    } finally {
      release()
    }
  }
  return { cycle: (fn = work) => acquire().then(() => lend(fn)), close: async () => undefined }
}

const make = (which) => (which === 'floor' ? floorSide(MAX) : SIDES[which](MAX))

/** µs per lease (wall and CPU) for one burst of `callers` cycles started in the same tick. */
async function burst(side, callers) {
  const pending = new Array(callers)
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  for (let i = 0; i < callers; i++) pending[i] = side.cycle()
  await Promise.all(pending)
  const wall = ((performance.now() - started) * 1000) / callers
  const cpu = process.cpuUsage(cpu0)
  return { wall, cpu: (cpu.user + cpu.system) / callers }
}

/** Child: warm up on bursts of 1,000, then bursts of `callers` until 100,000 leases; the median burst. */
async function costChild(which, callers) {
  const side = make(which)
  for (let i = 0; i < size(20, 5); i++) await burst(side, 1_000)
  const bursts = []
  for (let i = 0; i < Math.max(1, Math.floor(size(100_000, 20_000) / callers)); i++) bursts.push(await burst(side, callers))
  await side.close()
  return { wall: median(bursts.map((b) => b.wall)), cpu: median(bursts.map((b) => b.cpu)) }
}

/** Child: heap bytes per caller waiting for one of MAX held connections (bench/memory.js's method). */
async function heapChild(which) {
  const side = make(which)
  const once = async (measure) => {
    const release = []
    const held = Array.from({ length: MAX }, () => side.cycle(() => new Promise((resolve) => release.push(resolve))))
    while (release.length < MAX) await new Promise((resolve) => setTimeout(resolve, 5))
    const waiting = new Array(WAITERS).fill(undefined)
    const before = measure ? await heapAfterGc() : 0
    for (let i = 0; i < WAITERS; i++) waiting[i] = side.cycle()
    const after = measure ? await heapAfterGc() : 0
    for (const r of release) r()
    await Promise.all([...held, ...waiting])
    return (after - before) / WAITERS
  }
  await once(false)
  const perWaiter = await once(true)
  await side.close()
  return perWaiter
}

const SIDE_NAMES = ['dbpool', 'tarn', 'floor']

async function main() {
  const cost = Object.fromEntries(SIDE_NAMES.map((s) => [s, CALLERS.map(() => [])]))
  const heap = Object.fromEntries(SIDE_NAMES.map((s) => [s, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, callers] of CALLERS.entries()) {
      for (const which of SIDE_NAMES) cost[which][i].push(await runChild(__filename, ['--child', 'cost', which, String(callers)]))
    }
    for (const which of SIDE_NAMES) heap[which].push(await runChild(__filename, ['--child', 'heap', which], { execArgv: MEASURE_FLAGS }))
  }
  const us = (x) => x.toFixed(2)
  const pick = (which, i, key) => cost[which][i].map((c) => c[key])
  const rows = []
  for (const key of ['wall', 'cpu']) {
    // the pool's own cost: dbpool minus the floor, per round
    const own = (i) => pick('dbpool', i, key).map((d, r) => d - pick('floor', i, key)[r])
    for (const [i, callers] of CALLERS.entries()) {
      rows.push({
        case: `µs per lease (${key}), ${callers.toLocaleString('en-US')} callers at once (max ${MAX})`,
        ...Object.fromEntries(SIDE_NAMES.map((s) => [s, spread(pick(s, i, key), us)])),
        'dbpool − floor': spread(own(i), us),
      })
    }
    const last = CALLERS.length - 1
    rows.push({
      case: `growth (${key}): cost(${CALLERS[last].toLocaleString('en-US')}) ÷ cost(${CALLERS[0].toLocaleString('en-US')})`,
      ...Object.fromEntries(SIDE_NAMES.map((s) => [s, spread(ratios(pick(s, last, key), pick(s, 0, key)))])),
      'dbpool − floor': spread(ratios(own(last), own(0))),
    })
  }
  rows.push({
    case: `heap bytes per waiting caller (${WAITERS.toLocaleString('en-US')} waiting)`,
    ...Object.fromEntries(SIDE_NAMES.map((s) => [s, spread(heap[s], (x) => String(Math.round(x)))])),
    'dbpool − floor': '',
  })
  return rows
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') {
    const [, , , kind, which, callers] = process.argv
    childMain(() => (kind === 'heap' ? heapChild(which) : costChild(which, Number(callers))))
  } else runStandalone(main)
}
