import { lineCommentEnd } from '@dbpool/core/internal'
/**
 * Which statement texts leave state behind in the server session (it outlives their transaction):
 * checked before sending through PgBouncer in transaction mode, and by statement sharing, which
 * never shares such a statement (so `sessionReset: 'clean'` cleans the connection that ran it).
 */

/** A string literal of the text: its value (escapes undone) and where its placeholder is in `code`. */
export interface Literal {
  readonly value: string
  readonly at: number
}

/** A text with comments removed, every literal replaced by `''`, quoted identifiers kept as written. */
export interface Lexed {
  readonly code: string
  readonly literals: readonly Literal[]
}

// a PL/pgSQL body may hold DO blocks that run dynamic SQL holding DO blocks...: beyond this, refused
const MAX_DEPTH = 8

// statements whose effect outlives their transaction, at the start of a statement
const SESSION_COMMAND =
  '(listen|prepare|load|set(?!\\s+(?:local|transaction|constraints)\\b)|reset|declare\\s+\\S+\\s+(?:(?:binary|asensitive|insensitive|sensitive|scroll|no\\s+scroll)\\s+)*cursor\\s+with\\s+hold)\\b'
// where a statement starts: in SQL after `;`; in PL/pgSQL also after BEGIN, THEN, ELSE, LOOP and a <<label>>
const SQL_COMMAND = new RegExp(`(?:^|;)\\s*${SESSION_COMMAND}`, 'i')
const PLPGSQL_COMMAND = new RegExp(`(?:^|;|\\b(?:begin|then|else|loop)\\b|>>)\\s*${SESSION_COMMAND}`, 'i')
// a text that could not be read (unterminated): every quote may open code too
const UNREAD_COMMAND = new RegExp(`(?:^|[;'$]|\\b(?:begin|then|else|loop)\\b|>>)\\s*${SESSION_COMMAND}`, 'i')
const SESSION_LOCK = /\bpg_(try_)?advisory_lock(_shared)?\s*\(/i
const SET_CONFIG = /\bset_config\s*\(/gi
// a temporary table, view or sequence lives until the session ends: CREATE TEMP anywhere in the text
// (EXPLAIN ANALYZE, a DO block), SELECT ... INTO TEMP (not INSERT INTO a table named temp), and any
// object in the session's own schema (pg_temp.x, created or used)
const TEMP_OBJECT =
  /\bcreate\s+(?:or\s+replace\s+)?(?:(?:global|local)\s+)?(?:temp|temporary)\s+(?:unlogged\s+)?(?:recursive\s+)?(table|view|sequence)\b|(?<!\b(?:insert|merge)\s+)\binto\s+(?:temp|temporary)\b|\bpg_temp(?:_\d+)?\s*\./gi
const ON_COMMIT_DROP = /\bon\s+commit\s+drop\b/i
const QUOTED_NAME = /"((?:[^"]|"")*)"/g
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_$]*$/
const NAME_FOLLOWS = /\s*[.(]/y
const DOLLAR_TAG = /\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y
const IDENTIFIER_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/
const DO_HEAD = /^do\b/i
const SQL_DO = /(?:^|;)\s*do\b/i
// in PL/pgSQL: what EXECUTE runs (up to INTO, USING, the LOOP of FOR ... IN EXECUTE, or the end)
const EXECUTE = /\bexecute\b/gi
const EXECUTE_END = /;|\b(?:into|using|loop)\b/gi
// the placeholder of a literal in lexed code, literals joined by ||, a piece continuing a concatenation
const PLACEHOLDER = " '' "
const JOINED = /^\s*\|\|\s*$/
const CONCATENATED = /\|\|\s*$/
const ARGUMENT = /,\s*$/
// a value stored in a variable may be run later: judged only when it starts like a session command
// (its shape, so that a sentence is not: 'set up done', 'reset password requested', 'listen to me')
const COMMAND_SHAPED =
  /^\s*(?:prepare\s+\S+(?:\s+\([^)]*\))?\s+as\b|listen\s+[^\s;]+\s*(?:;|$)|load\s+'|reset\s+[^\s;]+\s*(?:;|$)|set\s+(?:(?:session|local)\s+)?(?:role\b|session\s+authorization\b|time\s+zone\b|schema\b|names\b|[\w."\u0080-\uffff]+\s*(?:=|\bto\b))|declare\s+\S+(?:\s+\w+)*?\s+cursor\b)/i
// a PL/pgSQL assignment; names by Postgres's rule (a non-ASCII character is a letter: `åq := '...'`)
const ASSIGNMENT =
  /^\s*[A-Za-z_"\u0080-\uffff][\w$"\u0080-\uffff]*(?:\s*\.\s*[A-Za-z_"\u0080-\uffff][\w$"\u0080-\uffff]*|\s*\[[^\]]*\])*\s*:?=/
