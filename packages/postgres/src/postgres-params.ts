import { DatabaseError, isSqlJson, type CompiledQuery } from '@dbpool/core'
import { arrayPositions } from './postgres-array-params'
import { refuseClientCopy } from './postgres-copy-syntax'
import { checkFloatDigits } from './postgres-read-formats'
import {
  checkStatementText,
  describeValue,
  holeParameter,
  invalidParameter,
  isPlainObject,
  jsonParameterText,
  stringProblem,
} from '@dbpool/core/internal'

/** The most parameters one statement can carry: the protocol's Bind message counts them in an Int16. */
export const MAX_PARAMETERS = 65_535

/** Postgres arrays have at most 6 dimensions (MAXDIM); deeper nesting (or a cycle) is refused. */
const MAX_ARRAY_DEPTH = 6

/** 2^53 − 1: beyond it `String(n)` is a rounded shortest text, not the double's exact value. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** What pg's `client.query` is given: the text and the converted values. */
export interface PgQuery {
  readonly text: string
  readonly values: unknown[]
  /**
   * The 0-based positions of the parameters that were JS arrays (sent as Postgres array literals),
   * checked against the server's parameter types before sending (see `ArrayParameterCheck`).
   */
  readonly arrays?: readonly number[]
}

/**
 * Checks and converts one statement for pg, before anything is sent (so a refusal leaves the
 * connection untouched and usable). The text is refused with SYNTAX_ERROR when it holds U+0000 or a
 * lone surrogate (core's `checkStatementText`), with CONFIGURATION when it sets `extra_float_digits`
 * (see `checkFloatDigits`) and when it holds a `COPY ... FROM STDIN` / `TO STDOUT` (see
 * `refuseClientCopy`: only `copyFrom()` / `copyTo()` speak the COPY protocol); the parameters follow
 * {@link postgresParameters}.
 */
export function pgQuery(query: CompiledQuery): PgQuery {
  checkStatementText(query.text, 'postgres')
  checkFloatDigits(query.text)
  refuseClientCopy(query.text)
  const values = postgresParameters(query.params)
  // an array is always converted: the common case (nothing converted) pays nothing here
  const arrays = values === query.params ? undefined : arrayPositions(query.params)
  return arrays === undefined
    ? { text: query.text, values: values as unknown[] }
    : { text: query.text, values: values as unknown[], arrays }
}

/**
 * The values pg sends for `params`, by the contract's parameter table (one value, one parameter):
 *
 * | JS value | sent as |
 * |---|---|
 * | null, undefined | NULL (a hole, `[1, , 3]`, is refused: INVALID_PARAMETER naming its position) |
 * | boolean, finite number, bigint | its text (`true`, `1.5`, `9007199254740993`); an integral number beyond ±(2^53 − 1) as the double's exact integer (`2 ** 60` → `1152921504606846976`, `1e21` → `1000000000000000000000`), never `String(n)`'s shortest round-trip text (`1152921504606847000`, `1e+21`) |
 * | string | text; refused with U+0000 (Postgres text cannot hold it) or a lone surrogate (UTF-8 would turn it into U+FFFD) |
 * | Date | ISO-8601 UTC text (`2024-03-01T00:30:00.000Z`), never the process time zone (pg's `dateToString` uses it); years outside 1..9999 in Postgres's form (`10000-01-01T...Z`, `0044-03-15T...Z BC`) |
 * | Buffer, Uint8Array | bytea |
 * | array | a Postgres array literal, each element converted by these rules (numbers as above; nested arrays up to 6 dimensions; plain objects and `sql.json` values as JSON text; Buffers as `\x` hex) |
 * | plain object, `sql.json(v)` | JSON text (core's `jsonParameterText`: a bigint inside becomes a JSON integer of its digits; what JSON.stringify would change silently, such as a Buffer, a class instance or an `undefined` property inside, is refused) |
 *
 * Refused with INVALID_PARAMETER (1-based position and type in the message and `detail`): NaN and
 * ±Infinity, invalid Dates, functions, symbols, and every other object (Map, Set, RegExp, class
 * instances, typed arrays other than Uint8Array, boxed primitives; pg would send `JSON.stringify` or
 * `toString()` text), and more than {@link MAX_PARAMETERS} parameters.
 *
 * Returns `params` itself when no value needs converting (numbers within ±(2^53 − 1) and fractions,
 * strings, booleans, null, bigints, Buffers: pg's own `prepareValue` writes those exactly); otherwise
 * a copy. Allocates nothing in that
 * common case: one pass, a `typeof` switch.
 */
