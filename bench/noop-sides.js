'use strict'
// The two sides of the pool-layer benchmarks: DatabasePool and raw tarn over the same no-op
// manager, each exposing one acquire+release cycle around the same no-op unit of work.
const { Pool: TarnPool } = require('tarn')
const { DatabasePool, DatabaseError } = require('@dbpool/core')

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

/** Room for the largest wait-queue case (100,000 callers) and a deadline no case comes near. */
const MAX_WAITING = 1_000_000
const ACQUIRE_TIMEOUT_MS = 600_000

/**
 * `dbpool` and `tarn` factories: `make(max)` returns `{ cycle(fn?), close() }`, where `cycle` borrows
 * a connection, runs `fn` (default: the no-op work) and gives it back.
 */
const SIDES = {
  dbpool(max) {
    const pool = new DatabasePool(noopManager(), {
      min: max,
      max,
      name: 'bench',
      maxWaitingClients: MAX_WAITING,
      acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
    })
    return { cycle: (fn = work) => pool.withConnection(fn), close: () => pool.close() }
  },
  tarn(max) {
    const manager = noopManager()
    const tarn = new TarnPool({
      create: () => manager.connect('write', { onLost() {} }),
      destroy: (c) => manager.destroy(c),
      validate: (c) => manager.isUsable(c),
      min: 0,
      max,
      acquireTimeoutMillis: ACQUIRE_TIMEOUT_MS,
      propagateCreateError: true,
    })
    const cycle = async (fn = work) => {
      const c = await tarn.acquire().promise
      try {
        return await fn(c)
      } finally {
        tarn.release(c)
      }
    }
    return { cycle, close: () => tarn.destroy() }
  },
}

module.exports = { SIDES, noopManager, work }
