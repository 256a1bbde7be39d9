/**
 * Every stable error code a {@link DatabaseError} can carry. Callers branch on these, never on messages.
 */
export const ERROR_CODES = [
  'CONFIGURATION',
  'CONNECTION_FAILED',
  'AUTHENTICATION_FAILED',
  'CONNECTION_LOST',
  'ACQUIRE_TIMEOUT',
  'POOL_CLOSED',
  'POOL_EXHAUSTED',
  'QUERY_TIMEOUT',
  'QUERY_CANCELLED',
  'SYNTAX_ERROR',
  'UNIQUE_VIOLATION',
  'FOREIGN_KEY_VIOLATION',
  'NOT_NULL_VIOLATION',
  'CHECK_VIOLATION',
  'SERIALIZATION_FAILURE',
  'DEADLOCK',
  'BUSY',
  'READ_ONLY',
  'CORRUPT',
  'HEALTH_CHECK_FAILED',
  'MIGRATION_FAILED',
  'BACKUP_FAILED',
  'QUERY_FAILED',
  'INVALID_PARAMETER',
  'TRANSACTION_ROLLED_BACK',
] as const

/** A stable error code; see {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number]

/**
 * Codes that are retryable by default: the same work may succeed if run again
 * (a new connection, a replayed transaction, a later acquire).
 */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CONNECTION_FAILED',
  'CONNECTION_LOST',
  'ACQUIRE_TIMEOUT',
  'POOL_EXHAUSTED',
  'SERIALIZATION_FAILURE',
  'DEADLOCK',
  'BUSY',
])

/** Codes for which replaying a whole transaction is safe and useful (`transaction(fn, { retry })`). */
export const TRANSACTION_RETRY_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['SERIALIZATION_FAILURE', 'DEADLOCK', 'BUSY'])
