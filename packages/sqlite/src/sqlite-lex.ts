/**
 * SQLite's lexical rules (`tokenize.c`), enough to find keywords and placeholders: a token is
 * `w<word>`, `n<name>` (a quoted name or a string, unquoted), `0<number>` (its text), or one
 * punctuation character. Comments and blanks are dropped: `--` runs to `\n` (or the end), `/* *\/`
 * does not nest; `'strings'`, `"names"`, `` `names` `` (a doubled quote is one quote character) and
 * `[names]` (no escape) are read whole.
 *
 * @param starts When given, receives each token's start index in `text`.
 */
export function lex(text: string, starts?: number[]): string[] {
  const tokens: string[] = []
  const n = text.length
  let i = 0
  while (i < n) {
    const ch = text[i]!
    if (ch === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i)
      i = end < 0 ? n : end + 1
    } else if (ch === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2)
      i = end < 0 ? n : end + 2
    } else if (ch === "'" || ch === '"' || ch === '`' || ch === '[') {
      const close = ch === '[' ? ']' : ch
      let value = ''
      let j = i + 1
      for (;;) {
        const c = text[j]
        if (c === undefined) break
        if (c === close) {
          // a doubled quote is one quote character ([...] has no escape)
          if (close !== ']' && text[j + 1] === close) {
            value += c
            j += 2
            continue
          }
          break
        }
        value += c
        j++
      }
      starts?.push(i)
      tokens.push(`n${value}`)
      i = j + 1
    } else if (/[A-Za-z_\u0080-\uffff]/.test(ch)) {
      let j = i + 1
      while (j < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(text[j]!)) j++
      starts?.push(i)
      tokens.push(`w${text.slice(i, j)}`)
      i = j
    } else if (/[0-9]/.test(ch)) {
      let j = i + 1
      while (j < n && /[A-Za-z0-9_.]/.test(text[j]!)) j++
      starts?.push(i)
      tokens.push(`0${text.slice(i, j)}`)
      i = j
    } else {
      if (!/\s/.test(ch)) {
        starts?.push(i)
        tokens.push(ch)
      }
      i++
    }
  }
  return tokens
}

/** The characters that start a placeholder in SQLite (`?`, `?NNN`, `:name`, `@name`, `$name`, `#name`). */
const PLACEHOLDER_START: ReadonlySet<string> = new Set(['?', ':', '@', '$', '#'])

/**
 * The first placeholder of `text` as written (`?`, `?5`, `:x`, `@x`, `$x`), read with {@link lex}:
 * one inside a string, a quoted name or a comment is not a placeholder. Undefined when there is none.
 * SQLite has no other use for these characters outside such tokens (a `$` inside a word is part of
 * the word).
 */
export function firstPlaceholder(text: string): string | undefined {
  if (!/[?:@$#]/.test(text)) return undefined
  const starts: number[] = []
  const tokens = lex(text, starts)
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!
    if (!PLACEHOLDER_START.has(token)) continue
    // its name or number, when it follows at once
    const next = tokens[i + 1]
    const named = next !== undefined && starts[i + 1] === starts[i]! + 1 && (next[0] === 'w' || next[0] === '0')
    return named ? token + next.slice(1) : token
  }
  return undefined
}
