import { existsSync, readFileSync } from 'node:fs'
import { inspect } from 'node:util'
import { REDACTED, redactSecrets, redactUrl } from '../util/redact'
import { checkLibpqHostAddrEnv, checkLibpqSecurityEnv, checkLibpqTlsEnv, requireSslMode } from './libpq-env'
import { parsePostgresUrl, type ParsedPostgresUrl, type PostgresHost } from './postgres-url'
import { checkRootCert, SYSTEM_ROOT_CERT } from './root-cert'
import { hostOptionsOf, overlayHosts, resolvedHostsOf, targetHostsOf } from './target-hosts'
import {
  checkBoolean,
  checkEnum,
  checkInteger,
  checkStartupString,
  configError,
  definedOptions,
  parseEnvInteger,
  parseLibpqInteger,
  rejectUnknownKeys,
  requireObject,
} from './validate'

/** TLS modes with libpq's meaning (`allow`: plain TCP first, then TLS; verify-full checks the chain and the host name). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const
/** One of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number]

/**
 * libpq's `target_session_attrs`: which kind of server a new connection accepts, walking the hosts in
 * order. `any`: the first that accepts the connection. `read-write` / `read-only`: one that accepts
 * (or refuses) writes (`default_transaction_read_only` or `in_hot_standby` reported on, or
 * `SHOW transaction_read_only` on servers before 14). `primary` / `standby`: one not in (or in)
 * recovery (`in_hot_standby`, or `pg_is_in_recovery()` before 14). `prefer-standby`: a standby if any
 * host is one, else a second pass accepting any server.
 */
export const TARGET_SESSION_ATTRS = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const
/** One of {@link TARGET_SESSION_ATTRS}. */
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number]

/** A host of a {@link DatabaseConfig}, with its port resolved. */
export interface ResolvedHost {
  readonly host: string
  readonly port: number
}

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
  /** Host name, IP, or a Unix socket directory. Default is `'localhost'`. Not with `hosts`. */
  readonly host?: string
  /** Default is `5432`. With `hosts`: the port of every host that names none. */
  readonly port?: number
  /**
   * Several hosts, tried in order for every new connection (libpq's multi-host form): a host that
   * refuses, times out ({@link connectTimeoutMs}) or is not of the {@link targetSessionAttrs} kind is
   * skipped. Default is `[{ host, port }]`.
   */
  readonly hosts?: readonly PostgresHost[]
  /** Which server a new connection accepts (libpq's `target_session_attrs`). Default is `'any'`. */
  readonly targetSessionAttrs?: TargetSessionAttrs
  /**
   * Deadline of the attempt on one host, in ms (libpq's `connect_timeout`, per host; the URL gives
   * it in seconds, at least 2). `0`: the manager's `connectTimeoutMs` (the pool's whole connect
   * deadline), with several hosts or addresses (a name that resolves to several) shared among the
   * attempts so that each gets a try: what is left ÷ the attempts left, the whole of it for a single
   * attempt. Default is `0`.
   */
  readonly connectTimeoutMs?: number
  /**
   * libpq's `options`: command-line options sent at connection start (`-c search_path=app`). A setting
   * the server refuses there (unknown name, bad value) fails the connect with CONFIGURATION naming
   * `database.options` and the parameter (`@dbpool/postgres`). Default is none; where the environment
   * is read ({@link DatabaseConfig.envDefaults}) PGOPTIONS, and a Postgres pool gives a target without
   * options PGOPTIONS too (as pg did by itself).
   */
  readonly options?: string
  /** Default is the user name. */
  readonly database?: string
  /** Default is `'postgres'`. */
  readonly username?: string
  /** A string, or a function called per new connection. Never printed. */
  readonly password?: PasswordSource
  /** Default is `'prefer'`, as in libpq. */
  readonly sslMode?: SslMode
  /**
   * PEM text of the CA certificate(s) that sign the server certificate: the chain is verified with
   * `verify-ca` / `verify-full`, and with `require` too (libpq: a root certificate makes `require`
   * act as `verify-ca`). Checked when the config is made: at least one certificate, each parsing, no
   * private key; a file path is refused (CONFIGURATION naming `database.sslRootCert`; the URL's
   * `sslrootcert` and PGSSLROOTCERT are files, read then). `'system'` (libpq 16's
   * `sslrootcert=system`): Node's default trust store, with `verify-full` (the default mode then; a
   * weaker one is CONFIGURATION). Default is none: `verify-*` use Node's default trust store.
   */
  readonly sslRootCert?: string
  /**
   * Sent as `application_name`. Default is `'dbpool'`; a URL's `application_name`, else PGAPPNAME
   * where the environment is read ({@link DatabaseConfig.envDefaults}), else its `fallback_application_name`.
   */
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
  'hosts',
  'targetSessionAttrs',
  'connectTimeoutMs',
  'options',
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
 * What a caller sets in code above the libpq environment (see {@link DatabaseConfig.envDefaults}):
 * the variables it covers are not read.
 */
