import { configError, type Backend, type TransactionSettings } from '@dbpool/core'
import type { TransactionSettings as KyselySettings } from 'kysely'

/**
 * Kysely's transaction settings as dbpool's: `accessMode: 'read only'` is `readOnly` (a reader on a
 * SQLite pool, `READ ONLY` on Postgres); `isolationLevel` passes through, except `'read uncommitted'`,
 * which is `'read committed'` (what Postgres runs for it; SQLite transactions are serializable
 * whatever is asked). `'snapshot'` (SQL Server) is CONFIGURATION naming `isolationLevel`.
 */
export function toDbpoolSettings(settings: KyselySettings, backend: Backend): TransactionSettings {
  const out: { isolation?: TransactionSettings['isolation']; readOnly?: boolean } = {}
  const level = settings.isolationLevel
  if (level === 'read uncommitted') out.isolation = 'read committed'
  else if (level === 'snapshot') throw configError('isolationLevel', level, `${backend} has no snapshot isolation level`)
  else if (level !== undefined) out.isolation = level
  if (settings.accessMode !== undefined) out.readOnly = settings.accessMode === 'read only'
  return out
}
