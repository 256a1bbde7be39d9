import { parse as parseLossless } from 'lossless-json'
import { types as pgTypes, type CustomTypesConfig } from 'pg'
import { ReadGuard } from './postgres-read-guard'

/**
 * How `bigint` / `int8` columns (and `count(*)`, `sum(int)`) come back: `'bigint'` (default) always a
 * JS bigint; `'string'` pg's decimal text; `'number'` a number within ±(2^53−1) and a bigint beyond
 * (never a rounded number).
 */
export type Int8Mode = 'bigint' | 'string' | 'number'

/** The `int8` modes. */
export const INT8_MODES: readonly Int8Mode[] = ['bigint', 'string', 'number']

/**
 * How `timestamptz` columns come back: `'date'` (default) a JS `Date`, to the millisecond (a Date
 * cannot hold Postgres's microseconds: `.123456` reads as `.123`); `'string'` the server's ISO text,
 * exact (`'2024-03-01 00:30:00.123456+00'`, in the session's TimeZone, every year Postgres holds).
 */
export type TimestamptzMode = 'date' | 'string'

/** The `timestamptz` modes. */
export const TIMESTAMPTZ_MODES: readonly TimestamptzMode[] = ['date', 'string']

const OID = {
  INT8: 20,
  INT8_ARRAY: 1016,
  DATE: 1082,
  DATE_ARRAY: 1182,
  TIMESTAMP: 1114,
  TIMESTAMP_ARRAY: 1115,
  TIMESTAMPTZ: 1184,
  TIMESTAMPTZ_ARRAY: 1185,
  INTERVAL: 1186,
  INTERVAL_ARRAY: 1187,
  TEXT_ARRAY: 1009,
  NUMERIC_ARRAY: 1231,
  JSON: 114,
  JSON_ARRAY: 199,
  JSONB: 3802,
  JSONB_ARRAY: 3807,
} as const

type Parser = (text: string) => unknown
type Nested = unknown[] | unknown

/**
 * The type parsers every dbpool Postgres connection uses (per client: pg's global parsers are left
 * alone). Decisions:
 *
 * - `int8` (`bigint`, `bigserial`, `count(*)`): a JS `bigint` by default (exact; mixing it with
 *   numbers fails loudly). `'string'` gives pg's default; `'number'` gives a number within
 *   ±(2^53−1) (`Number.MAX_SAFE_INTEGER`) and a `bigint` beyond it, never a silently rounded number
 *   (the same rule as SQLite's default reads; the parser never throws, which inside pg would fail
 *   the whole statement).
 * - `numeric` / `decimal`: a string (exact; JS has no decimal type). pg's default; `numeric[]` too
 *   (pg parses its elements with `parseFloat`, which rounds `12345678901234567.89`).
 * - `timestamptz`: a `Date` (an instant), pg's parser, **to the millisecond**: Postgres keeps
 *   microseconds, a Date cannot, so `.123456` reads as `.123` (truncated; written back it stores
 *   `.123000`). Where microseconds matter: `timestamptz: 'string'` (the server's ISO text, exact, for
 *   every column), or `at::text` (or `to_char`, `extract(epoch from at)`) for one.
 *   `infinity` / `-infinity` read as the numbers `Infinity` / `-Infinity` (pg's default). A value after
 *   275760-09-13 (a Date's end; Postgres goes to 294276) is refused (the statement's result:
 *   QUERY_FAILED naming the column, see `unreadableError`), never an Invalid Date.
 * - `timestamp` (without time zone) and `date`: the server's text, e.g. `'2024-03-01 12:00:00'` and
 *   `'2024-03-01'` (exact, microseconds and every year included); pg would build a Date in the
 *   process's local zone, a silent shift.
 * - `interval`: pg's object (`{ days: 1, hours: 2 }`), read from IntervalStyle `postgres` text, or
 *   `sql_standard` text (the pool keeps that style when it is the server's default, since it also
 *   changes how the server reads interval input: see `ReadFormats`), read exactly the same.
 * - Date/time and interval texts in another DateStyle / IntervalStyle than the pool reads (ISO;
 *   postgres or sql_standard: a session's `SET datestyle` changed it; pg read a timestamptz as `null`, an interval as
 *   `{}`) are refused the same way, never read as something else.
 * - `json` / `jsonb`: parsed, as JSON.parse does (duplicate keys: the last wins), except that a
 *   number holding an integer that JS would not write back as written (`{"id": 12345678901234567890}`,
 *   which JSON.parse rounds to `12345678901234567000`; `9007199254740993e0`; `1e400`, which JSON.parse
 *   reads as Infinity) comes back as the exact `bigint`, the `int8: 'number'` rule (see
 *   {@link parseJson}); a fraction beyond a double's range (Infinity) or a non-zero one below it (0)
 *   is refused as above.
 * - `bytea`: Buffer. `int2`/`int4`/`float4`/`float8`: number. pg's defaults.
 * - Arrays of these follow their element type.
 */
