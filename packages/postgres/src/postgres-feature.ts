import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from './postgres-connection'

/**
 * The pool, when it is a Postgres pool; otherwise CONFIGURATION saying that `feature` (COPY,
 * LISTEN/NOTIFY) is a PostgreSQL feature, with the pool's backend and redacted target.
 */
export function requirePostgresPool(pool: unknown, feature: string): DatabasePool<PostgresConnection> {
  const candidate = pool as Partial<DatabasePool> | null | undefined
  if (candidate === null || typeof candidate !== 'object' || typeof candidate.withConnection !== 'function')
    throw new DatabaseError('CONFIGURATION', `${feature}() needs a dbpool pool as its first argument`, { retryable: false })
  if (candidate.backend !== 'postgres')
    throw new DatabaseError(
      'CONFIGURATION',
      `${feature}() is a PostgreSQL feature; pool "${String(candidate.name)}" is a ${String(candidate.backend)} pool (${String(candidate.target)}): SQLite has no COPY protocol and no LISTEN/NOTIFY`,
      { retryable: false, detail: { feature, backend: candidate.backend } },
    )
  return pool as DatabasePool<PostgresConnection>
}
