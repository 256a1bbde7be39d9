import { lex } from './postgres-session-statement'

/** The first word of a statement that may open or end a transaction, or run one that does (CALL, DO), or change the session (SET...). */
const CONTROL_WORD =
  /^(?:begin|start|commit|end|rollback|abort|savepoint|release|prepare|call|do|set|reset|discard)(?![a-z0-9_$\u0080-\uffff])/i
/** How a statement starts: a keyword (letters), or `(` of a parenthesised query; a quoted name, a digit are no statement. */
const FIRST_WORD = /^[a-z(]/i

/**
 * One statement that cannot open or end a transaction, read by the package's lexer ({@link lex}:
 * comments, nested ones too, and literals gone): no `;` but trailing ones, and a first word that is
 * no transaction control (nor CALL or DO: a procedure or a DO block may COMMIT). A text the lexer
 * cannot read (an unterminated comment or literal), an empty one, or one that does not start with
 * a keyword or `(` is not plain: a BEGIN must never be taken for a plain statement (see the
 * manager's settledTransactionState).
 */
export function plainStatement(text: string): boolean {
  const lexed = lex(text)
  if (lexed === undefined) return false
  const body = lexed.code.trim().replace(/[\s;]+$/, '')
  if (body === '' || body.includes(';') || !FIRST_WORD.test(body)) return false
  return !CONTROL_WORD.test(body)
}
