import { parse as parseLossless } from 'lossless-json'
import { types as pgTypes, type CustomTypesConfig } from 'pg'

/**
 * How `bigint` / `int8` columns (and `count(*)`, `sum(int)`) come back: `'bigint'` (default) always a
 * JS bigint; `'string'` pg's decimal text; `'number'` a number within ±(2^53−1) and a bigint beyond
 * (never a rounded number).
 */
export type Int8Mode = 'bigint' | 'string' | 'number'

/** The `int8` modes. */
export const INT8_MODES: readonly Int8Mode[] = ['bigint', 'string', 'number']

const OID = {
  INT8: 20,
  INT8_ARRAY: 1016,
  DATE: 1082,
  DATE_ARRAY: 1182,
  TIMESTAMP: 1114,
  TIMESTAMP_ARRAY: 1115,
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
 * - `timestamptz`: a `Date` (an instant). pg's default.
 * - `timestamp` (without time zone) and `date`: the server's text, e.g. `'2024-03-01 12:00:00'` and
 *   `'2024-03-01'`; pg would build a Date in the process's local zone, a silent shift.
 * - `json` / `jsonb`: parsed, as JSON.parse does, except that an integer beyond ±(2^53−1) that JS
 *   would not write back as written (`{"id": 12345678901234567890}`, which JSON.parse rounds to
 *   `12345678901234567000`) comes back as the exact `bigint`, the `int8: 'number'` rule (see
 *   {@link parseJson}).
 * - `bytea`: Buffer. `int2`/`int4`/`float4`/`float8`: number. pg's defaults.
 * - Arrays of these follow their element type.
 */
export function createTypeParsers(int8: Int8Mode): CustomTypesConfig {
  const overrides = new Map<number, Parser>()
  const int8Parser = int8Parse(int8)
  if (int8Parser) {
    overrides.set(OID.INT8, int8Parser)
    overrides.set(OID.INT8_ARRAY, arrayOf(int8Parser))
  }
  overrides.set(OID.NUMERIC_ARRAY, arrayOf(identity))
  overrides.set(OID.DATE, identity)
  overrides.set(OID.DATE_ARRAY, arrayOf(identity))
  overrides.set(OID.TIMESTAMP, identity)
  overrides.set(OID.TIMESTAMP_ARRAY, arrayOf(identity))
  for (const oid of [OID.JSON, OID.JSONB]) overrides.set(oid, parseJson)
  for (const oid of [OID.JSON_ARRAY, OID.JSONB_ARRAY]) overrides.set(oid, arrayOf(parseJson))
  const getTypeParser = ((oid: number, format?: 'text' | 'binary') => {
    if (format !== 'binary') {
      const parser = overrides.get(oid)
      if (parser) return parser
    }
    return format === undefined ? pgTypes.getTypeParser(oid) : pgTypes.getTypeParser(oid, format)
  }) as CustomTypesConfig['getTypeParser']
  return { getTypeParser }
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

/** A digit run long enough to be an integer beyond ±(2^53−1) (16 digits: 2^53 is 9007199254740992). */
const LONG_DIGITS = /\d{16}/
const INTEGER = /^-?\d+$/

/**
 * A `json` / `jsonb` value: JSON.parse, except for an integer literal that JS would not write back as
 * the same integer: that one becomes the exact `bigint` (JSON.parse reads `12345678901234567890` as
 * `12345678901234567000`, `9007199254740993` as `9007199254740992`: an id or an amount changed
 * silently, and written back changed). An integer that JS prints back as written stays a number:
 * `1152921504606847000`, the text `JSON.stringify(2 ** 60)` writes, reads back as the double `2 ** 60`,
 * as with JSON.parse, and `1000000000000000000000` (jsonb's spelling of `1e21`) as `1e21`. Numbers
 * with a fraction or an exponent stay doubles, as in JSON.parse. Only a text with a run of 16 digits
 * (an integer beyond ±(2^53−1) has at least 16) goes through lossless-json, a JS parser that hands
 * over each number's text; every other value takes JSON.parse's fast path. A text lossless-json
 * refuses where JSON.parse does not (duplicate keys in `json`) falls back to JSON.parse (the last key
 * wins), so a read never fails here.
 */
export function parseJson(text: string): unknown {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text)
  try {
    return parseLossless(text, null, jsonNumber)
  } catch {
    return JSON.parse(text)
  }
}

function jsonNumber(text: string): number | bigint {
  const value = Number(text)
  if (!INTEGER.test(text) || Number.isSafeInteger(value)) return value
  return Number.isFinite(value) && integerDigits(value) === text ? value : BigInt(text)
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
