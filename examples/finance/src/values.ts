/**
 * Normalises an integer read from either backend to a JS number: SQLite returns numbers, Postgres
 * returns `bigint` for `int8` columns and `count(*)` and a string for `numeric` (`sum(bigint)`).
 * Throws beyond 2^53 instead of rounding.
 */
export function toInteger(value: unknown, what = 'value'): number {
  const n = typeof value === 'number' ? value : typeof value === 'bigint' || typeof value === 'string' ? Number(value) : NaN
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} ${String(value)} is not a safe integer`)
  return n
}

/**
 * An exact integer read from either backend as a `bigint`: for sums SQL computed exactly that may be
 * beyond 2^53 (Postgres `sum(bigint)` is a `numeric` string, SQLite a number or, beyond ±(2^53 - 1),
 * a `bigint`). RangeError (naming `what`) for anything that is not an integer.
 */
export function toBigInteger(value: unknown, what = 'value'): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value)
  throw new RangeError(`${what} ${String(value)} is not an exact integer`)
}

/**
 * The exact sum of integer amounts (minor units) as a `bigint`. JS numbers add exactly only while every
 * partial sum stays a safe integer: `[2^53 - 1, 2, -(2^53 - 1), -1]` sums to 0 in floats (the real sum
 * is 1). The fast path adds numbers and checks each partial sum; the first one outside ±(2^53 - 1)
 * (the only place a float can round, so the check is exact) restarts the sum in `bigint`.
 * Every amount must already be a safe integer.
 */
export function sumExact(amounts: readonly number[]): bigint {
  let sum = 0
  for (const amount of amounts) {
    sum += amount
    if (!Number.isSafeInteger(sum)) return sumBig(amounts)
  }
  return BigInt(sum)
}

function sumBig(amounts: readonly number[]): bigint {
  let sum = 0n
  for (const amount of amounts) sum += BigInt(amount)
  return sum
}

/**
 * A running exact total of safe integers (minor units), read as a `bigint`: for totals no rule
 * bounds (a statement's money in and money out, where every balance stays within ±(2^53 - 1) but
 * alternating +2^52 / -2^52 lines add up past it). Numbers while every partial sum is a safe integer
 * (exact, and as fast as `+=`), `bigint` from the first one that is not; never a RangeError, never a
 * rounded total. Every amount must already be a safe integer.
 */
export class ExactTotal {
  #small = 0
  #big: bigint | undefined

  /** Adds one safe integer. */
  add(amount: number): void {
    if (this.#big !== undefined) {
      this.#big += BigInt(amount)
      return
    }
    const sum = this.#small + amount
    // two safe integers add exactly whenever the true sum is safe: an unsafe result is the only one that rounds
    if (Number.isSafeInteger(sum)) this.#small = sum
    else this.#big = BigInt(this.#small) + BigInt(amount)
  }

  /** The exact total. */
  get value(): bigint {
    return this.#big ?? BigInt(this.#small)
  }
}

/** `a + b` exactly, as a number; RangeError (naming `what`) when the sum is not a safe integer, never a rounded one. */
export function addExact(a: number, b: number, what = 'sum'): number {
  const sum = a + b
  // a + b of two safe integers is exact whenever the true sum is safe: a non-safe result is the only case that rounds
  if (!Number.isSafeInteger(sum)) throw new RangeError(`${what} ${String(BigInt(a) + BigInt(b))} is not a safe integer`)
  return sum
}

/** {@link toInteger}, keeping `null`. */
export function toNullableInteger(value: unknown, what = 'value'): number | null {
  return value === null || value === undefined ? null : toInteger(value, what)
}

/** A timestamp read from either backend: Postgres returns a `Date` for `timestamptz`, SQLite the ISO text written. */
export function toDate(value: unknown): Date {
  // a Date from another realm (the native driver's) fails instanceof: test the tag instead
  const date = Object.prototype.toString.call(value) === '[object Date]' ? new Date((value as Date).getTime()) : new Date(String(value))
  if (Number.isNaN(date.getTime())) throw new RangeError(`${String(value)} is not a timestamp`)
  return date
}
