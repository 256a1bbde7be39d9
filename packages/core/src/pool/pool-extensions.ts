/**
 * Something a backend package attaches to a pool and the pool owns from then on: connections held
 * outside the lanes (the Postgres LISTEN connection of `listen()`), counted in `pool.stats()` and
 * ended by `pool.close()`.
 */
export interface PoolExtension {
  /** Connections it holds open now, outside the lanes (`pool.stats().dedicated`). */
  readonly connections: number
  /** Ends its connections and timers; called once, at the start of `pool.close()`. Never rejects. */
  close(): Promise<void>
}

/** @internal A pool's extensions, one per key, created on first use. */
export class PoolExtensions {
  readonly #items = new Map<symbol, PoolExtension>()

  /** The extension under `key`, created by `create` the first time. */
  get<T extends PoolExtension>(key: symbol, create: () => T): T {
    let item = this.#items.get(key)
    if (item === undefined) {
      item = create()
      this.#items.set(key, item)
    }
    return item as T
  }

  /** Connections held by every extension; undefined when the pool has none (stats() then stays as it was). */
  get connections(): number | undefined {
    if (this.#items.size === 0) return undefined
    let total = 0
    for (const item of this.#items.values()) total += item.connections
    return total
  }

  /** Closes every extension. */
  async close(): Promise<void> {
    const items = [...this.#items.values()]
    await Promise.all(items.map((item) => item.close().catch(() => undefined)))
  }
}
