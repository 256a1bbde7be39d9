import { DatabaseError, isOutcomeUnknown, type ErrorCode } from '@dbpool/core'
import { scrubSecrets } from './secrets'
import { isErrorLike } from '@dbpool/core/internal'

/** A stream the CLI writes to (process.stdout / process.stderr, or a buffer in tests). */
export interface OutputStream {
  write(text: string): unknown
  readonly isTTY?: boolean
  readonly columns?: number
}

/** The process around a CLI run: streams, environment and working directory. */
export interface CliIo {
  readonly stdout: OutputStream
  readonly stderr: OutputStream
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
}

/** Exit codes: health and check use 0 / 1 / 2 for healthy / degraded / unhealthy. */
export const EXIT_CODES = { ok: 0, error: 1, degraded: 1, unhealthy: 2, usage: 64 } as const

const HINTS: Partial<Record<ErrorCode, string>> = {
  CONFIGURATION: 'check --url, DATABASE_URL and dbpool.toml',
  CONNECTION_FAILED: 'check that the database is running and reachable (host, port or file path)',
  AUTHENTICATION_FAILED: 'check the user name and password (in the URL or PGPASSWORD)',
  CONNECTION_LOST: 'the database closed the connection; check the server and retry',
  ACQUIRE_TIMEOUT: 'no connection in time: the pool is saturated or slow to connect; raise max, acquireTimeoutMs or the statement timeout',
  POOL_EXHAUSTED: 'the pool is saturated; raise max or maxWaitingClients',
  POOL_CLOSED: 'the pool was closed; run the command again',
  QUERY_TIMEOUT: 'the statement took too long; check for locks or raise the timeout',
  SYNTAX_ERROR: 'fix the SQL statement',
  READ_ONLY: 'the database is read-only; check file permissions or the server role',
  BUSY: 'another process holds the database lock; retry when it is done',
  CORRUPT: 'the database file is damaged; restore it from a backup (dbpool restore FILE)',
  MIGRATION_FAILED: 'fix the migration or the database, then run dbpool migrate again',
  BACKUP_FAILED: 'check the file, the target directory and free disk space',
  HEALTH_CHECK_FAILED: 'run dbpool check for details',
}

/**
 * Writes lines to stdout and stderr with every known secret scrubbed (and any URL password, to the
 * last `@` of the word). Everything the CLI prints goes through {@link Output.scrub}: its own lines,
 * JSON, error reports and commander's usage errors.
 */
export class Output {
  readonly #io: CliIo
  readonly #secrets = new Set<string>()
  readonly #shown = new Set<string>()
  #hideConfigValues = false

  constructor(io: CliIo) {
    this.#io = io
  }

  /** Passwords to scrub from everything written from now on. */
  addSecrets(secrets: Iterable<string>): void {
    for (const s of secrets) if (s.length > 0) this.#secrets.add(s)
  }

  /**
   * Names output shows as themselves (user, database, host, application name): a secret equal to one
   * is hidden only where it stands as a secret by position (see {@link scrubSecrets}).
   */
  addShownNames(names: Iterable<string>): void {
    for (const n of names) if (n.length > 0) this.#shown.add(n)
  }

  /**
   * From now on, print a CONFIGURATION error that names an option and a rule (core's `configError`,
   * whose message quotes the value) as `invalid <option>: <rule>`, in the one-line report and in every
   * cause of `--verbose`: set once the configuration comes from a config file, whose values (a
   * backend option, a URL parameter) may be secrets no key name marks as such. Values of command
   * line options (`--pool`, `--dir`) are still shown.
   */
  hideConfigValues(): void {
    this.#hideConfigValues = true
  }

  /** Whether stderr is a terminal (progress bars) . */
  get interactive(): boolean {
    return this.#io.stderr.isTTY === true
  }

