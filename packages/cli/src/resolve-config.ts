import { DatabaseError, PoolConfig, configError, type PoolOptions } from '@dbpool/core'
import { loadConfigFile, type PoolDefinition } from './config-file'
import { credentialSecrets, envSecrets, envShownNames, hasAmbiguousCredentials, urlShownNames } from './secrets'

/** The flags that choose the configuration. */
export interface ConfigFlags {
  /** `--url`: one pool named `default`, ignoring the config file. */
  readonly url?: string
  /** `--config`: the config file (default: `dbpool.toml` or `dbpool.json` in the working directory, or `DBPOOL_CONFIG`). */
  readonly config?: string
}

/** The pools a command works on, and where they came from. */
export interface ResolvedConfig {
  readonly pools: readonly PoolDefinition[]
  /** `--url`, `DATABASE_URL`, or the config file's path. */
  readonly source: string
  /** Passwords found in the URLs, the environment (see `envSecrets`) and the config file: output is scrubbed of them. */
  readonly secrets: readonly string[]
  /**
   * Names output shows as themselves (user, database, host, application name) from the URLs, the
   * environment (see `envShownNames`) and the config file: a secret equal to one is hidden only where
   * it stands as a secret (see `scrubSecrets`), as core does.
   */
  readonly shownNames: readonly string[]
}

/**
 * Resolves the pools from, in order: `--url` (one pool, `default`); the config file, with the
 * environment overriding it (`DATABASE_URL` replaces the primary pool's URL, `DBPOOL_POOL_<SETTING>`
 * sets a pool setting for every pool, `DBPOOL_<NAME>_URL` and `DBPOOL_<NAME>_<SETTING>` one pool's);
 * `DATABASE_URL` alone (one pool, `default`). Settings from the environment use PoolConfig's names:
 * `MIN`, `MAX`, `ACQUIRE_TIMEOUT_MS`, ...  As libpq, PGSSLMODE, PGSSLROOTCERT and PGTARGETSESSIONATTRS
 * fill in what a Postgres URL leaves out: each Postgres pool gets `libpqEnv`, read when `openPool`
 * opens it (a security variable dbpool cannot honour, e.g. PGSSLCERT, is CONFIGURATION then, only for
 * a command that opens a Postgres pool).
 */
