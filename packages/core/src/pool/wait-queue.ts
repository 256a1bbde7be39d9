/** @internal What the {@link WaitQueue} needs of an entry: its arrival, and a flag the queue keeps. */
export interface Queued {
  /** `performance.now()` reading when the caller arrived; it expires `timeoutMs` later. */
  readonly since: number
  /** True while the entry is in a queue; maintained by the queue. */
  queued: boolean
}

/** Below this many spent slots the array is not compacted. */
const COMPACT_AT = 1_024

/**
 * @internal Callers waiting for a connection, first in first out, with their deadlines on one
 * shared timer. Every operation is O(1) (amortized), whatever the length:
 *
 * - `push` appends; `shift` takes the oldest live entry;
 * - `remove` takes an entry out of the middle lazily: it is only marked, and skipped when it reaches
 *   the head (tarn's queue is an array searched with `indexOf` and cut with `splice`);
 * - deadlines: every entry expires `timeoutMs` after it arrived and entries are pushed in order of
 *   arrival, so only the head can be the next to expire. One timer, armed for the head's
 *   deadline, expires the entries at the head that are due and re-arms for the next; nothing is
 *   allocated per entry. The timer is ref'd while an entry waits (a waiting caller keeps the process
 *   alive until its deadline, as tarn's per-acquire timers did) and cleared when the queue empties.
 *
 * Spent slots at the front of the array are dropped once they outnumber the live part (so a burst
 * of 100,000 callers leaves no big array behind).
 */
export class WaitQueue<W extends Queued> {
  readonly #items: (W | undefined)[] = []
  #head = 0
  #size = 0
  #timer: NodeJS.Timeout | undefined
  readonly #timeoutMs: number
  readonly #onExpired: (entry: W) => void

  /** `onExpired` is called for each entry still queued `timeoutMs` after it arrived, once it left the queue. */
  constructor(timeoutMs: number, onExpired: (entry: W) => void) {
    this.#timeoutMs = timeoutMs
    this.#onExpired = onExpired
  }

  /** Live entries (removed ones not counted). */
  get size(): number {
    return this.#size
  }

  /** Appends an entry; it must not have arrived before any queued entry (`since` never decreases). */
  push(entry: W): void {
    entry.queued = true
    this.#items.push(entry)
    if (this.#size++ === 0) this.#arm(entry.since)
  }

  /** Takes the oldest live entry out, or returns undefined when none is left. */
  shift(): W | undefined {
    if (this.#size === 0) return undefined
    const items = this.#items
    for (;;) {
      const entry = items[this.#head]
      items[this.#head++] = undefined
      if (entry?.queued) {
        entry.queued = false
        if (--this.#size === 0) this.#reset()
        else if (this.#head >= COMPACT_AT && this.#head * 2 >= items.length) this.#compact()
        return entry
      }
    }
  }

  /** Takes `entry` out wherever it is (marked now, skipped later). Returns false if it was not queued. */
  remove(entry: W): boolean {
    if (!entry.queued) return false
    entry.queued = false
    if (--this.#size === 0) this.#reset()
    else if (this.#items[this.#head] === entry) this.#skipRemoved()
    return true
  }

  /** Takes every live entry out, oldest first (close() fails them). */
  drain(): W[] {
    const live: W[] = []
    for (let i = this.#head; i < this.#items.length; i++) {
      const entry = this.#items[i]
      if (entry?.queued) {
        entry.queued = false
        live.push(entry)
      }
    }
    this.#size = 0
    this.#reset()
    return live
  }

  #reset(): void {
    this.#items.length = 0
    this.#head = 0
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Moves the head past removed entries (the head entry was just removed; a live one follows). */
  #skipRemoved(): void {
    const items = this.#items
    while (!items[this.#head]!.queued) items[this.#head++] = undefined
    if (this.#head >= COMPACT_AT && this.#head * 2 >= items.length) this.#compact()
  }

  #compact(): void {
    this.#items.splice(0, this.#head)
    this.#head = 0
  }

  /** Arms the timer for the entry that arrived at `since`. */
  #arm(since: number): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#expire(), Math.max(1, Math.ceil(since + this.#timeoutMs - performance.now())))
  }

  /** Expires the due entries at the head, then arms the timer for the new head. */
  #expire(): void {
    this.#timer = undefined
    const arrivedBy = performance.now() - this.#timeoutMs
    const items = this.#items
    while (this.#size > 0) {
      const entry = items[this.#head]
      if (entry?.queued && entry.since > arrivedBy) {
        this.#arm(entry.since)
        return
      }
      items[this.#head++] = undefined
      if (!entry?.queued) continue
      entry.queued = false
      this.#size--
      this.#onExpired(entry)
    }
    // the last entry expired (callbacks may have pushed new ones: then the timer is armed again)
    if (this.#size === 0 && this.#timer === undefined) this.#reset()
  }
}
