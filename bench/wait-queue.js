'use strict'
// Wait-queue scaling: the cost of one acquire+release (µs) when N callers ask at once for one of 4
// connections, so N - 4 of them wait, with the same no-op manager and no-op work on three sides:
// - dbpool: DatabasePool, its wait queue in front of tarn;
// - tarn: raw tarn, whose queue is an array (shift() per hand-out, indexOf + splice per timeout);
// - floor: the least any promise-based pool can do: 4 slots, then a FIFO of bare promises (no
//   deadline, no validation, no async context). Its cost grows too, from the burst itself: N callers'
//   promises (and Promise.all's reactions) live at once, survive young-generation collections, are
//   promoted and marked, and are cold in the cache when served. No pool can avoid that part.
// "dbpool − floor" (per round) is the pool's own cost per lease; its growth is the figure that says
// whether the queue's cost depends on its length. µs per lease = burst time ÷ N, wall clock and CPU
// time (user + system, GC threads included: steadier than wall time on a loaded machine). Every
// (side, N) runs in a fresh child process; a round runs every child once, growth cost(100,000) ÷
// cost(1,000) is taken within each round; figures are medians over the rounds with min–max.
//
// A burst measures the queue while it fills and drains, and each lease pays for the burst's creation
// as well. The held case measures "the cost of a lease while N callers wait" directly: N callers
// each borrow, release and ask again in a loop (a closed loop), so the queue stays at N − 4 all along
// and every release hands the connection to a caller that has waited behind N − 5 others; µs per
// lease over at least 2N leases after a warm-up of N. Each waiting caller's promise still lives for
// N ÷ 4 leases, so at 100,000 every one is promoted to the old generation; the floor pays that too.
const { SIDES, work } = require('./noop-sides')
const { size, median, spread, ratios, runChild, childMain, runStandalone } = require('./lib')

const MAX = 4
/** 3 rounds unless BENCH_ROUNDS asks for more: a queue that grows quadratically costs ~10 s per 100,000 burst. */
const ROUNDS = Math.max(3, Number(process.env.BENCH_ROUNDS) || 3)
const CALLERS = [1_000, 10_000, 100_000]
const SIDE_NAMES = ['dbpool', 'tarn', 'floor']

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

/**
 * Child: warm up on bursts of 1,000 (a queue's cost may grow faster than linearly: warming up on
 * 100,000 would cost minutes on a quadratic queue), then bursts of `callers` until 100,000 leases
 * (at least one burst); the median burst's µs per lease, wall and CPU.
 */
async function child(which, callers, mode) {
  const side = make(which)
  if (mode === 'held') return heldChild(side, callers)
  for (let i = 0; i < size(20, 5); i++) await burst(side, 1_000)
  const bursts = []
  for (let i = 0; i < Math.max(1, Math.floor(size(100_000, 30_000) / callers)); i++) bursts.push(await burst(side, callers))
  await side.close()
  return { wall: median(bursts.map((b) => b.wall)), cpu: median(bursts.map((b) => b.cpu)) }
}

/**
 * µs per lease (wall and CPU) while `callers` callers borrow in a closed loop, so `callers` − 4 wait
 * all along: timed from the `skip`-th lease done (the queue is full by then; the leases before it are
 * the warm-up) to `skip + leases` done, then the queue drains untimed.
 */
async function held(side, callers, skip, leases) {
  let left = skip + leases + callers
  let done = 0
  let cpu0
  let started = 0
  let result
  const loop = async () => {
    while (left > 0) {
      left--
      await side.cycle()
      done++
      if (done === skip) {
        cpu0 = process.cpuUsage()
        started = performance.now()
      } else if (done === skip + leases) {
        const wall = ((performance.now() - started) * 1000) / leases
        const cpu = process.cpuUsage(cpu0)
        result = { wall, cpu: (cpu.user + cpu.system) / leases }
      }
    }
  }
  await Promise.all(Array.from({ length: callers }, loop))
  return result
}

/** Child of the held case: max(callers, 20,000) leases of warm-up, then max(callers, 100,000) timed. */
async function heldChild(side, callers) {
  const result = await held(side, callers, Math.max(callers, size(20_000, 5_000)), Math.max(callers, size(100_000, 20_000)))
  await side.close()
  return result
}

async function main() {
  const rows = []
  for (const mode of ['burst', 'held']) rows.push(...(await measure(mode)))
  return rows
}

/** The rows of one case: `burst` (N callers at once) or `held` (N callers in a closed loop). */
async function measure(mode) {
  const cost = Object.fromEntries(SIDE_NAMES.map((s) => [s, CALLERS.map(() => [])]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, callers] of CALLERS.entries()) {
      for (const which of SIDE_NAMES) cost[which][i].push(await runChild(__filename, ['--child', which, String(callers), mode]))
    }
  }
  const us = (x) => x.toFixed(2)
  const pick = (which, i, key) => cost[which][i].map((c) => c[key])
  // the pool's own cost: dbpool minus the floor, per round
  const own = (i, key) => pick('dbpool', i, key).map((d, r) => d - pick('floor', i, key)[r])
  const last = CALLERS.length - 1
  const how = mode === 'burst' ? 'callers at once' : 'callers waiting all along (closed loop)'
  const rows = CALLERS.map((callers, i) => ({
    case: `µs per acquire+release (wall), ${callers.toLocaleString('en-US')} ${how} (max ${MAX})`,
    ...Object.fromEntries(SIDE_NAMES.map((s) => [s, spread(pick(s, i, 'wall'), us)])),
    'dbpool − floor (own cost)': spread(own(i, 'wall'), us),
    'dbpool ÷ tarn': spread(ratios(pick('dbpool', i, 'wall'), pick('tarn', i, 'wall'))),
  }))
  for (const key of ['wall', 'cpu']) {
    rows.push({
      case: `${mode === 'burst' ? 'burst' : 'held'} growth (${key}${key === 'cpu' ? ' time' : ' clock'}): cost(${CALLERS[last].toLocaleString('en-US')}) ÷ cost(${CALLERS[0].toLocaleString('en-US')}) (target ≤ 1.5)`,
      ...Object.fromEntries(SIDE_NAMES.map((s) => [s, spread(ratios(pick(s, last, key), pick(s, 0, key)))])),
      'dbpool − floor (own cost)': spread(ratios(own(last, key), own(0, key))),
      'dbpool ÷ tarn': '',
    })
  }
  return rows
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') childMain(() => child(process.argv[3], Number(process.argv[4]), process.argv[5] ?? 'burst'))
  else runStandalone(main)
}
