export { createPostgresPool } from './create-postgres-pool'
export type { PostgresPoolOptions } from './create-postgres-pool'
export { PostgresConnectionManager } from './postgres-connection-manager'
export { PostgresConnection } from './postgres-connection'
export {
  resolveManagerOptions,
  POSTGRES_MANAGER_OPTION_KEYS,
  SESSION_RESET_MODES,
  CLEAN_SESSION_SQL,
  PREPARE_MODES,
  DEFAULT_PREPARE_MODE,
} from './postgres-options'
export type { PostgresManagerOptions, ResolvedPostgresManagerOptions, SessionReset } from './postgres-options'
export { PGBOUNCER_MODES, sessionFeaturesOf } from './postgres-pgbouncer'
export { sessionStatement } from './postgres-session-statement'
export type { PgBouncerMode } from './postgres-pgbouncer'
export {
  SQLSTATE_CODES,
  SQLSTATE_CLASSES,
  FATAL_SQLSTATES,
  SOCKET_ERROR_CODES,
  isFatalSqlState,
  isParameterCountMismatch,
  mapSqlState,
  mapPostgresError,
  authenticationFailure,
  scrubError,
  sqlStateOf,
} from './postgres-errors'
export type { MapContext, SqlStateMapping } from './postgres-errors'
export { tlsOptions, fallsBackToPlain, isTlsRefusal, certificateErrorCode, CERTIFICATE_ERROR_CODES } from './postgres-tls'
export type { PgSsl } from './postgres-tls'
export { sendCancelRequest } from './postgres-cancel'
export type { CancelTarget } from './postgres-cancel'
export { pgQuery, postgresParameters, MAX_PARAMETERS } from './postgres-params'
export { StatementCache, statementName } from './postgres-statement-cache'
export type { PrepareMode, CachedStatement, SharedGeneration, StatementDescription } from './postgres-statement-cache'
export type { PgQuery } from './postgres-params'
export { createTypeParsers, INT8_MODES, TIMESTAMPTZ_MODES } from './postgres-types'
export type { Int8Mode, TimestamptzMode } from './postgres-types'
export { copyFrom, copyTo } from './postgres-copy'
export type { CopyChunk, CopySource } from './postgres-copy'
export type { CopyOptions } from './postgres-copy-deadline'
export { listen, notify, quoteChannel } from './postgres-listener'
export type {
  NotificationHandler,
  NotificationInfo,
  NotifyOptions,
  ReconnectInfo,
  Subscription,
  SubscriptionEvents,
} from './postgres-listener'
export { requirePostgresPool } from './postgres-feature'
export { resolveReplicaOptions } from './postgres-replicas'
export type { ReplicaTarget, ResolvedReplicaOptions } from './postgres-replicas'
