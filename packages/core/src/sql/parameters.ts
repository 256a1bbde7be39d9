import { DatabaseError, type ErrorBackend } from '../errors/database-error'
import { isErrorLike } from '../util/error-like'

/**
 * One JSON parameter, made by `sql.json(value)`: the value is sent as JSON text on every backend
 * (Postgres `json`/`jsonb` take it; SQLite stores the text). Arrays included: this is the portable way
 * to bind a JS array as JSON (a bare array is a Postgres array on Postgres and refused on SQLite).
 */
export class SqlJson {
  /** @internal */
  constructor(
    /** The value to serialize, as given. */
    readonly value: unknown,
  ) {}
}

/** True for values made by `sql.json()`. */
export function isSqlJson(value: unknown): value is SqlJson {
  return value instanceof SqlJson
}

/**
 * A short, secret-free name for a value's type, for error messages: `'string'`, `'number NaN'`,
 * `'Date (invalid)'`, `'Array'`, `'Map'`, `'object'`, `'class Foo'`.
 */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  const type = typeof value
  if (type === 'number') {
    const n = value as number
    return Number.isNaN(n) ? 'number NaN' : Number.isFinite(n) ? 'number' : `number ${n > 0 ? 'Infinity' : '-Infinity'}`
  }
  if (type !== 'object') return type
  if (Array.isArray(value)) return 'Array'
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Date (invalid)' : 'Date'
  if (isJsonObject(value as object)) return 'object'
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: string } }
  const name = proto.constructor?.name
  return name ? name : 'object with a custom prototype'
}

/**
 * The error for a value a backend cannot take, raised before anything is sent: code
 * `INVALID_PARAMETER` (not retryable), `detail: { position, type }`. `position` is 1-based, as `$1`.
 * The message names the position and the type, never the value (it may be a secret).
 */
export function invalidParameter(position: number, value: unknown, reason: string, backend: ErrorBackend): DatabaseError {
  const type = describeValue(value)
  return new DatabaseError('INVALID_PARAMETER', `parameter ${position} (${type}) ${reason}`, {
    backend,
    retryable: false,
    detail: { position, type },
  })
}

/**
 * The error for a hole in a params array (`[1, , 'x']`, a stray comma) or in an array parameter
 * (`[1, , 3]`): INVALID_PARAMETER naming the 1-based parameter position (and the element's index
 * `path`, `[1]`, for a hole inside an array parameter), `detail: { position, type: 'hole' }`. A hole
 * reads as `undefined` and would be bound as NULL without a word; `sql.join()` refuses the same hole.
 * Both backends, every path (query, stream, COPY rows, Kysely parameters). Write `null` for a NULL.
 */
export function holeParameter(position: number, backend: ErrorBackend, path?: string): DatabaseError {
  const where = path === undefined ? `is missing: the params array has a hole at index ${position - 1}` : `has a hole at ${path}`
  return new DatabaseError(
    'INVALID_PARAMETER',
    `parameter ${position} ${where} (a sparse array, e.g. a stray comma), most likely a bug: write null for a NULL`,
    { backend, retryable: false, detail: { position, type: 'hole', ...(path === undefined ? {} : { path }) } },
  )
}

/**
 * True when a plain object (a JSON object): its prototype is `Object.prototype` or `null`, or another
 * realm's `Object.prototype` (an object made in a `vm` context: it used to be refused as a class
 * instance on both backends).
 */
export function isPlainObject(value: object): boolean {
  return isJsonObject(value)
}

/**
 * JSON text for one parameter (`sql.json(v)`, and plain objects). Exact, or refused:
 * - a `bigint` anywhere inside becomes a JSON integer of its exact digits (`9007199254740993n` →
 *   `9007199254740993`, where JSON.stringify would throw): Postgres json/jsonb keep it exactly and
 *   dbpool reads it back as the same bigint when JS would round it (as a number otherwise), so a
 *   value read and written back stays a JSON number (it used to become a JSON string of its digits);
 * - what JSON.stringify would change silently is refused with `INVALID_PARAMETER` (position 1-based),
 *   at any depth and at the top level alike: `NaN`/`±Infinity` (it would write `null`), functions and
 *   symbols (dropped or `null`), `undefined` anywhere (an array element becomes `null`, a property
 *   vanishes), invalid Dates (`null`), Buffers, typed arrays and `DataView`s (`{"type":"Buffer",...}`
 *   or an object of indices), objects whose contents it drops (`Map`, `Set`, `RegExp`, `Error`,
 *   `ArrayBuffer`, ...: `{}`), class instances without a `toJSON()` (a plain object of their own
 *   properties, the class lost; boxed primitives are written as their primitive, and a boxed
 *   `new Number(NaN)` / `±Infinity` is refused like an unboxed one), and cycles.
 * Plain objects (prototype `Object.prototype` or `null`) and arrays are written as JSON.stringify
 * does; `toJSON()` is honoured (a valid Date becomes its ISO text; a class that defines one chose its
 * JSON form).
 */
