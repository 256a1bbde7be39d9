import { DatabaseError } from '@dbpool/core'
import { checkStatementText } from '@dbpool/core/internal'

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

/**
 * `text` with comments replaced by a space, quoted identifiers by `"_"`, and string literals by `''`
 * (a literal that is one word, as in `format 'csv'`, is kept: it cannot hold a `;`); `undefined`
 * when one of them is not terminated. Follows the server's lexer: nested block comments, `''` inside
 * literals, backslash escapes in `E'...'` only (`standard_conforming_strings` on, the server's default
 * since 9.1), dollar quotes `$$` / `$tag$` not preceded by a name. A guard against a mistaken
 * statement text, not a sanitizer for text built from untrusted input.
 */
function copyWords(text: string): string | undefined {
  let out = ''
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i] as string
    const next = text[i + 1]
    if (c === '-' && next === '-') {
      const end = text.indexOf('\n', i)
      i = end < 0 ? n : end
      out += ' '
    } else if (c === '/' && next === '*') {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        const pair = text.slice(i, i + 2)
        if (pair === '/*') depth++
        else if (pair === '*/') depth--
        i += pair === '/*' || pair === '*/' ? 2 : 1
      }
      if (depth > 0) return undefined
      out += ' '
    } else if (c === "'") {
      const escapes = /(^|[^a-zA-Z0-9_$])[eE]$/.test(out)
      const start = ++i
      for (;;) {
        if (i >= n) return undefined
        const d = text[i]
        if (escapes && d === '\\') i += 2
        else if (d === "'" && text[i + 1] === "'") i += 2
        else if (d === "'") break
        else i++
      }
      const content = text.slice(start, i++)
      out += /^[a-zA-Z_]+$/.test(content) ? `'${content}'` : "''"
    } else if (c === '"') {
      let end = i + 1
      for (;;) {
        end = text.indexOf('"', end)
        if (end < 0) return undefined
        if (text[end + 1] !== '"') break
        end += 2
      }
      out += '"_"'
      i = end + 1
    } else if (c === '$' && !/[a-zA-Z0-9_$]$/.test(out) && /^\$([a-zA-Z_][a-zA-Z0-9_]*)?\$/.test(text.slice(i))) {
      const tag = (/^\$([a-zA-Z_][a-zA-Z0-9_]*)?\$/.exec(text.slice(i)) as RegExpExecArray)[0]
      const end = text.indexOf(tag, i + tag.length)
      if (end < 0) return undefined
      i = end + tag.length
      out += ' '
    } else {
      out += c
      i++
    }
  }
  return out
}
