import { DatabaseConfig, PoolFactory, PoolManager, type DatabasePool } from '@dbpool/core'
import type { PoolDefinition } from './config-file'
import type { ResolvedConfig } from './resolve-config'

/** Options of {@link openPools}. */
export interface OpenPoolsOptions {
  /** A one-shot command: open connections on demand only (`min` 0). Default is `true`. */
  readonly oneShot?: boolean
}

/** Opens one pool per definition (through PoolFactory, so the backend package loads on demand). */
export async function openPools(definitions: readonly PoolDefinition[], options: OpenPoolsOptions = {}): Promise<PoolManager> {
  const manager = new PoolManager()
  try {
    for (const def of definitions) manager.add(def.name, await openPool(def, options), { primary: def.primary })
  } catch (err) {
    await manager.closeAll({ timeoutMs: 5_000 })
    throw err
  }
  return manager
}

/**
 * Opens the pool of one definition. A Postgres URL with `libpqEnv` is completed by that environment,
 * as libpq's (`DatabaseConfig.envDefaults`, read now: its CONFIGURATION errors concern only commands
 * that open a Postgres pool), and so are its replicas' URLs (`backend.replicas`, else that
 * environment's `DATABASE_REPLICA_URLS`: `resolveReplicaOptions` of @dbpool/postgres, the primary's
 * TLS settings filling in after the environment's).
 */
export async function openPool(def: PoolDefinition, options: OpenPoolsOptions = {}): Promise<DatabasePool<unknown>> {
  const oneShot = options.oneShot ?? true
  const pool = oneShot ? { ...def.pool, min: 0 } : def.pool
  if (def.libpqEnv !== undefined && /^postgres(ql)?:\/\//i.test(def.url)) {
    // an explicit backend.connectTimeoutMs beats PGCONNECT_TIMEOUT (see envDefaults)
    const given = { url: def.url, connectTimeoutMs: (def.backend as { connectTimeoutMs?: unknown }).connectTimeoutMs }
    const config = DatabaseConfig.fromUrl(def.url, {}, DatabaseConfig.envDefaults(def.libpqEnv, given))
    const { resolveReplicaOptions } = await import('@dbpool/postgres')
    const { replicas } = resolveReplicaOptions({ ...def.backend }, def.libpqEnv, config)
    return PoolFactory.createPostgresPool(config, pool, { backend: { ...def.backend, replicas } })
  }
  return PoolFactory.create(def.url, pool, { backend: { ...def.backend } })
}

/** How long (ms) a failed command waits for its pools' close before its error is reported; the close goes on meanwhile. */
export const FAILED_CLOSE_WAIT_MS = 500

/**
 * Runs `fn` with the pools open and closes them afterwards, whatever happens (`closeAll` with a 5 s
 * timeout). With `closeWaitMs`, waits at most that long for the close (health and check: a
 * connection attempt to a server that never answers would hold it until its connect timeout); the
 * close goes on in the background, and the CLI process exits shortly after its command ends. When
 * `fn` fails, the wait is at most {@link FAILED_CLOSE_WAIT_MS}: its error is reported at once, not
 * after a close held by a connection attempt still out.
 */
export async function withPools<T>(
  definitions: readonly PoolDefinition[],
  fn: (manager: PoolManager) => Promise<T>,
  closeWaitMs?: number,
): Promise<T> {
  const manager = await openPools(definitions)
  let failed = false
  try {
    return await fn(manager)
  } catch (err) {
    failed = true
    throw err
  } finally {
    // a failed command's error is reported first: a close held by a connection attempt still out
    // (a server that never answers) must not delay it by the close's 5 s
    const waitMs = failed ? Math.min(FAILED_CLOSE_WAIT_MS, closeWaitMs ?? FAILED_CLOSE_WAIT_MS) : closeWaitMs
    const closing = manager.closeAll({ timeoutMs: Math.min(5_000, closeWaitMs ?? 5_000) })
    if (waitMs === undefined) await closing
    else {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([closing, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))])
      clearTimeout(timer)
      closing.catch(() => undefined)
    }
  }
}

/**
 * The configuration with every SQLite pool opened with `createIfMissing: false` (unless its config
 * file `backend` sets `createIfMissing` itself): a command that only reads or checks a database
 * (health, check, stats, backup, restore, migrate status/down, serve, bench) on a mistyped path fails
 * with CONNECTION_FAILED ("file does not exist") instead of creating an empty database, and its
 * directory, and reporting it healthy. Only `dbpool migrate up` creates a database.
 */
export function withoutCreatingDatabases(config: ResolvedConfig): ResolvedConfig {
  const pools = config.pools.map((def): PoolDefinition => {
    if (!/^sqlite:/i.test(def.url) || 'createIfMissing' in def.backend) return def
    return { ...def, backend: { ...def.backend, createIfMissing: false } }
  })
  return { ...config, pools }
}
