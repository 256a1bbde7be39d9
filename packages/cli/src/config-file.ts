import { existsSync, realpathSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { basename, dirname, isAbsolute, resolve } from 'node:path'
import { DatabaseError, DEFAULT_POOL_OPTIONS, PoolConfig, sqlitePathFromUrl, type PoolOptions } from '@dbpool/core'
import { credentialSecrets, scrubSecrets, urlShownNames } from './secrets'
import { isErrorLike } from '@dbpool/core/internal'

/** One named pool as the configuration describes it. */
export interface PoolDefinition {
  /** The name under `[pools.<name>]` (or `default` for `--url` / `DATABASE_URL`). */
  readonly name: string
  /** `postgres://...`, `postgresql://...` or `sqlite:...`. */
  readonly url: string
  /** The pool commands use when none is named with `--pool`. */
  readonly primary: boolean
  /** Pool settings (min, max, acquireTimeoutMs, ...), validated by PoolConfig. */
  readonly pool: PoolOptions
  /** Options passed to the backend (SQLite options, Postgres manager options). */
  readonly backend: Readonly<Record<string, unknown>>
  /**
   * The environment whose libpq variables fill in what a Postgres URL leaves out, the replicas' URLs
   * (and `DATABASE_REPLICA_URLS`) included (`DatabaseConfig.envDefaults`: PGHOST, PGPORT, PGUSER,
   * PGPASSWORD, PGDATABASE, PGSSLMODE, PGREQUIRESSL, PGSSLROOTCERT, PGTARGETSESSIONATTRS, PGOPTIONS,
   * PGAPPNAME, PGCONNECT_TIMEOUT; a variable dbpool cannot honour, PGHOSTADDR or a security one, is
   * CONFIGURATION), read when the pool is opened (`openPool`): never for a pool a command does not
   * open. Set by `resolveConfig` for Postgres pools. Default is none (`process.env`, as
   * `PoolFactory.create` reads it).
   */
  readonly libpqEnv?: NodeJS.ProcessEnv
}

/** A parsed configuration file. */
export interface ConfigFile {
  /** The file's absolute path. */
  readonly path: string
  readonly pools: readonly PoolDefinition[]
  /** Secrets the file holds (URL passwords, values of `password`/`secret`/`token`-like keys at any depth): output is scrubbed of them. */
  readonly secrets: readonly string[]
  /**
   * Names the file gives that output shows as themselves (user, database, host, application name of
   * every `postgres://` URL, replicas' included, and of `username`/`database`/`host`/`applicationName`-like
   * keys at any depth): a secret equal to one is hidden only where it stands as a secret (see `scrubSecrets`).
   */
  readonly shownNames: readonly string[]
}

/** Names looked for in the working directory, in order. */
export const CONFIG_FILE_NAMES = ['dbpool.toml', 'dbpool.json'] as const

const POOL_KEYS = Object.keys(DEFAULT_POOL_OPTIONS)
const ENTRY_KEYS = ['url', 'urlEnv', 'primary', 'backend', ...POOL_KEYS]

/**
 * Reads `dbpool.toml` or `dbpool.json`: a `pools` table of named pools, each with a `url` (or
 * `urlEnv`, the name of a variable holding it), optional `primary = true`, pool settings in camelCase
 * or snake_case (`max`, `acquire_timeout_ms`, ...) and a `backend` table for the backend's own options.
 *
 * ```toml
 * [pools.ledger]
 * url = "postgres://app@db:5432/ledger"
 * primary = true
 * max = 20
 * acquire_timeout_ms = 5000
 *
 * [pools.cache]
 * url = "sqlite:./data/cache.db"
 * backend = { readers = 4 }
 * ```
 *
 * @throws DatabaseError CONFIGURATION naming the file, the pool and the key, never a value; a file
 *   that does not parse: `<file>: cannot be parsed at line L, column C: <reason>`, with no cause and
 *   no text of the file (smol-toml's code frame and V8's JSON excerpt are left out).
 */
export async function parseConfigFile(path: string, text: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigFile> {
  const file = basename(path)
  const json = path.toLowerCase().endsWith('.json')
  // smol-toml is an ES module: loaded on demand, and only for TOML files
  const toml = json ? undefined : await import('smol-toml')
  let data: unknown
  try {
    data = toml ? toml.parse(text) : JSON.parse(text)
  } catch (err) {
    // no cause: the parser's error quotes the source (smol-toml a code frame, V8 the text), and a
    // file that does not parse has registered none of its secrets yet
    throw parseError(path, text, err, json)
  }
  const root = table(data, file)
  for (const key of Object.keys(root)) {
    if (key !== 'pools') throw keyError(`${file} ${key}`, 'unknown section; the file has one [pools.<name>] table per pool')
  }
  const pools = table(root.pools ?? {}, `${file} pools`)
  // relative to the file itself: a symlinked config (/etc/app/dbpool.toml -> /srv/app/dbpool.toml) means its target's directory
  const directory = dirname(realFilePath(resolve(path)))
  const definitions = Object.entries(pools).map(([name, entry]) => poolDefinition(file, directory, name, entry, env))
  const primaries = definitions.filter((d) => d.primary)
  if (primaries.length > 1)
    throw keyError(`${file} primary`, `only one pool may be primary (${primaries.map((p) => p.name).join(', ')} are)`)
  return { path: resolve(path), pools: definitions, secrets: fileSecrets(root), shownNames: fileShownNames(root) }
}

/** Reads and parses a config file; without `path`, the first of {@link CONFIG_FILE_NAMES} found in `cwd`. */
export async function loadConfigFile(path: string | undefined, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigFile | undefined> {
  const chosen = path ? resolve(cwd, path) : CONFIG_FILE_NAMES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate))
  if (!chosen) return undefined
  let text: string
  try {
    text = await readBounded(chosen, MAX_CONFIG_BYTES)
  } catch (err) {
    if (DatabaseError.is(err)) throw err
    throw new DatabaseError(
      'CONFIGURATION',
      `cannot read the config file ${chosen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err, detail: { file: chosen } },
    )
  }
  return await parseConfigFile(chosen, text, env)
}

/** The largest config file read (bytes): a config is a few kB; `--config /dev/zero` took 620 MB before failing. */
export const MAX_CONFIG_BYTES = 1024 * 1024

/** The file's text, read at most `limit` bytes: CONFIGURATION when there is more (a device, a log file given by mistake). */
async function readBounded(path: string, limit: number): Promise<string> {
  const handle = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(limit + 1)
    let length = 0
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
      if (length > limit)
        throw new DatabaseError('CONFIGURATION', `the config file ${path} is larger than ${limit} bytes: is it the right file?`, {
          detail: { file: path },
        })
    }
    return buffer.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}

/** The real path of a file (symlinks followed), or `path` when it cannot be resolved (a text given without a file, in tests). */
function realFilePath(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}

function poolDefinition(file: string, directory: string, name: string, entry: unknown, env: NodeJS.ProcessEnv): PoolDefinition {
  const scope = `${file} pools.${name}`
  const raw = table(entry, scope)
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(raw)) {
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
    if (!ENTRY_KEYS.includes(camel)) throw keyError(`${scope}.${key}`, `unknown option; known options are ${ENTRY_KEYS.join(', ')}`)
    if (camel in options) throw keyError(`${scope}.${key}`, `is given twice (as ${camel} too)`)
    options[camel] = value
  }
  const { url, urlEnv, primary, backend, ...pool } = options
  if (url !== undefined && urlEnv !== undefined) throw keyError(`${scope}.url`, 'give url or urlEnv, not both')
  let resolvedUrl: unknown = url
  if (urlEnv !== undefined) {
    if (typeof urlEnv !== 'string' || urlEnv === '') throw keyError(`${scope}.urlEnv`, 'must name an environment variable')
    resolvedUrl = env[urlEnv]
    if (!resolvedUrl) throw keyError(`${scope}.urlEnv`, `the variable ${urlEnv} is not set`)
  }
  if (typeof resolvedUrl !== 'string' || resolvedUrl === '')
    throw keyError(`${scope}.url`, 'must be a postgres://, postgresql:// or sqlite: URL')
  if (primary !== undefined && typeof primary !== 'boolean') throw keyError(`${scope}.primary`, 'must be true or false')
  const backendOptions = backend === undefined ? {} : table(backend, `${scope}.backend`)
  const poolOptions = { name, ...pool } as PoolOptions
  // validated now so a bad value names the file and the pool
  try {
    new PoolConfig(poolOptions)
  } catch (err) {
    // PoolConfig's message (and stack) shows the value: only the key and the rule are repeated, and
    // the error is not kept as the cause (--verbose prints causes)
    if (DatabaseError.is(err, 'CONFIGURATION')) {
      const { option, rule } = (err.detail ?? {}) as { option?: unknown; rule?: unknown }
      const key = typeof option === 'string' ? `${scope}.${option.replace(/^pool\./, '')}` : scope
      throw keyError(key, typeof rule === 'string' ? rule : 'is not a valid pool setting')
    }
    throw err
  }
  // a path written in the file is relative to the file, wherever the command runs (cron, CI, a container's WORKDIR)
  const finalUrl = url === undefined ? resolvedUrl : sqliteUrlRelativeTo(directory, resolvedUrl)
  return { name, url: finalUrl, primary: primary === true, pool: poolOptions, backend: backendOptions }
}

/**
 * A `sqlite:` URL with a relative path (`sqlite:./data/app.db`, `sqlite:app.db`) made absolute
 * against `directory` (the config file's); any other URL (absolute, `:memory:`, Postgres, or one
 * the pool factory will refuse) as it is. The path is re-encoded as `sqlitePathFromUrl` decodes it.
 */
export function sqliteUrlRelativeTo(directory: string, url: string): string {
  if (!/^sqlite:/i.test(url)) return url
  let path: string
  try {
    // the pool factory's own reading (sqlite://localhost/abs is absolute; a host is refused there)
    path = sqlitePathFromUrl(url)
  } catch {
    return url
  }
  if (path === ':memory:' || isAbsolute(path)) return url
  return `sqlite:${resolve(directory, path).replace(/%/g, '%25').replace(/\?/g, '%3F')}`
}

function table(value: unknown, scope: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw keyError(scope, 'must be a table')
  return value as Record<string, unknown>
}

/** CONFIGURATION naming the key only: a config file's value is never echoed (it may be a password). */
function keyError(key: string, rule: string): DatabaseError {
  return new DatabaseError('CONFIGURATION', `invalid ${key}: ${rule}`, { detail: { option: key, rule } })
}

const SECRET_KEY = /pass|pwd|secret|token|credential|key$/i

/** URL passwords and values of secret-looking keys anywhere in the parsed file. */
function fileSecrets(value: unknown, key = ''): string[] {
  if (typeof value === 'string') return [...credentialSecrets(value), ...(SECRET_KEY.test(key) && value !== '' ? [value] : [])]
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => fileSecrets(v, Array.isArray(value) ? key : k))
}

const NAME_KEY = /^(?:user|username|database|dbname|host|hosts|applicationname|application_name)$/i

/** {@link ConfigFile.shownNames}: names of every URL and of name-like keys anywhere in the parsed file. */
function fileShownNames(value: unknown, key = ''): string[] {
  if (typeof value === 'string') return [...urlShownNames(value), ...(NAME_KEY.test(key) && value !== '' ? [value] : [])]
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => fileShownNames(v, Array.isArray(value) ? key : k))
}

/**
 * CONFIGURATION for a file that does not parse: file, line, column (1-based) and the parser's reason,
 * without any text of the file (no quoted source, no code frame, no cause), so no value of it can be
 * printed at any verbosity.
 */
function parseError(path: string, text: string, err: unknown, json: boolean): DatabaseError {
  const message = isErrorLike(err) ? err.message : String(err)
  const position = err as { line?: unknown; column?: unknown }
  let at: { line: number; column: number } | undefined
  if (typeof position.line === 'number' && typeof position.column === 'number') at = { line: position.line, column: position.column }
  else if (json) {
    const offset = jsonErrorOffset(text, message)
    if (offset !== undefined) at = lineAndColumn(text, offset)
  }
  const where = at ? ` at line ${at.line}, column ${at.column}` : ''
  return new DatabaseError('CONFIGURATION', `${basename(path)}: cannot be parsed${where}: ${parseReason(message, text)}`, {
    detail: { file: path, ...at },
  })
}

/**
 * The first line of the parser's message with everything it quotes removed (but JSON punctuation): V8 quotes the text
 * (`Unexpected token 'T', "{"password": T..." is not valid JSON`) and says `at position N` (given
 * as line and column instead); smol-toml adds a code frame after the first line.
 */
function parseReason(message: string, text: string): string {
  // V8's excerpt of the text (`Unexpected token 'T', ..."pw": T"... is not valid JSON`) may hold
  // quotes and line breaks: the whole message is replaced
  if (/is not valid JSON\s*$/.test(message)) return /^Unexpected token/.test(message) ? 'Unexpected token' : 'not valid JSON'
  const reason = (message.split('\n')[0] ?? '')
    // (?<!\s): tried once per run of blanks, not at each blank of it (quadratic)
    .replace(/(?<!\s)\s+at position \d+.*$/, '')
    .replace(/(?<!\s)\s+in JSON$/, '')
    // JSON punctuation V8 names ("Expected ',' or '}'") stays; any other quoted text goes
    .replace(/(["'`])(.*?)\1/g, (quoted, _q: string, inner: string) => (/^[,:{}[\]]$/.test(inner) ? quoted : ''))
    .replace(/["`]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
  return reason === '' ? 'syntax error' : scrubSecrets(reason, credentialSecrets(text), urlShownNames(text))
}

/**
 * The offset of the character V8's JSON.parse failed on: its `at position N`, the end of the text
 * for an unexpected end, else (an unexpected
 * token on Node.js 20 gives none) the shortest prefix of the text that fails before its end, found
 * by bisection (only on this error path).
 */
function jsonErrorOffset(text: string, message: string): number | undefined {
  const given = /at position (\d+)/.exec(message)
  if (given) return Math.min(Number(given[1]), text.length)
  if (/Unexpected end of JSON input/.test(message)) return text.length
  const failsInside = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n))
      return false
    } catch (e) {
      const m = isErrorLike(e) ? e.message : ''
      const at = /at position (\d+)/.exec(m)
      return at ? Number(at[1]) < n : !/Unexpected end of JSON input/.test(m)
    }
  }
  if (!failsInside(text.length)) return undefined
  let lo = 1
  let hi = text.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (failsInside(mid)) hi = mid
    else lo = mid + 1
  }
  return lo - 1
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset)
  const lastBreak = before.lastIndexOf('\n')
  return { line: before.split('\n').length, column: offset - lastBreak }
}
