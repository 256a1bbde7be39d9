import { StatementCache } from '@dbpool/sqlite'

describe('StatementCache (LRU)', () => {
  it('evicts the least recently used entry past capacity', () => {
    const evicted: string[] = []
    const cache = new StatementCache<string, number>(2, (_v, k) => evicted.push(k))
    cache.set('a', 1)
    cache.set('b', 2)
    expect(cache.get('a')).toBe(1) // a is now the most recent
    cache.set('c', 3)
    expect(evicted).toEqual(['b'])
    expect(cache.keys()).toEqual(['a', 'c'])
    expect(cache.has('b')).toBe(false)
    expect(cache.size).toBe(2)
  })

  it('getOrCreate creates once and counts hits and misses', () => {
    const cache = new StatementCache<string, { text: string }>(10)
    let created = 0
    const make = (text: string): { text: string } => {
      created++
      return { text }
    }
    const first = cache.getOrCreate('select 1', make)
    expect(cache.getOrCreate('select 1', make)).toBe(first)
    expect(created).toBe(1)
    expect(cache.stats).toEqual({ hits: 1, misses: 1 })
  })

  it('re-setting a key refreshes it without growing', () => {
    const cache = new StatementCache<string, number>(2)
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('a', 10)
    cache.set('c', 3)
    expect(cache.keys()).toEqual(['a', 'c'])
    expect(cache.get('a')).toBe(10)
  })

  it('stores nothing with capacity 0 and refuses a bad capacity', () => {
    const cache = new StatementCache<string, number>(0)
    cache.set('a', 1)
    expect(cache.size).toBe(0)
    expect(cache.get('a')).toBeUndefined()
    expect(() => new StatementCache(-1)).toThrow(RangeError)
    // get() answers undefined for a missing key, so undefined cannot be held
    expect(() => new StatementCache<string, number | undefined>(2).set('a', undefined)).toThrow(TypeError)
    expect(() => new StatementCache(1.5)).toThrow(RangeError)
  })

  // get() answers the most recently used key without a map lookup: that shortcut must follow every
  // change of the entry (a new value, eviction of other keys, clear) and count as a hit
  it('answers the most recently used key with its current value through set, eviction and clear', () => {
    const cache = new StatementCache<string, number>(2)
    cache.set('a', 1)
    expect(cache.get('a')).toBe(1)
    cache.set('a', 2)
    expect(cache.get('a')).toBe(2)
    cache.set('b', 3)
    expect(cache.get('a')).toBe(2)
    cache.set('c', 4) // evicts b (a was used after it)
    expect(cache.keys()).toEqual(['a', 'c'])
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('c')).toBe(4)
    expect(cache.get('c')).toBe(4)
    expect(cache.stats).toEqual({ hits: 5, misses: 1 })
    cache.clear()
    expect(cache.get('c')).toBeUndefined()
    expect(cache.get('a')).toBeUndefined()
  })

  it('clear() empties it', () => {
    const cache = new StatementCache<number, number>(3)
    cache.set(1, 1)
    cache.clear()
    expect(cache.size).toBe(0)
    expect(cache.capacity).toBe(3)
  })

  // the recency order is a linked list beside the map: checked against a plain array model over
  // thousands of random gets, sets and clears (every eviction, order and hit count must agree)
  it('keeps exact LRU order through random operations, like an array model', () => {
    let seed = 42
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
      return seed % n
    }
    for (const capacity of [1, 2, 3, 7]) {
      const evicted: string[] = []
      const cache = new StatementCache<string, number>(capacity, (v, k) => evicted.push(`${k}=${v}`))
      let model: Array<[string, number]> = []
      const modelEvicted: string[] = []
      let hits = 0
      let misses = 0
      for (let i = 0; i < 5_000; i++) {
        const key = `k${random(capacity + 3)}`
        const op = random(10)
        if (op < 5) {
          const at = model.findIndex(([k]) => k === key)
          if (at < 0) misses++
          else {
            hits++
            model.push(...model.splice(at, 1))
          }
          expect(cache.get(key)).toBe(at < 0 ? undefined : model[model.length - 1]?.[1])
        } else if (op < 9) {
          model = model.filter(([k]) => k !== key)
          model.push([key, i])
          while (model.length > capacity) {
            const [k, v] = model.shift()!
            modelEvicted.push(`${k}=${v}`)
          }
          cache.set(key, i)
        } else if (random(50) === 0) {
          model = []
          cache.clear()
        }
        expect(cache.keys()).toEqual(model.map(([k]) => k))
        expect(cache.size).toBe(model.length)
      }
      expect(evicted).toEqual(modelEvicted)
      expect(cache.stats).toEqual({ hits, misses })
    }
  })
})
