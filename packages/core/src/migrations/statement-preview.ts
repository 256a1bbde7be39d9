import { DatabaseError } from '../errors/database-error'
import { REDACTED } from '../util/redact'
import { isErrorLike } from '../util/error-like'

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
 * The literals of `text` that {@link previewStatement} hides, for hiding them also where the database
 * repeats them: each `'...'` string both as read (`''` as one quote) and as written (`''`, `\'`: a
 * syntax error echoes the token as written), each dollar-quoted body, and, scanned the same way, the
 * literals inside those bodies (a `DO $$ ... $$` block or a function body is one literal holding the
 * statements whose strings a syntax error repeats), up to {@link NESTED_DEPTH} levels deep.
 */
export function statementLiterals(text: string): string[] {
  const found = new Set<string>()
  collectLiterals(text, found, 0)
  return [...found]
}

/** How many levels of quoted bodies inside quoted bodies {@link statementLiterals} reads. */
const NESTED_DEPTH = 3

function collectLiterals(text: string, found: Set<string>, depth: number): void {
  for (const literal of scanStatement(text).literals) {
    if (literal === '' || found.has(literal)) continue
    found.add(literal)
    if (depth < NESTED_DEPTH && (literal.includes("'") || literal.includes('$'))) collectLiterals(literal, found, depth + 1)
  }
}

/**
 * Hides, in one message of the database about `statement` (its own error text; a wrapping error's
 * message is judged apart by the caller), what a reader of the message should not see of the
 * statement's literals and bound values (`literals`, see {@link statementLiterals}):
 * - every string or dollar-quoted token the message quotes (`syntax error at or near "'...'"`,
 *   SQLite's `near "'...'": syntax error`, `unrecognized token: "'...`): a token that is a literal is
 *   hidden whatever it holds (to the message's last `"` when it does not end);
 * - each literal where the message repeats it quoted (`"..."`, `'...'`), and from 4 characters on
 *   also as a whole token, never inside another word (`default 'user'` keeps `relation "users"`),
 *   in any letter case (Postgres folds an identifier it repeats: `select $1::regclass`);
 * - for a data exception (SQLSTATE class 22, `sqlState`), the input value it quotes, a bound
 *   parameter's too: after the first `: "` everything up to the message's last `"` (Postgres quotes
 *   the value raw, so a `"` inside it does not end it), and without a `: "` every quoted value
 *   (`value "..." is out of range`). A name quoted before that colon stays (`invalid value for
 *   parameter "TimeZone": "..."`).
 */
export function hideLiterals(
  message: string,
  literals: readonly string[],
  sqlState: string | undefined,
  marker: string = REDACTED,
): string {
  let out = hideQuotedTokens(message, marker)
  // only the literals the message holds (in any letter case) cost a regular expression: a failed
  // statement with thousands of bound values is hidden in time linear in their count
  const lower = out.toLowerCase()
  const upper = out.toUpperCase()
  const held = (l: string): boolean => lower.includes(l.toLowerCase()) || upper.includes(l.toUpperCase())
  const byLength = [...new Set(literals)].filter((l) => l !== '' && held(l)).sort((a, b) => b.length - a.length)
  for (const literal of byLength) {
    // in any letter case: Postgres folds an identifier it echoes (`select $1::regclass`: relation "pw_s3cret")
    const body = literal.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')
    out = out.replace(new RegExp(`"${body}"`, 'gi'), `"${marker}"`).replace(new RegExp(`'${body}'`, 'gi'), `'${marker}'`)
    if (literal.length < 4) continue
    const before = isIdentChar(literal.charCodeAt(0)) ? `(?<!${WORD})` : ''
    const after = isIdentChar(literal.charCodeAt(literal.length - 1)) ? `(?!${WORD})` : ''
    out = out.replace(new RegExp(`${before}${body}${after}`, 'gi'), marker)
  }
  if (sqlState?.startsWith('22')) out = hideDataExceptionValue(out, marker)
  return out
}

/** @internal How deep {@link hideErrorLiterals} (and the Migrator) follow an error's `cause`. */
export const ERROR_CAUSE_DEPTH = 8

/**
 * @internal `err`'s message with {@link hideLiterals} applied to each part by the SQLSTATE of the
 * error that wrote it: an error whose message repeats its cause's (TRANSACTION_ROLLED_BACK's
 * `first error: ...`, SQLSTATE 25P02) has that part hidden as the cause's own message is. Used by
 * MIGRATION_FAILED (`marker` `[REDACTED]`) and by the pool's telemetry and log lines (`[PARAMETER]`).
 */
