import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, resolve } from 'node:path'
import { DatabaseError, DEFAULT_POOL_OPTIONS, PoolConfig, type PoolOptions } from '@dbpool/core'
import { credentialSecrets, scrubSecrets } from './secrets'

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
}

/** A parsed configuration file. */
export interface ConfigFile {
  /** The file's absolute path. */
  readonly path: string
  readonly pools: readonly PoolDefinition[]
  /** Secrets the file holds (URL passwords, values of `password`/`secret`/`token`-like keys at any depth): output is scrubbed of them. */
  readonly secrets: readonly string[]
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
    const position = err as { line?: unknown; column?: unknown }
    const where = typeof position.line === 'number' ? ` at line ${position.line}, column ${String(position.column)}` : ''
    throw new DatabaseError('CONFIGURATION', `${file}: cannot be parsed${where}: ${parseReason(err, text)}`, {
      cause: err,
      detail: { file: path },
    })
  }
  const root = table(data, file)
  for (const key of Object.keys(root)) {
    if (key !== 'pools') throw keyError(`${file} ${key}`, 'unknown section; the file has one [pools.<name>] table per pool')
  }
  const pools = table(root.pools ?? {}, `${file} pools`)
  const definitions = Object.entries(pools).map(([name, entry]) => poolDefinition(file, name, entry, env))
  const primaries = definitions.filter((d) => d.primary)
  if (primaries.length > 1)
    throw keyError(`${file} primary`, `only one pool may be primary (${primaries.map((p) => p.name).join(', ')} are)`)
  return { path: resolve(path), pools: definitions, secrets: fileSecrets(root) }
}

/** Reads and parses a config file; without `path`, the first of {@link CONFIG_FILE_NAMES} found in `cwd`. */
export async function loadConfigFile(path: string | undefined, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigFile | undefined> {
  const chosen = path ? resolve(cwd, path) : CONFIG_FILE_NAMES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate))
  if (!chosen) return undefined
  let text: string
  try {
    text = await readFile(chosen, 'utf8')
  } catch (err) {
    throw new DatabaseError(
      'CONFIGURATION',
      `cannot read the config file ${chosen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err, detail: { file: chosen } },
    )
  }
  return await parseConfigFile(chosen, text, env)
}

function poolDefinition(file: string, name: string, entry: unknown, env: NodeJS.ProcessEnv): PoolDefinition {
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
    // PoolConfig's message shows the value: only the key and the rule are repeated
    if (DatabaseError.is(err, 'CONFIGURATION')) {
      const { option, rule } = (err.detail ?? {}) as { option?: unknown; rule?: unknown }
      const message =
        typeof option === 'string' && typeof rule === 'string'
          ? `invalid ${scope}.${option.replace(/^pool\./, '')}: ${rule}`
          : `invalid ${scope}: see --verbose`
      throw new DatabaseError('CONFIGURATION', message, { cause: err, detail: err.detail })
    }
    throw err
  }
  return { name, url: resolvedUrl, primary: primary === true, pool: poolOptions, backend: backendOptions }
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

/**
 * The parser's reason, without the quoted source text V8 adds to JSON errors (`"..." is not valid
 * JSON`) and scrubbed of every secret-looking value in the file: the file could not be read, so
 * nothing else knows them yet.
 */
function parseReason(err: unknown, text: string): string {
  const first = ((err as Error).message.split('\n')[0] ?? '').trim()
  const reason = first.replace(/,?\s*".*" is not valid JSON$/s, ' (not valid JSON)')
  const quoted = [...text.matchAll(/(?:pass|pwd|secret|token|credential)\w*"?\s*[=:]\s*"([^"\n]*)/gi)].map((m) => m[1] ?? '')
  return scrubSecrets(reason, [...credentialSecrets(text), ...quoted])
}