export function jsonParameterText(value: unknown, position: number, backend: ErrorBackend): string {
  let problem: string | undefined
  let top = true
  let bigints = 0
  const replacer = function (this: unknown, key: string, v: unknown): unknown {
    const isTop = top
    top = false
    switch (typeof v) {
      case 'bigint':
        // a marked string now, its bare digits below (JSON.stringify cannot write a raw number text)
        bigints++
        return `${BIGINT_MARK}${v}`
      case 'number':
        if (!Number.isFinite(v)) problem ??= `holds ${describeValue(v)} at ${where(key)}, which JSON cannot represent`
        return v
      case 'function':
      case 'symbol':
        problem ??= `holds a ${typeof v} at ${where(key)}, which JSON cannot represent`
        return v
      case 'undefined':
        // an array element would become null, a property vanish, the whole value be no JSON at all
        if (isTop || Array.isArray(this)) problem ??= `holds undefined at ${where(key)}, which JSON cannot represent`
        else problem ??= `holds undefined at ${where(key)}, a property JSON.stringify would drop: leave it out or use null`
        return v
      case 'object':
        if (v === null) {
          // toJSON() already ran: an invalid Date arrives as null, so look at the value the holder has
          if (isInvalidDate((this as Record<string, unknown>)[key]))
            problem ??= `holds an invalid Date at ${where(key)}, which JSON.stringify would write as null`
          return v
        }
        if (Array.isArray(v)) return v
        // Buffer.prototype.toJSON already ran: { type: 'Buffer', data: [...] } in place of the bytes
        if ((v as { type?: unknown }).type === 'Buffer' && ArrayBuffer.isView((this as Record<string, unknown>)[key])) {
          problem ??= `holds a Buffer at ${where(key)}, which JSON.stringify would write as {"type":"Buffer","data":[...]}: ${BYTES_HINT}`
          return v
        }
        if (!isJsonObject(v)) {
          // a boxed primitive: JSON.stringify writes its primitive (a boxed NaN as null), so check that
          if (isBoxedPrimitive(v)) {
            const primitive = unbox(v)
            if (typeof primitive === 'number' && !Number.isFinite(primitive))
              problem ??= `holds a boxed ${describeValue(primitive)} (new Number(${primitive})) at ${where(key)}, which JSON cannot represent`
            return primitive
          }
          const lost = contentsLostInJson(v)
          if (lost !== undefined)
            problem ??= `holds a ${lost} at ${where(key)}, whose contents JSON.stringify would drop: convert it first (Object.fromEntries(map), [...set], ${BYTES_HINT}, String(regexp))`
          else if (typeof (v as { toJSON?: unknown }).toJSON !== 'function')
            problem ??= `holds a class instance (${describeValue(v)}) at ${where(key)}, which JSON.stringify would write as a plain object of its own properties: pass a plain object (or give the class a toJSON())`
        }
        return v
      default:
        return v
    }
  }
  let text: string | undefined
  try {
    text = JSON.stringify(value, replacer)
  } catch (err) {
    // a cycle, or a throwing toJSON()
    throw withCause(invalidParameter(position, value, `cannot be serialized as JSON: ${errorMessage(err)}`, backend), err)
  }
  if (problem !== undefined || text === undefined) {
    throw invalidParameter(position, value, problem ?? 'has no JSON representation', backend)
  }
  return bigints === 0 ? text : bareBigints(text, bigints, position, value, backend)
}

/** How to put bytes in JSON. */
const BYTES_HINT = "bytes as text (buf.toString('base64')) or numbers (Array.from(bytes))"

/** Marks a bigint's digits in the first pass (U+0000 is written `\u0000` by JSON.stringify). */
const BIGINT_MARK = '\u0000dbpool:bigint\u0000'
const MARKED_BIGINT = /"\\u0000dbpool:bigint\\u0000(-?\d+)"/g

/** `text` with each marked bigint written as its bare digits; refuses a value whose own strings hold the mark. */
function bareBigints(text: string, bigints: number, position: number, value: unknown, backend: ErrorBackend): string {
  let replaced = 0
  const out = text.replace(MARKED_BIGINT, (_match, digits: string) => {
    replaced++
    return digits
  })
  if (replaced !== bigints || out.includes('\\u0000dbpool:bigint\\u0000'))
    throw invalidParameter(position, value, "holds a string that contains dbpool's internal bigint mark", backend)
  return out
}

/**
 * Built-in objects that keep their data in internal slots: JSON.stringify writes a `Map`, `Set`,
 * `RegExp`, `Error`, `Promise`, `ArrayBuffer` ... as `{}` and a typed array as an object of indices.
 * Subclasses (`class Registry extends Map`) carry the same tag.
 */