  /** Scrubs `text` of secrets (see {@link scrubSecrets}). */
  scrub(text: string): string {
    return scrubSecrets(text, this.#secrets, this.#shown)
  }

  /** A line on stdout. */
  line(text = ''): void {
    this.#io.stdout.write(`${this.scrub(text)}\n`)
  }

  /** A value as pretty JSON on stdout. */
  json(value: unknown): void {
    this.line(JSON.stringify(value, null, 2))
  }

  /** A line on stderr (progress, notices). */
  note(text: string): void {
    this.#io.stderr.write(`${this.scrub(text)}\n`)
  }

  /** Raw text on stderr (progress bars redraw with `\r`). */
  raw(text: string): void {
    this.#io.stderr.write(this.scrub(text))
  }

  /** The one-line error report on stderr; the stack and causes only when `verbose`. */
  error(err: unknown, verbose: boolean): void {
    const options = { hideConfigValues: this.#hideConfigValues }
    this.#io.stderr.write(`${this.scrub(describeError(err, options))}\n`)
    if (verbose) this.#io.stderr.write(`${this.scrub(errorDetails(err, options))}\n`)
  }

  /** A progress display: a bar on a terminal, a line per 10 % otherwise. */
  progress(label: string): ProgressDisplay {
    return new ProgressDisplay(this, label)
  }
}

/** Draws progress of one task. */
export class ProgressDisplay {
  readonly #out: Output
  readonly #label: string
  #lastStep = -1
  #drawn = false

  constructor(out: Output, label: string) {
    this.#out = out
    this.#label = label
  }

  /** `done` of `total` units (`unit` e.g. `pages`). */
  update(done: number, total: number, unit: string): void {
    if (total <= 0) return
    const fraction = Math.min(1, Math.max(0, done / total))
    const percent = Math.floor(fraction * 100)
    if (this.#out.interactive) {
      const width = 30
      const filled = Math.round(fraction * width)
      this.#out.raw(
        `\r${this.#label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(percent).padStart(3)}% ${done}/${total} ${unit}`,
      )
      this.#drawn = true
      return
    }
    const step = Math.floor(percent / 10)
    if (step === this.#lastStep) return
    this.#lastStep = step
    this.#out.note(`${this.#label}: ${percent}% (${done}/${total} ${unit})`)
  }

  /** A phase change (`verifying`, `compressing`). */
  phase(text: string): void {
    this.#endBar()
    this.#out.note(`${this.#label}: ${text}`)
  }

  /** Ends the display. */
  finish(): void {
    this.#endBar()
  }

  #endBar(): void {
    if (this.#drawn) this.#out.raw('\n')
    this.#drawn = false
  }
}

/** Options of {@link describeError} and {@link errorDetails}. */
export interface DescribeOptions {
  /** Print CONFIGURATION errors of core's `configError` as `invalid <option>: <rule>`, without the value (see {@link Output.hideConfigValues}). Default `false`. */
  readonly hideConfigValues?: boolean
}

/** `dbpool: CODE: message (what to do)` on one line. */
export function describeError(err: unknown, options: DescribeOptions = {}): string {
  if (DatabaseError.is(err)) {
    // a statement that may have committed must not be run again blindly
    const hint = isOutcomeUnknown(err)
      ? `it may have been applied: check ${err.code === 'MIGRATION_FAILED' ? 'dbpool migrate status and ' : ''}the database before running it again`
      : (err.detail as { reason?: unknown } | undefined)?.reason === 'in-use'
        ? 'stop the processes that have the database open, or pass --force'
        : (err.detail as { reason?: unknown } | undefined)?.reason === 'in-use-unknown'
          ? typeof (err.detail as { hidden?: unknown }).hidden === 'string'
            ? `--allow-hidden ${String((err.detail as { hidden: string }).hidden)} once no hidden process can have it open (every other check stays), or --force`
            : '--force once no other process can have it open'
          : selfRestore(err)
            ? 'restore from a backup file, not from the database itself'
            : missingSqliteFile(err) || missingSqliteFile(err.cause)
              ? 'check the path: only dbpool migrate up creates a database'
              : envVariableOf(err) !== undefined
                ? `check the environment variable ${envVariableOf(err)}`
                : (HINTS[err.code] ?? 'run again with --verbose for details')
    return `dbpool: ${err.code}: ${oneLine(safeMessage(err, options))} (${hint})`
  }
  const message = isErrorLike(err) ? err.message : String(err)
  return `dbpool: error: ${oneLine(message)} (run again with --verbose for details)`
}

/**
 * The environment variable a CONFIGURATION error is about (`detail.option` such as `PGSSLMODE`,
 * `DBPOOL_APP_MAX`, `DATABASE_REPLICA_URLS[1]`: upper case, digits and `_`), else `undefined`: its hint
 * names it instead of `--url`, `DATABASE_URL` and `dbpool.toml`.
 */
function envVariableOf(err: DatabaseError): string | undefined {
  if (err.code !== 'CONFIGURATION') return undefined
  const option = (err.detail as { option?: unknown } | undefined)?.option
  const match = typeof option === 'string' ? /^([A-Z][A-Z0-9_]*)(?:\[\d+\])?$/.exec(option) : null
  return match?.[1]
}

/** The stack and the chain of causes, for `--verbose`; a hidden value (see {@link DescribeOptions}) is left out of the stack too. */
export function errorDetails(err: unknown, options: DescribeOptions = {}): string {
  const parts: string[] = []
  let current: unknown = err
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const prefix = depth === 0 ? '' : 'caused by: '
    if (isErrorLike(current)) {
      const message = safeMessage(current, options)
      if (message === current.message) parts.push(`${prefix}${current.stack ?? `${current.name}: ${current.message}`}`)
      else parts.push(`${prefix}${current.name}: ${message}\n${stackFrames(current)}`)
    } else parts.push(`${prefix}${String(current)}`)
    current = isErrorLike(current) ? current.cause : undefined
  }
  return parts.join('\n')
}

/** The message, or `invalid <option>: <rule>` for a `configError` when values are hidden. */
function safeMessage(err: Error, options: DescribeOptions): string {
  if (!options.hideConfigValues || !DatabaseError.is(err, 'CONFIGURATION')) return err.message
  const { option, rule } = (err.detail ?? {}) as { option?: unknown; rule?: unknown }
  if (typeof option !== 'string' || typeof rule !== 'string' || option.startsWith('--')) return err.message
  return `invalid ${option}: ${rule}`
}

/** The `    at ...` lines of a stack, without the message V8 puts before them. */
function stackFrames(err: Error): string {
  return (err.stack ?? '')
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .join('\n')
}

/** The database being restored given as its own source (`refuseSameFile` in `@dbpool/sqlite`): the URL is right, the FILE is not. */
function selfRestore(err: DatabaseError): boolean {
  const option = (err.detail as { option?: unknown } | undefined)?.option
  return err.code === 'CONFIGURATION' && (option === 'restore.file' || option === 'restoreDatabaseFile.file')
}

/** A SQLite database file (or its directory) that does not exist: the pool was told not to create it. */
function missingSqliteFile(err: unknown): boolean {
  return DatabaseError.is(err, 'CONNECTION_FAILED') && err.backend === 'sqlite' && /does not exist/.test(err.message)
}

function oneLine(text: string): string {
  // each run of blanks read once (\s*\n\s* was tried at every blank of a long run: quadratic)
  return text.replace(/\s+/g, (run) => (run.includes('\n') ? ' ' : run)).trim()
}
