'use strict'
// Acquire+release cycles through DatabasePool and through raw tarn, with the same no-op manager.
// One run measures both sides in alternating child processes (pool, tarn, pool, tarn, ...), so
// neither side inherits the other's JIT or heap state, and reports the median of each side.
const { execFileSync } = require('node:child_process')
const { Pool: TarnPool } = require('tarn')
const { DatabasePool, DatabaseError } = require('@dbpool/core')

const MAX = 10

/** A manager whose every operation is already settled: what is left is the pool's own cost. */
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

/** The same no-op unit of work on both sides: what a caller does with a borrowed connection. */
const work = async () => undefined

function sides() {
  const manager = noopManager()
  return {
    dbpool() {
      const pool = new DatabasePool(manager, { min: MAX, max: MAX, name: 'bench' })
      return { cycle: () => pool.withConnection(work), close: () => pool.close() }
    },
    tarn() {
      const tarn = new TarnPool({
        create: () => manager.connect('write', { onLost() {} }),
        destroy: (c) => manager.destroy(c),
        validate: (c) => manager.isUsable(c),
        min: 0,
        max: MAX,
        acquireTimeoutMillis: 30_000,
        propagateCreateError: true,
      })
      const cycle = async () => {
        const c = await tarn.acquire().promise
        try {
          await work(c)
        } finally {
          tarn.release(c)
        }
      }
      return { cycle, close: () => tarn.destroy() }
    },
  }
}

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
  const side = sides()[which]()
  await opsPerSec(side.cycle, concurrency, 50_000)
  const passes = []
  for (let i = 0; i < 3; i++) passes.push(await opsPerSec(side.cycle, concurrency, 200_000))
  await side.close()
  process.stdout.write(String(Math.max(...passes)))
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function measureInChild(which, concurrency) {
  return Number(execFileSync(process.execPath, [__filename, '--child', which, String(concurrency)], { encoding: 'utf8' }))
}

async function main() {
  const results = []
  for (const concurrency of [1, 16]) {
    const a = []
    const b = []
    for (let round = 0; round < 5; round++) {
      a.push(measureInChild('dbpool', concurrency))
      b.push(measureInChild('tarn', concurrency))
    }
    const dbpool = median(a)
    const raw = median(b)
    results.push({
      concurrency,
      max: MAX,
      dbpoolOpsPerSec: Math.round(dbpool),
      tarnOpsPerSec: Math.round(raw),
      ratio: +(raw / dbpool).toFixed(3),
    })
  }
  return results
}

module.exports = { main }

if (require.main === module) {
  if (process.argv[2] === '--child') {
    child(process.argv[3], Number(process.argv[4])).catch((err) => {
      console.error(err)
      process.exitCode = 1
    })
  } else {
    main().then((results) => {
      console.table(results)
      const cycle = results.find((r) => r.concurrency === 1)
      console.log(`pool-overhead: acquire+release cycle ratio (tarn ops/s / DatabasePool ops/s) = ${cycle.ratio} (target <= 1.25)`)
    })
  }
}
