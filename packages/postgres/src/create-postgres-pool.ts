import {
  DatabasePool,
  PoolConfig,
  type DatabaseConfig,
  type DatabaseOptions,
  type MetricsCollector,
  type MetricsCollectorOptions,
  type DatabasePoolOptions,
  type PoolOptions,
} from '@dbpool/core'
import { rejectUnknownKeys, requireObject } from '@dbpool/core/internal'
import type { PostgresConnection } from './postgres-connection'
import { PostgresConnectionManager } from './postgres-connection-manager'
import { POSTGRES_MANAGER_OPTION_KEYS, type PostgresManagerOptions } from './postgres-options'

/** Options of {@link createPostgresPool}: the manager's, plus where the pool records metrics. */
export interface PostgresPoolOptions extends PostgresManagerOptions {
  /** The collector to record on. Default is a new collector on the global OpenTelemetry meter. */
  readonly metrics?: MetricsCollector
  /** Passed to the default collector. */
  readonly metricsOptions?: MetricsCollectorOptions
  /** Where the pool writes its log lines (see `DatabasePoolOptions.logger`). Default: none. */
  readonly logger?: DatabasePoolOptions['logger']
  /** The tracer for the pool's spans (see `DatabasePoolOptions.tracer`). Default: the global provider's. */
  readonly tracer?: DatabasePoolOptions['tracer']
}

const POOL_OPTION_KEYS = [...POSTGRES_MANAGER_OPTION_KEYS, 'metrics', 'metricsOptions', 'logger', 'tracer'] as const

/**
 * A {@link DatabasePool} on Postgres. `PoolFactory.create('postgres://...')` calls this. A URL string
 * `config` is a connection string as libpq reads one: the libpq variables of `process.env` fill in what
 * it leaves out (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGOPTIONS, PGAPPNAME,
 * PGCONNECT_TIMEOUT...: `DatabaseConfig.envDefaults`; one dbpool cannot honour, such as PGSSLCERT or
 * PGHOSTADDR, is CONFIGURATION naming it). A `DatabaseConfig` (`DatabaseConfig.fromUrl(url)` for a URL
 * without the environment) or options read none, except PGOPTIONS for a target without `options`.
 *
 * ```ts
 * const pool = createPostgresPool(DatabaseConfig.fromEnv(), { max: 10, name: 'ledger' }, { sessionInit: 'SET search_path TO ledger' })
 * const { rows } = await pool.query(sql`select balance from accounts where id = ${id}`)
 * ```
 */
export function createPostgresPool(
  config: DatabaseConfig | DatabaseOptions | string,
  poolConfig?: PoolConfig | PoolOptions,
  options: PostgresPoolOptions = {},
): DatabasePool<PostgresConnection> {
  const resolvedPool = PoolConfig.from(poolConfig)
  const raw = requireObject('postgres', options)
  rejectUnknownKeys('postgres', raw, POOL_OPTION_KEYS)
  const { metrics, metricsOptions, logger, tracer, ...managerOptions } = raw as PostgresPoolOptions
  const manager = new PostgresConnectionManager(config, managerOptions, { connectTimeoutMs: resolvedPool.createTimeoutMs })
  return new DatabasePool(manager, resolvedPool, { metrics, metricsOptions, logger, tracer })
}
