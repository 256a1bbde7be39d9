import { lineCommentEnd } from '../sql/line-comment'
import type { SqlDialect } from '../sql/sql'
/** @internal What telemetry reads from a statement's text: its operation and the table it names first. */
export interface StatementHead {
  /** The first keyword, as written (`select`, `INSERT`, `BEGIN`...; `db.operation.name` is {@link operationName} of it); none for several statements. */
  readonly operation: string | undefined
  /**
   * `db.collection.name`: the first table of a SELECT/DELETE (after a FROM outside parentheses),
   * INSERT (INTO), UPDATE or COPY, as written; none for several statements.
   */
  readonly collection: string | undefined
}

/**
 * The statements' first keywords of PostgreSQL and SQLite (their SQL command references): the only
 * values `db.operation.name` takes, upper-cased, so that `select`, `SELECT` and `Select` are one
 * metric series and a malformed or unusual text adds none.
 */
const SQL_VERBS: ReadonlySet<string> = new Set(
  (
    'ABORT ALTER ANALYZE ANALYSE ATTACH BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT COMMIT COPY CREATE DEALLOCATE ' +
    'DECLARE DELETE DETACH DISCARD DO DROP END EXECUTE EXPLAIN FETCH GRANT IMPORT INSERT LISTEN LOAD LOCK MERGE MOVE ' +
    'NOTIFY PRAGMA PREPARE REASSIGN REFRESH REINDEX RELEASE REPLACE RESET REVOKE ROLLBACK SAVEPOINT SECURITY SELECT ' +
    'SET SHOW START TABLE TRUNCATE UNLISTEN UPDATE VACUUM VALUES WITH'
  ).split(' '),
)

/**
 * @internal `db.operation.name` for a statement's first keyword (see {@link readStatementHead}):
 * upper-cased when it is one of PostgreSQL's or SQLite's statement keywords, else undefined (the
 * conventions leave the attribute out when the operation is unknown; the span is then named after
 * its table or database alone).
 */
export function operationName(keyword: string | undefined): string | undefined {
  if (keyword === undefined) return undefined
  const upper = keyword.toUpperCase()
  return SQL_VERBS.has(upper) ? upper : undefined
}

// FROM followed by one of these is not a table (`delete from ... using`, `select ... from (subquery)` has no name)
const NOT_TABLES: ReadonlySet<string> = new Set(['select', 'lateral', 'unnest', 'generate_series', 'json_each', 'jsonb_each'])
const NONE: StatementHead = Object.freeze({ operation: undefined, collection: undefined })

/**
 * @internal Reads the operation and first table of a statement with a small scanner (no SQL parser, no
 * regular expression): blanks, comments, string literals and quoted identifiers are skipped as units
 * by `dialect`'s lexical rules (see {@link sanitizeStatementText}), so a `from` inside them, or inside the
 * parentheses of a call (`extract(year from x)`, `trim(both 'x' from name)`) or a subquery, is not
 * taken for the statement's FROM. Text of several statements (a `;` followed by more) gets neither
 * name, as the OpenTelemetry conventions ask. A text it does not understand simply has no collection (a
 * `WITH` query names its CTE's tables after the operation `WITH`, so none is given for it). Without a
 * dialect, a name is given only where both dialects read the same one. Linear in the length of `text`.
 */
