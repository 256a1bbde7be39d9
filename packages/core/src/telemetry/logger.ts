import { configError } from '../config/validate'
import { DatabaseError } from '../errors/database-error'
import { isOutcomeUnknown, OUTCOME_UNKNOWN } from '../errors/error-outcome'
import { isErrorLike } from '../util/error-like'

/**
 * One level of a {@link PoolLogger}: a structured object and a message, as pino's methods take them
 * (`logger.warn({ durationMs }, 'slow statement')`).
 */
export type PoolLogFn = (obj: Record<string, unknown>, msg: string) => void

/**
 * The logger a pool writes its own lines to: pino's interface (a pino logger, or a child of one, fits
 * as is), or any adapter with the five methods (`console` fits too). Passed as the `logger` pool option
 * (`PoolFactory.create(url, config, { pool: { logger } })`).
 *
 * What the pool logs: connections opened and closed (`debug`); connections lost, background failures
 * (warm-up connects, keepalive), failovers to another server, transaction replays, leases held past `leakDetectionThresholdMs` (with
 * the acquirer's stack) and statements slower than `slowQueryMs` (`warn`); the Postgres LISTEN
 * connection's losses and failed reconnect attempts, one line per attempt (`listen`, `warn`), and its
 * return (`listen`, `info`). Every line carries
 * `pool` (the pool's name) and `event`. Passwords never reach a field: URLs are redacted, and the
 * manager's known secrets are replaced with `[REDACTED]`; parameter values only with `logParameters`.
 */
export interface PoolLogger {
  trace: PoolLogFn
  debug: PoolLogFn
  info: PoolLogFn
  warn: PoolLogFn
  error: PoolLogFn
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const

/** @internal Checks the `logger` pool option: undefined, or an object with the five level methods. */
export function checkLogger(value: unknown): PoolLogger | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null) throw configError('pool.logger', value, 'must be a pino-compatible logger object')
  const missing = LEVELS.filter((level) => typeof (value as Record<string, unknown>)[level] !== 'function')
  if (missing.length > 0)
    throw configError('pool.logger', '[logger]', `must have trace, debug, info, warn and error methods (missing ${missing.join(', ')})`)
  return value as PoolLogger
}

/**
 * @internal The pool's side of its logger: builds the fields of each line, hides secrets in every
 * text that may carry one, and never lets a throwing logger break the pool.
 */
export class PoolLog {
  readonly #logger: PoolLogger
  readonly #pool: string
  readonly #redact: (text: string) => string
  readonly #describe: (err: Error, from: Error) => string
  /** A failure of the logger was reported already (see {@link write}). */
  #reported = false

  /**
   * `redact` hides secrets in a text (URL passwords and the manager's known secrets); `describe`
   * gives an error's message (`err`'s, or a cause's of `from`) without secrets nor the values of the
   * statement `from` failed with (its parameters in every form the database may repeat them,
   * unless `logParameters`).
   */
  constructor(logger: PoolLogger, pool: string, redact: (text: string) => string, describe: (err: Error, from: Error) => string) {
    this.#logger = logger
    this.#pool = pool
    this.#redact = redact
    this.#describe = describe
  }

  /**
   * A secret-free plain object for an error: code, message, native codes, `outcome: 'unknown'` for a
   * statement that may have committed (see `isOutcomeUnknown`) and the cause's message.
   * Its prototype is null and it carries `name` and the redacted `stack` as non-enumerable
   * properties: pino's `err` serializer takes `type` from the constructor's name (it would say
   * `Object`) unless there is none, then from `name`, and prints `stack`; a logger that
   * JSON-stringifies sees the enumerable fields only.
   */
  error(err: unknown): Record<string, unknown> {
    const out = Object.create(null) as Record<string, unknown>
    if (!isErrorLike(err)) {
      out.message = this.#redact(String(err))
      return out
    }
    out.type = err.name
    const message = this.#describe(err, err)
    out.message = message
    Object.defineProperties(out, { name: { value: err.name }, stack: { value: this.#stack(err, message) } })
    if (DatabaseError.is(err)) {
      out.code = err.code
      out.retryable = err.retryable
      if (err.sqlState !== undefined) out.sqlState = err.sqlState
      if (err.sqliteCode !== undefined) out.sqliteCode = err.sqliteCode
      // the statement may have committed: whoever reads the line must not assume it failed
      if (isOutcomeUnknown(err)) out.outcome = OUTCOME_UNKNOWN
    }
    const cause = err.cause
    if (cause !== undefined && cause !== null)
      // an error of another realm is one too; anything else is shown as its text, hidden the same way
      out.cause = isErrorLike(cause) ? `${cause.name}: ${this.#describe(cause, err)}` : this.#describe(new Error(String(cause)), err)
    return out
  }

  /**
   * `err.stack` with its head (which repeats the message, maybe an older one) replaced by
   * `${name}: ${message}` (`message` as shown), its frames redacted.
   */
  #stack(err: Error, message: string): string {
    const stack = err.stack ?? ''
    const frames = stack.indexOf('\n    at ')
    return `${err.name}: ${message}${frames < 0 ? '' : this.#redact(stack.slice(frames))}`
  }

  /**
   * Writes one line at `level` with `pool` and `event` first. A logger that throws, or whose method
   * returns a promise that rejects (an async adapter shipping lines elsewhere), never breaks the
   * pool nor the process (no unhandled rejection): the first such failure of the pool is reported
   * with `process.emitWarning` (`DbpoolWarning`), later ones are dropped silently (a sink that is down
   * would otherwise add a warning per line).
   */
  write(level: (typeof LEVELS)[number], event: string, fields: Record<string, unknown>, msg: string): void {
    let returned: unknown
    try {
      returned = this.#logger[level]({ pool: this.#pool, event, ...fields }, msg)
    } catch (err) {
      this.#failed('threw', err)
      return
    }
    if (isThenable(returned)) returned.then(undefined, (err: unknown) => this.#failed('rejected', err))
  }

  #failed(how: 'threw' | 'rejected', err: unknown): void {
    if (this.#reported) return
    this.#reported = true
    process.emitWarning(
      `dbpool: the logger of pool "${this.#pool}" ${how}: ${this.#redact(String(err))} (later failures of this logger are not reported)`,
      'DbpoolWarning',
    )
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function'
  )
}
