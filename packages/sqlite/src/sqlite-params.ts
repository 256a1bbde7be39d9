import { DatabaseError, isSqlJson } from '@dbpool/core'
import { holeParameter, invalidParameter, isPlainObject, jsonParameterText, stringProblem } from '@dbpool/core/internal'
import type Database from 'better-sqlite3'

/**
 * SQLITE_MAX_VARIABLE_NUMBER of the SQLite inside better-sqlite3 when `PRAGMA compile_options` does
 * not say (SQLite's default since 3.32.0, and what better-sqlite3 ships).
 */
export const DEFAULT_MAX_PARAMETERS = 32_766

const MIN_INT64 = -(2n ** 63n)
const MAX_INT64 = 2n ** 63n - 1n
/** 2^63 as a double: integral numbers in [-2^63, 2^63) fit SQLite's signed 64-bit INTEGER exactly. */
const TWO_63 = 2 ** 63
/** A boolean is bound as an INTEGER: better-sqlite3 binds every JS number (`1`) as a double (REAL). */
const TRUE = 1n
const FALSE = 0n

/**
 * The most parameters one statement can carry in the SQLite better-sqlite3 was built with, read from
 * `PRAGMA compile_options` (`MAX_VARIABLE_NUMBER=32766`), else {@link DEFAULT_MAX_PARAMETERS}.
 */
export function maxParametersOf(db: Database.Database): number {
  try {
    const options = db.pragma('compile_options', { simple: false }) as { compile_options?: unknown }[]
    for (const row of options) {
      const match = /^MAX_VARIABLE_NUMBER=(\d+)$/.exec(String(row.compile_options))
      if (match) return Number(match[1])
    }
  } catch {
    // a build without compile_options: SQLite's default
  }
  return DEFAULT_MAX_PARAMETERS
}

/**
 * The values better-sqlite3 binds for `params`, by the contract's parameter table (one interpolated
 * value is exactly one parameter):
 *
 * | JS value | bound as |
 * |---|---|
 * | null, undefined | NULL (a hole, `[1, , 3]`, is refused: INVALID_PARAMETER naming its position) |
 * | boolean | INTEGER 1 / 0 |
 * | finite number | INTEGER when integral within signed 64-bit (the double's exact value), else REAL |
 * | bigint within signed 64-bit | INTEGER |
 * | string | TEXT |
 * | Date (valid, years 0000 to 9999 UTC) | TEXT, ISO-8601 UTC (`2024-03-01T00:30:00.000Z`) |
 * | Buffer, Uint8Array | BLOB |
 * | plain object, `sql.json(v)` | TEXT, JSON (core's `jsonParameterText`: a bigint inside becomes a JSON integer of its digits; what JSON.stringify would change silently, such as a Buffer, a class instance or an `undefined` property inside, is refused) |
 *
 * Refused with INVALID_PARAMETER (1-based position and type in the message and `detail`), before the
 * statement runs: arrays (SQLite has no arrays; better-sqlite3 would spread one over several
 * placeholders), NaN and ±Infinity, bigints outside signed 64-bit, strings holding U+0000 or a lone
 * surrogate (the same rule as Postgres), invalid Dates, Dates outside years 0000 to 9999 UTC (their
 * ISO text would have a signed 6-digit year, which sorts wrongly against the others and SQLite's date
 * functions do not read), functions, symbols and every other object
 * (Map, Set, class instances, typed arrays other than Uint8Array; better-sqlite3 would read a plain
 * object as named parameters), and more than `maxParameters` values.
 *
 * Values from another JS realm (a `vm` context) are read by brand, not `instanceof`: a Date by its
 * time value (`Date.prototype.getTime`), a Uint8Array by its typed-array kind, a plain object by
 * core's `isPlainObject`; an object that only claims to be one (`Symbol.toStringTag`) is refused.
 *
 * An integral number within signed 64 bits (`-2^63 <= n < 2^63`) and a boolean are bound as an
 * INTEGER (as a bigint: better-sqlite3 binds every JS number as a double, REAL in SQLite's eyes:
 * `'5.0'` or `'1.0'` in a TEXT column, `5 / 2 = 2.5`, `2 ** 60` as `'1.15292150460685e+18'` text),
 * so `5` is `'5'` and `2 ** 60` is `'1152921504606846976'` in a TEXT column or an expression, as on
 * Postgres. Integral numbers beyond that (`1e21`) stay REAL.
 *
 * Returns `params` itself when nothing needs converting (fractional numbers, strings, null, in-range bigints,
 * Buffers): one `typeof` pass, no allocation. Otherwise a copy. Either way the result holds no plain
 * object, so spreading it into `stmt.all(...values)` never binds named parameters.
 */