export interface EnvDefaultsGiven {
  /** An explicit connect deadline in ms (the Postgres manager's `connectTimeoutMs`): PGCONNECT_TIMEOUT is not read. */
  readonly connectTimeoutMs?: unknown
  /**
   * The connection string the defaults fill in: its `sslmode` (else `sslMode`, else PGSSLMODE /
   * PGREQUIRESSL, else `prefer`) decides whether the variables libpq reads only with TLS (PGSSLCERT,
   * PGSSLKEY, PGSSLCRL...) are checked: with `disable` they are not read, as libpq.
   */
  readonly url?: string
  /** A TLS mode set above the URL (`PoolFactory.create`'s `database.sslMode`): it decides, as `url`'s does. */
  readonly sslMode?: unknown
  /**
   * `true`: the variables read only with TLS are not checked here; the caller checks them against the
   * target's final mode (`checkLibpqTlsEnv` of `@dbpool/core/internal`): a replica URL's mode depends
   * on the primary's too.
   */
  readonly deferTlsCheck?: boolean
}

/** The mark every DatabaseConfig carries, shared by every copy of `@dbpool/core` (a global symbol). */
const DATABASE_CONFIG_BRAND: unique symbol = Symbol.for('dbpool.DatabaseConfig') as never

/**
 * A validated Postgres target. The password is held privately: it never appears in `toString()`,
 * `JSON.stringify`, `util.inspect`, or an error built from this config.
 *
 * `instanceof DatabaseConfig` is told by a mark every copy of `@dbpool/core` puts on its configs: a
 * config made by another copy (npm installs one when a dependency pins another version) is one too,
 * and is used through its own methods (its password included).
 */