const SELECT_HEAD = /^\s*select\b/i
const DECLARE_WORD = /\bdeclare\b/gi
const BEGIN_WORD = /\bbegin\b/gi
const CURSOR_WORD = /\bcursor\b/gi
const INTO_WORD = /\binto\b/gi
const SQL_BOUNDARY = /;/g
const PLPGSQL_BOUNDARY = /;|\b(?:begin|then|else|loop)\b|>>/gi
// how much of a statement's head is read to tell what it is (its first word)
const HEAD_LENGTH = 8
// escapes: E'\x73', E'\163', E'\u0073', E'\U00000073'; U&'...' UESCAPE '!'
const HEX_2 = /[0-9A-Fa-f]{1,2}/y
const HEX_4 = /[0-9A-Fa-f]{4}/y
const HEX_8 = /[0-9A-Fa-f]{8}/y
const OCTAL_3 = /[0-7]{1,3}/y
const UESCAPE = /\s*uescape\s*'([^'])'/iy

/**
 * Why `text` needs a session (a LISTEN, a session-level SET or RESET, an SQL PREPARE, a cursor
 * WITH HOLD, a LOAD, a session-level advisory lock, `set_config()` whose `is_local` is not the
 * literal `true`), a temporary table, view or sequence that outlives its transaction (only `CREATE
 * TEMP TABLE ... ON COMMIT DROP` does not) or an object in `pg_temp`, or `undefined`.
 *
 * Comments are skipped and string literals are data (a leading comment does not hide a statement);
 * a quoted name is matched unquoted where it names a function or schema (`pg_catalog."set_config"(`,
 * `"pg_temp".t`) and is never a keyword elsewhere. The body of a DO block is read as PL/pgSQL (its
 * statements also start after BEGIN, THEN, ELSE, LOOP). Of its string literals only those that run
 * are read as SQL: what EXECUTE runs (`EXECUTE 'set search_path = ...'`, a `format('set ...')`
 * template; literals joined by `||` read as one text, so `'select 1' || '; set role x'` is seen; a
 * piece after a variable only from its first `;`; a later format() argument like a stored value) and
 * a nested DO body. A value stored in a variable (a DECLARE default, `v := '...'`, `SELECT ... INTO v`)
 * may be run later: it is read only when it starts like a session command (`'set role x'`, not
 * `'set up done'` or `'listen'`). Any other literal is data (`INSERT ... VALUES ('reset password
 * requested')`, `CREATE TYPE ... AS ENUM ('prepare', 'load')`, a comparison, a RAISE message). A
 * body nested deeper than 8 levels is refused. Standard-conforming strings are assumed; the escapes
 * of `E'...'` (`\n`, `\x73`, `\163`, `\u0073`, `\U00000073`) and `U&'...'` (with UESCAPE) strings are
 * undone first. A text that cannot be read (an unterminated literal, comment or quoted name) is
 * judged as written, with a statement possibly starting after any quote: it may refuse what is
 * fine, never the reverse.
 *
 * Not detectable (the text does not show it): a function or procedure whose body changes the
 * session (`select my_tenant_switch()`, `CALL`, `dblink_exec(...)`), and dynamic SQL assembled at
 * run time from pieces that read as nothing alone (`execute 'se' || v || 't search_path ...'`,
 * `format('%s %s', 'prepare p', 'as select 1')`, a variable whose value does not start like a
 * session command, a value read from a table).
 */
export function sessionStatement(text: string): string | undefined {
  return judge(text, false, 0)
}

function judge(text: string, plpgsql: boolean, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return `a DO block or dynamic SQL nested more than ${MAX_DEPTH} levels deep cannot be checked`
  const lexed = lex(text)
  if (lexed === undefined) return judgeCode(text, UNREAD_COMMAND)
  const { code, literals } = lexed
  const why = judgeCode(code, plpgsql ? PLPGSQL_COMMAND : SQL_COMMAND)
  if (why !== undefined || literals.length === 0) return why
  // a literal of SQL is data, except the body of a DO block (it runs, as PL/pgSQL)
  if (!plpgsql) {
    if (!SQL_DO.test(code)) return undefined
    const starts = statementStarts(code, SQL_BOUNDARY)
    let s = 0
    for (const literal of literals) {
      while (s + 1 < starts.length && starts[s + 1]! <= literal.at) s++
      if (!DO_HEAD.test(headOf(code, starts[s]!, literal.at))) continue
      const inner = judge(literal.value, true, depth + 1)
      if (inner !== undefined) return inner
    }
    return undefined
  }
  return judgePlpgsqlLiterals(code, literals, depth)
}

