import { DatabaseError } from '../errors/database-error'
import { redactUserText } from '../util/redact'

/**
 * Builds the CONFIGURATION error every validator throws: it names the option and the value. The value
 * of a secret option (see {@link isSecretName}: `password`, `token`, `passphrase`, `key`...) is never
 * shown, whatever its type: only its kind (`[hidden Buffer]`, `[hidden number]`); inside an object
 * shown as JSON, a property with a secret name is `[hidden]`.
 */
export function configError(option: string, value: unknown, rule: string): DatabaseError {
  // the option's own name (`health handler.token`: token); not a name: a caller's description (`url?password`)
  const name = option.split(/[.\s/]/).at(-1) ?? option
  const secret = /^[\w-]+$/.test(name) && isSecretName(name)
  return new DatabaseError('CONFIGURATION', `invalid ${option} ${secret ? hiddenKind(value) : show(value)}: ${rule}`, {
    detail: { option, rule },
  })
}

/**
 * @internal Whether an option or property named `name` may hold a secret: a password (`password`,
 * a misspelt `pasword`, `pwd`, `pw`), a `passphrase`, a `secret`, a `token`, `credentials`, a private
 * or API `key`.
 */
export function isSecretName(name: string): boolean {
  return /pass|pas+w|pwd|^pw$|secret|token|cred|^key$|privatekey|private_key|apikey|api_key/i.test(name)
}

/** Markers a caller already shows instead of a secret. */
const MARKERS: ReadonlySet<unknown> = new Set(['[set]', '[hidden]', '[function result]'])

/** A secret's kind, never its value (a marker the caller chose, such as `'[set]'`, as is). */
function hiddenKind(value: unknown): string {
  if (MARKERS.has(value)) return show(value)
  if (value === null || value === undefined) return String(value)
  const kind =
    typeof value === 'object'
      ? (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name
      : typeof value
  return `[hidden ${kind ?? 'object'}]`
}

/**
 * A value as an error shows it. Every string in it (the value itself, a property, an array entry, what
 * an object's `toJSON` gives: a WHATWG `URL` is its `href`) goes through `redactUserText`: a URL's
 * password and query values, a `password=` value, a URL with a mistyped scheme cut at its first `:`.
 */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(redactUserText(value))
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value)
  if (typeof value === 'function') return '[function]'
  try {
    const text = JSON.stringify(value, (key, v: unknown) =>
      key !== '' && isSecretName(key) ? '[hidden]' : typeof v === 'string' ? redactUserText(v) : v,
    )
    return text ?? (typeof value === 'object' ? Object.prototype.toString.call(value) : String(value))
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/**
 * Throws when `input` has a key not in `known`; `scope` prefixes the option name. Inherited enumerable
 * keys count (an options object made with `Object.create(defaults)`): a known one is read like an own
 * one, so an unknown one is refused like an own one. The error shows the value unless it may be a
 * secret (a misspelt `pasword`, a `url`, an object: hidden).
 */
export function rejectUnknownKeys(scope: string, input: object, known: readonly string[]): void {
  for (const key in input) {
    if (!known.includes(key)) {
      throw configError(
        `${scope}.${key}`,
        shownUnknown(key, (input as Record<string, unknown>)[key]),
        `unknown option; known options are ${known.join(', ')}`,
      )
    }
  }
}

/**
 * Throws CONFIGURATION naming `<call> argument` when `extra` (the rest parameter `...extra: []` of a
 * call that takes no more arguments) is not empty: an argument JavaScript would silently ignore.
 */
export function rejectExtraArguments(call: string, extra: readonly unknown[]): void {
  if (extra.length > 0) throw configError(`${call} argument`, extra[0], `${call}() takes no such argument`)
}

/**
 * A copy of the options `input` without the keys whose value is `undefined`: an option given as
 * `undefined` (`{ sslMode: process.env.PGSSLMODE }` with the variable unset) means "not given", so a
 * merge (`with()`, overrides over a URL) keeps what is below it instead of erasing it to the default.
 * Inherited enumerable keys are read as own ones, as {@link rejectUnknownKeys} reads them.
 */
export function definedOptions(input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key in input) if (input[key] !== undefined) out[key] = input[key]
  return out
}

