export { ERROR_CODES, RETRYABLE_CODES, TRANSACTION_RETRY_CODES } from './errors/error-codes'
export type { ErrorCode } from './errors/error-codes'
export { DatabaseError } from './errors/database-error'
export { OUTCOME_COMMITTED, OUTCOME_UNKNOWN, isOutcomeUnknown } from './errors/error-outcome'
export type { DatabaseErrorOptions, ErrorBackend, PoolStatsSnapshot } from './errors/database-error'
export { PoolConfig, PoolConfigBuilder, DEFAULT_POOL_OPTIONS } from './config/pool-config'
export type { PoolOptions, ResolvedPoolOptions } from './config/pool-config'
export { DatabaseConfig, SSL_MODES, TARGET_SESSION_ATTRS, type EnvDefaultsGiven } from './config/database-config'
export type { DatabaseOptions, PasswordSource, ResolvedHost, SslMode, TargetSessionAttrs } from './config/database-config'
export { hasAmbiguousCredentials } from './config/postgres-url'
export type { PostgresHost } from './config/postgres-url'
export { checkLibpqHostAddrEnv, checkLibpqSecurityEnv } from './config/libpq-env'
// option validators (checkInteger, requireObject...) are in @dbpool/core/internal (src/internal.ts)
export { configError, MAX_TIMER_MS } from './config/validate'
export { sql, SqlFragment, isSqlFragment } from './sql/sql'
// parameter helpers for backends (jsonParameterText, invalidParameter...) are in @dbpool/core/internal
export { SqlJson, isSqlJson } from './sql/parameters'
export type { CompiledQuery, SqlDialect, SqlTag } from './sql/sql'
export { ISOLATION_LEVELS } from './driver/connection-manager'
export type {
  Backend,
  ConnectionHooks,
  FailoverInfo,
  SessionFeatures,
  ConnectionManager,
  CursorOptions,
  ExecuteOptions,
  IsolationLevel,
  Lane,
  LaneLayout,
  ReplicaStatus,
  QueryResult,
  ReferencedHandle,
  RowCursor,
  TelemetryTarget,
  ConnectedServer,
  HeldLock,
  TransactionSettings,
  TransactionState,
} from './driver/connection-manager'
export { DatabasePool } from './pool/database-pool'
export type {
  CloseOptions,
  CloseReport,
  DatabasePoolOptions,
  OutstandingLease,
  QueryOptions,
  WithConnectionOptions,
  ValidateConnectionsOptions,
} from './pool/database-pool'
export type { ReadFallbackInfo, ReplicaOutReason, ReplicaStateInfo, ReplicaStats } from './pool/replica-set'
export type { PoolConnection, Queryable, Transaction } from './pool/pool-connection'
export type { PoolExtension } from './pool/pool-extensions'
export { RowStream, DEFAULT_STREAM_BATCH_SIZE, MAX_STREAM_BATCH_SIZE } from './pool/row-stream'
export type { ConnectionStreamOptions, StreamOptions } from './pool/row-stream'
export type { LeakInfo, PoolEventName, PoolEvents } from './pool/pool-events'
export type { RetryOptions, TransactionOptions } from './transaction/transaction'
export { MetricsCollector, METRIC_NAMES, OPERATION_DURATION_BUCKETS, POOL_NAME_ATTRIBUTE } from './metrics/metrics-collector'
export type { MetricsCollectorOptions, MetricsSnapshot, TimingSummary } from './metrics/metrics-collector'
export type { PoolLogFn, PoolLogger } from './telemetry/logger'
export { TRACER_NAME, TRANSACTION_SPAN_NAME, WAIT_SPAN_NAME } from './telemetry/pool-telemetry'
export { HealthChecker, worstStatus } from './health/health-checker'
export type { HealthCheckOptions } from './health/health-checker'
export type { HealthCheckDetail, HealthReport, HealthStatus } from './health/health-report'
export { PoolFactory, sqlitePathFromUrl } from './factory/pool-factory'
export type { CreatePoolOptions, ModuleImporter, PostgresBackendModule, SqliteBackendModule } from './factory/pool-factory'
export { PoolManager } from './manager/pool-manager'
export type { ManagerHealthReport } from './manager/pool-manager'
export { redactSecrets, redactUrl, redactUrlPasswords, redactUrlQueryValues, REDACTED } from './util/redact'
export { Migrator } from './migrations/migrator'
export type { MigrationPool, MigratorOptions } from './migrations/migrator'
export type {
  Migration,
  MigrationDefinition,
  MigrationEvent,
  MigrationFunction,
  MigrationRunResult,
  MigrationRunStep,
  MigrationState,
  MigrationStatus,
  MigrationStep,
} from './migrations/migration'
export {
  loadMigrationsFromDirectory,
  migrationChecksum,
  migrationsFromDefinitions,
  parseMigrationFileName,
  parseMigrationSections,
} from './migrations/migration-loader'
export { splitSqlStatements } from './migrations/sql-splitter'
export type { SqlStatement } from './migrations/sql-splitter'
