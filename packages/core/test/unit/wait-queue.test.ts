import { WaitQueue, type Queued } from '../../src/pool/wait-queue'

/** An entry that counts how often the queue looks at it. */
class Entry implements Queued {
  reads = 0
  #queued = false

  constructor(
    readonly id: number,
    readonly since: number,
  ) {}

  get queued(): boolean {
    this.reads++
    return this.#queued
  }

  set queued(value: boolean) {
    this.#queued = value
  }
}

/** Ids of the entries shifted until the queue is empty. */
function shiftAll(queue: WaitQueue<Entry>): number[] {
  const ids: number[] = []
  for (let entry = queue.shift(); entry; entry = queue.shift()) ids.push(entry.id)
  return ids
}

describe('WaitQueue', () => {
  afterEach(() => {
    jest.useRealTimers()
  })

  it('hands entries out first in, first out, across compactions of its array', () => {
    const queue = new WaitQueue<Entry>(60_000, () => undefined)
    const expected: number[] = []
    let next = 0
    // pushes and shifts interleaved, the array compacted several times on the way
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 1_000; i++) {
        queue.push(new Entry(next, performance.now()))
        expected.push(next++)
      }
      const shifted = Array.from({ length: 700 }, () => queue.shift()?.id)
      expect(shifted).toEqual(expected.splice(0, 700))
    }
    expect(queue.size).toBe(expected.length)
    expect(shiftAll(queue)).toEqual(expected)
    expect(queue.size).toBe(0)
    expect(queue.shift()).toBeUndefined()
  })

  it('removes an entry from the middle without looking at any other entry, and skips it later', () => {
    const queue = new WaitQueue<Entry>(60_000, () => undefined)
    const entries = Array.from({ length: 10_000 }, (_, i) => new Entry(i, performance.now()))
    for (const entry of entries) queue.push(entry)
    for (const entry of entries) entry.reads = 0
    expect(queue.remove(entries[5_000]!)).toBe(true)
    expect(queue.remove(entries[7_777]!)).toBe(true)
    // O(1): only the removed entries were read (tarn searches its array with indexOf and cuts it with splice)
    expect(entries.reduce((n, e) => n + e.reads, 0)).toBe(2)
    expect(queue.size).toBe(9_998)
    expect(queue.remove(entries[5_000]!)).toBe(false)
    const ids = shiftAll(queue)
    expect(ids).toHaveLength(9_998)
    expect(ids).not.toContain(5_000)
    expect(ids).not.toContain(7_777)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
  })

  it('removing the head moves past removed entries behind it', () => {
    const queue = new WaitQueue<Entry>(60_000, () => undefined)
    const entries = Array.from({ length: 5 }, (_, i) => new Entry(i, performance.now()))
    for (const entry of entries) queue.push(entry)
    queue.remove(entries[1]!)
    queue.remove(entries[2]!)
    queue.remove(entries[0]!)
    expect(queue.size).toBe(2)
    expect(shiftAll(queue)).toEqual([3, 4])
  })

  it('expires entries in arrival order with one timer, whatever the length, skipping removed ones', () => {
    jest.useFakeTimers()
    const expired: number[] = []
    const queue = new WaitQueue<Entry>(1_000, (entry) => expired.push(entry.id))
    const entries: Entry[] = []
    for (let i = 0; i < 3_000; i++) {
      // three arrivals 100 ms apart, 1,000 callers each
      if (i > 0 && i % 1_000 === 0) jest.advanceTimersByTime(100)
      const entry = new Entry(i, performance.now())
      entries.push(entry)
      queue.push(entry)
    }
    expect(jest.getTimerCount()).toBe(1)
    queue.remove(entries[10]!)
    queue.remove(entries[1_500]!)
    jest.advanceTimersByTime(799) // 999 ms after the first arrivals
    expect(expired).toEqual([])
    jest.advanceTimersByTime(1)
    expect(expired).toEqual(Array.from({ length: 1_000 }, (_, i) => i).filter((i) => i !== 10))
    expect(queue.size).toBe(1_999)
    expect(jest.getTimerCount()).toBe(1)
    jest.advanceTimersByTime(100)
    expect(expired).toHaveLength(999 + 999)
    expect(expired).not.toContain(1_500)
    // the entries still queued come out in order, and nothing expires twice
    expect(queue.shift()?.id).toBe(2_000)
    jest.advanceTimersByTime(100)
    expect(expired).toHaveLength(999 + 999 + 999)
    expect(queue.size).toBe(0)
    expect(jest.getTimerCount()).toBe(0)
  })

  it('clears its timer as soon as it is empty, whichever way the last entry left', () => {
    jest.useFakeTimers()
    const queue = new WaitQueue<Entry>(1_000, () => undefined)
    const a = new Entry(1, performance.now())
    queue.push(a)
    expect(jest.getTimerCount()).toBe(1)
    queue.shift()
    expect(jest.getTimerCount()).toBe(0)
    queue.push(a)
    queue.remove(a)
    expect(jest.getTimerCount()).toBe(0)
    queue.push(new Entry(2, performance.now()))
    queue.push(new Entry(3, performance.now()))
    expect(queue.drain().map((e) => e.id)).toEqual([2, 3])
    expect(jest.getTimerCount()).toBe(0)
    expect(queue.size).toBe(0)
  })

  it('drain() hands out the live entries in order and leaves them unqueued', () => {
    const queue = new WaitQueue<Entry>(60_000, () => undefined)
    const entries = Array.from({ length: 6 }, (_, i) => new Entry(i, performance.now()))
    for (const entry of entries) queue.push(entry)
    queue.shift()
    queue.remove(entries[3]!)
    const drained = queue.drain()
    expect(drained.map((e) => e.id)).toEqual([1, 2, 4, 5])
    expect(drained.every((e) => !e.queued)).toBe(true)
    expect(queue.remove(entries[4]!)).toBe(false)
    expect(queue.shift()).toBeUndefined()
  })
})