export async function resolveConfig(flags: ConfigFlags, env: NodeJS.ProcessEnv, cwd: string): Promise<ResolvedConfig> {
  const secrets = new Set<string>()
  if (env.PGPASSWORD) secrets.add(env.PGPASSWORD)
  for (const s of envSecrets(env)) secrets.add(s)
  const shownNames = new Set<string>(envShownNames(env))
  const done = (pools: PoolDefinition[], source: string): ResolvedConfig => {
    for (const p of pools) for (const s of urlSecrets(p.url)) secrets.add(s)
    for (const p of pools) for (const n of urlShownNames(p.url)) shownNames.add(n)
    for (const p of pools) {
      // refused before any parser reads part of the password as the host or port and prints it
      if (hasAmbiguousCredentials(p.url))
        throw new DatabaseError(
          'CONFIGURATION',
          `invalid URL of pool ${p.name} (from ${source === '--url' || source === 'DATABASE_URL' ? source : 'the config file or environment'}): its password has an unencoded "/", "?" or "#" (or its database name an "@"); percent-encode them (%2F, %3F, %23, %40)`,
          { detail: { option: 'url', pool: p.name } },
        )
    }
    // read when a Postgres pool is opened (openPool): PGSSLCERT set for psql never blocks a SQLite-only command
    const withEnv = pools.map((p) => (/^postgres(ql)?:\/\//i.test(p.url) ? { ...p, libpqEnv: env } : p))
    return { pools: withEnv, source, secrets: [...secrets], shownNames: [...shownNames] }
  }
  if (flags.url !== undefined) {
    for (const s of urlSecrets(flags.url)) secrets.add(s)
    if (flags.url === '') throw configError('--url', flags.url, 'must be a postgres://, postgresql:// or sqlite: URL')
    return done(
      [{ name: 'default', url: flags.url, primary: true, pool: fromEnv(env, 'DBPOOL_POOL_', { name: 'default' }), backend: {} }],
      '--url',
    )
  }
  if (env.DATABASE_URL) for (const s of urlSecrets(env.DATABASE_URL)) secrets.add(s)
  const file = await loadConfigFile(flags.config ?? (env.DBPOOL_CONFIG || undefined), cwd, env)
  for (const s of file?.secrets ?? []) secrets.add(s)
  for (const n of file?.shownNames ?? []) shownNames.add(n)
  if (file && file.pools.length > 0) {
    refuseSharedEnvNames(file.pools.map((p) => p.name))
    const primary = file.pools.find((p) => p.primary) ?? file.pools[0]
    const pools = file.pools.map((p): PoolDefinition => {
      const key = envName(p.name)
      let url = p.url
      if (p === primary && env.DATABASE_URL) url = env.DATABASE_URL
      if (env[`DBPOOL_${key}_URL`]) url = env[`DBPOOL_${key}_URL`] as string
      const shared = fromEnv(env, 'DBPOOL_POOL_', p.pool)
      const pool = fromEnv(env, `DBPOOL_${key}_`, shared)
      return { ...p, url, primary: p === primary, pool }
    })
    return done(pools, file.path)
  }
  if (env.DATABASE_URL)
    return done(
      [{ name: 'default', url: env.DATABASE_URL, primary: true, pool: fromEnv(env, 'DBPOOL_POOL_', { name: 'default' }), backend: {} }],
      'DATABASE_URL',
    )
  const where = file ? `${file.path} has no [pools.<name>] table` : 'no dbpool.toml or dbpool.json here'
  throw new DatabaseError(
    'CONFIGURATION',
    `no database configured (${where}): pass --url, set DATABASE_URL, or write a dbpool.toml with a [pools.<name>] table`,
  )
}

/** One pool by name (`--pool`), or the primary one. */
export function selectPool(config: ResolvedConfig, name: string | undefined): PoolDefinition {
  if (name === undefined) return config.pools.find((p) => p.primary) ?? (config.pools[0] as PoolDefinition)
  const found = config.pools.find((p) => p.name === name)
  if (!found) throw configError('--pool', name, `is not configured; pools: ${config.pools.map((p) => p.name).join(', ')}`)
  return found
}

/** Every pool, or only the one named with `--pool`. */
export function selectPools(config: ResolvedConfig, name: string | undefined): PoolDefinition[] {
  return name === undefined ? [...config.pools] : [selectPool(config, name)]
}

/** The passwords of a URL (user info and `password=`), raw and percent-decoded (see {@link credentialSecrets}). */
export function urlSecrets(url: string): string[] {
  return credentialSecrets(url)
}

function fromEnv(env: NodeJS.ProcessEnv, prefix: string, base: PoolOptions): PoolOptions {
  return PoolConfig.fromEnv(env, prefix, base).toJSON()
}

/**
 * Throws CONFIGURATION naming both pools when two pool names map to one environment name
 * (`ledger-ro` and `ledger_ro` both read `DBPOOL_LEDGER_RO_URL`: setting it for one would point both
 * at that database), or naming the pool whose name maps to `POOL` (its `DBPOOL_POOL_<SETTING>` would
 * be every pool's).
 */
function refuseSharedEnvNames(names: readonly string[]): void {
  const seen = new Map<string, string>()
  for (const name of names) {
    const key = envName(name)
    if (key === 'POOL')
      throw new DatabaseError(
        'CONFIGURATION',
        `pool "${name}" would read DBPOOL_POOL_URL and DBPOOL_POOL_<SETTING>, which set every pool: rename it`,
        { detail: { option: 'pools', pools: [name] } },
      )
    const other = seen.get(key)
    if (other !== undefined)
      throw new DatabaseError(
        'CONFIGURATION',
        `pools "${other}" and "${name}" both read DBPOOL_${key}_URL and DBPOOL_${key}_<SETTING> (names map to environment variables in upper case, other characters as "_"): rename one`,
        { detail: { option: 'pools', pools: [other, name] } },
      )
    seen.set(key, name)
  }
}

function envName(pool: string): string {
  return pool.toUpperCase().replace(/[^A-Z0-9]/g, '_')
}