const LOSSY_JSON_TAGS: ReadonlySet<string> = new Set([
  'Map',
  'Set',
  'WeakMap',
  'WeakSet',
  'WeakRef',
  'RegExp',
  'Error',
  'Promise',
  'ArrayBuffer',
  'SharedArrayBuffer',
  'Blob',
])

/** The type name when JSON.stringify would silently lose `value`'s contents, else undefined. */
function contentsLostInJson(value: object): string | undefined {
  const tag = Object.prototype.toString.call(value).slice(8, -1)
  if (LOSSY_JSON_TAGS.has(tag) || ArrayBuffer.isView(value)) return describeValue(value)
  return undefined
}

/** A plain object of any realm (a `vm` context's too): its prototype is null, or an `Object.prototype` (whose own prototype is null). */
function isJsonObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as object | null
  return (
    proto === Object.prototype ||
    proto === null ||
    (Object.getPrototypeOf(proto) === null && Object.prototype.hasOwnProperty.call(proto, 'hasOwnProperty'))
  )
}

/** `new String('x')`, `new Number(1)`, `new Boolean(true)`: JSON.stringify writes the primitive. */
function isBoxedPrimitive(value: object): boolean {
  const tag = Object.prototype.toString.call(value)
  return tag === '[object String]' || tag === '[object Number]' || tag === '[object Boolean]'
}

/**
 * The primitive JSON.stringify writes for a boxed one, read as it reads it (ECMA-262 SerializeJSONProperty:
 * ToNumber for a Number, ToString for a String, the internal value for a Boolean), so it is read once, here.
 */
function unbox(value: object): number | string | boolean {
  const tag = Object.prototype.toString.call(value)
  if (tag === '[object Number]') return Number(value)
  if (tag === '[object String]') return String(value)
  return Boolean.prototype.valueOf.call(value)
}

function isInvalidDate(value: unknown): boolean {
  return Object.prototype.toString.call(value) === '[object Date]' && Number.isNaN((value as Date).getTime())
}

function where(key: string): string {
  return key === '' ? 'the top level' : `key ${JSON.stringify(key)}`
}

function errorMessage(err: unknown): string {
  return isErrorLike(err) ? err.message : String(err)
}

function withCause(error: DatabaseError, cause: unknown): DatabaseError {
  return new DatabaseError(error.code, error.message, {
    backend: error.backend,
    retryable: false,
    detail: error.detail,
    cause,
  })
}

/**
 * Refuses statement text that cannot be sent unchanged, before it is sent. Throws `SYNTAX_ERROR` with
 * `detail.position`, the 1-based character offset (as Postgres reports error positions), for:
 * - U+0000: SQLite stops reading at the NUL and silently ignores the rest (a script would run only its
 *   first statements), and the Postgres protocol ends strings at NUL (the server drops the connection
 *   with 08P01);
 * - a lone UTF-16 surrogate (in a literal, an alias, `sql.raw()` text): UTF-8 encoding would replace
 *   it with U+FFFD (one on Postgres, three on SQLite), a silent change of the stored value or of a
 *   result column's name; the same string as a parameter is refused too (see {@link stringProblem}).
 *
 * Cheap on the hot path: `indexOf` and `isWellFormed()` (a one-byte string, the usual SQL text,
 * holds no surrogate and is answered at once); the position is searched only for a refused text.
 */
export function checkStatementText(text: string, backend: ErrorBackend): void {
  const at = text.indexOf('\u0000')
  if (at !== -1)
    throw new DatabaseError(
      'SYNTAX_ERROR',
      `statement text contains a NUL character (U+0000) at position ${at + 1}; it was not sent (the rest of the text would be lost or the connection dropped)`,
      { backend, retryable: false, detail: { position: at + 1 } },
    )
  if ((text as string & { isWellFormed(): boolean }).isWellFormed()) return
  const position = loneSurrogateAt(text) + 1
  throw new DatabaseError(
    'SYNTAX_ERROR',
    `statement text contains a lone UTF-16 surrogate at position ${position}; it was not sent (UTF-8 would silently replace it with U+FFFD)`,
    { backend, retryable: false, detail: { position } },
  )
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** The 0-based index of the first lone surrogate in `text`, or -1. */
export function loneSurrogateAt(text: string): number {
  const match = LONE_SURROGATE.exec(text)
  return match === null ? -1 : match.index
}

/**
 * Whether a string can be sent unchanged: no U+0000 (Postgres text cannot hold it) and no lone
 * surrogate (UTF-8 encoding would replace it with U+FFFD, a silent change). Both backends refuse such
 * strings so the same value is stored or refused everywhere.
 */
export function stringProblem(value: string): string | undefined {
  if (value.indexOf('\u0000') !== -1) return 'contains a NUL character (U+0000), which Postgres text cannot store: send bytes as a Buffer'
  if (!(value as string & { isWellFormed(): boolean }).isWellFormed())
    return 'contains a lone UTF-16 surrogate, which UTF-8 would silently replace with U+FFFD'
  return undefined
}