export class DatabaseConfig {
  /** A config of any copy of `@dbpool/core` (see the class's TSDoc). */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as { [DATABASE_CONFIG_BRAND]?: unknown })[DATABASE_CONFIG_BRAND] === true
  }

  /** @internal The mark {@link DatabaseConfig} instances are told by. */
  get [DATABASE_CONFIG_BRAND](): true {
    return true
  }

  /** The first host. */
  readonly host: string
  /** The first host's port. */
  readonly port: number
  /** Every host, in the order they are tried (one unless `hosts` was given). */
  readonly hosts: readonly ResolvedHost[]
  readonly targetSessionAttrs: TargetSessionAttrs
  /** Per-host connect deadline in ms; `0` means the manager's `connectTimeoutMs`. */
  readonly connectTimeoutMs: number
  /** libpq `options` sent at startup, or `undefined`. */
  readonly options: string | undefined
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
    if (options instanceof DatabaseConfig || (options as object | null)?.constructor?.name === 'DatabaseConfig')
      // a config is not options: its own fields (host and hosts) would be read as both, its password (private) lost
      throw configError(
        'database',
        '[DatabaseConfig]',
        'is already a DatabaseConfig (of another copy of @dbpool/core, or an older one this copy cannot read: its password is private to it); pass it as it is, or give options or a URL',
      )
    const raw = requireObject('database', options)
    rejectUnknownKeys('database', raw, KEYS)
    const port = raw.port === undefined ? 5432 : checkInteger('database.port', raw.port, 1, 65_535)
    if (raw.hosts !== undefined && raw.host !== undefined) throw configError('database.host', raw.host, 'give host or hosts, not both')
    this.hosts =
      raw.hosts === undefined
        ? Object.freeze([
            Object.freeze({ host: raw.host === undefined ? 'localhost' : checkStartupString('database.host', raw.host), port }),
          ])
        : checkHosts(raw.hosts, port)
    this.host = this.hosts[0]!.host
    this.port = this.hosts[0]!.port
    this.targetSessionAttrs =
      raw.targetSessionAttrs === undefined ? 'any' : checkEnum('database.targetSessionAttrs', raw.targetSessionAttrs, TARGET_SESSION_ATTRS)
    this.connectTimeoutMs = optionalMs('connectTimeoutMs', raw.connectTimeoutMs)
    this.options = raw.options === undefined ? undefined : checkStartupString('database.options', raw.options)
    this.username = raw.username === undefined ? 'postgres' : checkStartupString('database.username', raw.username)
    this.database = raw.database === undefined ? this.username : checkStartupString('database.database', raw.database)
    this.#password = checkPassword(raw.password)
    if (raw.sslRootCert === SYSTEM_ROOT_CERT) {
      // libpq 16: the system's CAs, verify-full by default, a weaker mode refused
      const mode = raw.sslMode === undefined ? 'verify-full' : checkEnum('database.sslMode', raw.sslMode, SSL_MODES)
      if (mode !== 'verify-full')
        throw configError(
          'database.sslMode',
          mode,
          'sslRootCert "system" (sslrootcert=system, PGSSLROOTCERT=system) needs verify-full, as in libpq (the mode may come from sslmode or PGSSLMODE)',
        )
      this.sslMode = mode
      this.sslRootCert = undefined
    } else {
      this.sslMode = raw.sslMode === undefined ? 'prefer' : checkEnum('database.sslMode', raw.sslMode, SSL_MODES)
      this.sslRootCert = raw.sslRootCert === undefined ? undefined : checkRootCert('database.sslRootCert', raw.sslRootCert)
    }
    this.applicationName =
      raw.applicationName === undefined ? 'dbpool' : checkStartupString('database.applicationName', raw.applicationName)
    this.statementTimeoutMs = optionalMs('statementTimeoutMs', raw.statementTimeoutMs)
    this.idleInTransactionTimeoutMs = optionalMs('idleInTransactionTimeoutMs', raw.idleInTransactionTimeoutMs)
    this.lockTimeoutMs = optionalMs('lockTimeoutMs', raw.lockTimeoutMs)
    this.keepAlive = raw.keepAlive === undefined ? true : checkBoolean('database.keepAlive', raw.keepAlive)
    this.pgbouncer = raw.pgbouncer === undefined ? false : checkBoolean('database.pgbouncer', raw.pgbouncer)
    Object.freeze(this)
  }

  /**
   * Parses a libpq URI (see {@link parsePostgresUrl}): `postgres://user:password@h1:5432,h2:5433/db?name=value&...`,
   * with hosts and ports also as `host=` / `port=` lists. Query parameters, all optional: `sslmode`
   * (libpq's values, `no-verify` read as `require`), `sslrootcert` (a file, read
   * and checked now; `system`: see {@link DatabaseOptions.sslRootCert}), `application_name`, `fallback_application_name`, `options`, `connect_timeout` (seconds per
   * host, libpq's integer: `0` or less is none, `1` is 2), `target_session_attrs`, `statement_timeout`, `idle_in_transaction_session_timeout`,
   * `lock_timeout` (ms), `pgbouncer=true|false`, `user`, `password`, `dbname`. Any other parameter is
   * CONFIGURATION naming it, as libpq refuses it. `overrides` win over the URL; `defaults` fill in
   * what the URL leaves out (as libpq's environment variables do: {@link envDefaults}, {@link fromEnv},
   * a replica URL inheriting the primary's TLS settings); the URL's `fallback_application_name` comes
   * last, under `defaults` (libpq: used only when neither `application_name` nor PGAPPNAME is set). Host names and ports are two lists, each taken from the
   * top layer that gives it (see {@link with}): `{ port: 6432 }` over `h1:1,h2:2` is `h1:6432,h2:6432`,
   * `{ host: 'c' }` over `db:5433` is `c:5433`, and over `h1:1,h2:2` CONFIGURATION (which port?).
   * An override or default given as `undefined` (`{ sslMode: process.env.PGSSLMODE }`, unset) is not
   * given: the URL's value stays (`sslmode=verify-full` is never weakened to the default `prefer`).
   */
  static fromUrl(url: string, overrides: DatabaseOptions = {}, defaults: DatabaseOptions = {}): DatabaseConfig {
    if (typeof url !== 'string') throw configError('database.url', url === undefined ? url : redactUrl(String(url)), 'must be a string')
    const parsed = parsePostgresUrl(url, redactUrl(url))
    const { fallbackApplicationName, ...fromUrl } = fromParsed(parsed)
    // libpq: application_name, then PGAPPNAME (a default), then fallback_application_name
    const fallback = fallbackApplicationName === undefined ? {} : { applicationName: fallbackApplicationName }
    // an option given as undefined (an unset variable) is not given: it never erases the URL's value
    // PGTZ, PGDATESTYLE, PGGEQO of envDefaults: kept under the URL's (or the overrides') own options, which win setting by setting
    const envSettings = (defaults as { [ENV_SESSION_SETTINGS]?: readonly EnvSessionSetting[] } | null)?.[ENV_SESSION_SETTINGS]
    overrides = definedOptions(requireObject('database', overrides)) as DatabaseOptions
    defaults = definedOptions(requireObject('database', defaults)) as DatabaseOptions
    // libpq's two lists, host names and ports, each replaced on its own: the URL's over the defaults', the overrides' over both
    const target = [targetHostsOf(fromUrl), targetHostsOf(overrides)].reduce(overlayHosts, targetHostsOf(defaults))
    const hostOptions = hostOptionsOf(target, overrides.hosts !== undefined ? 'database.hosts' : 'database.host')
    const merged: Record<string, unknown> = {
      ...fallback,
      ...withoutHosts(defaults),
      ...withoutHosts(fromUrl),
      ...withoutHosts(overrides),
      ...hostOptions,
    }
    if (envSettings !== undefined && merged.options !== defaults.options && typeof merged.options === 'string')
      merged.options = withSettings(merged.options, envSettings)
    return new DatabaseConfig(merged as DatabaseOptions)
  }

  /**
   * Reads `DATABASE_URL` when set, the libpq variables filling in what it leaves out, as libpq fills
   * in every connection string ({@link envDefaults}: PGHOST and PGPORT, comma-separated lists as libpq
   * reads them, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT (a file, read now),
   * PGTARGETSESSIONATTRS, PGOPTIONS, PGAPPNAME and PGCONNECT_TIMEOUT in seconds; PGREQUIRESSL=1:
   * `require` without PGSSLMODE); without `DATABASE_URL`, those variables alone.
   * A variable dbpool cannot honour (PGHOSTADDR, PGSSLCERT, PGSSLKEY, PGCHANNELBINDING=require, ...:
   * see {@link envDefaults}) is CONFIGURATION naming it: never ignored (PGSSLCERT, PGSSLKEY... are not
   * read when the mode is `disable`).
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): DatabaseConfig {
    const defaults = DatabaseConfig.envDefaults(env, { url: env.DATABASE_URL || undefined })
    if (env.DATABASE_URL) return DatabaseConfig.fromUrl(env.DATABASE_URL, {}, defaults)
    return new DatabaseConfig(defaults)
  }

  /**
   * What the libpq environment fills in for a URL that leaves it out, as libpq applies its variables to
   * every connection string (pass it as `fromUrl`'s `defaults`; https://www.postgresql.org/docs/current/libpq-envars.html):
   * PGHOST and PGPORT (comma-separated lists: host names and ports, each list replaced on its own by
   * the URL's, one port for every host or one per host, else CONFIGURATION), PGDATABASE (`database`),
   * PGUSER (`username`), PGPASSWORD (`password`), PGSSLMODE (`sslMode`; else PGREQUIRESSL=1: `require`, as libpq), PGSSLROOTCERT (`sslRootCert`,
   * the file read now; as libpq, not read when the mode is `disable`, and a file that does not exist is
   * ignored unless the mode is `verify-ca` / `verify-full`), PGTARGETSESSIONATTRS, PGOPTIONS (`options`, as the URL's `options`: sent as
   * it is at connection start, a setting the server refuses there is CONFIGURATION naming
   * `database.options`), PGAPPNAME (`applicationName`; above the URL's `fallback_application_name`), PGTZ / PGDATESTYLE /
   * PGGEQO (added to `options` as `-c TimeZone=...`, `-c DateStyle=...`, `-c geqo=...`, as libpq sends
   * them at the start of every session; `default` not sent; a setting the URL's or the overrides'
   * `options` names wins in `fromUrl`),
   * PGCONNECT_TIMEOUT (`connectTimeoutMs`: seconds per host as libpq reads them, `0` or less none,
   * `1` is 2; not an integer: CONFIGURATION). A variable dbpool cannot honour is CONFIGURATION naming
   * it, never ignored: PGHOSTADDR (`checkLibpqHostAddrEnv`), and the security variables (PGSSLCERT,
   * PGSSLKEY, PGCHANNELBINDING=require, PGGSSENCMODE=require, PGREQUIREAUTH, PGSSLCRL, ...: see
   * `checkLibpqSecurityEnv`; those libpq reads only with TLS, PGSSLCERT, PGSSLKEY, PGSSLCRL..., only
   * when the mode, see {@link EnvDefaultsGiven.url}, is not `disable`: `checkLibpqTlsEnv`); so is a
   * bad value. Each refusal says how to go on (unset it, or `DatabaseConfig.fromUrl(url)`, which reads
   * no environment). An empty variable counts as unset.
   *
   * `given` holds what the caller sets in code above the environment: an explicit connect deadline
   * (the Postgres manager's `connectTimeoutMs`, `PoolFactory.create`'s `backend.connectTimeoutMs`)
   * means PGCONNECT_TIMEOUT is not read (an option written in code beats an ambient variable; the
   * URL's `connect_timeout` still applies, as the URL is written by the caller too).
   */
  static envDefaults(env: NodeJS.ProcessEnv = process.env, given: EnvDefaultsGiven = {}): DatabaseOptions {
    checkLibpqSecurityEnv(env)
    checkLibpqHostAddrEnv(env)
    const out: Record<string, unknown> = envHostOptions(env, givenHostLists(given))
    if (env.PGDATABASE) out.database = checkStartupString('PGDATABASE', env.PGDATABASE)
    if (env.PGUSER) out.username = checkStartupString('PGUSER', env.PGUSER)
    if (env.PGPASSWORD) out.password = env.PGPASSWORD
    if (env.PGSSLMODE) {
      const mode = checkEnum('PGSSLMODE', env.PGSSLMODE, [...SSL_MODES, 'no-verify'] as const)
      out.sslMode = mode === 'no-verify' ? 'require' : mode
    }
    if (requireSslMode(env)) out.sslMode = requireSslMode(env)
    // libpq reads PGSSLCERT, PGSSLKEY... only for a TLS connection: checked against the mode the target ends with
    if (given.deferTlsCheck !== true) checkLibpqTlsEnv(env, givenSslMode(given) ?? (out.sslMode as string | undefined) ?? 'prefer')
    // libpq reads the root certificate only for a TLS connection, and requires it only for verify-*
    if (env.PGSSLROOTCERT) {
      // deferred (a replica URL): only the URL's own mode is final here
      const mode =
        given.deferTlsCheck === true ? givenSslMode(given) : (givenSslMode(given) ?? (out.sslMode as string | undefined) ?? 'prefer')
      const rootCert = envRootCert(env.PGSSLROOTCERT, mode)
      if (rootCert !== undefined) out.sslRootCert = rootCert
    }
    if (out.sslRootCert === SYSTEM_ROOT_CERT && out.sslMode !== undefined && out.sslMode !== 'verify-full')
      throw configError(
        'PGSSLMODE',
        env.PGSSLMODE,
        `PGSSLROOTCERT=system needs verify-full, as in libpq (unset PGSSLMODE or set it to verify-full)`,
      )
    if (env.PGTARGETSESSIONATTRS) out.targetSessionAttrs = checkEnum('PGTARGETSESSIONATTRS', env.PGTARGETSESSIONATTRS, TARGET_SESSION_ATTRS)
    if (env.PGOPTIONS) out.options = checkStartupString('PGOPTIONS', env.PGOPTIONS)
    // PGTZ, PGDATESTYLE, PGGEQO: libpq sends them at the start of every session (timezone, datestyle, geqo)
    const settings = envSessionSettings(env)
    if (settings.length > 0) {
      out.options = withSettings(out.options as string | undefined, settings)
      ;(out as Record<symbol, unknown>)[ENV_SESSION_SETTINGS] = settings
    }
    if (env.PGAPPNAME) out.applicationName = checkStartupString('PGAPPNAME', env.PGAPPNAME)
    if (env.PGCONNECT_TIMEOUT && given.connectTimeoutMs === undefined)
      out.connectTimeoutMs = connectTimeoutMs(parseLibpqInteger('PGCONNECT_TIMEOUT', env.PGCONNECT_TIMEOUT))
    return out as DatabaseOptions
  }

  /** Whether a password (or a password function) is set. */
  get hasPassword(): boolean {
    return this.#password !== undefined
  }

  /**
   * `text` with this config's password replaced by `[REDACTED]` where it stands as a secret (core's
   * `redactSecrets` rule: URL passwords and `password=` values always; the password itself as a whole
   * value, quoted or a whole word, never inside a longer word; only in URLs and `password=` when it
   * equals the user, database, a host or the application name, which messages show anyway), when the
   * password is a string (what a password function returns is known only once called: the manager
   * hides those). For log lines and spans, before any connection has told the manager its password.
   */
  redactPassword(text: string): string {
    const password = this.#password
    if (typeof password !== 'string' || password.length === 0 || !text.includes(password)) return redactSecrets(text)
    return redactSecrets(text, [password], this.shownNames)
  }

  /**
   * The names every message about this database shows as themselves: the user name, the database, the
   * application name and every host (defaults included: `postgres`, `dbpool`, `localhost`). A secret
   * equal to one of them is hidden only where it stands as a secret by position (redactSecrets'
   * `shown`): hiding the name elsewhere would tell the secret. The one list core, the Postgres manager
   * and the CLI's scrubber use (see {@link DatabaseConfig.shownNamesOfUrl}).
   */
  get shownNames(): readonly string[] {
    return [this.username, this.database, this.applicationName, ...this.hosts.map((h) => h.host)]
  }

  /**
   * {@link DatabaseConfig.shownNames} of the config `fromUrl(url)` would give (the same defaults:
   * user `postgres`, database the user, application `dbpool`, host `localhost`), without checking or
   * reading anything else (no root certificate file is read); with a query that does not parse, those of
   * the URL without it; `[]` for a URL that does not parse otherwise or is not a `postgres://` URL. For a scrubber that must know the names before (or without) a config.
   */
  static shownNamesOfUrl(url: string): string[] {
    let parsed: ParsedPostgresUrl
    try {
      parsed = parsePostgresUrl(url, '')
    } catch {
      // a bad query parameter (refused later, its message showing the rest): the names before it still count
      try {
        parsed = parsePostgresUrl(url.replace(/[?#][^]*$/, ''), '')
      } catch {
        return []
      }
    }
    const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v)
    const username = nonEmpty(parsed.user) ?? 'postgres'
    const database = nonEmpty(parsed.database) ?? username
    const applicationName = nonEmpty(parsed.params.application_name) ?? nonEmpty(parsed.params.fallback_application_name) ?? 'dbpool'
    const hosts = parsed.hosts.length === 0 ? ['localhost'] : parsed.hosts.map((h) => h.host || 'localhost')
    return [username, database, applicationName, ...hosts]
  }

  /** Resolves the password, calling the password function if one was given. */
  async resolvePassword(): Promise<string | undefined> {
    const source = this.#password
    if (typeof source !== 'function') return source
    const value = await source()
    if (typeof value !== 'string') throw configError('database.password', '[function result]', 'the password function must return a string')
    return checkPasswordText(value, '[function result]')
  }

  /**
   * A copy with some options changed (the password is kept unless given). Hosts and ports are two
   * lists, as in libpq, each replaced on its own: `port` alone moves every host to that port
   * (`db1:5433,db2:5434` with `{ port: 6432 }` is `db1:6432,db2:6432`); `host` or `hosts` replaces the
   * host names and keeps the ports (one port for all, or one per host: a count that does not match,
   * such as `{ host }` on `db1:5433,db2:5434`, is CONFIGURATION naming `database.host`; give `port`
   * too); a `hosts` entry naming a port, or `port`, gives the ports with it. An option given as
   * `undefined` is not given (it keeps the current value, never the default).
   */
  with(changes: DatabaseOptions): DatabaseConfig {
    // an option given as undefined is not given: it keeps the current value (sslMode stays verify-full)
    const raw = definedOptions(requireObject('database', changes))
    const current: Record<string, unknown> = { ...this.toJSON(), ...(this.#password === undefined ? {} : { password: this.#password }) }
    if (this.sslRootCert !== undefined) current.sslRootCert = this.sslRootCert
    const target = overlayHosts(resolvedHostsOf(this.hosts), targetHostsOf(raw))
    const hostOptions = hostOptionsOf(target, raw.hosts !== undefined ? 'database.hosts' : 'database.host')
    return new DatabaseConfig({ ...withoutHosts(current), ...withoutHosts(raw), ...hostOptions } as DatabaseOptions)
  }

  /** The redacted target: `postgres://user@host:port/database`, every host listed (`h1:5432,h2:5433`). */
  toString(): string {
    const hosts = this.hosts.map((h) => `${hostText(h.host)}:${h.port}`).join(',')
    return `postgres://${encodeURIComponent(this.username)}@${hosts}/${encodeURIComponent(this.database)}`
  }

  /** Every option except the password (shown as `[REDACTED]` when set). */
  toJSON(): Omit<DatabaseOptions, 'password'> & { password?: string } {
    return {
      ...(this.hosts.length === 1 ? { host: this.host, port: this.port } : { hosts: this.hosts }),
      targetSessionAttrs: this.targetSessionAttrs,
      connectTimeoutMs: this.connectTimeoutMs,
      ...(this.options === undefined ? {} : { options: this.options }),
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
  if (typeof value === 'string') return checkPasswordText(value, '[hidden]')
  if (typeof value === 'function') return value as PasswordSource
  // never echo the value: it is meant to be a secret
  throw configError('database.password', '[hidden]', 'must be a string or a function returning one')
}

/** A password with a NUL character (U+0000) would be cut there in the password message: refused, never shown. */
function checkPasswordText(value: string, shown: string): string {
  if (value.includes('\u0000'))
    throw configError('database.password', shown, 'contains a NUL character (U+0000): the password message would end there')
  return value
}

/**
 * The host options PGHOST and PGPORT give (see {@link DatabaseConfig.envDefaults}): one host `host`,
 * several `hosts` (an empty name `localhost`); one port `port`, for every host; several ports, one per
 * host in PGHOST (another count is CONFIGURATION naming PGPORT). As libpq pairs the FINAL host list
 * with the FINAL port list, a list the URL (`url`) gives itself replaces the variable's before they
 * are paired: PGHOST is not read when the URL names hosts, PGPORT not when it gives ports (the URL's
 * hosts then pair with PGPORT's ports, its ports with PGHOST's names, in `fromUrl`).
 */
function envHostOptions(env: NodeJS.ProcessEnv, url: UrlHostLists): Record<string, unknown> {
  const ports =
    env.PGPORT && !url.ports ? env.PGPORT.split(',').map((p) => checkInteger('PGPORT', parseEnvInteger('PGPORT', p), 1, 65_535)) : []
  if (url.names !== undefined) {
    // the URL's names replace PGHOST's: PGPORT's ports are paired with them (in fromUrl, hostOptionsOf)
    if (ports.length <= 1) return ports.length === 1 ? { port: ports[0] } : {}
    if (ports.length === url.names) return { hosts: ports.map((port) => ({ host: 'localhost', port })) }
    throw configError(
      'PGPORT',
      env.PGPORT,
      `${ports.length} ports for the ${url.names} host${url.names > 1 ? 's' : ''} of the URL; libpq: "could not match ${ports.length} port numbers to ${url.names} hosts" (one port for all, or one per host)`,
    )
  }
  const hosts = env.PGHOST ? env.PGHOST.split(',').map((host) => host || 'localhost') : []
  if (url.ports) return hosts.length > 1 ? { hosts: hosts.map((host) => ({ host })) } : hosts.length === 1 ? { host: hosts[0] } : {}
  if (ports.length > 1) {
    const list = hosts.length > 0 ? hosts : ['localhost']
    if (ports.length !== list.length)
      throw configError(
        'PGPORT',
        env.PGPORT,
        `${ports.length} ports for ${list.length} hosts in PGHOST (one port for all, or one per host)`,
      )
    return { hosts: list.map((host, i) => ({ host, port: ports[i] })) }
  }
  const out: Record<string, unknown> =
    hosts.length > 1 ? { hosts: hosts.map((host) => ({ host })) } : hosts.length === 1 ? { host: hosts[0] } : {}
  if (ports.length === 1) out.port = ports[0]
  return out
}

function optionalMs(key: string, value: unknown): number {
  return value === undefined ? 0 : checkInteger(`database.${key}`, value, 0, MAX_MS)
}

/** `options` without its host list (`host`, `port`, `hosts`): that goes through {@link hostOptionsOf}. */
function withoutHosts(options: object): Record<string, unknown> {
  const { host: _host, port: _port, hosts: _hosts, ...rest } = options as Record<string, unknown>
  return rest
}

function fromParsed(parsed: ParsedPostgresUrl): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const p = parsed.params
  const str = (v: string | undefined): string | undefined => (v !== undefined && v.length > 0 ? v : undefined)
  const port = (v: string | undefined): number | undefined => (str(v) === undefined ? undefined : urlPort(v!))
  if (parsed.hosts.length > 1) {
    out.hosts = parsed.hosts.map((h) => ({ host: h.host || 'localhost', ...(port(h.port) === undefined ? {} : { port: port(h.port) }) }))
  } else if (parsed.hosts.length === 1) {
    const only = parsed.hosts[0]!
    if (str(only.host)) out.host = only.host
    if (port(only.port) !== undefined) out.port = port(only.port)
  }
  if (str(parsed.database)) out.database = parsed.database
  if (str(parsed.user)) out.username = parsed.user
  if (str(parsed.password)) out.password = parsed.password
  if (str(p.sslmode)) out.sslMode = checkEnum('database.url sslmode', p.sslmode, [...SSL_MODES, 'no-verify'] as const)
  if (out.sslMode === 'no-verify') out.sslMode = 'require'
  if (str(p.sslrootcert)) out.sslRootCert = readRootCert('database.url sslrootcert', p.sslrootcert!)
  if (out.sslRootCert === SYSTEM_ROOT_CERT && out.sslMode !== undefined && out.sslMode !== 'verify-full')
    throw configError('database.url sslmode', p.sslmode, 'sslrootcert=system needs sslmode=verify-full, as in libpq')
  if (str(p.application_name)) out.applicationName = p.application_name
  // below the defaults (PGAPPNAME): see fromUrl
  if (str(p.fallback_application_name)) out.fallbackApplicationName = p.fallback_application_name
  if (str(p.options)) out.options = p.options
  if (str(p.connect_timeout)) out.connectTimeoutMs = connectTimeoutMs(parseLibpqInteger('database.url connect_timeout', p.connect_timeout!))
  if (str(p.target_session_attrs))
    out.targetSessionAttrs = checkEnum('database.url target_session_attrs', p.target_session_attrs, TARGET_SESSION_ATTRS)
  if (str(p.statement_timeout)) out.statementTimeoutMs = urlMs('statement_timeout', p.statement_timeout!)
  if (str(p.idle_in_transaction_session_timeout))
    out.idleInTransactionTimeoutMs = urlMs('idle_in_transaction_session_timeout', p.idle_in_transaction_session_timeout!)
  if (str(p.lock_timeout)) out.lockTimeoutMs = urlMs('lock_timeout', p.lock_timeout!)
  if (p.pgbouncer !== undefined) out.pgbouncer = checkEnum('database.url pgbouncer', p.pgbouncer, ['true', 'false'] as const) === 'true'
  return out
}

/** A startup setting libpq takes from the environment: `[variable, setting, value]`. */
type EnvSessionSetting = readonly [string, string, string]

/** @internal Where envDefaults keeps its {@link EnvSessionSetting}s for fromUrl (a symbol: no option, never shown). */
const ENV_SESSION_SETTINGS: unique symbol = Symbol('dbpool.envSessionSettings') as never

/** libpq's EnvironmentOptions (fe-connect.c): the variable and the setting it gives every session. */
const ENV_SESSION_VARIABLES: readonly (readonly [string, string])[] = [
  ['PGDATESTYLE', 'DateStyle'],
  ['PGTZ', 'TimeZone'],
  ['PGGEQO', 'geqo'],
]

/**
 * The settings PGDATESTYLE, PGTZ and PGGEQO give, as libpq sends them at the start of every session
 * (a value `default`, any case, is not sent, as libpq); checked as startup strings naming the variable.
 */
function envSessionSettings(env: NodeJS.ProcessEnv): EnvSessionSetting[] {
  const out: EnvSessionSetting[] = []
  for (const [variable, setting] of ENV_SESSION_VARIABLES) {
    const value = env[variable]
    if (value && value.toLowerCase() !== 'default') out.push([variable, setting, checkStartupString(variable, value)])
  }
  return out
}

/**
 * `options` with `-c setting=value` added for each of `settings` it does not set itself (an explicit
 * `-c timezone=...` / `--timezone=...`, any case, wins); blanks and backslashes of a value escaped
 * with a backslash, as the server splits `options` at blanks.
 */
function withSettings(options: string | undefined, settings: readonly EnvSessionSetting[]): string | undefined {
  const named = new Set(
    [...(options ?? '').matchAll(/(?:-c\s*|--)([A-Za-z_][\w.]*)\s*=/g)].map((m) => m[1]!.toLowerCase().replace(/-/g, '_')),
  )
  const added = settings
    .filter(([, setting]) => !named.has(setting.toLowerCase()))
    .map(([, setting, value]) => `-c ${setting}=${value.replace(/[\\\s]/g, (c) => `\\${c}`)}`)
  if (added.length === 0) return options
  return [options, ...added].filter((part) => part !== undefined && part !== '').join(' ')
}

/**
 * A URL's port, checked where it is read (an error names `database.url port`, never the code option
 * `database.port`). A port that is not a number is not shown: in a URL whose `@host` is missing
 * (`postgres://app:Hunter2Secret/ledger`) it is the password.
 */
function urlPort(text: string): number {
  if (!/^\s*\d+\s*$/.test(text))
    throw configError(
      'database.url port',
      '[hidden]',
      'must be an integer between 1 and 65535 (not shown: a port that is not a number may be the password of a URL whose "@host" is missing)',
    )
  return checkInteger('database.url port', Number(text.trim()), 1, 65_535)
}

/** A URL's timeout in ms (`statement_timeout`...), range-checked naming the parameter. */
function urlMs(name: string, text: string): number {
  return checkInteger(`database.url ${name}`, parseEnvInteger(`database.url ${name}`, text), 0, MAX_MS)
}

/**
 * libpq's connect_timeout in seconds (pqConnectDBComplete): 0 or less means none (here: the
 * manager's), 1 counts as 2 (libpq's least), capped at the longest Node.js timer (about 24.8 days).
 */
function connectTimeoutMs(seconds: number): number {
  if (seconds <= 0) return 0
  return Math.min(Math.max(seconds, 2) * 1000, MAX_MS)
}

/** The PEM text of the root certificate file `path` (checked: see checkRootCert), or `system` as it is. */
function readRootCert(option: string, path: string): string {
  if (path === SYSTEM_ROOT_CERT) return path
  let pem: string
  try {
    pem = readFileSync(path, 'utf8')
  } catch (err) {
    throw configError(option, path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  return checkRootCert(option, pem, path)
}

/**
 * PGSSLROOTCERT as libpq reads it for a target of TLS mode `mode` (`undefined`: not known yet, see
 * {@link EnvDefaultsGiven.deferTlsCheck}; the caller checks with {@link checkLibpqRootCertEnv}):
 * `system` always (libpq 16 refuses it with a weaker mode, even `disable`); with `disable` the file is
 * not read; a file that does not exist is ignored unless the mode is `verify-ca` / `verify-full`
 * (libpq: no root certificate, no chain check for `prefer` / `require`), refused then; one that
 * exists is read and checked (`undefined` when ignored).
 */
function envRootCert(path: string, mode: string | undefined): string | undefined {
  if (path === SYSTEM_ROOT_CERT) return path
  if (mode === 'disable') return undefined
  if (!existsSync(path) && mode !== 'verify-ca' && mode !== 'verify-full') return undefined
  return readRootCert('PGSSLROOTCERT', path)
}

/**
 * @internal For a target whose environment was read with `deferTlsCheck` (a replica URL): throws
 * CONFIGURATION naming PGSSLROOTCERT when it names a file that does not exist and the target's final
 * `mode` is `verify-ca` / `verify-full` without a root certificate of its own, as libpq refuses it.
 */
export function checkLibpqRootCertEnv(env: NodeJS.ProcessEnv, mode: string, sslRootCert: string | undefined): void {
  if (sslRootCert === undefined && env.PGSSLROOTCERT && (mode === 'verify-ca' || mode === 'verify-full'))
    envRootCert(env.PGSSLROOTCERT, mode)
}

function checkHosts(value: unknown, defaultPort: number): readonly ResolvedHost[] {
  if (!Array.isArray(value) || value.length === 0) throw configError('database.hosts', value, 'must be a non-empty array of { host, port }')
  return Object.freeze(
    value.map((entry: unknown, i) => {
      const raw = requireObject(`database.hosts[${i}]`, entry)
      rejectUnknownKeys(`database.hosts[${i}]`, raw, ['host', 'port'])
      const host = checkStartupString(`database.hosts[${i}].host`, raw.host)
      const port = raw.port === undefined ? defaultPort : checkInteger(`database.hosts[${i}].port`, raw.port, 1, 65_535)
      return Object.freeze({ host, port })
    }),
  )
}

/** A host as a URL writes it: a socket directory percent-encoded, an IPv6 address in brackets. */
function hostText(host: string): string {
  return host.startsWith('/') ? encodeURIComponent(host) : host.includes(':') ? `[${host}]` : host
}

/** Which host lists a caller's URL gives itself: how many host names (`undefined`: none), whether ports. */
interface UrlHostLists {
  readonly names: number | undefined
  readonly ports: boolean
}

/** The host lists of `given.url` (none when there is no URL or it does not parse: `fromUrl` refuses it then). */
function givenHostLists(given: EnvDefaultsGiven): UrlHostLists {
  if (given.url === undefined) return { names: undefined, ports: false }
  try {
    const { hosts } = parsePostgresUrl(given.url, '')
    const names = hosts.length > 1 || (hosts.length === 1 && hosts[0]!.host !== '') ? hosts.length : undefined
    return { names, ports: hosts.some((h) => h.port !== undefined && h.port !== '') }
  } catch {
    return { names: undefined, ports: false }
  }
}

/**
 * The TLS mode a caller sets above the environment (see {@link EnvDefaultsGiven}): `given.sslMode`,
 * else the URL's `sslmode` (`no-verify` is `require`), else `undefined`. A bad URL or mode is left to
 * `fromUrl`, which refuses it naming it: here it counts as a mode that may use TLS.
 */
function givenSslMode(given: EnvDefaultsGiven): string | undefined {
  if (typeof given.sslMode === 'string') return given.sslMode
  if (given.sslMode !== undefined || given.url === undefined) return given.sslMode === undefined ? undefined : 'require'
  try {
    const mode = parsePostgresUrl(given.url, redactUrl(given.url)).params.sslmode
    return mode ? mode : undefined
  } catch {
    return 'require'
  }
}
