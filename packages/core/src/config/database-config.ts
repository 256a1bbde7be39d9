import { inspect } from 'node:util'
import { parse as parseConnectionString } from 'pg-connection-string'
import { REDACTED } from '../util/redact'
import {
  checkBoolean,
  checkEnum,
  checkInteger,
  checkString,
  configError,
  parseEnvInteger,
  rejectUnknownKeys,
  requireObject,
} from './validate'

/** TLS modes with libpq's meaning (verify-full checks the chain and the host name). */
export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const
/** One of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number]

/** A password, or a function returning one (called for every new connection, for rotated credentials). */
export type PasswordSource = string | (() => string | Promise<string>)

/**
 * Options of a Postgres target.
 *
 * ```ts
 * new DatabaseConfig({ host: 'db', database: 'ledger', username: 'app', password: () => vault.get('db'), sslMode: 'verify-full' })
 * ```
 */
export interface DatabaseOptions {
  /** Host name, IP, or a Unix socket directory. Default is `'localhost'`. */
  readonly host?: string
  /** Default is `5432`. */
  readonly port?: number
  /** Default is the user name. */
  readonly database?: string
  /** Default is `'postgres'`. */
  readonly username?: string
  /** A string, or a function called per new connection. Never printed. */
  readonly password?: PasswordSource
  /** Default is `'prefer'`, as in libpq. */
  readonly sslMode?: SslMode
  /** PEM text of the CA that signs the server certificate (verify-ca / verify-full). */
  readonly sslRootCert?: string
  /** Sent as `application_name`. Default is `'dbpool'`. */
  readonly applicationName?: string
  /** Server-side `statement_timeout` in ms; `0` means none. Default is `0`. */
  readonly statementTimeoutMs?: number
  /** Server-side `idle_in_transaction_session_timeout` in ms; `0` means none. Default is `0`. */
  readonly idleInTransactionTimeoutMs?: number
  /** Server-side `lock_timeout` in ms; `0` means none. Default is `0`. */
  readonly lockTimeoutMs?: number
  /** TCP keepalive on the socket. Default is `true`. */
  readonly keepAlive?: boolean
  /**
   * The target is PgBouncer in transaction (or statement) pooling mode: every transaction may run on
   * a different server connection, so nothing that lives in a server session may be relied on. The
   * Postgres manager then names no prepared statements (PgBouncer before 1.21 cannot route them; its
   * documentation lists protocol-level prepared plans as unsupported in transaction mode). URL:
   * `?pgbouncer=true` (as Prisma spells it). Default is `false`.
   */
  readonly pgbouncer?: boolean
}

const KEYS = [
  'host',
  'port',
  'database',
  'username',
  'password',
  'sslMode',
  'sslRootCert',
  'applicationName',
  'statementTimeoutMs',
  'idleInTransactionTimeoutMs',
  'lockTimeoutMs',
  'keepAlive',
  'pgbouncer',
] as const
const MAX_MS = 2_147_483_647

/**
 * A validated Postgres target. The password is held privately: it never appears in `toString()`,
 * `JSON.stringify`, `util.inspect`, or an error built from this config.
 */
export class DatabaseConfig {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly username: string
  readonly sslMode: SslMode
  readonly sslRootCert: string | undefined
  readonly applicationName: string
  readonly statementTimeoutMs: number
  readonly idleInTransactionTimeoutMs: number
  readonly lockTimeoutMs: number
  readonly keepAlive: boolean
  readonly pgbouncer: boolean
  readonly #password: PasswordSource | undefined

