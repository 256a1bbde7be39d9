import { DatabaseError } from '../errors/database-error'
import {
  checkBoolean,
  checkFraction,
  checkInteger,
  checkString,
  configError,
  definedOptions,
  parseEnvInteger,
  rejectUnknownKeys,
  requireObject,
} from './validate'

/**
 * Pool sizing and timings. Every field is optional; see {@link DEFAULT_POOL_OPTIONS} for defaults.
 *
 * ```ts
 * const config = new PoolConfig({ max: 20, acquireTimeoutMs: 5_000, name: 'ledger' })
 * ```
 */
export interface PoolOptions {
  /**
   * Connections kept open per lane, as `max` is (warmed up at start and after losses), each lane
   * capped at its own size: SQLite keeps `min` writers (at most 1) and `min` readers (at most
   * `readers`), so `min: 1` keeps 2 open; a Postgres pool with replicas keeps `min` on each. Default is `1`.
   */
  readonly min?: number
  /** Most connections open at once (per lane). Default is `10`. */
  readonly max?: number
  /** How long a caller waits for a connection before ACQUIRE_TIMEOUT. Default is `30000`. */
  readonly acquireTimeoutMs?: number
  /** How long one connect attempt may take. Default is `10000`. */
  readonly createTimeoutMs?: number
  /**
   * An idle connection beyond `min` is closed after this long, checked at least once a second (so it
   * goes within a second of its deadline); `0` never closes idle connections (as pg-pool's
   * `idleTimeoutMillis: 0` and HikariCP's `idleTimeout=0`). Keepalive pings do not count as use.
   * Default is `600000`.
   */
  readonly idleTimeoutMs?: number
  /**
   * A connection is retired after this long (minus jitter); `0` disables. An idle connection is
   * retired when it expires, without being borrowed (one timer per lane, armed for the earliest
   * expiry); a leased one once it is back and idle, within `min(1 s, maxLifetimeMs / 10)`. The pool
   * opens a replacement only to stay at `min` or for a caller who is waiting. Default is `1800000`.
   */
  readonly maxLifetimeMs?: number
  /** Fraction of `maxLifetimeMs` subtracted at random per connection, in [0, 1). Default is `0.1`. */
  readonly maxLifetimeJitter?: number
  /** Ping on borrow only when the connection sat idle longer than this. Default is `5000`. */
  readonly validateAfterIdleMs?: number
  /** Ping idle connections this often; `0` disables. Default is `60000`. */
  readonly keepaliveIntervalMs?: number
  /**
   * A lease held longer than this emits `leak` with the acquirer's stack; `0` disables. Enabling it
   * captures a stack trace per acquire (about 3 µs). Default is `0`, as in HikariCP.
   */
  readonly leakDetectionThresholdMs?: number
  /** Callers allowed to wait for a connection before POOL_EXHAUSTED. Default is `10000`. */
  readonly maxWaitingClients?: number
  /**
   * pg-pool's option of the same name. `true`: an idle pool holds nothing that keeps Node's event
   * loop alive, so a script whose work is done exits without `close()`: the sockets of idle
   * connections are unref'd (a connection's native object must offer `ref()`/`unref()`, as the
   * Postgres connection does; SQLite has no sockets) and ref'd again while leased. `false`: idle
   * sockets keep the process alive, as a `pg.Pool` does. Either way the pool's own timers never keep
   * it alive, and `close()` remains the normal end. Default is `false`.
   */
  readonly allowExitOnIdle?: boolean
  /**
   * A statement that takes longer than this (in ms, from the call to its result, waiting for a
   * connection included) is logged at `warn` on the pool's `logger`, with its text, duration and the
   * pool's counters; `0` logs none. Needs the `logger` pool option. Default is `0` (off).
   */
  readonly slowQueryMs?: number
  /**
   * Whether slow-statement log lines carry the statement's parameter values. They may hold personal
   * data or secrets, so they are left out unless this is `true`. Default is `false`. When on, the
   * secrets the pool knows (its password, URL passwords) are `[REDACTED]` in them as in the text.
   */
  readonly logParameters?: boolean
  /**
   * Whether spans (`db.query.text`) and slow-statement log lines (`text`) carry the statement text as
   * written. By default (`false`) they carry it sanitised, as OpenTelemetry's database conventions
   * ask (`db.query.text` is not collected unsanitised by default): every literal (strings, `E'...'`,
   * `B'...'`, `X'...'`, `N'...'`, `U&'...'`, dollar-quoted bodies, numbers) becomes `?`, parameters
   * (`$1`, `?`, `:name`), names and comments stay. Turn on only where literal values may be recorded.
   * Default is `false`.
   */
  readonly rawQueryText?: boolean
  /** The pool's name in metrics, errors and health reports. Default is `'default'`. */
  readonly name?: string
}

