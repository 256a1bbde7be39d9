import type { SqlDialect } from '../sql/sql'
import { lineCommentEnd } from '../sql/line-comment'

/** One statement cut out of a migration script. */
export interface SqlStatement {
  /** The statement text, without the terminating `;`, trimmed (comments inside are kept). */
  readonly text: string
  /** 1-based line of the statement's first token in the original script. */
  readonly line: number
  /** The first words of the statement, upper-cased (comments skipped), e.g. `['CREATE', 'TABLE']`. */
  readonly head: readonly string[]
}

// Postgres's names (scan.l `ident_start`, `ident_cont`): every non-ASCII character is a letter, so
// `åe'...'` is a name then a literal (not an E'...' string) and `åbegin` is one word, not BEGIN
const WORD_START = /[A-Za-z_\u0080-\uffff]/
const WORD_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/
const NON_ASCII = /[\u0080-\uffff]/
const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/
/** A character of a Postgres identifier (letters beyond ASCII too, as its lexer reads them), or `$`. */
const IDENTIFIER_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/
/** How far a dollar tag is looked for: Postgres reads a tag of any length (an identifier is cut at 63 bytes, a tag is not). */
const DOLLAR_TAG_WINDOW = 1_024
const HEAD_WORDS = 6
// statements whose body may hold `;` between BEGIN ... END: SQLite triggers (SQLite has no CREATE
// FUNCTION) and Postgres functions and procedures (`BEGIN ATOMIC`; a Postgres trigger has no body)
const SQLITE_BLOCK_HEAD = /^CREATE ((TEMP|TEMPORARY) )?TRIGGER\b/
const POSTGRES_BLOCK_HEAD = /^CREATE (OR REPLACE )?(FUNCTION|PROCEDURE)\b/
// the statements a SQLite trigger body holds
const TRIGGER_BODY_START: ReadonlySet<string> = new Set(['INSERT', 'UPDATE', 'DELETE', 'SELECT', 'WITH', 'REPLACE', 'VALUES'])

/**
 * Splits a SQL script into statements at top-level `;`, respecting single-quoted strings (with `''`
 * and Postgres `E'\''` escapes), double-quoted and backquoted identifiers (and SQLite's `[name]`), Postgres dollar quoting
 * (`$$ ... $$`, `$tag$ ... $tag$`), `--` and `/* *\/` comments (nested on Postgres), and the
 * `BEGIN ... END` bodies of SQLite triggers (from the `BEGIN` before the body's first statement) and
 * Postgres `BEGIN ATOMIC` functions and procedures (only `BEGIN ATOMIC` opens one: a parameter or
 * column named `begin` does not), and on Postgres
 * parentheses (a multi-action rule `DO ALSO (insert ...; insert ...)`, as psql keeps it whole). Statements made
 * only of comments and whitespace are dropped.
 *
 * @param script The SQL text.
 * @param dialect Decides whether block comments nest (Postgres) or not (SQLite). Default is `'postgres'`.
 * @param firstLine The line number of the script's first line within its file. Default is `1`.
 */