export function readStatementHead(text: string, dialect?: SqlDialect): StatementHead {
  if (dialect === undefined) {
    const pg = readStatementHead(text, 'postgres')
    const lite = readStatementHead(text, 'sqlite')
    if (pg.operation !== lite.operation) return NONE
    return pg.collection === lite.collection ? pg : { operation: pg.operation, collection: undefined }
  }
  const scan = new Scanner(text, dialect)
  if (scan.next() !== WORD) return NONE
  const operation = text.slice(scan.start, scan.end)
  const op = operation.toLowerCase()
  let collection: string | undefined
  switch (op) {
    case 'insert':
    case 'replace':
      skipOr(scan)
      if (scan.next() === WORD && scan.word() === 'into') collection = readName(scan)
      break
    case 'update':
      skipOr(scan)
      scan.take('only')
      collection = readName(scan)
      break
    case 'copy':
      collection = readName(scan)
      break
  }
  // the rest: the first FROM outside parentheses (SELECT, DELETE), and a ";" followed by another statement
  const findFrom = op === 'select' || op === 'delete'
  let depth = 0
  // BEGIN ... END bodies of CREATE FUNCTION / TRIGGER hold ";"
  let block = 0
  let separated = false
  let fromSeen = false
  for (let kind = scan.next(); kind !== END; kind = scan.next()) {
    if (separated) return NONE
    if (kind === OPEN) depth++
    else if (kind === CLOSE) depth = Math.max(0, depth - 1)
    else if (kind === SEMICOLON) separated = depth === 0 && block === 0
    else if (kind === WORD && depth === 0) {
      const word = scan.word()
      if (findFrom && !fromSeen && word === 'from') {
        fromSeen = true
        collection = readName(scan, true)
      } else if (op === 'create') {
        if (word === 'begin' || (block > 0 && word === 'case')) block++
        else if (word === 'end' && block > 0) block--
      }
    }
  }
  return { operation, collection }
}

/** `or <conflict-clause>` of SQLite's `INSERT OR REPLACE` / `UPDATE OR IGNORE`. */
function skipOr(scan: Scanner): void {
  if (scan.take('or')) scan.next()
}

/**
 * An identifier, plain or quoted, optionally qualified (`schema.table`), as written; `undefined` when
 * the next token is none, one of {@link NOT_TABLES} or, `afterFrom`, a call (`unnest(...)`; after
 * INTO or COPY a `(` starts the column list). Only reads what it returns
 * (a token that is no name, and the one after a name, are put back).
 */
function readName(scan: Scanner, afterFrom = false): string | undefined {
  const before = scan.pos
  const first = scan.next()
  if (first !== WORD && first !== QUOTED) {
    scan.pos = before
    return undefined
  }
  const start = scan.start
  let end = scan.end
  for (;;) {
    const mark = scan.pos
    if (scan.next() !== DOT) {
      scan.pos = mark
      break
    }
    const part = scan.next()
    if (part !== WORD && part !== QUOTED) {
      scan.pos = mark
      break
    }
    end = scan.end
  }
  const mark = scan.pos
  const call = afterFrom && scan.next() === OPEN
  scan.pos = mark
  const name = scan.text.slice(start, end)
  return call || NOT_TABLES.has(name.toLowerCase()) ? undefined : name
}

const END = 0
const WORD = 1
const QUOTED = 2
const OPEN = 3
const CLOSE = 4
const SEMICOLON = 5
const DOT = 6
const OTHER = 7
/** A string (`'...'`, `E'...'`), dollar-quoted body or number. */
const LITERAL = 8
type Token =
  typeof END | typeof WORD | typeof QUOTED | typeof OPEN | typeof CLOSE | typeof SEMICOLON | typeof DOT | typeof OTHER | typeof LITERAL

/**
 * @internal The numeric literals of `text` (`42`, `1.5`, `1e-5`, `0x1F`, and a number with trailing
 * junk as one token: `4111111111111111x`), as written, read with the scanner of
 * {@link sanitizeStatementText} (by `dialect`'s rules; without one, those of both dialects), which shows them as `?`: telemetry hides them where an error message
 * repeats them (`syntax error at or near "4111111111111111"`, SQLite's `near "...": syntax error`).
 * Parameters (`$1`, `?2`) and digits inside names (`t1`) are not numbers. Linear in the length of `text`.
 */
