/**
 * The connect deadline of a host walk, shared among its attempts (each address of each host;
 * prefer-standby's second pass shares what its first left; with `connect_timeout` the deadline is that
 * for each host, and the walk caps each share at it, as libpq gives each host its own): each attempt gets
 * what is left ÷ the attempts left, so a hung address (accepts TCP, never answers) uses its share only, one that
 * refuses at once leaves its share to the next, and the last attempt gets all that remains. A walk
 * of one attempt gets the whole deadline, as a single host. The share is at least libpq's least
 * `connect_timeout` (2 s) whenever the deadline can give that to every attempt left, and smaller only
 * when it cannot: libpq has no total deadline, the pool has (`createTimeoutMs`), and an attempt
 * given 2 s that the later ones needed would leave a live host unreached.
 */
export class ConnectBudget {
  readonly #totalMs: number
  readonly #now: () => number
  readonly #started: number
  #left: number

  /**
   * @param totalMs the deadline of the whole walk, in ms (the manager's `connectTimeoutMs`, or `connect_timeout` for each host)
   * @param attempts how many attempts the walk is known to make (its first pass, a host not yet resolved
   *   counted as one; see {@link add})
   * @param now the clock, in ms (performance.now by default; a test may give its own)
   */
  constructor(totalMs: number, attempts: number, now: () => number = () => performance.now()) {
    this.#totalMs = totalMs
    this.#now = now
    this.#left = attempts
    this.#started = now()
  }

  /**
   * The deadline of the next attempt, in ms (a whole number, at least 1), or undefined when the
   * walk's deadline is used up (the attempts left are not made).
   */
  next(): number | undefined {
    const remaining = this.#totalMs - (this.#now() - this.#started)
    if (remaining < 1) return undefined
    const share = Math.ceil(remaining / Math.max(1, this.#left))
    this.#left--
    return share
  }

  /**
   * What {@link next} would give now, without counting an attempt: how long the walk may wait on a
   * host's name lookup before that host's first attempt (which then gets what is left).
   */
  share(): number | undefined {
    const remaining = this.#totalMs - (this.#now() - this.#started)
    if (remaining < 1) return undefined
    return Math.ceil(remaining / Math.max(1, this.#left))
  }

  /** `attempts` more to share what is left with (a host's further addresses once its name is resolved; prefer-standby's second pass). */
  add(attempts: number): void {
    this.#left = Math.max(0, this.#left) + attempts
  }
}
