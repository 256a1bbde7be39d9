import { REDACTED } from '../util/redact'

/**
 * A failing migration statement as MIGRATION_FAILED shows it (message and `detail.statement`): one
 * line, at most 200 characters, EVERY literal hidden. A single scan reads, in SQL's order,
 * `'...'` strings (`''` inside; `E'...'` also `\'`; prefixes `E`, `U&`, `B`, `X`, `N` kept),
 * `$tag$...$tag$` dollar-quoted bodies (PostgreSQL), `"..."` identifiers (kept), `-- ...` and
 * `/* ... *\/` comments (dropped; nested as in PostgreSQL), so a `--` inside a literal
 * (`password 'sec--ret'`) never cuts it and shows its start. Each literal becomes `'[REDACTED]'`
 * (`$tag$[REDACTED]$tag$`): `password $$Hunter2$$`, `E'...'`, `U&'...'` and any literal a
 * password function or a secret-bearing statement takes are hidden without knowing the statement.
 * An unterminated literal is hidden to the end. Linear in the length of `text`.
 */
export function previewStatement(text: string): string {
  const length = text.length
  let out = ''
  let copied = 0
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === 39 /* ' */) {
      const escapes = isEscapePrefix(text, i)
      out += `${text.slice(copied, i)}'${REDACTED}'`
      i = skipQuoted(text, i + 1, 39, escapes)
      copied = i
    } else if (c === 34 /* " */) {
      i = skipQuoted(text, i + 1, 34, false)
    } else if (c === 45 /* - */ && text.charCodeAt(i + 1) === 45) {
      const nl = text.indexOf('\n', i + 2)
      out += `${text.slice(copied, i)} `
      i = nl < 0 ? length : nl
      copied = i
    } else if (c === 47 /* / */ && text.charCodeAt(i + 1) === 42 /* * */) {
      out += `${text.slice(copied, i)} `
      i = skipBlockComment(text, i + 2)
      copied = i
    } else if (c === 36 /* $ */ && !isIdentChar(text.charCodeAt(i - 1))) {
      const tagEnd = dollarTagEnd(text, i)
      if (tagEnd < 0) {
        i++
        continue
      }
      const tag = text.slice(i, tagEnd + 1)
      const close = text.indexOf(tag, tagEnd + 1)
      out += `${text.slice(copied, i)}${tag}${REDACTED}${tag}`
      i = close < 0 ? length : close + tag.length
      copied = i
    } else {
      i++
    }
  }
  const flat = (out + text.slice(copied)).replace(/\s+/g, ' ').trim()
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat
}

/** After the opening quote at `from - 1`: the index after the closing one (a doubled quote is one character; with `escapes`, `\x` too). */
function skipQuoted(text: string, from: number, quote: number, escapes: boolean): number {
  let i = from
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (escapes && c === 92 /* \ */) i += 2
    else if (c === quote) {
      if (text.charCodeAt(i + 1) !== quote) return i + 1
      i += 2
    } else i++
  }
  return text.length
}

/** After `/*` at `from - 2`: the index after the matching `*\/` (nested comments count, as in PostgreSQL). */
function skipBlockComment(text: string, from: number): number {
  let depth = 1
  let i = from
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 42 && text.charCodeAt(i + 1) === 47) {
      i += 2
      if (--depth === 0) return i
    } else if (c === 47 && text.charCodeAt(i + 1) === 42) {
      depth++
      i += 2
    } else i++
  }
  return text.length
}

/** Whether the `'` at `quote` opens an `E'...'` string (backslash escapes): `e`/`E` right before it, not ending a longer word. */
function isEscapePrefix(text: string, quote: number): boolean {
  const p = text.charCodeAt(quote - 1)
  return (p === 69 || p === 101) && !isIdentChar(text.charCodeAt(quote - 2))
}

/** Where the `$tag$` opening at `at` ends (its second `$`), else -1: the tag is empty or an identifier not starting with a digit (`$1` is a parameter). */
function dollarTagEnd(text: string, at: number): number {
  let i = at + 1
  if (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) return -1
  while (i < text.length && isIdentChar(text.charCodeAt(i))) i++
  return text.charCodeAt(i) === 36 ? i : -1
}

/** `[A-Za-z0-9_]` or any non-ASCII character (PostgreSQL identifiers take them). NaN (outside the text) is none. */
function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c > 127
}