/**
 * The literals of a PL/pgSQL body that may run: those EXECUTE runs (its whole expression up to
 * INTO, USING or LOOP: a format() template and its arguments, each chain of concatenated
 * literals read joined, a chain continuing a non-literal piece read from its first `;`), the body
 * of a nested DO, and, unsure, a value stored in a variable (a DECLARE default, `v := ...`,
 * `SELECT ... INTO v`) only when it starts with a session command and its argument. Any other
 * literal (an INSERT's values, a comparison, an enum label, a message) is data.
 */
function judgePlpgsqlLiterals(code: string, literals: readonly Literal[], depth: number): string | undefined {
  const executed = executedRanges(code)
  const starts = statementStarts(code, PLPGSQL_BOUNDARY)
  let words: BodyWords | undefined // found on first use
  let s = 0
  // literals and ranges both go forward: the first range not ended before a literal is the only one that may hold it
  let r = 0
  let chain: string | undefined
  let continues = false
  let argument = false
  for (let l = 0; l < literals.length; l++) {
    const literal = literals[l]!
    while (r < executed.length && executed[r]![1] <= literal.at) r++
    const range = r < executed.length && executed[r]![0] <= literal.at ? executed[r] : undefined
    if (range !== undefined) {
      // dynamic SQL: literals joined by || read as one text
      if (chain === undefined) {
        // what ends the code before it (after EXECUTE): "||" or "," and blanks (read backwards: linear)
        const lead = code.slice(range[0], literal.at)
        const tail = lead.slice(Math.max(0, lastNonBlank(lead) - 2))
        continues = CONCATENATED.test(tail)
        argument = ARGUMENT.test(tail)
      }
      chain = (chain ?? '') + literal.value
      const next = literals[l + 1]
      if (next !== undefined && next.at < range[1] && JOINED.test(code.slice(literal.at + PLACEHOLDER.length, next.at))) continue
      const semicolon = chain.indexOf(';')
      // a later argument (of format(): %L data or %s SQL) is judged like a stored value
      const sql = continues ? (semicolon < 0 ? '' : chain.slice(semicolon)) : !argument || COMMAND_SHAPED.test(chain) ? chain : ''
      chain = undefined
      const inner = sql === '' ? undefined : judge(sql, false, depth + 1)
      if (inner !== undefined) return inner
      continue
    }
    while (s + 1 < starts.length && starts[s + 1]! <= literal.at) s++
    let inner: string | undefined
    if (DO_HEAD.test(headOf(code, starts[s]!, literal.at))) inner = judge(literal.value, true, depth + 1)
    else if (COMMAND_SHAPED.test(literal.value) && stored(code, starts[s]!, literal.at, (words ??= new BodyWords(code))))
      inner = judge(literal.value, false, depth + 1)
    if (inner !== undefined) return inner
  }
  return undefined
}

/** Where the expressions EXECUTE runs are in `code`: from after EXECUTE to INTO, USING, LOOP or `;`. */
function executedRanges(code: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = []
  // the end found for one EXECUTE is the end of every later one before it: each end is searched once
  let end = -1
  for (const match of code.matchAll(EXECUTE)) {
    const from = (match.index ?? 0) + match[0].length
    if (end < from) {
      EXECUTE_END.lastIndex = from
      end = EXECUTE_END.exec(code)?.index ?? code.length
    }
    ranges.push([from, end])
  }
  return ranges
}

/**
 * Whether the literal at `at`, in the statement starting at `start`, is stored in a variable (it
 * may be run later): an assignment, `SELECT ... INTO`, a DECLARE section's default (not a cursor's query).
 */
function stored(code: string, start: number, at: number, words: BodyWords): boolean {
  const before = code.slice(start, at)
  if (ASSIGNMENT.test(before)) return true
  if (SELECT_HEAD.test(before)) {
    const end = words.semicolons.firstFrom(at)
    return words.into.within(start, end < 0 ? code.length : end)
  }
  const declare = words.declare.lastWithin(at)
  return declare >= 0 && !words.begin.within(declare, at) && !words.cursor.within(start, at)
}

