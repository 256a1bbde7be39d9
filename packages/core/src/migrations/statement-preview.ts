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
  return scanStatement(text).preview
}

/**
 * The values of the literals of `text` that {@link previewStatement} hides (`'...'` strings with `''`
 * read as one quote, dollar-quoted bodies), for hiding them also where the database repeats them.
 */
export function statementLiterals(text: string): string[] {
  return scanStatement(text).literals
}

/**
 * Hides, in a message about `statement` (the database's own error text), what a reader of the message
 * should not see of the statement's literals (see {@link previewStatement}): every literal of the
 * statement that the message repeats (quoted or, from 4 characters on, anywhere), and, for a
 * Postgres data exception (SQLSTATE class 22: `invalid input syntax for type integer: "S3CRET"`,
 * whose quoted text is the input value, a bound parameter's too), every double-quoted value.
 */
export function hideLiterals(message: string, literals: readonly string[], sqlState: string | undefined): string {
  let out = message
  for (const literal of literals) {
    if (literal === '') continue
    if (literal.length >= 4) out = out.split(literal).join(REDACTED)
    else out = out.split(`"${literal}"`).join(`"${REDACTED}"`).split(`'${literal}'`).join(`'${REDACTED}'`)
  }
  if (sqlState?.startsWith('22')) out = out.replace(/"(?:[^"]|"")*"/g, `"${REDACTED}"`)
  return out
}

function scanStatement(text: string): { preview: string; literals: string[] } {
  const literals: string[] = []
  const length = text.length
  let out = ''
  let copied = 0
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === 39 /* ' */) {
      const escapes = isEscapePrefix(text, i)
      out += `${text.slice(copied, i)}'${REDACTED}'`
      const start = i + 1
      i = skipQuoted(text, start, 39, escapes)
      literals.push(text.slice(start, text.charCodeAt(i - 1) === 39 && i - 1 >= start ? i - 1 : i).replaceAll("''", "'"))
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
      literals.push(text.slice(tagEnd + 1, close < 0 ? length : close))
      i = close < 0 ? length : close + tag.length
      copied = i
    } else {
      i++
    }
  }
  const flat = (out + text.slice(copied)).replace(/\s+/g, ' ').trim()
  return { preview: flat.length > 200 ? `${flat.slice(0, 197)}...` : flat, literals }
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