export function statementNumbers(text: string, dialect?: SqlDialect): string[] {
  if (dialect === undefined) return [...new Set([...statementNumbers(text, 'postgres'), ...statementNumbers(text, 'sqlite')])]
  const scan = new Scanner(text, dialect)
  const found = new Set<string>()
  for (let kind = scan.next(); kind !== END; kind = scan.next()) {
    if (kind !== LITERAL) continue
    const c = text.charCodeAt(scan.start)
    if (isDigit(c) || c === 46 /* . */) found.add(text.slice(scan.start, scan.end))
  }
  return [...found]
}

/**
 * @internal `text` with every literal replaced by `?`, for `db.query.text` and the slow-statement
 * log (OpenTelemetry's database conventions: the text is not recorded unsanitised by default). The
 * same scanner as {@link readStatementHead}, by `dialect`'s lexical rules: string literals (`'...'`
 * with `''`, and their prefixes `B`, `X`, `N`, `U&`), numbers (`42`, `1.5`, `1e-5`, `0x1F`) and, on
 * Postgres, `E'...'` (with `\'`) and dollar-quoted bodies (`$tag$...$tag$`) become `?`; parameters
 * (`$1`, `?`, `?2`, `:name`, `@name`, `$name`), names (quoted ones too: `"..."`, and on SQLite
 * `` `...` `` and `[...]`), keywords, operators and comments stay. Comments end as each engine ends
 * them: Postgres nests `/* *\/` and ends `--` at `\n` or `\r`; SQLite ends `/* *\/` at the first `*\/`
 * and `--` at `\n` only. Without a dialect, whatever either dialect reads as a literal is hidden (the
 * union). An unterminated literal is hidden to the end. Linear in the length of `text`; returns `text`
 * itself when it holds no literal.
 */
export function sanitizeStatementText(text: string, dialect?: SqlDialect): string {
  const ranges =
    dialect === undefined ? unionRanges(literalRanges(text, 'postgres'), literalRanges(text, 'sqlite')) : literalRanges(text, dialect)
  if (ranges.length === 0) return text
  let out = ''
  let copied = 0
  for (const [from, to] of ranges) {
    out += `${text.slice(copied, from)}?`
    copied = to
  }
  return out + text.slice(copied)
}

/** Where `text`'s literals are (`[from, to)`, in order, a prefix such as `X` or `U&` included), by `dialect`'s rules. */
function literalRanges(text: string, dialect: SqlDialect): Array<[number, number]> {
  const scan = new Scanner(text, dialect)
  const ranges: Array<[number, number]> = []
  let copied = 0
  // the two tokens before this one: a literal's prefix (`X'..'`, `U&'..'`) is hidden with it
  let prevKind: Token = END
  let prevStart = -1
  let prevEnd = -1
  let prev2Kind: Token = END
  let prev2Start = -1
  let prev2End = -1
  for (let kind = scan.next(); kind !== END; kind = scan.next()) {
    if (kind === LITERAL) {
      let from = scan.start
      if (text.charCodeAt(from) === 39 /* ' */) {
        if (prevKind === WORD && prevEnd === from && /^[bxn]$/i.test(text.slice(prevStart, prevEnd))) from = prevStart
        else if (
          prevKind === OTHER &&
          prevEnd === from &&
          text.charCodeAt(prevStart) === 38 /* & */ &&
          prev2Kind === WORD &&
          prev2End === prevStart &&
          /^u$/i.test(text.slice(prev2Start, prev2End))
        )
          from = prev2Start
      }
      if (from >= copied) {
        ranges.push([from, scan.end])
        copied = scan.end
      }
    }
    prev2Kind = prevKind
    prev2Start = prevStart
    prev2End = prevEnd
    prevKind = kind
    prevStart = scan.start
    prevEnd = scan.end
  }
  return ranges
}

/** The ranges covered by `a` or `b` (each in order), overlapping ones merged. */
function unionRanges(a: ReadonlyArray<[number, number]>, b: ReadonlyArray<[number, number]>): Array<[number, number]> {
  const all = [...a, ...b].sort((x, y) => x[0] - y[0])
  const out: Array<[number, number]> = []
  for (const [from, to] of all) {
    const last = out[out.length - 1]
    if (last && from < last[1]) last[1] = Math.max(last[1], to)
    else out.push([from, to])
  }
  return out
}