/** Where a word (or `;`) occurs in a body, found once: stored() asks per literal, in O(log n) each. */
class WordMatches {
  readonly #starts: number[] = []
  readonly #ends: number[] = []

  constructor(code: string, word: RegExp) {
    for (const match of code.matchAll(word)) {
      this.#starts.push(match.index ?? 0)
      this.#ends.push((match.index ?? 0) + match[0].length)
    }
  }

  /** The start of the first match starting at or after `from`, or -1. */
  firstFrom(from: number): number {
    const i = this.#firstStartFrom(from)
    return i < this.#starts.length ? this.#starts[i]! : -1
  }

  /** Whether a match lies whole in [`from`, `to`). */
  within(from: number, to: number): boolean {
    const i = this.#firstStartFrom(from)
    return i < this.#starts.length && this.#ends[i]! <= to
  }

  /** The start of the last match ending at or before `to`, or -1. */
  lastWithin(to: number): number {
    let lo = 0
    let hi = this.#ends.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#ends[mid]! <= to) lo = mid + 1
      else hi = mid
    }
    return lo > 0 ? this.#starts[lo - 1]! : -1
  }

  #firstStartFrom(from: number): number {
    let lo = 0
    let hi = this.#starts.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#starts[mid]! < from) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** The words of a PL/pgSQL body stored() looks for. */
class BodyWords {
  readonly semicolons: WordMatches
  readonly into: WordMatches
  readonly declare: WordMatches
  readonly begin: WordMatches
  readonly cursor: WordMatches

  constructor(code: string) {
    this.semicolons = new WordMatches(code, SQL_BOUNDARY)
    this.into = new WordMatches(code, INTO_WORD)
    this.declare = new WordMatches(code, DECLARE_WORD)
    this.begin = new WordMatches(code, BEGIN_WORD)
    this.cursor = new WordMatches(code, CURSOR_WORD)
  }
}

/** The index after the last non-blank character of `text` (0 when all blank). */
function lastNonBlank(text: string): number {
  let i = text.length
  while (i > 0 && /\s/.test(text[i - 1]!)) i--
  return i
}

/** Where each statement of `code` starts (0, then after each boundary), in order. */
function statementStarts(code: string, boundary: RegExp): number[] {
  const starts = [0]
  for (const match of code.matchAll(boundary)) starts.push((match.index ?? 0) + match[0].length)
  return starts
}

/** The first word or so of the statement starting at `start` (before `end`), leading whitespace skipped. */
function headOf(code: string, start: number, end: number): string {
  let i = start
  while (i < end && /\s/.test(code[i]!)) i++
  return code.slice(i, Math.min(end, i + HEAD_LENGTH))
}

/** The checks on code whose literals are gone; `command` finds a session command at a statement start. */
function judgeCode(code: string, command: RegExp): string | undefined {
  const named = unquoteNames(code)
  const statement = command.exec(named)
  if (statement) return `${statement[1]!.split(/\s+/)[0]!.toUpperCase()} keeps session state`
  const lock = SESSION_LOCK.exec(named)
  if (lock)
    return `pg_${(lock[1] ?? '').toLowerCase()}advisory_lock${(lock[2] ?? '').toLowerCase()}() takes a session-level lock (use pg_advisory_xact_lock in a transaction)`
  if (sessionSetConfig(named))
    return 'set_config() without is_local true keeps session state (use set_config(name, value, true) in a transaction)'
  return sessionTempObject(named)
}

/**
 * Quoted names: one that names a function or a schema (before `(` or `.`, after `.`) and is a plain
 * identifier is written unquoted, so `pg_catalog."set_config"(` is a call to set_config; any other
 * becomes `"_"`, so its words are never keywords (`"on commit drop"` as a column, `as "into temp"`).
 */
function unquoteNames(code: string): string {
  if (!code.includes('"')) return code
  return code.replace(QUOTED_NAME, (quoted: string, inner: string, offset: number) => {
    const name = inner.replace(/""/g, '"')
    if (!PLAIN_NAME.test(name)) return '"_"'
    NAME_FOLLOWS.lastIndex = offset + quoted.length
    if (NAME_FOLLOWS.test(code)) return name
    let i = offset - 1
    while (i >= 0 && /\s/.test(code[i]!)) i--
    return i >= 0 && code[i] === '.' ? name : '"_"'
  })
}

