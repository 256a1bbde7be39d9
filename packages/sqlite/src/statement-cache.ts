/**
 * A small LRU map: `get` refreshes an entry, `set` evicts the least recently used entry past
 * `capacity` and hands it to `onEvict`. Capacity `0` stores nothing.
 */
/** An entry, linked from least to most recently used. */
class Node<K, V> {
  prev: Node<K, V> | undefined = undefined
  next: Node<K, V> | undefined = undefined
  constructor(
    readonly key: K,
    public value: V,
  ) {}
}

export class StatementCache<K, V> {
  readonly #map = new Map<K, Node<K, V>>()
  readonly #capacity: number
  readonly #onEvict: ((value: V, key: K) => void) | undefined
  #hits = 0
  #misses = 0
  /**
   * The recency order is a linked list beside the map (oldest first): a hit moves its node to the
   * end with a few pointer writes. Re-inserting the key into the Map instead (delete + set) cost a
   * transaction of four statements, each a hit on another key than the last, about 0.5 µs, and left
   * the Map deleted slots to rehash.
   */
  #oldest: Node<K, V> | undefined
  /** The most recently used entry, answered without a map lookup (a hot statement runs again and again). */
  #newest: Node<K, V> | undefined

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
    const newest = this.#newest
    if (newest !== undefined && newest.key === key) {
      this.#hits++
      return newest.value
    }
    const node = this.#map.get(key)
    if (node === undefined) {
      this.#misses++
      return undefined
    }
    this.#hits++
    this.#unlink(node)
    this.#append(node)
    return node.value
  }

  /** True when `key` is held (does not refresh it). */
  has(key: K): boolean {
    return this.#map.has(key)
  }

  /**
   * Stores `value` as most recently used, evicting the oldest entries beyond capacity. `undefined`
   * is refused with a TypeError: `get()` answers undefined for a key it does not hold.
   */
  set(key: K, value: V): void {
    if (value === undefined) throw new TypeError('StatementCache cannot hold undefined: get() answers undefined for a missing key')
    if (this.#capacity === 0) return
    const held = this.#map.get(key)
    if (held !== undefined) {
      held.value = value
      this.#unlink(held)
      this.#append(held)
      return
    }
    const node = new Node(key, value)
    this.#map.set(key, node)
    this.#append(node)
    while (this.#map.size > this.#capacity) {
      const oldest = this.#oldest as Node<K, V>
      this.#unlink(oldest)
      this.#map.delete(oldest.key)
      this.#onEvict?.(oldest.value, oldest.key)
    }
  }

  #unlink(node: Node<K, V>): void {
    const { prev, next } = node
    if (prev === undefined) this.#oldest = next
    else prev.next = next
    if (next === undefined) this.#newest = prev
    else next.prev = prev
    node.prev = node.next = undefined
  }

  #append(node: Node<K, V>): void {
    const newest = this.#newest
    node.prev = newest
    if (newest === undefined) this.#oldest = node
    else newest.next = node
    this.#newest = node
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
    const keys: K[] = []
    for (let node = this.#oldest; node !== undefined; node = node.next) keys.push(node.key)
    return keys
  }

  /** Values from least to most recently used (does not refresh them). */
  values(): V[] {
    const values: V[] = []
    for (let node = this.#oldest; node !== undefined; node = node.next) values.push(node.value)
    return values
  }

  /** Drops every entry (without calling `onEvict`). */
  clear(): void {
    this.#map.clear()
    this.#oldest = this.#newest = undefined
  }
}
