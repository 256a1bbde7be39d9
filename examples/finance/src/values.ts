import { toInteger } from '@dbpool/example-kit'

/**
 * The strict readers of values read back from either backend (`toInteger`, `toBigInteger`, `toDate`,
 * ValueReadError): shared with the other example, see `@dbpool/example-kit` (`db-values.ts`).
 */
export { toBigInteger, toDate, toInteger, ValueReadError } from '@dbpool/example-kit'
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