/**
 * Throws unless `input` is an object of options (or undefined, which reads as `{}`): not null, an
 * array, or a built-in whose entries are not its keys (a `Map`, `Set`, `Date`, boxed primitive...:
 * anything `Object.prototype.toString` does not call `[object Object]`), whose options would be
 * silently ignored.
 */
export function requireObject(scope: string, input: unknown): Record<string, unknown> {
  if (input === undefined) return {}
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw configError(scope, input, 'must be an object')
  }
  if (Object.prototype.toString.call(input) !== '[object Object]')
    throw configError(scope, input, `must be a plain object of options, not a ${input.constructor?.name ?? 'built-in object'}`)
  return input as Record<string, unknown>
}

/**
 * Throws CONFIGURATION naming `option` unless `value` is a pool (a `DatabasePool`: told by its
 * methods, so a pool of another copy of `@dbpool/core` passes).
 */
export function checkPool(option: string, value: unknown): void {
  const pool = value as Record<string, unknown> | null | undefined
  if (
    pool === null ||
    typeof pool !== 'object' ||
    typeof pool.ping !== 'function' ||
    typeof pool.stats !== 'function' ||
    typeof pool.backendChecks !== 'function' ||
    typeof pool.close !== 'function' ||
    typeof pool.name !== 'string'
  )
    throw configError(option, value, 'must be a DatabasePool (createPostgresPool, createSqlitePool, PoolFactory.create)')
}

/** Validates an integer within bounds (inclusive). */
export function checkInteger(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`
    throw configError(option, value, `must be an integer ${range}`)
  }
  return value
}

/** Validates a finite number within `[min, maxExclusive)`. */
export function checkFraction(option: string, value: unknown, min: number, maxExclusive: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value >= maxExclusive) {
    throw configError(option, value, `must be a number >= ${min} and < ${maxExclusive}`)
  }
  return value
}

/** Validates one of a fixed set of strings. */
export function checkEnum<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw configError(option, value, `must be one of ${allowed.join(', ')}`)
  }
  return value as T
}

/** Validates a non-empty string. */
export function checkString(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw configError(option, value, 'must be a non-empty string')
  return value
}

/**
 * Validates a non-empty string sent to the server at connection start (a startup parameter: user,
 * database, `options`, `application_name`; a host): no NUL character (U+0000), which ends a value in
 * the startup message, so the rest would be read as further settings (`app\u0000search_path\u0000evil`
 * sets search_path), as `sql.id`, statement texts and `listen()` channels refuse it.
 */
export function checkStartupString(option: string, value: unknown): string {
  const text = checkString(option, value)
  const at = text.indexOf('\u0000')
  if (at >= 0)
    throw configError(
      option,
      value,
      `contains a NUL character (U+0000) at position ${at + 1}: the startup message ends a value there and would read the rest as further settings`,
    )
  return text
}

/** Validates a boolean. */
export function checkBoolean(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw configError(option, value, 'must be true or false')
  return value
}

/** Parses an integer from an environment variable, naming the variable on failure. */
export function parseEnvInteger(name: string, raw: string): number {
  const trimmed = raw.trim()
  if (!/^-?\d+$/.test(trimmed)) throw configError(name, raw, 'must be an integer')
  return Number(trimmed)
}

/**
 * Parses an integer as libpq reads a connection option (`pqParseIntParam`: `strtol` base 10, blanks
 * before and after, a `+` or `-` sign, a 32-bit `int`), naming `name` on failure; libpq refuses the
 * same values ("invalid integer value ... for connection option").
 */
export function parseLibpqInteger(name: string, raw: string): number {
  const trimmed = raw.trim()
  const value = /^[+-]?\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN
  if (!Number.isSafeInteger(value) || value > 2_147_483_647 || value < -2_147_483_648)
    throw configError(name, raw, 'must be an integer (a 32-bit int, as libpq reads it)')
  return value
}

/** The largest delay a Node.js timer takes (2^31 - 1 ms, about 24.8 days); a larger one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647

/**
 * The value of an unknown option as its error shows it: hidden when it may be a secret (a misspelt
 * `pasword`, a `url` with a password in it, an object that may hold either), else as given.
 */
function shownUnknown(key: string, value: unknown): unknown {
  if (isSecretName(key) || /^pw|key|url|uri|dsn/i.test(key)) return '[hidden]'
  if (typeof value === 'string' && value.includes('://')) return '[hidden]'
  if (typeof value === 'object' && value !== null) return '[object]'
  return value
}