/** Tokens of SQL text (by one engine's lexical rules, enough to skip what holds no keyword). */
class Scanner {
  readonly text: string
  readonly sqlite: boolean
  /** Where the next token is looked for. */
  pos = 0
  /** The last token's span. */
  start = 0
  end = 0

  constructor(text: string, dialect: SqlDialect) {
    this.text = text
    this.sqlite = dialect === 'sqlite'
  }

  /** The last token, lower-cased. */
  word(): string {
    return this.text.slice(this.start, this.end).toLowerCase()
  }

  /** Consumes the next token if it is the word `word` (lower case), else leaves it. */
  take(word: string): boolean {
    const mark = this.pos
    if (this.next() === WORD && this.word() === word) return true
    this.pos = mark
    return false
  }

  next(): Token {
    const text = this.text
    const length = text.length
    let i = this.pos
    for (;;) {
      while (i < length && isBlank(text.charCodeAt(i))) i++
      if (i >= length) {
        this.pos = this.start = this.end = length
        return END
      }
      const c = text.charCodeAt(i)
      if (c === 45 /* - */ && text.charCodeAt(i + 1) === 45) {
        // Postgres ends it at `\n` or `\r`, SQLite at `\n` only
        i = Math.min(lineCommentEnd(text, i, this.sqlite ? 'sqlite' : 'postgres') + 1, length)
        continue
      }
      if (c === 47 /* / */ && text.charCodeAt(i + 1) === 42 /* * */) {
        // Postgres nests block comments; SQLite's end at the first `*/` (what follows runs)
        let nesting = 1
        i += 2
        while (i < length && nesting > 0) {
          const d = text.charCodeAt(i)
          if (d === 42 && text.charCodeAt(i + 1) === 47) {
            nesting--
            i += 2
          } else if (d === 47 && text.charCodeAt(i + 1) === 42 && !this.sqlite) {
            nesting++
            i += 2
          } else i++
        }
        continue
      }
      break
    }
    this.start = i
    const c = text.charCodeAt(i)
    let kind: Token = OTHER
    if ((c === 69 || c === 101) /* E e */ && text.charCodeAt(i + 1) === 39 && !this.sqlite) {
      // Postgres's E'...' (backslash escapes); SQLite has none: a backslash is an ordinary character
      i = skipQuoted(text, i + 1, 39, true)
      kind = LITERAL
    } else if (this.sqlite && (c === 36 || c === 64 || c === 58 || c === 35) /* $ @ : # */) {
      // SQLite's `$name`, `@name`, `:name`, `#name` parameters (no dollar quoting), with their Tcl suffix `$a(...)`
      i = sqliteVariableEnd(text, i)
    } else if (this.sqlite && c === 91 /* [ */) {
      // SQLite's `[name]`: a quoted name, no escape inside (a `'` in it is part of the name)
      const close = text.indexOf(']', i + 1)
      i = close < 0 ? length : close + 1
      kind = QUOTED
    } else if (isWordStart(c)) {
      i++
      while (i < length && isWordPart(text.charCodeAt(i))) i++
      kind = WORD
    } else if (c === 39 /* ' */) {
      i = skipQuoted(text, i, 39, false)
      kind = LITERAL
    } else if (c === 34 /* " */ || (this.sqlite && c === 96) /* ` */) {
      // a backtick quotes a name on SQLite only: on Postgres it is no quote (the statement fails), and a
      // literal after it is still hidden
      i = skipQuoted(text, i, c, false)
      kind = QUOTED
    } else if (c === 36 /* $ */) {
      i = skipDollar(text, i)
      // `$tag$...$tag$` (not `$1`, nor SQLite's `$name`): its opening tag ends with a second `$`
      if (i - this.start > 1 && !isDigit(text.charCodeAt(this.start + 1)) && isDollarQuote(text, this.start)) kind = LITERAL
    } else if (c === 63 /* ? */) {
      // SQLite's `?NNN` parameter: its number is no literal
      i++
      while (i < length && isDigit(text.charCodeAt(i))) i++
    } else if (isDigit(c) || (c === 46 /* . */ && isDigit(text.charCodeAt(i + 1)))) {
      i = skipNumber(text, i)
      kind = LITERAL
    } else {
      i++
      kind = c === 40 ? OPEN : c === 41 ? CLOSE : c === 59 ? SEMICOLON : c === 46 ? DOT : OTHER
    }
    this.pos = this.end = i
    return kind
  }
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
    if (isWordPart(c)) {
      n++
      j++
    } else if (c === 40 /* ( */ && n > 0) {
      j++
      while (j < length && !isBlank(text.charCodeAt(j)) && text.charCodeAt(j) !== 41) j++
      if (text.charCodeAt(j) === 41 /* ) */) j++
      break
    } else if (c === 58 /* : */ && text.charCodeAt(j + 1) === 58) j += 2
    else break
  }
  return n === 0 ? i + 1 : j
}

