import { DatabaseConfig, type DatabaseOptions } from '../config/database-config'
import type { PoolConfig, PoolOptions } from '../config/pool-config'
import { configError, definedOptions, rejectUnknownKeys, requireObject } from '../config/validate'
import { DatabaseError } from '../errors/database-error'
import { redactUrlPasswords } from '../util/redact'
import { checkPoolOptionKeys, type DatabasePool, type DatabasePoolOptions } from '../pool/database-pool'

/** What `@dbpool/postgres` exports for the factory. */
export interface PostgresBackendModule {
  createPostgresPool(
    config: DatabaseConfig,
    poolConfig?: PoolConfig | PoolOptions,
    options?: Record<string, unknown>,
  ): DatabasePool<unknown>
}

/** What `@dbpool/sqlite` exports for the factory. */
export interface SqliteBackendModule {
  createSqlitePool(
    path: string,
    poolConfig?: PoolConfig | PoolOptions,
    options?: Record<string, unknown>,
    poolOptions?: DatabasePoolOptions,
  ): DatabasePool<unknown>
}

/** Loads a backend package by name; replaceable in tests. */
export type ModuleImporter = (name: string) => Promise<unknown>

const defaultImporter: ModuleImporter = (name) => import(name)

/** @internal Loads a backend package on demand; a missing package is a CONFIGURATION error naming it. */
export async function loadBackend<T>(
  name: '@dbpool/postgres' | '@dbpool/sqlite',
  exportName: string,
  importer: ModuleImporter = defaultImporter,
): Promise<T> {
  let mod: unknown
  try {
    mod = await importer(name)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes(name)) {
      throw new DatabaseError('CONFIGURATION', `the ${name} package is not installed: run \`npm install ${name}\``, {
        cause: err,
        detail: { package: name },
      })
    }
    throw err
  }
  const candidate = pick(mod, exportName) ?? pick((mod as { default?: unknown }).default, exportName)
  if (!candidate)
    throw new DatabaseError('CONFIGURATION', `${name} does not export ${exportName}: install a matching version`, {
      detail: { package: name },
    })
  return candidate as T
}

function pick(mod: unknown, exportName: string): unknown {
  return mod && typeof (mod as Record<string, unknown>)[exportName] === 'function' ? mod : undefined
}

/**
 * Splits a `sqlite:` URL into a path: `sqlite:./app.db`, `sqlite:///abs/app.db`, `sqlite::memory:`;
 * `%XX` escapes are decoded (`%20` a space, `%25` a `%`, `%3F` a `?`).
 *
 * Throws CONFIGURATION (option `url`) for a URL without a path, for a malformed escape (a `%` not
 * followed by two hex digits: write `%25`), and for a query string: a `sqlite:` URL takes no
 * parameters, and `?mode=ro` or `?journal_mode=delete` ignored would open the database read-write, in
 * WAL (set SQLite options, `readonly`, `journalMode`, ..., as backend options or in the config file).
 * The error names the parameters, never their values (the URL is shown with its query as `?...`).
 */
export function sqlitePathFromUrl(url: string): string {
  const rest = url.replace(/^sqlite:/i, '')
  if (rest === ':memory:' || rest === '//:memory:') return ':memory:'
  let path = rest.startsWith('//') ? rest.slice(2) : rest
  if (path.length === 0)
    throw configError('url', shownSqliteUrl(url), 'a sqlite: URL needs a path, e.g. sqlite:./data/app.db or sqlite::memory:')
  const query = path.indexOf('?')
  if (query >= 0) {
    // named, never shown: a value may be a key (?key=..., SQLCipher's) or a password
    const names = path
      .slice(query + 1)
      .split('&')
      .filter((pair) => pair.length > 0)
      .map((pair) => parameterName(pair.split('=')[0] ?? ''))
    throw configError(
      `url?${names[0] ?? ''}`,
      shownSqliteUrl(url),
      `a sqlite: URL takes no query parameters (${names.length > 0 ? names.join(', ') : 'an empty query'} would be ignored): set SQLite options (readonly, journalMode, ...) as backend options or in the config file; write a ? in a file name as %3F`,
    )
  }
  if (rest.startsWith('//')) path = withoutAuthority(url, path)
  try {
    return decodeURIComponent(path)
  } catch (err) {
    throw new DatabaseError(
      'CONFIGURATION',
      `invalid url ${JSON.stringify(shownSqliteUrl(url))}: a malformed %-escape in the path (write a % as %25)`,
      {
        cause: err,
        detail: { option: 'url', rule: 'malformed %-escape' },
      },
    )
  }
}