/** A {@link PoolOptions} with every field present. */
export type ResolvedPoolOptions = { readonly [K in keyof PoolOptions]-?: NonNullable<PoolOptions[K]> }

/** The defaults applied to every pool (min 1, max 10, acquire 30 s, idle 600 s, lifetime 1800 s). */
export const DEFAULT_POOL_OPTIONS: ResolvedPoolOptions = Object.freeze({
  min: 1,
  max: 10,
  acquireTimeoutMs: 30_000,
  createTimeoutMs: 10_000,
  idleTimeoutMs: 600_000,
  maxLifetimeMs: 1_800_000,
  maxLifetimeJitter: 0.1,
  validateAfterIdleMs: 5_000,
  keepaliveIntervalMs: 60_000,
  leakDetectionThresholdMs: 0,
  maxWaitingClients: 10_000,
  allowExitOnIdle: false,
  slowQueryMs: 0,
  logParameters: false,
  rawQueryText: false,
  name: 'default',
})

const KEYS = Object.keys(DEFAULT_POOL_OPTIONS) as (keyof PoolOptions)[]
const DURATION_KEYS = [
  'acquireTimeoutMs',
  'createTimeoutMs',
  'idleTimeoutMs',
  'maxLifetimeMs',
  'validateAfterIdleMs',
  'keepaliveIntervalMs',
  'leakDetectionThresholdMs',
  'slowQueryMs',
] as const
/** Durations that must be at least 1 ms (a 0 deadline would fail every acquire / connect). */
const POSITIVE_DURATION_KEYS: ReadonlySet<string> = new Set(['acquireTimeoutMs', 'createTimeoutMs'])
const ENV_NAMES: Record<keyof PoolOptions, string> = {
  min: 'MIN',
  max: 'MAX',
  acquireTimeoutMs: 'ACQUIRE_TIMEOUT_MS',
  createTimeoutMs: 'CREATE_TIMEOUT_MS',
  idleTimeoutMs: 'IDLE_TIMEOUT_MS',
  maxLifetimeMs: 'MAX_LIFETIME_MS',
  maxLifetimeJitter: 'MAX_LIFETIME_JITTER',
  validateAfterIdleMs: 'VALIDATE_AFTER_IDLE_MS',
  keepaliveIntervalMs: 'KEEPALIVE_INTERVAL_MS',
  leakDetectionThresholdMs: 'LEAK_DETECTION_THRESHOLD_MS',
  maxWaitingClients: 'MAX_WAITING_CLIENTS',
  allowExitOnIdle: 'ALLOW_EXIT_ON_IDLE',
  slowQueryMs: 'SLOW_QUERY_MS',
  logParameters: 'LOG_PARAMETERS',
  rawQueryText: 'RAW_QUERY_TEXT',
  name: 'NAME',
}

const ENV_SUFFIXES: readonly string[] = Object.values(ENV_NAMES)

/** CONFIGURATION naming the first variable under `prefix` that names no setting (see `PoolConfig.fromEnv`). */
function rejectUnknownEnv(env: NodeJS.ProcessEnv, prefix: string): void {
  for (const name in env) {
    if (name.startsWith(prefix) && !ENV_SUFFIXES.includes(name.slice(prefix.length)))
      throw configError(name, '[set]', `is no pool setting; known variables are ${ENV_SUFFIXES.map((s) => prefix + s).join(', ')}`)
  }
}

/**
 * Validated, frozen pool settings. Construction validates eagerly and completely: every invalid
 * value throws a CONFIGURATION {@link DatabaseError} naming the option and the value.
 */
