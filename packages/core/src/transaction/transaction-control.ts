import type { Backend } from '../driver/connection-manager'
import { splitSqlStatements } from '../migrations/sql-splitter'
import type { SqlFragment } from '../sql/sql'
import { lineCommentEnd } from '../sql/line-comment'

// a cheap look first, linear in the text (no regular expression over comments: a lazy comment pattern
// repeated split a run of comments in exponentially many ways when the match failed): a text without
// `;` is one statement, only its first word counts; with `;`, one of the words anywhere after the
// first `;` sends it to the exact split (which also rules out matches inside strings and comments).
// A CASE ... END or a start_date column in a single statement never gets that far.
const CONTROL_WORDS: ReadonlySet<string> = new Set(['commit', 'end', 'rollback', 'abort', 'begin', 'start', 'prepare'])
const CONTROL_WORD = /\b(?:commit|end|rollback|abort|begin|start|prepare)\b/i

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
  const semicolon = text.indexOf(';')
  const leading = CONTROL_WORDS.has(leadingWord(text, backend === 'postgres'))
  if (!leading && (semicolon < 0 || !CONTROL_WORD.test(semicolon === 0 ? text : text.slice(semicolon)))) return undefined
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

/**
 * The first word of `text`, lower-cased, after blanks and comments (`--` to the end of the line: `\n`,
 * or `\r` too on Postgres, see {@link lineCommentEnd};
 * block comments nest when `nested`, as on Postgres, and end at the first `*\/` on SQLite), or `''`.
 * Reads each character once.
 */
function leadingWord(text: string, nested: boolean): string {
  const length = text.length
  let i = 0
  for (;;) {
    while (i < length && /\s/.test(text[i]!)) i++
    if (text.startsWith('--', i)) {
      const end = lineCommentEnd(text, i, nested ? 'postgres' : 'sqlite')
      if (end >= length) return ''
      i = end + 1
    } else if (text.startsWith('/*', i)) {
      let depth = 1
      i += 2
      while (i < length && depth > 0) {
        if (text.startsWith('*/', i)) {
          depth--
          i += 2
        } else if (nested && text.startsWith('/*', i)) {
          depth++
          i += 2
        } else i++
      }
      if (depth > 0) return ''
    } else break
  }
  let end = i
  while (end < length && /[A-Za-z]/.test(text[end]!)) end++
  // a word goes on with a letter (any non-ASCII character is one), digit, "_" or "$" (`beginå` is a name, not BEGIN)
  if (end < length && /[\w$\u0080-\uffff]/.test(text[end]!)) return ''
  return text.slice(i, end).toLowerCase()
}
