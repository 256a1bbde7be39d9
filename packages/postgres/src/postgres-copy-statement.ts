import { DatabaseError } from '@dbpool/core'
import { checkStatementText, lineCommentEnd } from '@dbpool/core/internal'
import { isReadOnlyStatement } from './postgres-read-only'

/** Which COPY `copyFrom()` and `copyTo()` accept. */
export type CopyDirection = 'from stdin' | 'to stdout'

const PATTERNS: Record<CopyDirection, RegExp> = {
  'from stdin': /^copy\b[\s\S]*?\bfrom\s+stdin\b/i,
  'to stdout': /^copy\b[\s\S]*\bto\s+stdout\b/i,
}

/**
 * Checks that `text` is ONE `COPY ... FROM STDIN` (or `COPY ... TO STDOUT`) statement and returns its
 * words: the text with comments, string literals (`'...'`, `E'...'`, `$tag$...$tag$`; a one-word
 * literal is kept, quoted) and quoted identifiers blanked out, so the options after STDIN can be read from it without a literal or a
 * comment faking one. A trailing `;` is allowed.
 *
 * pg-copy-streams sends the text as a simple Query, where the server runs every statement it holds:
 * `copy t from stdin; drop table t` would load the rows and then drop the table. So a second
 * statement, and a text whose literals or comments are not terminated (what is a statement then
 * cannot be told), are refused, as is `COPY ... FROM '/file'` / `FROM PROGRAM` / `TO '/file'` with
 * `stdin`/`stdout` in a comment or literal only.
 *
 * @throws DatabaseError CONFIGURATION (naming the function and the text) when it is not; the
 * statement-text checks of `pool.query()` (e.g. a NUL character) otherwise.
 */
export function checkCopyStatement(text: unknown, direction: CopyDirection, fn: string): string {
  const words = typeof text === 'string' ? copyWords(text) : undefined
  const body = words?.trim().replace(/;\s*$/, '')
  if (typeof text !== 'string' || body === undefined || !PATTERNS[direction].test(body) || body.includes(';'))
    throw new DatabaseError(
      'CONFIGURATION',
      `${fn}(): the statement must be one COPY ... ${direction.toUpperCase()} statement, got ${JSON.stringify(text)}`,
      { retryable: false },
    )
  checkStatementText(text, 'postgres')
  return body
}

/** `$$` or `$tag$`: a tag is a name of Postgres's rule without `$` (scan.l `dolq_start`, `dolq_cont`: non-ASCII letters too). */
const DOLLAR_TAG = /^\$([a-zA-Z_\u0080-\uffff][a-zA-Z0-9_\u0080-\uffff]*)?\$/

/** One piece of a statement text as the server's lexer cuts it: code, or what code skips over. */
export interface Piece {
  readonly kind: 'code' | 'comment' | 'literal' | 'identifier' | 'dollar'
  /** Offset of its first character in the text. */
  readonly start: number
  /** Offset after its last character. */
  readonly end: number
}

/**
 * `text` cut into code, comments, string literals, quoted identifiers and dollar-quoted strings;
 * `undefined` when one of them is not terminated. Follows the server's lexer: nested block comments,
 * `''` inside literals, backslash escapes in `E'...'` only (`standard_conforming_strings` on, the
 * server's default since 9.1), dollar quotes `$$` / `$tag$` not preceded by a name. A guard against a
 * mistaken statement text, not a sanitizer for text built from untrusted input.
 */