export class PoolConfig implements ResolvedPoolOptions {
  readonly min!: number
  readonly max!: number
  readonly acquireTimeoutMs!: number
  readonly createTimeoutMs!: number
  readonly idleTimeoutMs!: number
  readonly maxLifetimeMs!: number
  readonly maxLifetimeJitter!: number
  readonly validateAfterIdleMs!: number
  readonly keepaliveIntervalMs!: number
  readonly leakDetectionThresholdMs!: number
  readonly maxWaitingClients!: number
  readonly allowExitOnIdle!: boolean
  readonly slowQueryMs!: number
  readonly logParameters!: boolean
  readonly rawQueryText!: boolean
  readonly name!: string

  constructor(options: PoolOptions = {}) {
    Object.assign(this, resolvePoolOptions(options))
    Object.freeze(this)
  }

  /** Accepts a PoolConfig (returned as is) or plain options (validated). */
  static from(input: PoolConfig | PoolOptions | undefined): PoolConfig {
    return input instanceof PoolConfig ? input : new PoolConfig(input)
  }

  /** Starts a fluent builder. */
  static builder(): PoolConfigBuilder {
    return new PoolConfigBuilder()
  }

  /**
   * Reads `${prefix}MIN`, `${prefix}MAX`, `${prefix}ACQUIRE_TIMEOUT_MS`, ... (prefix defaults to
   * `DBPOOL_POOL_`), over `base`. A malformed variable, or a well-formed one out of range
   * (`${prefix}MAX=-3`), throws CONFIGURATION naming the variable (`detail.option`). With the default
   * prefix, which is dbpool's alone, a variable under it that names no setting (a misspelt
   * `DBPOOL_POOL_MAXX`, set to anything) is CONFIGURATION naming it, as a misspelt option key is; it was
   * ignored. Another prefix may share its namespace with other variables, so only its known names are read.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, prefix = 'DBPOOL_POOL_', base: PoolOptions = {}): PoolConfig {
    if (prefix === 'DBPOOL_POOL_') rejectUnknownEnv(env, prefix)
    const options: Record<string, unknown> = { ...base }
    const variables = new Map<string, { name: string; raw: string }>()
    for (const key of KEYS) {
      const name = `${prefix}${ENV_NAMES[key]}`
      const raw = env[name]
      if (raw === undefined || raw === '') continue
      variables.set(`pool.${key}`, { name, raw })
      if (key === 'name') options[key] = raw
      else if (key === 'maxLifetimeJitter') options[key] = parseEnvNumber(name, raw)
      else if (key === 'allowExitOnIdle' || key === 'logParameters' || key === 'rawQueryText') options[key] = parseEnvBoolean(name, raw)
      else options[key] = parseEnvInteger(name, raw)
    }
    try {
      return new PoolConfig(options as PoolOptions)
    } catch (err) {
      // a well-formed value out of range (DBPOOL_APP_MAX=-3): name the variable that set it, not pool.max
      const detail = DatabaseError.is(err, 'CONFIGURATION') ? (err.detail as { option?: unknown; rule?: unknown } | undefined) : undefined
      const variable = typeof detail?.option === 'string' ? variables.get(detail.option) : undefined
      if (variable === undefined || typeof detail?.rule !== 'string') throw err
      const named = configError(variable.name, variable.raw, detail.rule)
      throw new DatabaseError('CONFIGURATION', named.message, { detail: named.detail, cause: err })
    }
  }

  /** Re-runs validation (useful after a spread) and returns this config. */
  validate(): this {
    resolvePoolOptions(this.toJSON())
    return this
  }

  /** A copy with some options changed, validated again; an option given as `undefined` keeps its current value. */
  with(changes: PoolOptions): PoolConfig {
    return new PoolConfig({ ...this.toJSON(), ...definedOptions(requireObject('pool', changes)) })
  }

  /** The options as a plain object. */
  toJSON(): ResolvedPoolOptions {
    const out: Record<string, unknown> = {}
    for (const key of KEYS) out[key] = this[key]
    return out as ResolvedPoolOptions
  }
}

/** Fluent construction of a {@link PoolConfig}; `build()` validates. */
export class PoolConfigBuilder {
  readonly #options: Record<string, unknown> = {}

