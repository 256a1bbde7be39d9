import type { Backend, QueryResult as DbpoolResult } from '@dbpool/core'
import type { QueryResult } from 'kysely'

/** Postgres command tags whose row count is the number of rows written. */
const WRITE_COMMANDS: ReadonlySet<string> = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE'])

/**
 * A dbpool result as Kysely reads it, as Kysely's own drivers build it: on Postgres `numAffectedRows`
 * for INSERT, UPDATE, DELETE and MERGE (from the command tag's row count, as `PostgresDriver`); on
 * SQLite `numAffectedRows` and `insertId` for a statement that returns no rows (better-sqlite3's
 * `changes` and `lastInsertRowid`, as `SqliteDriver`).
 */
export function toKyselyResult<R>(backend: Backend, result: DbpoolResult<R>): QueryResult<R> {
  if (backend === 'postgres') {
    const command = result.command
    if (command !== undefined && WRITE_COMMANDS.has(command)) return { rows: result.rows, numAffectedRows: BigInt(result.rowCount) }
    return { rows: result.rows }
  }
  const rowid = result.lastInsertRowid
  if (rowid === undefined) return { rows: result.rows }
  return { rows: result.rows, numAffectedRows: BigInt(result.rowCount), insertId: BigInt(rowid) }
}