export function pieces(text: string): Piece[] | undefined {
  const out: Piece[] = []
  let code = 0
  // the last two characters of the text as {@link copyWords} gives it so far (what an `E` or a `$` follows)
  let tail = ''
  const skip = (kind: Piece['kind'], start: number, end: number, shown: string): void => {
    if (code < start) out.push({ kind: 'code', start: code, end: start })
    out.push({ kind, start, end })
    code = end
    tail = (tail + shown).slice(-2)
  }
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i] as string
    const next = text[i + 1]
    if (c === '-' && next === '-') {
      const end = lineCommentEnd(text, i, 'postgres')
      skip('comment', i, end, ' ')
      i = end
    } else if (c === '/' && next === '*') {
      const start = i
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        const pair = text.slice(i, i + 2)
        if (pair === '/*') depth++
        else if (pair === '*/') depth--
        i += pair === '/*' || pair === '*/' ? 2 : 1
      }
      if (depth > 0) return undefined
      skip('comment', start, i, ' ')
    } else if (c === "'") {
      const escapes = /(^|[^a-zA-Z0-9_$\u0080-\uffff])[eE]$/.test(tail)
      const start = i++
      for (;;) {
        if (i >= n) return undefined
        const d = text[i]
        if (escapes && d === '\\') i += 2
        else if (d === "'" && text[i + 1] === "'") i += 2
        else if (d === "'") break
        else i++
      }
      skip('literal', start, ++i, "''")
    } else if (c === '"') {
      let end = i + 1
      for (;;) {
        end = text.indexOf('"', end)
        if (end < 0) return undefined
        if (text[end + 1] !== '"') break
        end += 2
      }
      skip('identifier', i, end + 1, '"')
      i = end + 1
    } else if (c === '$' && !/[a-zA-Z0-9_$\u0080-\uffff]$/.test(tail) && DOLLAR_TAG.test(text.slice(i))) {
      const tag = (DOLLAR_TAG.exec(text.slice(i)) as RegExpExecArray)[0]
      const end = text.indexOf(tag, i + tag.length)
      if (end < 0) return undefined
      skip('dollar', i, end + tag.length, ' ')
      i = end + tag.length
    } else {
      tail = (tail + c).slice(-2)
      i++
    }
  }
  if (code < n) out.push({ kind: 'code', start: code, end: n })
  return out
}

/**
 * `text` with comments replaced by a space, quoted identifiers by `"_"`, and string literals by `''`
 * (a literal that is one word, as in `format 'csv'`, is kept: it cannot hold a `;`); `undefined`
 * when one of them is not terminated (see {@link pieces}).
 */
function copyWords(text: string): string | undefined {
  const list = pieces(text)
  if (list === undefined) return undefined
  let out = ''
  for (const { kind, start, end } of list) {
    if (kind === 'code') out += text.slice(start, end)
    else if (kind === 'literal') {
      const content = text.slice(start + 1, end - 1)
      out += /^[a-zA-Z_]+$/.test(content) ? `'${content}'` : "''"
    } else out += kind === 'identifier' ? '"_"' : ' '
  }
  return out
}

/**
 * The query a `COPY (query) TO STDOUT` statement runs, as written in `text` (comments and literals
 * inside it kept), without the parentheses around it, redundant ones included (`copy ((select 1)) to
 * stdout` gives `select 1`); `null` for a COPY of a table (`copy t to stdout`, `copy t (a, b) to
 * stdout`); `undefined` when it cannot be told (a literal or comment not terminated, parentheses
 * that do not match, not a COPY). Comments and literals never count as parentheses.
 */
export function copyQuery(text: string): string | null | undefined {
  const list = pieces(text)
  if (list === undefined) return undefined
  // the text with comments blanked out and names and literals made `_`, offsets kept: parentheses in it are the code's
  let code = ''
  for (const { kind, start, end } of list)
    code += kind === 'code' ? text.slice(start, end) : (kind === 'comment' ? ' ' : '_').repeat(end - start)
  const head = /^\s*copy\b\s*/i.exec(code)
  if (head === null) return undefined
  let open = head[0].length
  if (code[open] !== '(') return null
  let close = closing(code, open)
  for (;;) {
    if (close < 0) return undefined
    // `( (query) )`: the inner pair is the whole query, its parentheses are not part of it
    const inner = open + 1 + (/^\s*/.exec(code.slice(open + 1)) as RegExpExecArray)[0].length
    if (code[inner] !== '(') break
    const innerClose = closing(code, inner)
    if (innerClose < 0) return undefined
    if (code.slice(innerClose + 1, close).trim() !== '') break
    open = inner
    close = innerClose
  }
  return text.slice(open + 1, close)
}

/** The offset of the `)` closing the `(` at `open` in `code`, or -1. */
function closing(code: string, open: number): number {
  let depth = 0
  for (let i = open; i < code.length; i++) {
    if (code[i] === '(') depth++
    else if (code[i] === ')' && --depth === 0) return i
  }
  return -1
}

/**
 * Whether a `COPY ... TO STDOUT` statement may write (and so commit, in auto-commit) when it runs:
 * false for a COPY of a table and for a `COPY (query)` whose query {@link isReadOnlyStatement}
 * accepts (the strict classifier of `readRouting: 'auto'`); true otherwise (`COPY (INSERT ...
 * RETURNING ...)`, `COPY (WITH d AS (DELETE ... RETURNING ...) SELECT ...)`, a SELECT calling a
 * function the classifier does not know), and whenever the text cannot be read ({@link copyQuery}).
 */
export function copyToMayWrite(text: string): boolean {
  const query = copyQuery(text)
  if (query === null) return false
  return query === undefined || !isReadOnlyStatement(query)
}
