import { inspect } from 'node:util'
import { RETRYABLE_CODES, type ErrorCode } from './error-codes'
import { isErrorLike } from '../util/error-like'

/** Which backend raised an error, or `'pool'` for errors of the pool itself. */
export type ErrorBackend = 'postgres' | 'sqlite' | 'pool'

/** Pool counters captured at the moment a pool error was raised. */
export interface PoolStatsSnapshot {
  readonly size: number
  readonly idle: number
  readonly used: number
  readonly pending: number
  readonly max: number
  readonly min: number
  readonly utilization: number
  /**
   * Connections the pool holds outside its lanes (the Postgres LISTEN connection of `listen()`, one
   * per pool while it has subscriptions); present only once the pool has such a holder.
   */
  readonly dedicated?: number
}

/** Everything a {@link DatabaseError} can be built with besides its code and message. */
export interface DatabaseErrorOptions {
  /** The error this one wraps (the native driver error, a tarn timeout, ...). */
  readonly cause?: unknown
  /** Defaults to whether the code is in {@link RETRYABLE_CODES}. */
  readonly retryable?: boolean
  /** Defaults to `'pool'`. */
  readonly backend?: ErrorBackend
  /** The Postgres SQLSTATE, when the server sent one. */
  readonly sqlState?: string
  /** The SQLite extended result code name, e.g. `SQLITE_CONSTRAINT_UNIQUE`. */
  readonly sqliteCode?: string
  /** Pool counters at throw time (pool errors). */
  readonly poolStats?: PoolStatsSnapshot
  /** Structured, secret-free facts (constraint name, option name, file, ...). */
  readonly detail?: Readonly<Record<string, unknown>>
}

/**
 * The one error type dbpool throws. `code` is stable; `cause` keeps the original error.
 *
 * ```ts
 * try { await pool.query(sql`insert into users (email) values (${email})`) }
 * catch (err) { if (DatabaseError.is(err, 'UNIQUE_VIOLATION')) return 'taken'; throw err }
 * ```
 */
export class DatabaseError extends Error {
  override readonly name = 'DatabaseError'
  /** Stable, machine-readable code. */
  readonly code: ErrorCode
  /** Whether running the same work again may succeed. */
  readonly retryable: boolean
  /** The backend that raised the error, or `'pool'`. */
  readonly backend: ErrorBackend
  /** Postgres SQLSTATE, when there is one. */
  readonly sqlState: string | undefined
  /** SQLite extended result code, when there is one. */
  readonly sqliteCode: string | undefined
  /** Pool counters at throw time, on pool errors. */
  readonly poolStats: PoolStatsSnapshot | undefined
  /** Structured, secret-free facts about the failure. */
  readonly detail: Readonly<Record<string, unknown>> | undefined

  constructor(code: ErrorCode, message: string, options: DatabaseErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retryable = options.retryable ?? RETRYABLE_CODES.has(code)
    this.backend = options.backend ?? 'pool'
    this.sqlState = options.sqlState
    this.sqliteCode = options.sqliteCode
    this.poolStats = options.poolStats
    this.detail = options.detail
  }

  /** True when `err` is a DatabaseError, and when `code` is given, one with that code. */
  static is(err: unknown, code?: ErrorCode): err is DatabaseError {
    return err instanceof DatabaseError && (code === undefined || err.code === code)
  }

  /** A plain object for logs: code, message, backend, native codes, detail. Never the cause's secrets. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      backend: this.backend,
      sqlState: this.sqlState,
      sqliteCode: this.sqliteCode,
      poolStats: this.poolStats,
      detail: this.detail,
      cause: describeCause(this.cause),
    }
  }

  [inspect.custom](): string {
    const native = this.sqlState ?? this.sqliteCode
    const head = `DatabaseError [${this.code}${native ? ` ${native}` : ''}]: ${this.message}`
    const frames = (this.stack ?? '').split('\n').slice(1).join('\n')
    const withStack = frames ? `${head}\n${frames}` : head
    const lines = [withStack, `  retryable: ${this.retryable}, backend: ${this.backend}`]
    if (this.poolStats) lines.push(`  pool: ${JSON.stringify(this.poolStats)}`)
    if (this.detail) lines.push(`  detail: ${JSON.stringify(this.detail)}`)
    const cause = describeCause(this.cause)
    if (cause) lines.push(`  cause: ${cause.name}: ${cause.message}`)
    return lines.join('\n')
  }
}

function describeCause(cause: unknown): { name: string; message: string } | undefined {
  if (cause === undefined || cause === null) return undefined
  if (isErrorLike(cause)) return { name: cause.name, message: cause.message }
  return { name: typeof cause, message: String(cause) }
}