/**
 * The path of a `sqlite://...` URL after its `//`, read as RFC 8089 reads a `file://` URL: an empty
 * authority or `localhost` is this machine and the path after it is absolute
 * (`sqlite://localhost/var/db/a.db` is `/var/db/a.db`, as `sqlite:///var/db/a.db`). Any other host
 * or a user-info part (`sqlite://db.internal/a.db`, `sqlite://u:pw@/a.db`) is refused (CONFIGURATION):
 * read as a relative path it would open, and create, a new empty database under the working
 * directory (`./localhost/var/db/a.db`). Kept as before: `sqlite://./a.db`, `sqlite://../a.db` and a
 * bare file name (`sqlite://a.db`), which have no other reading.
 */
function withoutAuthority(url: string, afterSlashes: string): string {
  const slash = afterSlashes.indexOf('/')
  if (slash < 0) {
    if (!afterSlashes.includes('@')) return afterSlashes
  } else {
    const authority = afterSlashes.slice(0, slash)
    if (authority === '' || authority === '.' || authority === '..') return afterSlashes
    if (authority.toLowerCase() === 'localhost') return afterSlashes.slice(slash)
  }
  throw configError(
    'url',
    shownSqliteUrl(url),
    'a sqlite: URL names a file on this machine, not a host or a user: write sqlite:///abs/path/app.db (or sqlite://localhost/abs/path/app.db) for an absolute path, sqlite:./app.db for a relative one',
  )
}

/**
 * A `sqlite:` URL as errors show it: the query (whose values may be keys or passwords) as `?...`, and
 * any `scheme://user:password@` password redacted.
 */
function shownSqliteUrl(url: string): string {
  const query = url.indexOf('?')
  return redactUrlPasswords(query >= 0 ? `${url.slice(0, query)}?...` : url)
}

/** A query parameter's name as errors show it: a name-like word (`key`, `mode`, `journal_mode`), else a placeholder (it may be a value). */
function parameterName(raw: string): string {
  return /^[A-Za-z_][\w.-]{0,63}$/.test(raw) ? raw : '(a parameter)'
}

const CREATE_OPTION_KEYS = ['backend', 'pool', 'database', 'importer'] as const

/** Options of {@link PoolFactory.create}. */
export interface CreatePoolOptions {
  /** Backend options passed through (SQLite options, Postgres manager options). */
  readonly backend?: Record<string, unknown>
  /** Pool options for either backend, e.g. `{ metrics }` from a metrics registry. */
  readonly pool?: DatabasePoolOptions
  /** Overrides applied to a Postgres URL's settings; with a `sqlite:` URL, CONFIGURATION (unless every value is `undefined`). */
  readonly database?: DatabaseOptions
  /** Replaces `import()` (tests). */
  readonly importer?: ModuleImporter
}

/**
 * Builds pools, choosing the backend from the URL scheme and loading its package on demand, so an
 * app that only uses SQLite never loads `pg` (and vice versa).
 *
 * ```ts
 * const pool = await PoolFactory.create(process.env.DATABASE_URL ?? 'sqlite:./data/app.db', { max: 10 })
 * ```
 */
export class PoolFactory {
  private constructor() {}