/** Why a temporary object created in `text` outlives its transaction, or undefined. */
function sessionTempObject(text: string): string | undefined {
  for (const match of text.matchAll(TEMP_OBJECT)) {
    if (match[0].toLowerCase().startsWith('pg_temp')) return 'an object in pg_temp lives as long as the server session'
    const kind = (match[1] ?? 'table').toLowerCase()
    const start = match.index ?? 0
    const end = text.indexOf(';', start + 1)
    const statement = text.slice(start, end === -1 ? text.length : end)
    if (kind === 'table' && match[1] !== undefined && ON_COMMIT_DROP.test(statement)) continue
    return kind === 'table'
      ? 'a temporary table lives as long as the server session (use CREATE TEMP TABLE ... ON COMMIT DROP in a transaction)'
      : `a temporary ${kind} lives as long as the server session`
  }
  return undefined
}

/**
 * Whether a `set_config(name, value, is_local)` call in `text` (literals gone) has an `is_local` other
 * than `true`. One pass over the text (nested calls included): a stack of open parentheses, each
 * knowing whether it opened a set_config() call and where its last argument starts.
 */
function sessionSetConfig(text: string): boolean {
  const calls: number[] = []
  for (const match of text.matchAll(SET_CONFIG)) calls.push((match.index ?? 0) + match[0].length - 1)
  if (calls.length === 0) return false
  const stack: Array<{ readonly call: boolean; lastArgument: number }> = []
  let next = 0
  for (let i = calls[0]!; i < text.length; i++) {
    const c = text[i]
    if (i === calls[next]) {
      next++
      stack.push({ call: true, lastArgument: i + 1 })
    } else if (c === '(') stack.push({ call: false, lastArgument: i + 1 })
    else if (c === ',' && stack.length > 0) stack[stack.length - 1]!.lastArgument = i + 1
    else if (c === ')') {
      const frame = stack.pop()
      if (frame?.call && !isLocalTrue(text.slice(frame.lastArgument, i))) return true
    }
  }
  // a call left open: its last argument runs to the end
  return stack.some((frame) => frame.call && !isLocalTrue(text.slice(frame.lastArgument)))
}

/** Whether set_config()'s last argument is `true` (named notation too: `is_local => true`). */
function isLocalTrue(argument: string): boolean {
  return (
    argument
      .trim()
      .toLowerCase()
      .replace(/^is_local\s*(?:=>|:=)\s*/, '') === 'true'
  )
}

/**
 * Postgres' lexical rules for what hides code: `--` and nested `/* *\/` comments (dropped), string
 * literals (`'...'` with `''`, `E'...'` with backslash escapes, `$tag$...$tag$`; each replaced by
 * `''` and recorded), quoted names (kept). `undefined` for an unterminated literal, comment or name.
 */
export function lex(text: string): Lexed | undefined {
  const literals: Literal[] = []
  // the code is built in pieces and its last three characters kept apart: reading a character of a
  // string built by += flattens it, a copy of all of it at each quote (quadratic in a long text)
  const code = new CodeBuilder()
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i]!
    const next = text[i + 1]
    if (c === '-' && next === '-') {
      const end = lineCommentEnd(text, i, 'postgres')
      i = end
      code.add(' ')
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
      code.add(' ')
    } else if (c === "'") {
      const [c1, c2, c3] = [code.last(1), code.last(2), code.last(3)]
      const escapes = (c1 === 'e' || c1 === 'E') && (c2 === '' || !IDENTIFIER_CHAR.test(c2))
      const unicode = c1 === '&' && (c2 === 'u' || c2 === 'U') && (c3 === '' || !IDENTIFIER_CHAR.test(c3))
      let value = ''
      i++
      for (;;) {
        if (i >= n) return undefined
        const d = text[i]!
        if (d === "'") {
          if (text[i + 1] !== "'") break
          value += "'"
          i += 2
        } else if (d === '\\' && escapes) {
          if (i + 1 >= n) return undefined
          const [char, length] = backslashEscape(text, i + 1)
          value += char
          i += 1 + length
        } else {
          value += d
          i++
        }
      }
      i++
      if (unicode) {
        // U&'...' [UESCAPE 'c']: \XXXX and \+XXXXXX (or c instead of \) are code points
        UESCAPE.lastIndex = i
        const clause = UESCAPE.exec(text)
        if (clause !== null) i += clause[0].length
        value = unicodeEscapes(value, clause?.[1] ?? '\\')
        code.dropLast2()
      }
      literals.push({ value, at: code.length })
      code.add(PLACEHOLDER)
    } else if (c === '"') {
      let end = i + 1
      for (;;) {
        end = text.indexOf('"', end)
        if (end < 0) return undefined
        if (text[end + 1] !== '"') break
        end += 2
      }
      code.add(text.slice(i, end + 1))
      i = end + 1
    } else if (c === '$' && (code.length === 0 || !IDENTIFIER_CHAR.test(code.last(1)))) {
      // $tag$ ... $tag$ (a $1 parameter, or a $ inside a name, is not one)
      DOLLAR_TAG.lastIndex = i
      const tag = DOLLAR_TAG.exec(text)
      if (tag === null) {
        code.add(c)
        i++
        continue
      }
      const start = i + tag[0].length
      const end = text.indexOf(tag[0], start)
      if (end < 0) return undefined
      literals.push({ value: text.slice(start, end), at: code.length })
      code.add(PLACEHOLDER)
      i = end + tag[0].length
    } else {
      code.add(c)
      i++
    }
  }
  return { code: code.text(), literals }
}