export function createTypeParsers(
  int8: Int8Mode,
  guard: ReadGuard = new ReadGuard(),
  timestamptzMode: TimestamptzMode = 'date',
): CustomTypesConfig {
  const overrides = new Map<number, Parser>()
  const int8Parser = int8Parse(int8)
  if (int8Parser) {
    overrides.set(OID.INT8, int8Parser)
    overrides.set(OID.INT8_ARRAY, arrayOf(int8Parser))
  }
  const date = isoText(ISO_DATE, 'date', guard)
  const timestamp = isoText(ISO_TIMESTAMP, 'timestamp', guard)
  const timestamptz = timestamptzMode === 'string' ? isoText(ISO_TIMESTAMPTZ, 'timestamptz', guard) : timestamptzParser(guard)
  const interval = intervalParser(guard)
  const json = (text: string): unknown => parseJson(text, guard)
  overrides.set(OID.NUMERIC_ARRAY, arrayOf(identity))
  overrides.set(OID.DATE, date)
  overrides.set(OID.DATE_ARRAY, arrayOf(date))
  overrides.set(OID.TIMESTAMP, timestamp)
  overrides.set(OID.TIMESTAMP_ARRAY, arrayOf(timestamp))
  overrides.set(OID.TIMESTAMPTZ, timestamptz)
  overrides.set(OID.TIMESTAMPTZ_ARRAY, arrayOf(timestamptz))
  overrides.set(OID.INTERVAL, interval)
  overrides.set(OID.INTERVAL_ARRAY, arrayOf(interval))
  for (const oid of [OID.JSON, OID.JSONB]) overrides.set(oid, json)
  // one digit budget per json[] value, shared by its elements (see MAX_SPELLED_DIGITS)
  const jsonArray = (text: string): unknown => {
    const budget = { left: MAX_SPELLED_DIGITS }
    return arrayOf((element) => parseJson(element, guard, budget))(text)
  }
  for (const oid of [OID.JSON_ARRAY, OID.JSONB_ARRAY]) overrides.set(oid, jsonArray)
  const getTypeParser = ((oid: number, format?: 'text' | 'binary') => {
    if (format !== 'binary') {
      const parser = overrides.get(oid)
      if (parser) return parser
    }
    return format === undefined ? pgTypes.getTypeParser(oid) : pgTypes.getTypeParser(oid, format)
  }) as CustomTypesConfig['getTypeParser']
  return { getTypeParser }
}

/** DateStyle ISO output: `2024-03-01`, years beyond 9999 with more digits, ` BC` before year 1. */
const ISO_DATE = /^\d{4,}-\d\d-\d\d(?: BC)?$/
/** `2024-03-01 12:00:00[.ffffff]` (ISO DateStyle), ` BC` before year 1. */
const ISO_TIMESTAMP = /^\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?(?: BC)?$/
/** `2024-03-01 12:00:00[.ffffff]+01[:30[:15]]` (ISO DateStyle). */
const ISO_TIMESTAMPTZ = /^\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?[+-]\d\d(?::\d\d){0,2}(?: BC)?$/
/** IntervalStyle postgres output: `1 year 2 mons -3 days +04:05:06.5`, `00:00:00`. */
const POSTGRES_INTERVAL = /^(?:[-+]?\d+ years? ?)?(?:[-+]?\d+ mons? ?)?(?:[-+]?\d+ days? ?)?(?:[-+]?\d+:\d\d:\d\d(?:\.\d+)?)?$/

/** The server's text, when it is in the ISO DateStyle form (or ±infinity); otherwise refused. */
function isoText(form: RegExp, type: string, guard: ReadGuard): Parser {
  return (text) => (form.test(text) || text === 'infinity' || text === '-infinity' ? text : guard.unreadable(type, 'format'))
}

function timestamptzParser(guard: ReadGuard): Parser {
  const pgParse = pgTypes.getTypeParser(OID.TIMESTAMPTZ) as Parser
  return (text) => {
    if (!ISO_TIMESTAMPTZ.test(text))
      return text === 'infinity' || text === '-infinity' ? pgParse(text) : guard.unreadable('timestamptz', 'format')
    const value = pgParse(text)
    return value instanceof Date && Number.isNaN(value.getTime()) ? guard.unreadable('timestamptz', 'out-of-range') : value
  }
}

