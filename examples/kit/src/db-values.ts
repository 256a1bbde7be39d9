/**
 * Strict readers of values the examples read back from either backend. They accept only what a
 * backend returns for the column, and refuse everything else with a {@link ValueReadError} naming
 * the column (`what`), never a silent coercion: JavaScript's `Number(text)` reads `''` as 0, `' 7 '`
 * as 7, `'0x1f'` as 31 and `'1e3'` as 1000, and `new Date(text)` reads text without a time zone in
 * the process's local zone (`'2024-03-01 00:30:00'`, SQLite's `CURRENT_TIMESTAMP` or Postgres
 * `timestamp` text, is UTC or a wall time, never New York's).
 */

/** What a reader expected. */
export type ExpectedValue = 'safe integer' | 'exact integer' | 'timestamp'

/**
 * A value read from the database is not what the column holds by the schema: a bug or a schema
 * drift, never a user's input. A `RangeError` (as these readers threw before), with the column and
 * the expected kind as fields.
 */
export class ValueReadError extends RangeError {
  override readonly name = 'ValueReadError'

  constructor(
    /** The column or quantity read (`amount`, `balance`, `created_at`...). */
    readonly what: string,
    /** What was expected. */
    readonly expected: ExpectedValue,
    /** The value as text (`String(value)`), for the message. */
    readonly value: string,
    reason = `is not a ${expected}`,
  ) {
    super(`${what} ${JSON.stringify(value)} ${reason}`)
  }
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER)
/** An integer's decimal digits, optionally negative: no blanks, no `+`, no exponent, no hex, never empty. */
const INTEGER_TEXT = /^-?\d+$/

/**
 * An exact integer as a `bigint`: a safe-integer number, a bigint, or decimal digits (Postgres
 * `numeric` for `sum(bigint)`, beyond 2^53). ValueReadError (`exact integer`) for anything else.
 */
export function toBigInteger(value: unknown, what = 'value'): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  if (typeof value === 'string' && INTEGER_TEXT.test(value)) return BigInt(value)
  throw new ValueReadError(what, 'exact integer', String(value))
}

/**
 * A safe integer as a number: SQLite returns numbers, Postgres a `bigint` for `int8` and `count(*)`
 * and decimal digits for `numeric` (`sum(bigint)`). The same forms as {@link toBigInteger}, then within
 * ±(2^53 - 1): ValueReadError (`safe integer`) beyond it (instead of rounding) or for anything else.
 * `-0` reads as `0`.
 */
export function toInteger(value: unknown, what = 'value'): number {
  let exact: bigint
  try {
    exact = toBigInteger(value, what)
  } catch {
    throw new ValueReadError(what, 'safe integer', String(value))
  }
  if (exact > SAFE || exact < -SAFE) throw new ValueReadError(what, 'safe integer', String(value), 'is beyond ±(2^53 - 1)')
  return Number(exact)
}

/**
 * `YYYY-MM-DD`, `T` or a blank, `HH:MM[:SS[.fff]]`, and a zone: `Z` or `±HH[[:]MM]` (ISO-8601 as a
 * bound Date writes it on SQLite, and Postgres `timestamptz` text). Milliseconds at most: a Date holds
 * no more.
 */
const TIMESTAMP_TEXT = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)$/

/**
 * An instant as a `Date`: a valid Date (of any realm: Postgres `timestamptz`), or text with its time
 * zone (SQLite holds the ISO text a bound Date was written as). ValueReadError (`timestamp`) for text
 * without a zone (it would be read in the process's time zone), a calendar date that does not exist
 * (`2024-02-30`, which `new Date()` rolls over to March 1), more than millisecond precision, and
 * anything else. The result is always a new Date.
 */
export function toDate(value: unknown, what = 'timestamp'): Date {
  if (typeof value === 'string') return dateOfText(value, what)
  let time = NaN
  try {
    // the brand check: reads a Date's time value, of any realm (the driver's), and throws on anything else
    time = Date.prototype.getTime.call(value)
  } catch {
    // not a Date
  }
  if (Number.isNaN(time)) throw new ValueReadError(what, 'timestamp', String(value))
  return new Date(time)
}

function dateOfText(text: string, what: string): Date {
  const m = TIMESTAMP_TEXT.exec(text)
  if (m === null) {
    const reason = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)
      ? 'has no time zone: it would be read in the process time zone (write timestamps as bound Dates, or text ending in Z)'
      : 'is not a timestamp with a time zone (YYYY-MM-DDTHH:MM:SS.sssZ)'
    throw new ValueReadError(what, 'timestamp', text, reason)
  }
  const [year, month, day, hour, minute, second = 0, ms = 0] = [m[1], m[2], m[3], m[4], m[5], m[6], m[7]?.padEnd(3, '0')].map((part) =>
    part === undefined ? undefined : Number(part),
  ) as number[]
  const offset = m[8] === 'Z' ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11] ?? 0))
  const local = new Date(0)
  local.setUTCFullYear(year!, month! - 1, day!)
  local.setUTCHours(hour!, minute!, second, ms)
  // the fields SQLite or Postgres wrote, as they are: a day or hour that rolled over does not exist
  if (
    local.getUTCFullYear() !== year ||
    local.getUTCMonth() !== month! - 1 ||
    local.getUTCDate() !== day ||
    local.getUTCHours() !== hour ||
    local.getUTCMinutes() !== minute ||
    local.getUTCSeconds() !== second ||
    Math.abs(offset) > 18 * 60
  )
    throw new ValueReadError(what, 'timestamp', text, 'is not a valid date and time')
  return new Date(local.getTime() - offset * 60_000)
}