export function postgresParameters(params: readonly unknown[]): readonly unknown[] {
  const count = params.length
  if (count > MAX_PARAMETERS) throw tooManyParameters(count)
  let converted: unknown[] | undefined
  for (let i = 0; i < count; i++) {
    const value = params[i]
    switch (typeof value) {
      case 'string':
        if (stringProblem(value) !== undefined) throw refusedString(i + 1, value)
        break
      case 'number':
        if (!Number.isFinite(value)) throw refusedNumber(i + 1, value)
        // every double beyond ±(2^53 - 1) is integral: pg would send String(n), its shortest round-trip
        // text (2 ** 60 -> "1152921504606847000", 1e21 -> "1e+21"), another number than SQLite stores
        if (value > MAX_SAFE || value < -MAX_SAFE) (converted ??= params.slice())[i] = exactInteger(value)
        break
      case 'undefined':
        // a hole ([1, , 3]) reads as undefined: refused, never a silent NULL
        if (!(i in params)) throw holeParameter(i + 1, 'postgres')
        break
      case 'boolean':
      case 'bigint':
        // pg writes a bigint with toString(): its exact decimal text
        break
      case 'object':
        // pg sends a Buffer (and any Uint8Array) as bytea
        if (value === null || value instanceof Uint8Array) break
        ;(converted ??= params.slice())[i] = objectParameter(value, i + 1)
        break
      default:
        // function, symbol: pg would send their toString() text
        throw refused(i + 1, value)
    }
  }
  return converted ?? params
}

/** A non-null object other than a Buffer, as pg should send it. */
function objectParameter(value: object, position: number): unknown {
  if (value instanceof Date) return dateText(value, position, value)
  if (Array.isArray(value)) return arrayLiteral(value, position, value, 1, '')
  if (isSqlJson(value)) return jsonParameterText(value.value, position, 'postgres')
  if (isPlainObject(value)) return jsonParameterText(value, position, 'postgres')
  throw refused(position, value)
}

/**
 * A Postgres array literal: `{1,2}`, `{"a","b\\"c",NULL}`, `{{1,2},{3,4}}`. Every element but NULL and
 * nested arrays is quoted and escaped, so text such as `NULL` or `a,b` stays one string element.
 */
function arrayLiteral(array: readonly unknown[], position: number, parameter: unknown[], depth: number, path: string): string {
  if (depth > MAX_ARRAY_DEPTH)
    throw invalidParameter(
      position,
      parameter,
      `nests arrays deeper than Postgres's ${MAX_ARRAY_DEPTH} dimensions (or holds itself)`,
      'postgres',
    )
  let text = '{'
  for (let i = 0; i < array.length; i++) {
    if (i > 0) text += ','
    text += arrayElement(array, i, position, parameter, depth, `${path}[${i}]`)
  }
  return text + '}'
}

