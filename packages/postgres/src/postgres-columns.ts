import type { DatabaseError } from '@dbpool/core'
import { duplicateColumn, duplicateColumnError, type ResultColumn } from '@dbpool/core/internal'
import { mayHaveCommitted } from './postgres-outcome'

/**
 * Row descriptions (pg's `fields` arrays) known to name every column once: a named prepared
 * statement's description is kept and handed to every later run's result as the same array (see
 * `PgStatement.remember`), so its columns are checked once per prepared statement, not per result.
 */
const UNIQUE: WeakSet<readonly unknown[]> = new WeakSet()

/** Records that a kept row description names every column once (checked here, once). */
export function rememberColumns(fields: readonly unknown[]): void {
  if (duplicateColumn(fields as readonly ResultColumn[]) === undefined) UNIQUE.add(fields)
}

/**
 * The error for a result whose columns share a name (`select 1 as a, 2 as a`; every unnamed
 * expression is `?column?` on Postgres), else `undefined`: pg builds each row as an object keyed by
 * column name, so one of the values would be silently lost. The statement has already run (the row
 * description arrives with its answer): when it ran outside a transaction and may have written
 * ({@link mayHaveCommitted}), the error says it may have committed (`detail.outcome: 'unknown'`).
 *
 * @param fields The result's row description (pg's `result.fields`).
 * @param text The statement text, to judge whether it may have written.
 * @param inTransaction The session was inside a transaction when the statement was sent.
 */
export function resultColumnsError(fields: readonly unknown[], text: string, inTransaction: boolean): DatabaseError | undefined {
  if (fields.length < 2 || UNIQUE.has(fields)) return undefined
  const duplicate = duplicateColumn(fields as readonly ResultColumn[])
  if (duplicate === undefined) return undefined
  return duplicateColumnError(duplicate, 'postgres', { ran: true, mayHaveCommitted: !inTransaction && mayHaveCommitted(text, false) })
}
