'use strict'
// Acquire+release cycles through DatabasePool and through raw tarn, with the same no-op manager.
// Each round measures both sides in fresh child processes (dbpool, tarn, dbpool, tarn, ...), so
// neither side inherits the other's JIT or heap state; the figure is the median of the per-round
// ratios, with their min–max.
const { SIDES } = require('./noop-sides')
const { ROUNDS, size, spread, ops, ratios, runChild, childMain, runStandalone } = require('./lib')

const MAX = 10
const CONCURRENCIES = [1, 16]

async function opsPerSec(cycle, concurrency, total) {
  const per = Math.floor(total / concurrency)
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < per; i++) await cycle()
    }),
  )
  return (per * concurrency) / (Number(process.hrtime.bigint() - started) / 1e9)
}

/** Child: one side, one concurrency; warm up, then the best of three timed passes. */
async function child(which, concurrency) {
  const side = SIDES[which](MAX)
  await opsPerSec(side.cycle, concurrency, size(50_000, 10_000))
  const passes = []
  for (let i = 0; i < 3; i++) passes.push(await opsPerSec(side.cycle, concurrency, size(150_000, 30_000)))
  await side.close()
  return Math.max(...passes)
}

async function main() {
  const rows = []
  for (const concurrency of CONCURRENCIES) {
    const dbpool = []
    const tarn = []
    for (let round = 0; round < ROUNDS; round++) {
      dbpool.push(await runChild(__filename, ['--child', 'dbpool', String(concurrency)]))
      tarn.push(await runChild(__filename, ['--child', 'tarn', String(concurrency)]))
    }
    rows.push({
      concurrency: String(concurrency),
      max: String(MAX),
      'dbpool ops/s': ops(dbpool),
      'tarn ops/s': ops(tarn),
      'tarn ÷ dbpool (target ≤ 1.25)': spread(ratios(tarn, dbpool)),
    })
  }
  return rows
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') childMain(() => child(process.argv[3], Number(process.argv[4])))
  else runStandalone(main)
}