  /** Sets `min`. */ min(value: number): this {
    return this.#set('min', value)
  }
  /** Sets `max`. */ max(value: number): this {
    return this.#set('max', value)
  }
  /** Sets `acquireTimeoutMs`. */ acquireTimeoutMs(value: number): this {
    return this.#set('acquireTimeoutMs', value)
  }
  /** Sets `createTimeoutMs`. */ createTimeoutMs(value: number): this {
    return this.#set('createTimeoutMs', value)
  }
  /** Sets `idleTimeoutMs`. */ idleTimeoutMs(value: number): this {
    return this.#set('idleTimeoutMs', value)
  }
  /** Sets `maxLifetimeMs`. */ maxLifetimeMs(value: number): this {
    return this.#set('maxLifetimeMs', value)
  }
  /** Sets `maxLifetimeJitter`. */ maxLifetimeJitter(value: number): this {
    return this.#set('maxLifetimeJitter', value)
  }
  /** Sets `validateAfterIdleMs`. */ validateAfterIdleMs(value: number): this {
    return this.#set('validateAfterIdleMs', value)
  }
  /** Sets `keepaliveIntervalMs`. */ keepaliveIntervalMs(value: number): this {
    return this.#set('keepaliveIntervalMs', value)
  }
  /** Sets `leakDetectionThresholdMs`. */ leakDetectionThresholdMs(value: number): this {
    return this.#set('leakDetectionThresholdMs', value)
  }
  /** Sets `maxWaitingClients`. */ maxWaitingClients(value: number): this {
    return this.#set('maxWaitingClients', value)
  }
  /** Sets `allowExitOnIdle`. */ allowExitOnIdle(value: boolean): this {
    return this.#set('allowExitOnIdle', value)
  }
  /** Sets `slowQueryMs`. */ slowQueryMs(value: number): this {
    return this.#set('slowQueryMs', value)
  }
  /** Sets `logParameters`. */ logParameters(value: boolean): this {
    return this.#set('logParameters', value)
  }
  /** Sets `rawQueryText`. */ rawQueryText(value: boolean): this {
    return this.#set('rawQueryText', value)
  }
  /** Sets `name`. */ name(value: string): this {
    return this.#set('name', value)
  }

  /** Validates and returns the config. */
  build(): PoolConfig {
    return new PoolConfig(this.#options as PoolOptions)
  }

  #set(key: keyof PoolOptions, value: unknown): this {
    this.#options[key] = value
    return this
  }
}

function parseEnvNumber(name: string, raw: string): number {
  const value = Number(raw.trim())
  if (raw.trim() === '' || !Number.isFinite(value)) throw configError(name, raw, 'must be a number')
  return value
}

function parseEnvBoolean(name: string, raw: string): boolean {
  const value = raw.trim().toLowerCase()
  if (value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  throw configError(name, raw, 'must be true, false, 1 or 0')
}

/** Validates `input` completely and returns it with defaults applied. */
export function resolvePoolOptions(input: PoolOptions): ResolvedPoolOptions {
  const raw = requireObject('pool', input)
  rejectUnknownKeys('pool', raw, KEYS)
  const merged = { ...DEFAULT_POOL_OPTIONS } as Record<string, unknown>
  for (const key of KEYS) if (raw[key] !== undefined) merged[key] = raw[key]
  const max = checkInteger('pool.max', merged.max, 1, 10_000)
  const min = checkInteger('pool.min', merged.min, 0, 10_000)
  if (min > max) throw configError('pool.min', min, `must not exceed pool.max (${max})`)
  // the two deadlines that cannot be 0 say so in every refusal (NaN, a string, 0, too large alike)
  for (const key of DURATION_KEYS) checkInteger(`pool.${key}`, merged[key], POSITIVE_DURATION_KEYS.has(key) ? 1 : 0, 2_147_483_647)
  checkFraction('pool.maxLifetimeJitter', merged.maxLifetimeJitter, 0, 1)
  checkInteger('pool.maxWaitingClients', merged.maxWaitingClients, 0)
  checkBoolean('pool.allowExitOnIdle', merged.allowExitOnIdle)
  checkBoolean('pool.logParameters', merged.logParameters)
  checkBoolean('pool.rawQueryText', merged.rawQueryText)
  checkString('pool.name', merged.name)
  return Object.freeze(merged) as ResolvedPoolOptions
}