function intervalParser(guard: ReadGuard): Parser {
  const pgParse = pgTypes.getTypeParser(OID.INTERVAL) as Parser
  return (text) => {
    if (POSTGRES_INTERVAL.test(text)) return pgParse(text)
    const postgres = postgresIntervalText(text)
    if (postgres !== undefined) return pgParse(postgres)
    // PostgreSQL 17's infinite intervals: pg's object has no way to say it (it read {})
    return guard.unreadable('interval', text === 'infinity' || text === '-infinity' ? 'out-of-range' : 'format')
  }
}

/**
 * IntervalStyle sql_standard output (PostgreSQL's EncodeInterval): `0`; `[-]Y-M`; `[-]D H:MM:SS[.f]`;
 * `[-]H:MM:SS[.f]` (one leading sign for every field); `±Y-M ±D ±H:MM:SS[.f]` (mixed signs, or both
 * year-month and day-time fields).
 */
const SQL_STANDARD_INTERVAL =
  /^(?:(0)|(-?)(\d+)-(\d+)|(-?)(?:(\d+) )?(\d+:\d\d:\d\d(?:\.\d+)?)|([-+])(\d+)-(\d+) ([-+])(\d+) ([-+])(\d+:\d\d:\d\d(?:\.\d+)?))$/

/**
 * The IntervalStyle postgres text of the same interval as the sql_standard text `text` (kept when it
 * is the server's default: see `ReadFormats`), read by pg's parser as any other; `undefined` when
 * `text` is not in that form. Exact: only the spelling of the fields changes.
 */
export function postgresIntervalText(text: string): string | undefined {
  const m = SQL_STANDARD_INTERVAL.exec(text)
  if (m === null) return undefined
  if (m[1] !== undefined) return '00:00:00'
  const [ym, y, mo, dt, d, time, ys, y2, mo2, ds, d2, ts, time2] = m.slice(2)
  if (y !== undefined) return `${ym}${y} years ${ym}${mo} mons`
  if (time !== undefined) return `${d !== undefined ? `${dt}${d} days ` : ''}${dt}${time}`
  return `${ys}${y2} years ${ys}${mo2} mons ${ds}${d2} days ${ts}${time2}`
}

function int8Parse(mode: Int8Mode): Parser | undefined {
  if (mode === 'bigint') return (text) => BigInt(text)
  if (mode === 'number') {
    return (text) => {
      const value = Number(text)
      // beyond ±(2^53−1) a number would be rounded: the exact bigint instead (as SQLite does)
      return Number.isSafeInteger(value) ? value : BigInt(text)
    }
  }
  return undefined
}

/**
 * A text that may hold a number JSON.parse would not read exactly: a run of 16 digits (an integer
 * beyond ±(2^53−1) has at least 16) or an exponent (`9007199254740993e0`, `1e400`).
 */
const NEEDS_EXACT = /\d{16}|\d[eE][-+]?\d/
const INTEGER = /^-?\d+$/
const NUMBER = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/
/** Digits of the longest integer written out in digits read as a bigint (work in proportion to the text read). */
const MAX_INTEGER_DIGITS = 10_000
/**
 * Digits that integers written with an exponent or a fraction part may spell out as bigints in one
 * `json` / `jsonb` value (a `json[]` value: all its elements together). An exponent spells many
 * digits in a few bytes (`1e9999`: 10,000 digits in 6 bytes; a 684 KB document of them took 31 s
 * and 400 MB): beyond this budget the value is unreadable. Real ids and amounts spend a few dozen.
 */
export const MAX_SPELLED_DIGITS = 10_000

/** What one `json` value may still spell out (see {@link MAX_SPELLED_DIGITS}). */
interface DigitBudget {
  left: number
}

