import { DatabaseError } from '../errors/database-error'
import { REDACTED } from '../util/redact'
import { isErrorLike } from '../util/error-like'
import { lineCommentEnd } from '../sql/line-comment'
import type { SqlDialect } from '../sql/sql'

/**
 * A failing migration statement as MIGRATION_FAILED shows it (message and `detail.statement`): one
 * line, at most 200 characters, EVERY literal hidden. A single scan reads, in SQL's order and by
 * `dialect`'s lexical rules, `'...'` strings (`''` inside; Postgres's `E'...'` also `\'`; prefixes
 * `E`, `U&`, `B`, `X`, `N` kept), Postgres's `$tag$...$tag$` dollar-quoted bodies, `"..."`
 * identifiers and SQLite's `` `...` `` and `[...]` ones (kept), `-- ...` and `/* ... *\/` comments
 * (dropped; nested on Postgres, ended at the first `*\/` on SQLite), so a `--` inside a literal
 * (`password 'sec--ret'`) never cuts it and shows its start. Each literal becomes `'[REDACTED]'`
 * (`$tag$[REDACTED]$tag$`): `password $$Hunter2$$`, `E'...'`, `U&'...'` and any literal a
 * password function or a secret-bearing statement takes are hidden without knowing the statement.
 * An unterminated literal is hidden to the end. Linear in the length of `text`. This one takes no
 * dialect (it can be given to `Array.prototype.map`): whatever either dialect hides is hidden; see
 * {@link previewStatementIn}.
 */
export function previewStatement(text: string): string {
  return previewStatementIn(text, undefined)
}

/** {@link previewStatement} by `dialect`'s lexical rules (undefined: whatever either dialect hides is hidden). */
export function previewStatementIn(text: string, dialect: SqlDialect | undefined): string {
  if (dialect !== undefined) return render(text, scanStatement(text, dialect).regions)
  return render(text, unionRegions(scanStatement(text, 'postgres').regions, scanStatement(text, 'sqlite').regions))
}

/**
 * The literals of `text` that {@link previewStatement} hides (by `dialect`'s rules; without one, by
 * both), for hiding them also where the database
 * repeats them: each `'...'` string both as read (`''` as one quote) and as written (`''`, `\'`: a
 * syntax error echoes the token as written), each dollar-quoted body, and, scanned the same way, the
 * literals inside those bodies (a `DO $$ ... $$` block or a function body is one literal holding the
 * statements whose strings a syntax error repeats), up to {@link NESTED_DEPTH} levels deep.
 */
export function statementLiterals(text: string, dialect?: SqlDialect): string[] {
  const found = new Set<string>()
  if (dialect === undefined) {
    collectLiterals(text, found, 0, 'postgres')
    collectLiterals(text, found, 0, 'sqlite')
  } else collectLiterals(text, found, 0, dialect)
  return [...found]
}

/** How many levels of quoted bodies inside quoted bodies {@link statementLiterals} reads. */
const NESTED_DEPTH = 3