export function hideErrorLiterals(err: unknown, literals: readonly string[], marker: string = REDACTED): string {
  return hiddenMessage(err, literals, marker, 0)
}

function hiddenMessage(err: unknown, literals: readonly string[], marker: string, depth: number, outer?: string): string {
  const message = isErrorLike(err) ? err.message : String(err)
  const sqlState = sqlStateOf(err) ?? outer
  const cause = isErrorLike(err) ? err.cause : undefined
  const inner = isErrorLike(cause) ? cause.message : undefined
  if (depth + 1 < ERROR_CAUSE_DEPTH && inner !== undefined && inner !== '' && message.includes(inner)) {
    const innerShown = hiddenMessage(cause, literals, marker, depth + 1, sqlState)
    return message
      .split(inner)
      .map((part) => hideLiterals(part, literals, sqlState, marker))
      .join(innerShown)
  }
  return hideLiterals(message, literals, sqlState, marker)
}

/**
 * @internal An error's SQLSTATE: a {@link DatabaseError}'s `sqlState`, or a driver error's
 * five-character `code` (node-postgres puts the server's there); undefined when it has none.
 */
export function sqlStateOf(err: unknown): string | undefined {
  if (DatabaseError.is(err)) return err.sqlState
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** An identifier character, as {@link isIdentChar} reads one, for a regular expression. */
const WORD = String.raw`[A-Za-z0-9_\u0080-\uffff]`

/** Class 22: the quoted input value (see {@link hideLiterals}). */
function hideDataExceptionValue(message: string, marker: string): string {
  const open = message.indexOf(': "')
  const close = message.lastIndexOf('"')
  if (open >= 0 && close > open + 2) return `${message.slice(0, open + 3)}${marker}${message.slice(close)}`
  if (open >= 0) return `${message.slice(0, open + 3)}${marker}`
  return message.replace(/"(?:[^"]|"")*"/g, `"${marker}"`)
}

/**
 * Hides every string or dollar-quoted token quoted in `message` with `"` (as syntax errors of both
 * databases echo the token they stopped at): `"'...'"` with `''` (`E'...'`: also `\'`) inside, any
 * prefix `E`, `U&`, `B`, `X`, `N` kept, and `"$tag$...$tag$"`; a token that does not end there is
 * hidden to the message's last `"` (or its end).
 */
function hideQuotedTokens(message: string, marker: string): string {
  let out = ''
  let copied = 0
  let i = message.indexOf('"')
  while (i >= 0) {
    let at = i + 1
    const c = message.charCodeAt(at)
    if (c === 85 || c === 117 /* U u */) at = message.charCodeAt(at + 1) === 38 /* & */ ? at + 2 : at
    else if ([69, 101, 66, 98, 88, 120, 78, 110].includes(c) && message.charCodeAt(at + 1) === 39) at++
    let end = -1
    let body = -1
    if (message.charCodeAt(at) === 39 /* ' */) {
      body = at + 1
      const after = skipQuoted(message, body, 39, at > i + 1 && isEscapePrefix(message, at))
      end = message.charCodeAt(after) === 34 && message.charCodeAt(after - 1) === 39 && after > body ? after - 1 : -1
    } else if (c === 36 /* $ */) {
      const tagEnd = dollarTagEnd(message, at)
      if (tagEnd >= 0) {
        const tag = message.slice(at, tagEnd + 1)
        body = tagEnd + 1
        const close = message.indexOf(`${tag}"`, body)
        end = close < 0 ? -1 : close
      }
    }
    if (body < 0) {
      i = message.indexOf('"', i + 1)
      continue
    }
    if (end < 0) {
      const last = message.lastIndexOf('"')
      end = last > body ? last : message.length
    }
    out += `${message.slice(copied, body)}${marker}`
    copied = end
    i = message.indexOf('"', Math.max(end, i + 1) + 1)
  }
  return out + message.slice(copied)
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
      const raw = text.slice(start, text.charCodeAt(i - 1) === 39 && i - 1 >= start ? i - 1 : i)
      const value = raw.replaceAll("''", "'")
      literals.push(value)
      if (value !== raw) literals.push(raw)
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
