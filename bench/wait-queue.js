'use strict'
// Wait-queue scaling: the cost of one acquire+release (µs) when N callers ask at once for one of 4
// connections, so N - 4 of them wait in the queue, through DatabasePool and through raw tarn with
// the same no-op manager. Every (side, N) runs in a fresh child process; a round runs every child
// once (1,000 dbpool, 1,000 tarn, 10,000 dbpool, ...), and a side's growth, cost(100,000) ÷
// cost(1,000), is taken within each round. Figures are medians over the rounds, with min–max.
const { SIDES } = require('./noop-sides')
const { size, spread, ratios, runChild, childMain, runStandalone } = require('./lib')

const MAX = 4
/** 3 rounds unless BENCH_ROUNDS asks for more: a queue that grows quadratically costs ~10 s per 100,000 burst. */
const ROUNDS = Math.max(3, Number(process.env.BENCH_ROUNDS) || 3)
const CALLERS = [1_000, 10_000, 100_000]

/** µs per lease for one burst: `callers` cycles started in the same tick, awaited together. */
async function burst(side, callers) {
  const pending = new Array(callers)
  const started = performance.now()
  for (let i = 0; i < callers; i++) pending[i] = side.cycle()
  await Promise.all(pending)
  return ((performance.now() - started) * 1000) / callers
}

/**
 * Child: warm up on bursts of 1,000 (a queue's cost may grow faster than linearly: warming up on
 * 100,000 would cost minutes on a quadratic queue), then bursts of `callers` until 100,000 leases
 * (at least one burst); the median burst's µs per lease.
 */
async function child(which, callers) {
  const side = SIDES[which](MAX)
  for (let i = 0; i < size(20, 5); i++) await burst(side, 1_000)
  const costs = []
  const bursts = Math.max(1, Math.floor(size(100_000, 30_000) / callers))
  for (let i = 0; i < bursts; i++) costs.push(await burst(side, callers))
  await side.close()
  costs.sort((a, b) => a - b)
  return costs[costs.length >> 1]
}

async function main() {
  const cost = { dbpool: CALLERS.map(() => []), tarn: CALLERS.map(() => []) }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, callers] of CALLERS.entries()) {
      for (const which of ['dbpool', 'tarn']) cost[which][i].push(await runChild(__filename, ['--child', which, String(callers)]))
    }
  }
  const us = (x) => x.toFixed(2)
  const rows = CALLERS.map((callers, i) => ({
    case: `µs per acquire+release, ${callers.toLocaleString('en-US')} callers at once (max ${MAX})`,
    dbpool: spread(cost.dbpool[i], us),
    tarn: spread(cost.tarn[i], us),
    'dbpool ÷ tarn': spread(ratios(cost.dbpool[i], cost.tarn[i])),
  }))
  const last = CALLERS.length - 1
  rows.push({
    case: `growth: cost(${CALLERS[last].toLocaleString('en-US')}) ÷ cost(${CALLERS[0].toLocaleString('en-US')}) (dbpool target ≤ 1.5)`,
    dbpool: spread(ratios(cost.dbpool[last], cost.dbpool[0])),
    tarn: spread(ratios(cost.tarn[last], cost.tarn[0])),
    'dbpool ÷ tarn': '',
  })
  return rows
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') childMain(() => child(process.argv[3], Number(process.argv[4])))
  else runStandalone(main)
}
