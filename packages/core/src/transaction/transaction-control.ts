import type { Backend } from '../driver/connection-manager'
import { splitSqlStatements } from '../migrations/sql-splitter'
import type { SqlFragment } from '../sql/sql'

// a cheap look first: one of these words at the start of the text or after a `;` (comments
// skipped). Only texts that pass are split (which also rules out matches inside strings); a CASE
// ... END or a start_date column never gets that far.
const CONTROL_START = /(?:^|;)\s*(?:(?:--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)\s*)*(?:commit|end|rollback|abort|begin|start|prepare)\b/i
// the same for a text without `;` (one statement: only its start matters), without scanning the rest
const CONTROL_LEADING = /^\s*(?:(?:--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)\s*)*(?:commit|end|rollback|abort|begin|start|prepare)\b/i

/**
 * The statement of `text` that would end or begin a transaction, by its first words (comments,
 * strings, dollar quotes, trigger bodies and `BEGIN ATOMIC` skipped: see `splitSqlStatements`), or
 * `undefined`: `COMMIT`, `END`, `ABORT`, `ROLLBACK` (not `ROLLBACK TO`, which undoes a savepoint),
 * `BEGIN`, `START TRANSACTION` and Postgres' `PREPARE TRANSACTION`. Run through `tx.query()` inside
 * `transaction()`, such a statement would commit or drop the work behind the transaction's back, and
 * every statement after it would run in autocommit and be kept whatever `transaction()` then reports.
 *
 * @param text The statement text (several statements allowed).
 * @param backend Decides the comment rules of the split (block comments nest on Postgres).
 * @returns The first words naming the statement (`'COMMIT'`, `'ROLLBACK'`, `'PREPARE TRANSACTION'`), or undefined.
 */
export function transactionControlStatement(text: string, backend: Backend): string | undefined {
  if (!(text.includes(';') ? CONTROL_START : CONTROL_LEADING).test(text)) return undefined
  for (const { head } of splitSqlStatements(text, backend)) {
    const statement = transactionControlOf(head)
    if (statement !== undefined) return statement
  }
  return undefined
}

/**
 * The same judgement for one statement, from its first words upper-cased (`SqlStatement.head`).
 *
 * @returns `'COMMIT'`, `'END'`, `'ABORT'`, `'BEGIN'`, `'ROLLBACK'`, `'START TRANSACTION'`, `'PREPARE TRANSACTION'`, or undefined.
 */
export function transactionControlOf(head: readonly string[]): string | undefined {
  const [first, second, third] = head
  switch (first) {
    case 'COMMIT':
    case 'END':
    case 'ABORT':
    case 'BEGIN':
      return first
    case 'START':
      return second === 'TRANSACTION' ? 'START TRANSACTION' : undefined
    case 'PREPARE':
      return second === 'TRANSACTION' ? 'PREPARE TRANSACTION' : undefined
    case 'ROLLBACK':
      // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name undoes a savepoint and keeps the transaction
      if (second === 'TO' || ((second === 'WORK' || second === 'TRANSACTION') && third === 'TO')) return undefined
      return first
    default:
      return undefined
  }
}

/** The text of what `query()` received, for {@link transactionControlStatement}. */
export function queryText(query: SqlFragment | string, backend: Backend): string {
  return typeof query === 'string' ? query : query.compile(backend).text
}
