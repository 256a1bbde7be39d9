import { type DatabaseError, DatabasePool, type PoolOptions } from '@dbpool/core'
import { FakeConnectionManager, type FakeManagerOptions } from '@dbpool/core/testing'

/** Builds a pool on a fake manager with test-friendly timings; closes everything in `afterEach`. */
export function makePool(options: PoolOptions = {}, managerOptions: FakeManagerOptions = {}) {
  const manager = new FakeConnectionManager(managerOptions)
  const pool = new DatabasePool(manager, {
    min: 0,
    max: 2,
    acquireTimeoutMs: 200,
    createTimeoutMs: 200,
    leakDetectionThresholdMs: 0,
    ...options,
  })
  open.push({ pool, manager })
  return { pool, manager }
}

const open: { pool: DatabasePool<unknown>; manager: FakeConnectionManager }[] = []

afterEach(async () => {
  for (const { pool, manager } of open.splice(0)) {
    manager.releaseHangs()
    await pool.close({ timeoutMs: 100 })
  }
})

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `predicate` until true or `timeoutMs` passes. */
export async function waitFor(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(5)
  }
}

/** Resolves with the rejection reason of `promise`, failing if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  try {
    await promise
  } catch (err) {
    return err as DatabaseError
  }
  throw new Error('expected a rejection')
}
