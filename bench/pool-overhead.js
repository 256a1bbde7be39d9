'use strict'
// Acquire+release cycles through DatabasePool and through raw tarn, with the same no-op manager,
// measured in one run (interleaved rounds, median of rounds). Reports ops/s and the ratio.
const { Pool: TarnPool } = require('tarn')
const { DatabasePool, DatabaseError } = require('@dbpool/core')

/** A manager whose every operation is a resolved promise: what is left is the pool's own cost. */
function noopManager() {
  let next = 1
  return {
    backend: 'postgres',
    dialect: 'postgres',
    target: 'noop://bench',
    lanes: { readers: 0 },
    connect: async () => ({ id: next++ }),
    isUsable: () => true,
    ping: async () => undefined,
    // nothing to roll back: like the real managers, answer synchronously
    reset: () => undefined,
    destroy: async () => undefined,
    execute: async () => ({ rows: [], rowCount: 0 }),
    beginStatement: () => 'BEGIN',
    mapError: (err) => new DatabaseError('QUERY_FAILED', String(err)),
  }
}

async function timeRound(cycle, concurrency, iterations) {
  const perWorker = Math.floor(iterations / concurrency)
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < perWorker; i++) await cycle()
    }),
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return (perWorker * concurrency) / seconds
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function measure({ concurrency, iterations = 200_000, rounds = 7 }) {
  const max = Math.max(1, Math.min(concurrency, 10))
  const manager = noopManager()
  const pool = new DatabasePool(manager, { min: max, max, name: 'bench' })
  const tarn = new TarnPool({
    create: () => manager.connect('write', { onLost() {} }),
    destroy: (c) => manager.destroy(c),
    validate: (c) => manager.isUsable(c),
    min: 0,
    max,
    acquireTimeoutMillis: 30_000,
    propagateCreateError: true,
  })
  // the same no-op unit of work in both: what a caller does with a borrowed connection
  const work = async () => undefined
  const dbpoolCycle = () => pool.withConnection(work)
  const tarnCycle = async () => {
    const c = await tarn.acquire().promise
    try {
      await work(c)
    } finally {
      tarn.release(c)
    }
  }
  // warm both up
  await timeRound(dbpoolCycle, concurrency, 20_000)
  await timeRound(tarnCycle, concurrency, 20_000)
  const a = []
  const b = []
  for (let r = 0; r < rounds; r++) {
    a.push(await timeRound(dbpoolCycle, concurrency, iterations))
    b.push(await timeRound(tarnCycle, concurrency, iterations))
  }
  await pool.close()
  await tarn.destroy()
  const dbpool = median(a)
  const raw = median(b)
  return { concurrency, dbpoolOpsPerSec: Math.round(dbpool), tarnOpsPerSec: Math.round(raw), ratio: +(raw / dbpool).toFixed(3) }
}

async function main() {
  const results = []
  for (const concurrency of [1, 16]) results.push(await measure({ concurrency }))
  return results
}

module.exports = { main }

if (require.main === module) {
  main().then((results) => {
    console.table(results)
    const worst = Math.max(...results.map((r) => r.ratio))
    console.log(`pool-overhead: worst ratio (tarn ops/s / DatabasePool ops/s) = ${worst} (target <= 1.25)`)
    process.exitCode = worst <= 1.25 ? 0 : 1
  })
}