/** lex()'s output: pieces joined once at the end, the last three characters kept apart (never read back from the text). */
class CodeBuilder {
  readonly #pieces: string[] = []
  length = 0
  #tail = ''

  add(piece: string): void {
    this.#pieces.push(piece)
    this.length += piece.length
    this.#tail = piece.length >= 3 ? piece.slice(-3) : (this.#tail + piece).slice(-3)
  }

  /** The `n`th character from the end (1: the last), or '' before the start. */
  last(n: 1 | 2 | 3): string {
    return this.#tail.length >= n ? this.#tail[this.#tail.length - n]! : ''
  }

  /** Drops the last two characters (the `U&` of a `U&'...'` string, each added alone). */
  dropLast2(): void {
    let drop = 2
    while (drop > 0) {
      const piece = this.#pieces.pop()!
      if (piece.length > drop) this.#pieces.push(piece.slice(0, piece.length - drop))
      drop -= Math.min(drop, piece.length)
    }
    this.length -= 2
    this.#tail = this.#tail.slice(0, -2)
  }

  text(): string {
    return this.#pieces.join('')
  }
}

/**
 * The character of a backslash escape of an `E'...'` string whose letter is at `at`, and how many
 * characters it takes: `\b \f \n \r \t`, `\xh[h]`, octal `\o[o[o]]`, `\uXXXX`, `\UXXXXXXXX`
 * (Postgres' rules), any other character itself. The whitespace escapes read as a space.
 */
function backslashEscape(text: string, at: number): [string, number] {
  const e = text[at]!
  if (e === 'n' || e === 'r' || e === 't' || e === 'f') return [' ', 1]
  if (e === 'b') return ['\b', 1]
  const digits = e === 'x' ? HEX_2 : e === 'u' ? HEX_4 : e === 'U' ? HEX_8 : /[0-7]/.test(e) ? OCTAL_3 : undefined
  if (digits === undefined) return [e, 1]
  digits.lastIndex = e >= '0' && e <= '7' ? at : at + 1
  const found = digits.exec(text)
  if (found === null) return [e, 1]
  const point = Number.parseInt(found[0], e >= '0' && e <= '7' ? 8 : 16)
  const char = point <= 0x10ffff ? String.fromCodePoint(point) : '\ufffd'
  return [char, (e >= '0' && e <= '7' ? 0 : 1) + found[0].length]
}

/** The value of a `U&'...'` string (quotes already undone): `cc` is `c`, `cXXXX` and `c+XXXXXX` code points. */
function unicodeEscapes(raw: string, escape: string): string {
  let value = ''
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!
    if (c !== escape) {
      value += c
      continue
    }
    if (raw[i + 1] === escape) {
      value += escape
      i++
      continue
    }
    const long = raw[i + 1] === '+'
    const hex = raw.slice(i + (long ? 2 : 1), i + (long ? 8 : 5))
    if (!(long ? /^[0-9A-Fa-f]{6}$/ : /^[0-9A-Fa-f]{4}$/).test(hex)) {
      value += c
      continue
    }
    const point = Number.parseInt(hex, 16)
    value += point <= 0x10ffff ? String.fromCodePoint(point) : '\ufffd'
    i += hex.length + (long ? 1 : 0)
  }
  return value
}