  constructor(options: DatabaseOptions = {}) {
    const raw = requireObject('database', options)
    rejectUnknownKeys('database', raw, KEYS)
    this.host = raw.host === undefined ? 'localhost' : checkString('database.host', raw.host)
    this.port = raw.port === undefined ? 5432 : checkInteger('database.port', raw.port, 1, 65_535)
    this.username = raw.username === undefined ? 'postgres' : checkString('database.username', raw.username)
    this.database = raw.database === undefined ? this.username : checkString('database.database', raw.database)
    this.#password = checkPassword(raw.password)
    this.sslMode = raw.sslMode === undefined ? 'prefer' : checkEnum('database.sslMode', raw.sslMode, SSL_MODES)
    this.sslRootCert = raw.sslRootCert === undefined ? undefined : checkString('database.sslRootCert', raw.sslRootCert)
    this.applicationName = raw.applicationName === undefined ? 'dbpool' : checkString('database.applicationName', raw.applicationName)
    this.statementTimeoutMs = optionalMs('statementTimeoutMs', raw.statementTimeoutMs)
    this.idleInTransactionTimeoutMs = optionalMs('idleInTransactionTimeoutMs', raw.idleInTransactionTimeoutMs)
    this.lockTimeoutMs = optionalMs('lockTimeoutMs', raw.lockTimeoutMs)
    this.keepAlive = raw.keepAlive === undefined ? true : checkBoolean('database.keepAlive', raw.keepAlive)
    this.pgbouncer = raw.pgbouncer === undefined ? false : checkBoolean('database.pgbouncer', raw.pgbouncer)
    Object.freeze(this)
  }

  /**
   * Parses `postgres://user:password@host:port/database?sslmode=...&application_name=...` with
   * pg-connection-string (also `statement_timeout`, `idle_in_transaction_session_timeout`,
   * `lock_timeout` and `pgbouncer=true|false`). `overrides` win over the URL.
   */
  static fromUrl(url: string, overrides: DatabaseOptions = {}): DatabaseConfig {
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\//i.test(url)) {
      throw configError('database.url', url === undefined ? url : redactUrl(String(url)), 'must start with postgres:// or postgresql://')
    }
    let parsed: Record<string, unknown>
    try {
      // pg-connection-string reads sslmode with pg's meanings and warns (a process warning saying
      // prefer, require and verify-ca are treated as verify-full); dbpool reads it with libpq's, so
      // it is handed over under another name and only the value is taken
      parsed = parseConnectionString(url.replace(/([?&])sslmode=/g, '$1dbpool_sslmode=')) as Record<string, unknown>
      if (parsed.dbpool_sslmode !== undefined) parsed.sslmode = parsed.dbpool_sslmode
    } catch (err) {
      throw configError('database.url', redactUrl(url), `cannot be parsed (${(err as Error).message})`)
    }
    return new DatabaseConfig({ ...fromParsed(parsed), ...overrides })
  }

  /**
   * Reads `DATABASE_URL` when set, otherwise the libpq variables PGHOST, PGPORT, PGDATABASE,
   * PGUSER, PGPASSWORD, PGSSLMODE, PGAPPNAME.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): DatabaseConfig {
    const url = env.DATABASE_URL
    if (url) return DatabaseConfig.fromUrl(url)
    const options: Record<string, unknown> = {}
    if (env.PGHOST) options.host = env.PGHOST
    if (env.PGPORT) options.port = parseEnvInteger('PGPORT', env.PGPORT)
    if (env.PGDATABASE) options.database = env.PGDATABASE
    if (env.PGUSER) options.username = env.PGUSER
    if (env.PGPASSWORD) options.password = env.PGPASSWORD
    if (env.PGSSLMODE) options.sslMode = checkEnum('PGSSLMODE', env.PGSSLMODE, SSL_MODES)
    if (env.PGAPPNAME) options.applicationName = env.PGAPPNAME
    return new DatabaseConfig(options as DatabaseOptions)
  }

  /** Whether a password (or a password function) is set. */
  get hasPassword(): boolean {
    return this.#password !== undefined
  }

  /** Resolves the password, calling the password function if one was given. */
  async resolvePassword(): Promise<string | undefined> {
    const source = this.#password
    if (typeof source !== 'function') return source
    const value = await source()
    if (typeof value !== 'string') throw configError('database.password', '[function result]', 'the password function must return a string')
    return value
  }

  /** A copy with some options changed (the password is kept unless given). */
  with(changes: DatabaseOptions): DatabaseConfig {
    const current: DatabaseOptions = { ...this.toJSON(), ...(this.#password === undefined ? {} : { password: this.#password }) }
    return new DatabaseConfig({ ...current, ...changes })
  }

  /** The redacted target: `postgres://user@host:port/database`. */
  toString(): string {
    const host = this.host.startsWith('/') ? encodeURIComponent(this.host) : this.host.includes(':') ? `[${this.host}]` : this.host
    return `postgres://${encodeURIComponent(this.username)}@${host}:${this.port}/${encodeURIComponent(this.database)}`
  }

  /** Every option except the password (shown as `[REDACTED]` when set). */
  toJSON(): Omit<DatabaseOptions, 'password'> & { password?: string } {
    return {
      host: this.host,
      port: this.port,
      database: this.database,
      username: this.username,
      ...(this.#password === undefined ? {} : { password: REDACTED }),
      sslMode: this.sslMode,
      ...(this.sslRootCert === undefined ? {} : { sslRootCert: '[PEM]' }),
      applicationName: this.applicationName,
      statementTimeoutMs: this.statementTimeoutMs,
      idleInTransactionTimeoutMs: this.idleInTransactionTimeoutMs,
      lockTimeoutMs: this.lockTimeoutMs,
      keepAlive: this.keepAlive,
      pgbouncer: this.pgbouncer,
    }
  }

  [inspect.custom](): string {
    return `DatabaseConfig ${inspect(this.toJSON())}`
  }
}

function checkPassword(value: unknown): PasswordSource | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string' || typeof value === 'function') return value as PasswordSource
  // never echo the value: it is meant to be a secret
  throw configError('database.password', '[hidden]', 'must be a string or a function returning one')
}

function optionalMs(key: string, value: unknown): number {
  return value === undefined ? 0 : checkInteger(`database.${key}`, value, 0, MAX_MS)
}

function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*):[^@/]*@/, `$1:${REDACTED}@`)
}