export function splitSqlStatements(script: string, dialect: SqlDialect = 'postgres', firstLine = 1): SqlStatement[] {
  const out: SqlStatement[] = []
  const n = script.length
  let line = firstLine
  let start = 0
  let startLine = -1
  let words: string[] = []
  let block = false
  let depth = 0
  const sqlite = dialect === 'sqlite'
  // SQLite trigger bodies (see the word branch below)
  let body = false
  let pendingBegin = false
  let afterSemicolon = false
  // Postgres: `;` inside parentheses is not a statement's end (a rule's `DO ALSO (a; b)`), as psql reads it
  const parens = dialect === 'postgres'
  let parenDepth = 0

  const finish = (end: number): void => {
    const text = script.slice(start, end).trim()
    if (startLine >= 0 && text.length > 0) out.push({ text, line: startLine, head: words.slice(0, HEAD_WORDS) })
    start = end + 1
    startLine = -1
    words = []
    block = false
    depth = 0
    parenDepth = 0
    body = false
    pendingBegin = false
    afterSemicolon = false
  }
  const mark = (): void => {
    if (startLine < 0) startLine = line
  }

  let i = 0
  while (i < n) {
    const ch = script[i] as string
    const next = script[i + 1]
    if (ch === '\n') {
      line++
      i++
    } else if (ch === '-' && next === '-') {
      i = lineCommentEnd(script, i, dialect)
    } else if (ch === '/' && next === '*') {
      i = skipBlockComment(script, i, dialect === 'postgres', (count) => (line += count))
    } else if (ch === "'") {
      mark()
      const escapes = dialect === 'postgres' && isEscapeStringPrefix(script, i)
      i = skipQuoted(script, i, "'", escapes, (count) => (line += count))
    } else if (ch === '"' || ch === '`') {
      mark()
      i = skipQuoted(script, i, ch, false, (count) => (line += count))
    } else if (ch === '[' && sqlite) {
      // SQLite reads `[name]` as a quoted name (no escape inside): a `'` or `;` in it is part of the name
      mark()
      const close = script.indexOf(']', i + 1)
      const end = close < 0 ? n : close + 1
      line += countNewlines(script, i, end)
      i = end
    } else if (
      // dollar quoting is Postgres' alone (on SQLite `$$` is a parameter name); a `$` right after an
      // identifier character (non-ASCII letters included: `é$$` is an identifier) does not open one
      ch === '$' &&
      dialect === 'postgres' &&
      !IDENTIFIER_CHAR.test(script[i - 1] ?? ' ') &&
      DOLLAR_TAG.test(script.slice(i, i + DOLLAR_TAG_WINDOW))
    ) {
      mark()
      const tag = (DOLLAR_TAG.exec(script.slice(i, i + DOLLAR_TAG_WINDOW)) as RegExpExecArray)[0]
      const close = script.indexOf(tag, i + tag.length)
      const end = close < 0 ? n : close + tag.length
      line += countNewlines(script, i, end)
      i = end
    } else if (ch === ';') {
      if (sqlite ? body : (block && depth > 0) || parenDepth > 0) {
        afterSemicolon = true
        i++
      } else {
        finish(i)
        i++
      }
    } else if (WORD_START.test(ch) && !WORD_CHAR.test(script[i - 1] ?? ' ')) {
      mark()
      let j = i + 1
      while (j < n && WORD_CHAR.test(script[j] as string)) j++
      const word = upperAscii(script.slice(i, j))
      if (words.length < HEAD_WORDS) {
        words.push(word)
        if (!block && (sqlite ? SQLITE_BLOCK_HEAD : POSTGRES_BLOCK_HEAD).test(words.join(' '))) block = true
      }
      // `x.begin`, `t.end`: a name after a dot is a column or table name, never a keyword
      const qualified = script[i - 1] === '.'
      if (block && sqlite) {
        // a trigger's body opens at the BEGIN before its first statement (a column, table or trigger
        // may be named begin) and closes at the END right after the `;` of its last statement, which
        // SQLite requires (a CASE's END never follows a `;`; a column may be named end)
        if (!body && pendingBegin && TRIGGER_BODY_START.has(word)) body = true
        else if (body && afterSemicolon && word === 'END') body = false
        pendingBegin = !body && word === 'BEGIN' && !qualified
      } else if (block) {
        // Postgres: only `BEGIN ATOMIC` at the top level of the statement (the body's place, after
        // the parameter list) opens a body; BEGIN is not a reserved word, so a parameter or column may
        // be named begin (`create function f(begin int, ...)`), which opens nothing. Inside the body,
        // CASE ... END nests (CASE and END are reserved: a name so spelled is quoted or after a dot)
        if (depth === 0) {
          if (pendingBegin && word === 'ATOMIC') depth = 1
          pendingBegin = parenDepth === 0 && word === 'BEGIN' && !qualified
        } else if (!qualified) {
          if (word === 'CASE') depth++
          else if (word === 'END') depth--
        }
      }
      afterSemicolon = false
      i = j
    } else {
      if (!/\s/.test(ch)) {
        mark()
        afterSemicolon = false
        pendingBegin = false
      }
      if (parens && ch === '(') parenDepth++
      else if (parens && ch === ')' && parenDepth > 0) parenDepth--
      i++
    }
  }
  finish(n)
  return out
}

function isEscapeStringPrefix(script: string, quoteAt: number): boolean {
  const prev = script[quoteAt - 1]
  return (prev === 'E' || prev === 'e') && !WORD_CHAR.test(script[quoteAt - 2] ?? ' ')
}

function skipQuoted(script: string, at: number, quote: string, backslashEscapes: boolean, onNewlines: (count: number) => void): number {
  let i = at + 1
  while (i < script.length) {
    const ch = script[i]
    if (backslashEscapes && ch === '\\') {
      i += 2
      continue
    }
    if (ch === quote) {
      if (script[i + 1] === quote) {
        i += 2
        continue
      }
      break
    }
    i++
  }
  const end = Math.min(script.length, i + 1)
  onNewlines(countNewlines(script, at, end))
  return end
}

