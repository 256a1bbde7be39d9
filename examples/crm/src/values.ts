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
 * An exact integer read from either backend as a `bigint`, for sums SQL computed exactly that may be
 * beyond 2^53 (Postgres `sum(bigint)` is a `numeric` string, SQLite a number or, beyond ±(2^53 - 1),
 * a `bigint`). RangeError (naming `what`) for anything that is not an integer.
 */
export function toBigInteger(value: unknown, what = 'value'): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value)
  throw new RangeError(`${what} ${String(value)} is not an exact integer`)
}

/** A timestamp read from either backend: Postgres returns a `Date` for `timestamptz`, SQLite the ISO text written. */
export function toDate(value: unknown): Date {
  // a Date from another realm (the native driver's) fails instanceof: test the tag instead
  const date = Object.prototype.toString.call(value) === '[object Date]' ? new Date((value as Date).getTime()) : new Date(String(value))
  if (Number.isNaN(date.getTime())) throw new RangeError(`${String(value)} is not a timestamp`)
  return date
}

/** {@link toDate}, keeping `null`. */
export function toNullableDate(value: unknown): Date | null {
  return value === null || value === undefined ? null : toDate(value)
}
