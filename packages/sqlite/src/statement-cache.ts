/**
 * A small LRU map: `get` refreshes an entry, `set` evicts the least recently used entry past
 * `capacity` and hands it to `onEvict`. Capacity `0` stores nothing.
 */
export class StatementCache<K, V> {
  readonly #map = new Map<K, V>()
  readonly #capacity: number
  readonly #onEvict: ((value: V, key: K) => void) | undefined
  #hits = 0
  #misses = 0
  /** The most recently used entry, answered without a map lookup (a hot statement runs again and again). */
  #newest: K | undefined
  #newestValue: V | undefined

  constructor(capacity: number, onEvict?: (value: V, key: K) => void) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError(`StatementCache capacity must be an integer >= 0, got ${capacity}`)
    this.#capacity = capacity
    this.#onEvict = onEvict
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size
  }

  /** Most entries held. */
  get capacity(): number {
    return this.#capacity
  }

  /** Lookups that found an entry, and lookups that did not. */
  get stats(): { readonly hits: number; readonly misses: number } {
    return { hits: this.#hits, misses: this.#misses }
  }

  /** The entry for `key`, marked most recently used. */
  get(key: K): V | undefined {
    if (key === this.#newest) {
      this.#hits++
      return this.#newestValue
    }
    const value = this.#map.get(key)
    if (value === undefined) {
      this.#misses++
      return undefined
    }
    this.#hits++
    // re-insert: a Map iterates in insertion order, so the first key is the least recently used
    this.#map.delete(key)
    this.#map.set(key, value)
    this.#newest = key
    this.#newestValue = value
    return value
  }

  /** True when `key` is held (does not refresh it). */
  has(key: K): boolean {
    return this.#map.has(key)
  }

  /** Stores `value` as most recently used, evicting the oldest entries beyond capacity. */
  set(key: K, value: V): void {
    if (this.#capacity === 0) return
    if (this.#map.has(key)) this.#map.delete(key)
    this.#map.set(key, value)
    this.#newest = key
    this.#newestValue = value
    while (this.#map.size > this.#capacity) {
      const oldest = this.#map.keys().next().value as K
      const evicted = this.#map.get(oldest) as V
      this.#map.delete(oldest)
      this.#onEvict?.(evicted, oldest)
    }
  }

  /** Returns the cached value, or creates, caches and returns it. */
  getOrCreate(key: K, create: (key: K) => V): V {
    const hit = this.get(key)
    if (hit !== undefined) return hit
    const value = create(key)
    this.set(key, value)
    return value
  }

  /** Keys from least to most recently used. */
  keys(): K[] {
    return [...this.#map.keys()]
  }

  /** Drops every entry (without calling `onEvict`). */
  clear(): void {
    this.#map.clear()
    this.#newest = undefined
    this.#newestValue = undefined
  }
}