/**
 * A `json` / `jsonb` value: JSON.parse, except for a number that JS would not read as written: an
 * integer that JS would not write back as the same integer becomes the exact `bigint` (JSON.parse
 * reads `12345678901234567890` as `12345678901234567000`, `9007199254740993` and `9007199254740993e0`
 * as `9007199254740992`, `1e400` as Infinity: an id or an amount changed silently, and written back
 * changed). An integer that JS prints back as written stays a number: `1152921504606847000`, the text
 * `JSON.stringify(2 ** 60)` writes, reads back as the double `2 ** 60`, as with JSON.parse, and
 * `1000000000000000000000` (jsonb's spelling of `1e21`) as `1e21`. Numbers with a fraction stay
 * doubles, as in JSON.parse; one beyond a double's range (Infinity) or non-zero but read as 0 is
 * unreadable (the result is refused: see {@link UnreadableValue}), as is an integer of more than
 * 10,000 digits, and the value whose integers written with an exponent or a fraction part spell out
 * more than {@link MAX_SPELLED_DIGITS} digits as bigints (`1e9999` twice). Only a text with a run
 * of 16 digits or an exponent goes through lossless-json, a JS parser that hands over each number's
 * text (duplicate keys: the last wins, as JSON.parse and Postgres's json operators do); every other
 * value takes JSON.parse's fast path.
 *
 * @param budget Shared by the elements of one `json[]` value; a fresh one per value by default.
 */
export function parseJson(text: string, guard: ReadGuard = new ReadGuard(), budget: DigitBudget = { left: MAX_SPELLED_DIGITS }): unknown {
  if (!NEEDS_EXACT.test(text)) return JSON.parse(text)
  try {
    return parseLossless(text, null, {
      parseNumber: (number: string) => jsonNumber(number, guard, budget),
      onDuplicateKey: ({ newValue }: { newValue: unknown }) => newValue,
    } as never)
  } catch {
    // Postgres json and jsonb are valid JSON: not expected; never a rounded value instead
    return guard.unreadable('json', 'format')
  }
}

function jsonNumber(text: string, guard: ReadGuard, budget: DigitBudget): unknown {
  const value = Number(text)
  if (INTEGER.test(text)) {
    if (Number.isSafeInteger(value)) return value
    if (Number.isFinite(value) && integerDigits(value) === text) return value
    return text.length - (text[0] === '-' ? 1 : 0) > MAX_INTEGER_DIGITS ? guard.unreadable('json', 'out-of-range') : BigInt(text)
  }
  const match = NUMBER.exec(text)
  if (match === null) return value
  const [, sign = '', whole = '', fraction = '', exponent = '0'] = match
  let digits = (whole + fraction).replace(/^0+/, '')
  if (digits === '') return value // a zero
  let scale = Number(exponent) - fraction.length
  const trailing = /0*$/.exec(digits)![0].length
  digits = digits.slice(0, digits.length - trailing)
  scale += trailing
  if (scale < 0) {
    // a fraction: a double, as JSON.parse reads it; but never Infinity, nor 0 for a non-zero number
    return Number.isFinite(value) && value !== 0 ? value : guard.unreadable('json', 'out-of-range')
  }
  // an integer written with a fraction part or an exponent (`1.5e3`, `9007199254740993e0`, `1e400`):
  // compared without writing its digits out (`1e300` stays the double it is)
  if (Number.isSafeInteger(value) || (Number.isFinite(value) && sameInteger(value, digits, scale))) return value
  const length = digits.length + scale
  if (length > budget.left) return guard.unreadable('json', 'out-of-range')
  budget.left -= length
  return BigInt(`${sign}${digits}${'0'.repeat(scale)}`)
}

/** Whether the integral double `value` is the integer `digits` × 10^`scale` (`digits` without trailing zeros; the sign is Number's own). */
function sameInteger(value: number, digits: string, scale: number): boolean {
  const match = /^-?(\d+)(?:\.(\d+))?(?:e\+(\d+))?$/.exec(String(value))
  if (match === null) return false
  const [, whole = '', fraction = '', exponent = '0'] = match
  let own = (whole + fraction).replace(/^0+/, '')
  let ownScale = Number(exponent) - fraction.length
  const trailing = /0*$/.exec(own)![0].length
  own = own.slice(0, own.length - trailing)
  ownScale += trailing
  return own === digits && ownScale === scale
}

/** The integer JS writes for an integral double (its shortest round-trip text), without an exponent: `1e+21` → `1000000000000000000000`. */
function integerDigits(value: number): string {
  const text = String(value)
  const match = /^(-?)(\d)(?:\.(\d+))?e\+(\d+)$/.exec(text)
  if (!match) return text
  const fraction = match[3] ?? ''
  return `${match[1]}${match[2]}${fraction}${'0'.repeat(Number(match[4]) - fraction.length)}`
}

function identity(text: string): string {
  return text
}

function arrayOf(element: Parser): Parser {
  const parseTextArray = (pgTypes.getTypeParser as (oid: number) => unknown)(OID.TEXT_ARRAY) as (text: string) => Nested
  const map = (value: Nested): Nested => (Array.isArray(value) ? value.map(map) : value === null ? null : element(value as string))
  return (text) => map(parseTextArray(text))
}
