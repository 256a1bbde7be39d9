export { startPostgres, startEmbeddedPostgres } from './postgres-server'
export type {
  EmbeddedPostgresOptions,
  EmbeddedPostgresServer,
  PostgresProvider,
  PostgresServer,
  StartPostgresOptions,
} from './postgres-server'
export { testPostgresUrl } from './shared-postgres'
export { createTestDatabase, withDatabase } from './test-database'
export type { CreateTestDatabaseOptions, TestDatabase } from './test-database'
export { createTempSqlite } from './temp-sqlite'
export type { TempSqlite } from './temp-sqlite'
export { startTcpProxy } from './tcp-proxy'
export type { TcpProxy } from './tcp-proxy'
export { setupTestPostgres, teardownTestPostgres } from './jest-global'
export { dockerAnswers } from './docker-probe'
export type { DockerProbe } from './docker-probe'
export { startPgBouncer, findPgBouncer } from './pgbouncer'
export type { PgBouncer, StartPgBouncerOptions } from './pgbouncer'
export { startPostgresCluster, findPostgresBinDir } from './postgres-cluster'
export type { ClusterMember, PostgresCluster, StartPostgresClusterOptions } from './postgres-cluster'