function collectLiterals(text: string, found: Set<string>, depth: number, dialect: SqlDialect): void {
  for (const literal of scanStatement(text, dialect).literals) {
    if (literal === '' || found.has(literal)) continue
    found.add(literal)
    if (depth < NESTED_DEPTH && (literal.includes("'") || literal.includes('$'))) collectLiterals(literal, found, depth + 1, dialect)
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

/** A part of a statement {@link previewStatement} does not show as written: `[start, end)` and what is shown instead. */
interface Region {
  readonly start: number
  readonly end: number
  readonly shown: string
}

/** The literals and comments of `text` by `dialect`'s rules: where they are (see {@link Region}) and each literal's value. */
function scanStatement(text: string, dialect: SqlDialect): { regions: Region[]; literals: string[] } {
  const sqlite = dialect === 'sqlite'
  const literals: string[] = []
  const regions: Region[] = []
  const length = text.length
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === 39 /* ' */) {
      const escapes = !sqlite && isEscapePrefix(text, i)
      const at = i
      const start = i + 1
      i = skipQuoted(text, start, 39, escapes)
      regions.push({ start: at, end: i, shown: `'${REDACTED}'` })
      const raw = text.slice(start, text.charCodeAt(i - 1) === 39 && i - 1 >= start ? i - 1 : i)
      const value = raw.replaceAll("''", "'")
      literals.push(value)
      if (value !== raw) literals.push(raw)
    } else if (c === 34 /* " */ || (sqlite && c === 96) /* ` */) {
      i = skipQuoted(text, i + 1, c, false)
    } else if (sqlite && c === 91 /* [ */) {
      // SQLite's `[name]`: no escape inside, a `'` in it is part of the name
      const close = text.indexOf(']', i + 1)
      i = close < 0 ? length : close + 1
    } else if (sqlite && (c === 36 || c === 64 || c === 58 || c === 35) /* $ @ : # */) {
      i = sqliteVariableEnd(text, i)
    } else if (c === 45 /* - */ && text.charCodeAt(i + 1) === 45) {
      const end = lineCommentEnd(text, i, dialect)
      regions.push({ start: i, end, shown: ' ' })
      i = end
    } else if (c === 47 /* / */ && text.charCodeAt(i + 1) === 42 /* * */) {
      const end = skipBlockComment(text, i + 2, !sqlite)
      regions.push({ start: i, end, shown: ' ' })
      i = end
    } else if (c === 36 /* $ */ && !isIdentChar(text.charCodeAt(i - 1))) {
      const tagEnd = dollarTagEnd(text, i)
      if (tagEnd < 0) {
        i++
        continue
      }
      const tag = text.slice(i, tagEnd + 1)
      const close = text.indexOf(tag, tagEnd + 1)
      const end = close < 0 ? length : close + tag.length
      regions.push({ start: i, end, shown: `${tag}${REDACTED}${tag}` })
      literals.push(text.slice(tagEnd + 1, close < 0 ? length : close))
      i = end
    } else if (isIdentChar(c)) {
      // a whole word: `e'...'` is an E string only at a word's start (isEscapePrefix), `a$b$` is one name
      i++
      while (i < length && (isIdentChar(text.charCodeAt(i)) || text.charCodeAt(i) === 36)) i++
    } else {
      i++
    }
  }
  return { regions, literals }
}

/** `text` with each region (in order, not overlapping) shown as it says, on one line, at most 200 characters. */
function render(text: string, regions: readonly Region[]): string {
  let out = ''
  let copied = 0
  for (const r of regions) {
    out += text.slice(copied, r.start) + r.shown
    copied = r.end
  }
  const flat = (out + text.slice(copied)).replace(/\s+/g, ' ').trim()
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat
}

/**
 * What either scan does not show as written, overlapping regions merged: a region found alike by
 * both (or only by one) keeps its text; a merged one shows `[REDACTED]` (a literal) or a blank (comments only).
 */
function unionRegions(a: readonly Region[], b: readonly Region[]): Region[] {
  const all = [...a, ...b].sort((x, y) => x.start - y.start || y.end - x.end)
  const out: Region[] = []
  let group: Region[] = []
  const flush = (): void => {
    if (group.length === 0) return
    const start = group[0]!.start
    const end = Math.max(...group.map((r) => r.end))
    const whole = group.find((r) => r.start === start && r.end === end)
    const merged = group.every((r) => r.start === start && r.end === end)
    const comments = group.every((r) => r.shown === ' ')
    out.push({ start, end, shown: merged && whole ? whole.shown : comments ? ' ' : REDACTED })
    group = []
  }
  let groupEnd = -1
  for (const r of all) {
    if (group.length > 0 && r.start >= groupEnd) flush()
    group.push(r)
    groupEnd = Math.max(groupEnd, r.end)
  }
  flush()
  return out
}

/**
 * Past SQLite's parameter at `i` (`$`, `@`, `:` or `#`, then identifier characters, `::` and a Tcl
 * `(...)` suffix, as SQLite's tokenizer reads it); `i + 1` for a lone character.
 */
function sqliteVariableEnd(text: string, i: number): number {
  const length = text.length
  let j = i + 1
  let n = 0
  while (j < length) {
    const c = text.charCodeAt(j)
    if (isIdentChar(c) || c === 36) {
      n++
      j++
    } else if (c === 40 /* ( */ && n > 0) {
      j++
      while (j < length && !/\s/.test(text[j]!) && text.charCodeAt(j) !== 41) j++
      if (text.charCodeAt(j) === 41 /* ) */) j++
      break
    } else if (c === 58 /* : */ && text.charCodeAt(j + 1) === 58) j += 2
    else break
  }
  return n === 0 ? i + 1 : j
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

/** After `/*` at `from - 2`: the index after the matching `*\/` (with `nested`, nested comments count, as in PostgreSQL; else the first one, as in SQLite). */
function skipBlockComment(text: string, from: number, nested: boolean): number {
  let depth = 1
  let i = from
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 42 && text.charCodeAt(i + 1) === 47) {
      i += 2
      if (--depth === 0) return i
    } else if (nested && c === 47 && text.charCodeAt(i + 1) === 42) {
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
