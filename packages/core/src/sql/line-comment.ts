import type { SqlDialect } from './sql'

/**
 * Where a `--` comment that starts at `from` ends: the index of the character that ends it (not part
 * of it), or `text.length`. The engines disagree, and a scanner that reads a comment longer than the
 * engine does hides the statement after it:
 *
 * - PostgreSQL ends it at `\n` or `\r` (`scan.l`: `comment ("--"{non_newline}*)`, `non_newline
 *   [^\n\r]`), so `-- note\rCOMMIT` is a COMMIT there;
 * - SQLite only at `\n` (`tokenize.c`: `--` runs to `\n` or the end), so the same text is one comment.
 *
 * Reads each character once.
 */
export function lineCommentEnd(text: string, from: number, dialect: SqlDialect): number {
  const length = text.length
  let i = from + 2
  if (dialect === 'postgres') {
    while (i < length) {
      const c = text.charCodeAt(i)
      if (c === 10 || c === 13) return i
      i++
    }
    return length
  }
  const newline = text.indexOf('\n', i)
  return newline < 0 ? length : newline
}