  /**
   * `postgres://` / `postgresql://` → @dbpool/postgres; `sqlite:` → @dbpool/sqlite. An unknown key in
   * `options` (a typo such as `backnd`, whose backend options would be ignored) is CONFIGURATION.
   * A Postgres URL is a connection string as libpq reads one: `options.database` first, then the URL,
   * then what the libpq variables of `process.env` fill in ({@link DatabaseConfig.envDefaults}: PGUSER,
   * PGPORT, PGSSLMODE, PGOPTIONS...; a variable dbpool cannot honour is CONFIGURATION naming it); for no
   * environment, give {@link createPostgresPool} a `DatabaseConfig.fromUrl(url)`.
   */
  static async create(url: string, poolConfig?: PoolConfig | PoolOptions, options: CreatePoolOptions = {}): Promise<DatabasePool<unknown>> {
    // a non-string by its kind only (a WHATWG URL object would print its href, password included)
    if (typeof url !== 'string' || url.length === 0)
      throw configError(
        'url',
        typeof url === 'object' && url !== null ? `[${kindOf(url)}]` : url,
        'must be a postgres://, postgresql:// or sqlite: URL',
      )
    rejectUnknownKeys('create', requireObject('create', options), CREATE_OPTION_KEYS)
    // named pool.<key> on both backends (Postgres would merge them into its own options first)
    checkPoolOptionKeys(options.pool)
    if (/^postgres(ql)?:\/\//i.test(url)) {
      // as libpq fills in every connection string from its variables
      // an explicit backend.connectTimeoutMs beats PGCONNECT_TIMEOUT (written in code, not ambient)
      // and PGSSLCERT, PGSSLKEY... are read only when the target may use TLS (not with sslmode=disable)
      const given = {
        url,
        sslMode: (options.database as { sslMode?: unknown } | undefined)?.sslMode,
        connectTimeoutMs: (options.backend as { connectTimeoutMs?: unknown } | undefined)?.connectTimeoutMs,
      }
      const config = DatabaseConfig.fromUrl(url, options.database, DatabaseConfig.envDefaults(process.env, given))
      return PoolFactory.createPostgresPool(config, poolConfig, options)
    }
    if (/^sqlite:/i.test(url)) {
      const path = sqlitePathFromUrl(url)
      // Postgres target overrides would be ignored (an option given as undefined is not given)
      const given = Object.keys(definedOptions(requireObject('create.database', options.database)))
      if (given.length > 0)
        throw configError(
          'create.database',
          `{ ${given.join(', ')} }`,
          'Postgres target options do not apply to a sqlite: URL (they would be ignored)',
        )
      const backend = await loadBackend<SqliteBackendModule>('@dbpool/sqlite', 'createSqlitePool', options.importer)
      return backend.createSqlitePool(path, poolConfig, options.backend, options.pool)
    }
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]
    throw configError('url', scheme ? `${scheme}:...` : '[unrecognised]', 'must be a postgres://, postgresql:// or sqlite: URL')
  }

  /** A Postgres pool from a {@link DatabaseConfig}. */
  static async createPostgresPool(
    config: DatabaseConfig,
    poolConfig?: PoolConfig | PoolOptions,
    options: CreatePoolOptions = {},
  ): Promise<DatabasePool<unknown>> {
    const backend = await loadBackend<PostgresBackendModule>('@dbpool/postgres', 'createPostgresPool', options.importer)
    // the Postgres package takes its pool options (metrics, metricsOptions) among its backend options
    return backend.createPostgresPool(
      config,
      poolConfig,
      options.pool ? { ...options.backend, ...definedOptions(options.pool as Record<string, unknown>) } : options.backend,
    )
  }

  /** A SQLite pool on a file path (or `:memory:`). */
  static async createSqlitePool(
    path: string,
    poolConfig?: PoolConfig | PoolOptions,
    sqliteOptions?: Record<string, unknown>,
    importer?: ModuleImporter,
  ): Promise<DatabasePool<unknown>> {
    const backend = await loadBackend<SqliteBackendModule>('@dbpool/sqlite', 'createSqlitePool', importer)
    return backend.createSqlitePool(path, poolConfig, sqliteOptions)
  }
}

/** The class name of an object (`URL`, `Object`), else `object`. */
function kindOf(value: object): string {
  return (value as { constructor?: { name?: unknown } }).constructor?.name === undefined
    ? 'object'
    : String((value as { constructor: { name: unknown } }).constructor.name)
}