function skipBlockComment(script: string, at: number, nested: boolean, onNewlines: (count: number) => void): number {
  let depth = 0
  let i = at
  while (i < script.length) {
    if (script[i] === '/' && script[i + 1] === '*') {
      depth = nested ? depth + 1 : 1
      i += 2
    } else if (script[i] === '*' && script[i + 1] === '/') {
      depth--
      i += 2
      if (depth === 0) break
    } else {
      i++
    }
  }
  onNewlines(countNewlines(script, at, i))
  return i
}

function countNewlines(text: string, from: number, to: number): number {
  let count = 0
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 10) count++
  return count
}

/** A word upper-cased as Postgres folds names: ASCII letters only (JavaScript's `'ı'.toUpperCase()` is `'I'`). */
function upperAscii(word: string): string {
  return NON_ASCII.test(word) ? word.replace(/[a-z]/g, (c) => c.toUpperCase()) : word.toUpperCase()
}

/** A comment, literal or quoted name found by {@link sqlSpans}, `[start, end)` in the script. */
export interface SqlSpan {
  readonly kind: 'line comment' | 'block comment' | 'string literal' | 'quoted identifier' | 'dollar-quoted string'
  readonly start: number
  readonly end: number
  /** False when the script ends inside it (an unterminated `/*`, `'`, `"`, `` ` ``, `[` or `$tag$`). */
  readonly closed: boolean
}

/**
 * The comments, literals and quoted names of a script, in order, read as `splitSqlStatements` reads
 * them (`--` comments end at `\n` or `\r` here, as Postgres ends them: a migration file's section
 * marker is a line of its own either way). What lies between them is top-level SQL.
 */
export function sqlSpans(script: string, dialect: SqlDialect): SqlSpan[] {
  const out: SqlSpan[] = []
  const n = script.length
  const postgres = dialect === 'postgres'
  let i = 0
  while (i < n) {
    const ch = script[i] as string
    const next = script[i + 1]
    if (ch === '-' && next === '-') {
      const end = lineCommentEnd(script, i, 'postgres')
      out.push({ kind: 'line comment', start: i, end, closed: true })
      i = end
    } else if (ch === '/' && next === '*') {
      let depth = 0
      let j = i
      while (j < n) {
        if (script[j] === '/' && script[j + 1] === '*') {
          depth = postgres ? depth + 1 : 1
          j += 2
        } else if (script[j] === '*' && script[j + 1] === '/') {
          depth--
          j += 2
          if (depth === 0) break
        } else j++
      }
      out.push({ kind: 'block comment', start: i, end: j, closed: depth === 0 })
      i = j
    } else if (ch === "'" || ch === '"' || ch === '`') {
      const escapes = ch === "'" && postgres && isEscapeStringPrefix(script, i)
      let j = i + 1
      let closed = false
      while (j < n) {
        const c = script[j]
        if (escapes && c === '\\') j += 2
        else if (c === ch && script[j + 1] === ch) j += 2
        else if (c === ch) {
          closed = true
          j++
          break
        } else j++
      }
      out.push({ kind: ch === "'" ? 'string literal' : 'quoted identifier', start: i, end: Math.min(j, n), closed })
      i = Math.min(j, n)
    } else if (ch === '[' && !postgres) {
      const close = script.indexOf(']', i + 1)
      const end = close < 0 ? n : close + 1
      out.push({ kind: 'quoted identifier', start: i, end, closed: close >= 0 })
      i = end
    } else if (
      ch === '$' &&
      postgres &&
      !IDENTIFIER_CHAR.test(script[i - 1] ?? ' ') &&
      DOLLAR_TAG.test(script.slice(i, i + DOLLAR_TAG_WINDOW))
    ) {
      const tag = (DOLLAR_TAG.exec(script.slice(i, i + DOLLAR_TAG_WINDOW)) as RegExpExecArray)[0]
      const close = script.indexOf(tag, i + tag.length)
      const end = close < 0 ? n : close + tag.length
      out.push({ kind: 'dollar-quoted string', start: i, end, closed: close >= 0 })
      i = end
    } else i++
  }
  return out
}

/**
 * The comment, literal or quoted name a script ends inside, if any, with the line it starts on
 * (`firstLine` is the script's first line): such text is cut short (SQLite and the splitter drop an
 * unterminated comment silently), so a migration holding it is refused.
 */
export function unterminatedSpan(script: string, dialect: SqlDialect, firstLine = 1): { kind: SqlSpan['kind']; line: number } | undefined {
  const open = sqlSpans(script, dialect).find((s) => !s.closed)
  return open && { kind: open.kind, line: firstLine + countNewlines(script, 0, open.start) }
}