export function sqliteParameters(params: readonly unknown[], maxParameters: number): readonly unknown[] {
  const count = params.length
  if (count > maxParameters) throw tooManyParameters(count, maxParameters)
  let converted: unknown[] | undefined
  for (let i = 0; i < count; i++) {
    const value = params[i]
    switch (typeof value) {
      case 'string':
        if (stringProblem(value) !== undefined) throw refusedString(i + 1, value)
        break
      case 'number':
        if (value - value !== 0) throw refusedNumber(i + 1, value)
        // better-sqlite3 binds every number as a double: an integral one would be REAL in SQLite's
        // eyes ('5.0' in a TEXT column, 5 / 2 = 2.5, -0 kept), where Postgres stores the integer
        if (Number.isSafeInteger(value) || (Number.isInteger(value) && value >= -TWO_63 && value < TWO_63))
          (converted ??= params.slice())[i] = BigInt(value)
        break
      case 'bigint':
        if (value < MIN_INT64 || value > MAX_INT64) throw refusedBigint(i + 1, value)
        break
      case 'boolean':
        ;(converted ??= params.slice())[i] = value ? TRUE : FALSE
        break
      case 'undefined':
        // a hole ([1, , 3]) reads as undefined: refused, never a silent NULL
        if (!(i in params)) throw holeParameter(i + 1, 'sqlite')
        ;(converted ??= params.slice())[i] = null
        break
      case 'object':
        if (value === null || isBuffer(value)) break
        ;(converted ??= params.slice())[i] = objectParameter(value, i + 1)
        break
      default:
        // function, symbol
        throw refused(i + 1, value)
    }
  }
  return converted ?? params
}

/** A non-null object other than a Buffer, as SQLite should bind it. */
function objectParameter(value: object, position: number): unknown {
  if (isDateTag(value)) return dateText(value, position)
  if (Array.isArray(value))
    throw invalidParameter(
      position,
      value,
      'is an array, and SQLite has no arrays: use sql.json(v) for JSON or sql.join(v) for a list of parameters',
      'sqlite',
    )
  if (isSqlJson(value)) return jsonParameterText(value.value, position, 'sqlite')
  if (isUint8Array(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (isPlainObject(value)) return jsonParameterText(value, position, 'sqlite')
  throw refused(position, value)
}

/** 0000-01-01T00:00:00.000Z: the first instant SQLite's date functions read, and whose ISO text has a 4-digit year. */
export const MIN_DATE_MS = Date.parse('0000-01-01T00:00:00.000Z')
/** 9999-12-31T23:59:59.999Z: the last such instant. */
export const MAX_DATE_MS = Date.parse('9999-12-31T23:59:59.999Z')

/**
 * A Date's ISO-8601 UTC text, read from its time value (a subclass's own `toISOString()` is not
 * called). Refused (INVALID_PARAMETER): an object that only claims to be a Date (`Symbol.toStringTag`),
 * an invalid Date, and one outside years 0000 to 9999 (UTC), whose text would carry a signed 6-digit
 * year (`+010000-01-01T...`, `-000001-...`) that sorts before `'2024-...'` as text and that SQLite's
 * date functions do not read.
 */
function dateText(value: object, position: number): string {
  let time: number
  try {
    // the brand check: getTime reads the Date's internal time value, of any realm, and throws on anything else
    time = Date.prototype.getTime.call(value)
  } catch {
    throw refused(position, value)
  }
  if (Number.isNaN(time)) throw invalidParameter(position, value, 'is an invalid Date', 'sqlite')
  if (time < MIN_DATE_MS || time > MAX_DATE_MS)
    throw invalidParameter(
      position,
      value,
      "is outside years 0000 to 9999 (UTC): SQLite stores a Date as ISO-8601 text, and beyond those years the text has a signed 6-digit year (+010000-..., -000001-...) that sorts before '2024-...' and that SQLite's date functions do not read; store such an instant as a number (date.getTime()) or as text of your own format",
      'sqlite',
    )
  return new Date(time).toISOString()
}

// brand and tag checks, not instanceof: values may come from another realm (a vm context, a worker's message)
function isBuffer(value: object): boolean {
  return Buffer.isBuffer(value)
}

/**
 * `%TypedArray%.prototype[Symbol.toStringTag]`: the typed array's own kind read from its internal
 * slot (of any realm), undefined for anything else; an own `Symbol.toStringTag` cannot fake it.
 */
const typedArrayKind = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag)!.get as (
  this: unknown,
) => string | undefined

function isUint8Array(value: object): value is Uint8Array {
  return typedArrayKind.call(value) === 'Uint8Array'
}

/** Tagged `Date` (cheap; {@link dateText} then checks it really is one). */
function isDateTag(value: object): boolean {
  return Object.prototype.toString.call(value) === '[object Date]'
}

function refusedString(position: number, value: string): DatabaseError {
  return invalidParameter(position, value, stringProblem(value) ?? 'cannot be bound', 'sqlite')
}

function refusedNumber(position: number, value: number): DatabaseError {
  return invalidParameter(position, value, 'is not a finite number: SQLite would store NULL or a float special value', 'sqlite')
}

function refusedBigint(position: number, value: bigint): DatabaseError {
  return invalidParameter(position, value, "is outside SQLite's signed 64-bit INTEGER range (-2^63 to 2^63 - 1)", 'sqlite')
}

function refused(position: number, value: unknown): DatabaseError {
  return invalidParameter(
    position,
    value,
    'has no SQLite representation: send a string, number, bigint, boolean, Date, Buffer or Uint8Array, plain object, or sql.json(value)',
    'sqlite',
  )
}

function tooManyParameters(count: number, max: number): DatabaseError {
  return new DatabaseError(
    'INVALID_PARAMETER',
    `statement has ${count} parameters; this SQLite allows at most ${max} (SQLITE_MAX_VARIABLE_NUMBER): split the statement, or pass the list as one JSON parameter (sql.json(list), read with json_each)`,
    { backend: 'sqlite', retryable: false, detail: { count, max } },
  )
}