function arrayElement(
  array: readonly unknown[],
  index: number,
  position: number,
  parameter: unknown[],
  depth: number,
  path: string,
): string {
  const element = array[index]
  switch (typeof element) {
    case 'undefined':
      if (!(index in array)) throw holeParameter(position, 'postgres', path)
      return 'NULL'
    case 'string': {
      const problem = stringProblem(element)
      if (problem) throw invalidParameter(position, parameter, `holds a string at ${path} that ${problem}`, 'postgres')
      return quote(element)
    }
    case 'number':
      if (!Number.isFinite(element)) throw refusedElement(position, parameter, path, element, 'is not a finite number')
      return element > MAX_SAFE || element < -MAX_SAFE ? exactInteger(element) : String(element)
    case 'boolean':
      return element ? 'true' : 'false'
    case 'bigint':
      return element.toString()
    case 'object': {
      if (element === null) return 'NULL'
      if (Array.isArray(element)) return arrayLiteral(element, position, parameter, depth + 1, path)
      if (element instanceof Date) return quote(dateText(element, position, parameter, path))
      if (element instanceof Uint8Array)
        return quote(`\\x${Buffer.from(element.buffer, element.byteOffset, element.byteLength).toString('hex')}`)
      if (isSqlJson(element)) return quote(jsonParameterText(element.value, position, 'postgres'))
      if (isPlainObject(element)) return quote(jsonParameterText(element, position, 'postgres'))
      throw refusedElement(position, parameter, path, element, 'has no Postgres representation')
    }
    default:
      throw refusedElement(position, parameter, path, element, 'has no Postgres representation')
  }
}

/**
 * The exact decimal integer a double beyond ±(2^53 − 1) holds (every such double is integral):
 * `2 ** 60` → `1152921504606846976`, `1e21` → `1000000000000000000000`. The same number SQLite stores
 * for it, and what `bigint`, `numeric` and `double precision` columns read as that double.
 */
function exactInteger(value: number): string {
  return BigInt(value).toString()
}

/** A quoted array element: backslash and double quote escaped with a backslash. */
function quote(text: string): string {
  return `"${text.replace(/[\\"]/g, '\\$&')}"`
}

/**
 * ISO-8601 UTC text, which every date/time type reads as meant: timestamptz the instant, timestamp
 * the UTC wall time (it ignores the zone), date the UTC date. Years 1..9999 exactly as
 * `toISOString()`; others in the form Postgres reads (no `+` or padding beyond 9999, ` BC` before year 1).
 */
function dateText(date: Date, position: number, parameter: unknown, path?: string): string {
  if (Number.isNaN(date.getTime())) {
    const where = path === undefined ? 'is an invalid Date' : `holds an invalid Date at ${path}`
    throw invalidParameter(position, parameter, where, 'postgres')
  }
  const iso = date.toISOString()
  const year = date.getUTCFullYear()
  if (year >= 1 && year <= 9999) return iso
  const rest = iso.slice(iso.indexOf('-', 1))
  return year > 9999 ? `${year}${rest}` : `${String(1 - year).padStart(4, '0')}${rest} BC`
}

function refusedString(position: number, value: string): DatabaseError {
  return invalidParameter(position, value, stringProblem(value) ?? 'cannot be sent', 'postgres')
}

function refusedNumber(position: number, value: number): DatabaseError {
  return invalidParameter(
    position,
    value,
    'is not a finite number: refused rather than stored as a float special value or failing a numeric column',
    'postgres',
  )
}

function refused(position: number, value: unknown): DatabaseError {
  return invalidParameter(
    position,
    value,
    'has no Postgres representation: send a string, number, bigint, boolean, Date, Buffer, array, plain object, or sql.json(value)',
    'postgres',
  )
}

function refusedElement(position: number, parameter: unknown[], path: string, element: unknown, reason: string): DatabaseError {
  return invalidParameter(position, parameter, `holds ${describeValue(element)} at ${path}, which ${reason}`, 'postgres')
}

function tooManyParameters(count: number): DatabaseError {
  return new DatabaseError(
    'INVALID_PARAMETER',
    `statement has ${count} parameters; the Postgres protocol allows at most ${MAX_PARAMETERS}: pass a list as one array parameter (= ANY($1)) or split the statement`,
    { backend: 'postgres', retryable: false, detail: { count, max: MAX_PARAMETERS } },
  )
}