/** Past the literal or identifier opened by `quote` at `i` (a doubled quote stays inside; with `backslash`, `\x` too). */
function skipQuoted(text: string, i: number, quote: number, backslash: boolean): number {
  const length = text.length
  i++
  while (i < length) {
    const c = text.charCodeAt(i)
    if (backslash && c === 92 /* \ */) i += 2
    else if (c === quote) {
      if (text.charCodeAt(i + 1) !== quote) return i + 1
      i += 2
    } else i++
  }
  return length
}

/** Past a number: digits (and what follows them in one word: `0x1F`, `1e5`), a fraction, a signed exponent. */
function skipNumber(text: string, i: number): number {
  const length = text.length
  while (i < length && isWordPart(text.charCodeAt(i))) i++
  if (text.charCodeAt(i) === 46 /* . */ && isDigit(text.charCodeAt(i + 1))) {
    i++
    while (i < length && isWordPart(text.charCodeAt(i))) i++
  } else if (text.charCodeAt(i) === 46 /* . */ && !isWordStart(text.charCodeAt(i + 1))) i++
  const e = text.charCodeAt(i - 1)
  const sign = text.charCodeAt(i)
  if ((e === 69 || e === 101) && (sign === 43 || sign === 45) && isDigit(text.charCodeAt(i + 1))) {
    i += 2
    while (i < length && isDigit(text.charCodeAt(i))) i++
  }
  return i
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}

/** Whether the `$` at `i` opens a dollar-quoted literal: `$` + an optional tag + `$`. */
function isDollarQuote(text: string, i: number): boolean {
  let j = i + 1
  while (j < text.length && isTagPart(text.charCodeAt(j))) j++
  return text.charCodeAt(j) === 36
}

/** Past `$1` (a parameter), `$tag$...$tag$` (a dollar-quoted literal) or a lone `$`. */
function skipDollar(text: string, i: number): number {
  const length = text.length
  let j = i + 1
  while (j < length && isTagPart(text.charCodeAt(j))) j++
  if (j < length && text.charCodeAt(j) === 36 && !(text.charCodeAt(i + 1) >= 48 && text.charCodeAt(i + 1) <= 57)) {
    const tag = text.slice(i, j + 1)
    const close = text.indexOf(tag, j + 1)
    return close < 0 ? length : close + tag.length
  }
  return j > i + 1 ? j : i + 1
}

function isWordStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128
}

function isWordPart(c: number): boolean {
  return isWordStart(c) || (c >= 48 && c <= 57) || c === 36
}

function isTagPart(c: number): boolean {
  return isWordStart(c) || (c >= 48 && c <= 57)
}

function isBlank(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0xfeff || c === 0x2028 || c === 0x2029
}
