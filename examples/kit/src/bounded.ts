/**
 * Runs `fn(item, index)` for every item with at most `limit` calls in flight (a fixed set of
 * workers, each taking the next item when its call settles), and resolves once every call has
 * settled. `fn` must not reject (catch inside it): a rejection rejects the whole run. `limit` is an
 * integer >= 1 (RangeError otherwise).
 *
 * The demos size `limit` from the pool ({@link inFlightLimit}: a few requests per connection, never
 * more than `maxWaitingClients`), however many requests are planned.
 */
export async function forEachBounded<I>(items: readonly I[], limit: number, fn: (item: I, index: number) => Promise<void>): Promise<void> {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit ${String(limit)} must be an integer >= 1`)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      await fn(items[i] as I, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Requests a demo keeps in flight per connection of the pool: enough to keep every connection busy. */
export const IN_FLIGHT_PER_CONNECTION = 4

/**
 * How many requests a demo keeps in flight on a pool: {@link IN_FLIGHT_PER_CONNECTION} per connection
 * (`4 * max`), never more than `maxWaitingClients` (beyond that a lane refuses waiters with
 * POOL_EXHAUSTED), at least 1. More in flight adds no throughput, only queueing: 10,000 callers
 * queued on 10 connections waited past `acquireTimeoutMs` (30 s) once the backend slowed down
 * (serialization retries go back to the end of the queue, PgBouncer with 2 server connections), and
 * the demo failed with ACQUIRE_TIMEOUT. With a few per connection a wait is a few statements long.
 */
export function inFlightLimit(pool: { readonly config: { readonly max: number; readonly maxWaitingClients: number } }): number {
  return Math.max(1, Math.min(pool.config.maxWaitingClients, IN_FLIGHT_PER_CONNECTION * pool.config.max))
}
