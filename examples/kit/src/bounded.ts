/**
 * Runs `fn(item, index)` for every item with at most `limit` calls in flight (a fixed set of
 * workers, each taking the next item when its call settles), and resolves once every call has
 * settled. `fn` must not reject (catch inside it): a rejection rejects the whole run. `limit` is an
 * integer >= 1 (RangeError otherwise).
 *
 * The demos size `limit` from the pool: at most `pool.config.maxWaitingClients` requests in flight,
 * so no more callers ever wait for a connection than the pool admits (beyond that a lane refuses
 * with POOL_EXHAUSTED), however many requests are planned.
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

/**
 * How many requests a demo keeps in flight on a pool: `maxWaitingClients` (each request waits for at
 * most one connection at a time, and a lane refuses a waiter only once that many already wait), at
 * least 1. The default pool admits 10,000.
 */
export function inFlightLimit(pool: { readonly config: { readonly maxWaitingClients: number } }): number {
  return Math.max(1, pool.config.maxWaitingClients)
}