function fromParsed(parsed: Record<string, unknown>): DatabaseOptions {
  const out: Record<string, unknown> = {}
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined)
  if (str(parsed.host)) out.host = parsed.host
  if (str(parsed.port)) out.port = parseEnvInteger('database.url port', parsed.port as string)
  if (str(parsed.database)) out.database = parsed.database
  if (str(parsed.user)) out.username = parsed.user
  if (str(parsed.password)) out.password = parsed.password
  if (str(parsed.sslmode)) out.sslMode = checkEnum('database.url sslmode', parsed.sslmode, [...SSL_MODES, 'allow', 'no-verify'] as const)
  if (out.sslMode === 'allow') out.sslMode = 'prefer'
  if (out.sslMode === 'no-verify') out.sslMode = 'require'
  const ssl = parsed.ssl as { ca?: unknown } | undefined
  if (ssl && typeof ssl === 'object' && typeof ssl.ca === 'string') out.sslRootCert = ssl.ca
  if (str(parsed.application_name)) out.applicationName = parsed.application_name
  if (str(parsed.statement_timeout))
    out.statementTimeoutMs = parseEnvInteger('database.url statement_timeout', parsed.statement_timeout as string)
  if (str(parsed.idle_in_transaction_session_timeout)) {
    out.idleInTransactionTimeoutMs = parseEnvInteger(
      'database.url idle_in_transaction_session_timeout',
      parsed.idle_in_transaction_session_timeout as string,
    )
  }
  if (str(parsed.lock_timeout)) out.lockTimeoutMs = parseEnvInteger('database.url lock_timeout', parsed.lock_timeout as string)
  if (parsed.pgbouncer !== undefined)
    out.pgbouncer = checkEnum('database.url pgbouncer', parsed.pgbouncer, ['true', 'false'] as const) === 'true'
  return out as DatabaseOptions
}
