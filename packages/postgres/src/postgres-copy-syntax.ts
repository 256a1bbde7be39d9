import { DatabaseError } from '@dbpool/core'
import { pieces } from './postgres-copy-statement'

/**
 * One token of a statement text, as PostgreSQL's lexer (scan.l) reads it: a `word` (a keyword or an
 * unquoted name, ASCII letters lower-cased as the server folds them), a quoted `name`, a `string`
 * (`'...'` or `$tag$...$tag$`), a `number` or an `op` (one punctuation or operator character).
 * `value` is what the server reads: a quoted name's or a literal's content; `undefined` when it cannot
 * be read exactly here (`E'...'`, `U&'...'`, `B'...'`, `X'...'`, `N'...'`, `U&"..."`).
 */
export interface Token {
  readonly kind: 'word' | 'name' | 'string' | 'number' | 'op'
  readonly value: string | undefined
  /** Offset after its last character in the text. */
  readonly end: number
}

/** One COPY option as the server's grammar gives it to `ProcessCopyOptions` (copy.c). */
export interface CopyOption {
  /** The option's name as the server compares it: a keyword or unquoted name lower-cased, a quoted name as written. */
  readonly name: string
  /**
   * Its argument: a word (lower-cased), a literal's or a quoted name's content, a number as written
   * with its sign, `*`; `null` when it has none (`header` alone, legacy `CSV`); `undefined` when it
   * cannot be read exactly here (a list `(a, b)`, an `E'...'` literal, a column list of FORCE ...).
   */
  readonly value: string | null | undefined
  /** The argument is a number (`header 0`): the server reads an integer 0 or 1 as a boolean. */
  readonly numeric: boolean
}

/** A COPY statement read by PostgreSQL's grammar (gram.y `CopyStmt`). */
export interface CopyStatement {
  /** `from`: rows are loaded into the table; `to`: a table or a query is written out. */
  readonly direction: 'from' | 'to'
  /**
   * The data goes through the client's connection (the COPY protocol's CopyData messages): the file
   * is `STDIN` or `STDOUT` (the grammar takes either word in either direction); otherwise a server
   * file or, with `PROGRAM`, a program's pipe.
   */
  readonly client: boolean
  /** Its options, in order: the parenthesised generic list or the legacy `WITH CSV HEADER ...` items (and `COPY BINARY t`, `USING DELIMITERS '|'`). */
  readonly options: readonly CopyOption[]
}

const SPACE = /[ \t\n\r\f\v]/
const NAME_START = /[A-Za-z_\u0080-\uffff]/
const NAME_PART = /[A-Za-z0-9_$\u0080-\uffff]/
/** Letters that make the literal after them another kind (`E'\n'`, `B'101'`, `X'ff'`, `N'x'`). */
const LITERAL_PREFIX = /^[ebxn]$/

/**
 * `text` cut into {@link Token}s (comments dropped); `undefined` when a literal, quoted name or
 * comment is not terminated (see `pieces`: `standard_conforming_strings` on, the server's default).
 */
export function tokens(text: string): Token[] | undefined {
  const list = pieces(text)
  if (list === undefined) return undefined
  const out: Token[] = []
  for (const { kind, start, end } of list) {
    if (kind === 'comment') continue
    if (kind === 'code') {
      codeTokens(text, start, end, out)
      continue
    }
    // a prefix right before the quote (`E'`, `B'`, `X'`, `N'`, `U&'`, `U&"`): the content is not read here
    const last = out[out.length - 1]
    const before = out[out.length - 2]
    let prefixed = false
    if (kind === 'literal' && last?.kind === 'word' && last.end === start && LITERAL_PREFIX.test(last.value as string)) {
      out.pop()
      prefixed = true
    } else if (
      kind !== 'dollar' &&
      last?.kind === 'op' &&
      last.value === '&' &&
      last.end === start &&
      before?.kind === 'word' &&
      before.value === 'u' &&
      before.end === start - 1
    ) {
      out.length -= 2
      prefixed = true
    }
    const content = text.slice(start + 1, end - 1)
    if (kind === 'identifier') out.push({ kind: 'name', value: prefixed ? undefined : content.replace(/""/g, '"'), end })
    else if (kind === 'literal') out.push({ kind: 'string', value: prefixed ? undefined : content.replace(/''/g, "'"), end })
    else {
      const tag = (/^\$[^$]*\$/.exec(text.slice(start, end)) as RegExpExecArray)[0]
      out.push({ kind: 'string', value: text.slice(start + tag.length, end - tag.length), end })
    }
  }
  return out
}

/** Appends the tokens of the code `text[start, end)` to `out`. */
function codeTokens(text: string, start: number, end: number, out: Token[]): void {
  let i = start
  while (i < end) {
    const c = text[i] as string
    if (SPACE.test(c)) {
      i++
      continue
    }
    let j = i + 1
    if (NAME_START.test(c)) {
      while (j < end && NAME_PART.test(text[j] as string)) j++
      out.push({ kind: 'word', value: text.slice(i, j).replace(/[A-Z]+/g, (m) => m.toLowerCase()), end: j })
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[j] ?? ''))) {
      while (j < end && /[A-Za-z0-9_.]/.test(text[j] as string)) j++
      out.push({ kind: 'number', value: text.slice(i, j), end: j })
    } else out.push({ kind: 'op', value: c, end: j })
    i = j
  }
}

/** The statements of `list`, split at `;` (empty ones dropped). */
function statements(list: readonly Token[]): Token[][] {
  const out: Token[][] = [[]]
  for (const token of list) {
    if (token.kind === 'op' && token.value === ';') out.push([])
    else (out[out.length - 1] as Token[]).push(token)
  }
  return out.filter((statement) => statement.length > 0)
}

/** Legacy COPY option keywords (gram.y `copy_opt_item`) taking a string (`DELIMITER [AS] ','`). */
const LEGACY_STRING_OPTIONS = new Set(['delimiter', 'null', 'quote', 'escape', 'encoding'])

/**
 * `statement` read by PostgreSQL's COPY grammar (gram.y `CopyStmt`, PostgreSQL 12 to 18):
 * `COPY [BINARY] name [(columns)] FROM|TO [PROGRAM] file [[USING] DELIMITERS '…'] [WITH] options [WHERE …]`
 * and `COPY (query) TO [PROGRAM] file [WITH] options`, where options are `( name [arg] [, ...] )` or
 * legacy items (`BINARY`, `FREEZE`, `CSV`, `HEADER`, `DELIMITER [AS] '…'`, `NULL [AS] '…'`,
 * `QUOTE [AS] '…'`, `ESCAPE [AS] '…'`, `ENCODING '…'`, `FORCE QUOTE|NOT NULL|NULL cols|*`).
 * A WHERE clause is never read as options. `undefined` when the tokens are not such a statement
 * (then what the server will do is not known here).
 */
export function readCopy(statement: readonly Token[]): CopyStatement | undefined {
  let at = 0
  const peek = (offset = 0): Token | undefined => statement[at + offset]
  const isWord = (token: Token | undefined, ...words: string[]): boolean => token?.kind === 'word' && words.includes(token.value as string)
  const isOp = (token: Token | undefined, op: string): boolean => token?.kind === 'op' && token.value === op
  /** Skips a parenthesised group starting at `at`; false when it does not close. */
  const skipGroup = (): boolean => {
    let depth = 0
    for (; at < statement.length; at++) {
      if (isOp(peek(), '(')) depth++
      else if (isOp(peek(), ')') && --depth === 0) {
        at++
        return true
      }
    }
    return false
  }
  const options: CopyOption[] = []
  if (!isWord(peek(), 'copy')) return undefined
  at++
  let direction: 'from' | 'to'
  if (isOp(peek(), '(')) {
    if (!skipGroup() || !isWord(peek(), 'to')) return undefined
    direction = 'to'
  } else {
    if (isWord(peek(), 'binary')) {
      options.push({ name: 'format', value: 'binary', numeric: false })
      at++
    }
    // qualified name: name [. name ...]
    for (;;) {
      const part = peek()
      if (part?.kind !== 'word' && part?.kind !== 'name') return undefined
      at++
      if (!isOp(peek(), '.')) break
      at++
    }
    if (isOp(peek(), '(') && !skipGroup()) return undefined
    if (!isWord(peek(), 'from', 'to')) return undefined
    direction = peek()?.value as 'from' | 'to'
  }
  at++
  if (isWord(peek(), 'program')) at++
  const file = peek()
  if (!isWord(file, 'stdin', 'stdout') && file?.kind !== 'string') return undefined
  at++
  // copy_delimiter: [USING] DELIMITERS '…'
  if (isWord(peek(), 'using') && isWord(peek(1), 'delimiters')) at++
  if (isWord(peek(), 'delimiters')) {
    if (peek(1)?.kind !== 'string') return undefined
    options.push({ name: 'delimiter', value: peek(1)?.value, numeric: false })
    at += 2
  }
  if (isWord(peek(), 'with')) at++
  if (isOp(peek(), '(')) {
    at++
    for (;;) {
      const name = peek()
      if (name?.kind !== 'word' && name?.kind !== 'name') return undefined
      if (name.value === undefined) return undefined
      at++
      const option = genericArgument()
      if (option === false) return undefined
      options.push({ name: name.value, ...option })
      if (isOp(peek(), ')')) break
      if (!isOp(peek(), ',')) return undefined
      at++
    }
    at++
  } else {
    for (;;) {
      const item = peek()
      if (item?.kind !== 'word') break
      const word = item.value as string
      if (word === 'binary' || word === 'csv') options.push({ name: 'format', value: word, numeric: false })
      else if (word === 'freeze' || word === 'header') options.push({ name: word, value: null, numeric: false })
      else if (LEGACY_STRING_OPTIONS.has(word)) {
        if (word !== 'encoding' && isWord(peek(1), 'as')) at++
        if (peek(1)?.kind !== 'string') return undefined
        options.push({ name: word, value: peek(1)?.value, numeric: false })
        at++
      } else if (word === 'force') {
        // FORCE QUOTE | FORCE NOT NULL | FORCE NULL, then * or a column list
        let name: string
        if (isWord(peek(1), 'quote')) name = 'force_quote'
        else if (isWord(peek(1), 'null')) name = 'force_null'
        else if (isWord(peek(1), 'not') && isWord(peek(2), 'null')) {
          name = 'force_not_null'
          at++
        } else return undefined
        at += 2
        if (isOp(peek(), '*')) at++
        else {
          // columnList: name [, name ...]
          for (;;) {
            if (peek()?.kind !== 'word' && peek()?.kind !== 'name') return undefined
            at++
            if (!isOp(peek(), ',')) break
            at++
          }
        }
        options.push({ name, value: undefined, numeric: false })
        continue
      } else break
      at++
    }
  }
  // WHERE …: a condition, never options (COPY FROM only; the server refuses it elsewhere)
  if (isWord(peek(), 'where') && direction === 'from' && statement.length > at + 1) at = statement.length
  if (at !== statement.length) return undefined
  return { direction, client: file?.kind === 'word', options }

  /** copy_generic_opt_arg: none, a word, a quoted name, a string, a signed number, `*` or a list. */
  function genericArgument(): Pick<CopyOption, 'value' | 'numeric'> | false {
    const token = peek()
    if (token === undefined) return false
    if (isOp(token, ',') || isOp(token, ')')) return { value: null, numeric: false }
    if (token.kind === 'word' || token.kind === 'name' || token.kind === 'string') {
      at++
      return { value: token.value, numeric: false }
    }
    if (token.kind === 'number') {
      at++
      return { value: token.value, numeric: true }
    }
    if (isOp(token, '+') || isOp(token, '-')) {
      const number = peek(1)
      if (number?.kind !== 'number') return false
      at += 2
      return { value: `${token.value as string}${number.value as string}`, numeric: true }
    }
    if (isOp(token, '*')) {
      at++
      return { value: '*', numeric: false }
    }
    if (isOp(token, '(')) return skipGroup() ? { value: undefined, numeric: false } : false
    return false
  }
}

/**
 * `text`'s one COPY statement (a trailing `;` allowed), read by {@link readCopy}; `undefined` when it
 * is not one that can be read.
 */
export function readCopyStatement(text: string): CopyStatement | undefined {
  const list = tokens(text)
  if (list === undefined) return undefined
  const all = statements(list)
  return all.length === 1 ? readCopy(all[0] as Token[]) : undefined
}

/** How `copyFrom()` writes array rows: COPY's text format, CSV, or not at all (`raw`, with the reason). */
export type RowFormat = { readonly format: 'text' | 'csv' } | { readonly format: 'raw'; readonly reason: string }

/** The options that leave array rows encodable (see {@link copyFromRowFormat}), for messages. */
export const ROW_FORMAT_OPTIONS = 'format text or csv, freeze, header false, on_error stop, log_verbosity'

/**
 * How `copyFrom()` encodes rows given as arrays for the `COPY ... FROM STDIN` statement `text`,
 * read by PostgreSQL's COPY grammar ({@link readCopy}: quoted option names, dollar-quoted values and
 * the legacy `WITH CSV ...` forms as the server reads them; a WHERE clause is not options). Only
 * options known not to change how the server reads the rows are accepted (an allow-list):
 * `format` `text` or `csv` (the server compares it case-sensitively: `'CSV'` is not csv), `freeze`,
 * `header` false (`false`, `off`, `0`: any other value, or none, skips the first row), `on_error stop`
 * (the default; `ignore` drops rows) and `log_verbosity`. Every other option (`delimiter`, `null`,
 * `default`, `quote`, `escape`, `force_*`, `encoding`, `binary`, options of later servers) and a
 * statement that cannot be read make it `raw`: array rows are refused (CONFIGURATION), strings and
 * bytes are sent as they are.
 */
export function copyFromRowFormat(text: string): RowFormat {
  const statement = readCopyStatement(text)
  if (statement === undefined || !statement.client || statement.direction !== 'from')
    return { format: 'raw', reason: 'options that could not be read' }
  let format: 'text' | 'csv' = 'text'
  for (const { name, value, numeric } of statement.options) {
    const refused = (): RowFormat => ({
      format: 'raw',
      reason: `the option ${name}${value === null ? '' : ` ${value === undefined ? '(...)' : JSON.stringify(value)}`}`,
    })
    switch (name) {
      case 'format':
        if (value !== 'text' && value !== 'csv') return refused()
        format = value
        break
      case 'freeze':
      case 'log_verbosity':
        break
      case 'header':
        // defGetCopyHeaderChoice: a string compared case-insensitively, an integer 0 or 1
        if (value === null || value === undefined || !(numeric ? /^[+-]?0+$/.test(value) : /^(false|off)$/i.test(value))) return refused()
        break
      case 'on_error':
        if (value === null || value === undefined || numeric || !/^stop$/i.test(value)) return refused()
        break
      default:
        return refused()
    }
  }
  return { format }
}

/**
 * Where a statement of `text` runs `COPY ... FROM STDIN` or `COPY ... TO STDOUT` (or `FROM STDOUT` /
 * `TO STDIN`: the grammar takes either word): `from` / `to`; `unknown` for a COPY naming `stdin` or
 * `stdout` that could not be read (or a text whose literals are not terminated); `undefined` when no
 * statement of it does. Such a COPY exchanges its data through the COPY protocol, which only
 * `copyFrom()` / `copyTo()` speak. A COPY of a server file or a program is not one.
 *
 * Runs for every statement (`pgQuery`): a text without the word `copy` (a table `copies`, a column
 * `copy_count` do not count: a COPY keyword has no letter, digit or `_` beside it) is answered by one
 * regular expression; a text with it is read once, its answer kept ({@link MAX_COPY_VERDICTS} texts,
 * the least recently used forgotten first).
 */
export function clientCopy(text: string): 'from' | 'to' | 'unknown' | undefined {
  if (!COPY_WORD.test(text)) return undefined
  const known = copyVerdicts.get(text)
  if (known !== undefined) {
    // least recently used first out: a hit moves to the end
    copyVerdicts.delete(text)
    copyVerdicts.set(text, known)
    return known === NO_CLIENT_COPY ? undefined : known
  }
  const verdict = readClientCopy(text)
  if (copyVerdicts.size >= MAX_COPY_VERDICTS) copyVerdicts.delete(copyVerdicts.keys().next().value as string)
  copyVerdicts.set(text, verdict ?? NO_CLIENT_COPY)
  return verdict
}

/** How many texts holding the word `copy` keep {@link clientCopy}'s answer (shared by every pool of the process: it depends on the text alone). */
export const MAX_COPY_VERDICTS = 256
const NO_CLIENT_COPY = 'none'
const copyVerdicts = new Map<string, 'from' | 'to' | 'unknown' | typeof NO_CLIENT_COPY>()

/** @internal Whether {@link clientCopy}'s answer for `text` is kept (for tests of the pre-check and the bound). */
export function copyVerdictKept(text: string): boolean {
  return copyVerdicts.has(text)
}

/** {@link clientCopy} of a text holding the word `copy`, read token by token. */
function readClientCopy(text: string): 'from' | 'to' | 'unknown' | undefined {
  const list = tokens(text)
  if (list === undefined) return /\bcopy\b[\s\S]*\bstd(?:in|out)\b/i.test(text) ? 'unknown' : undefined
  for (const statement of statements(list)) {
    if (statement[0]?.kind !== 'word' || statement[0].value !== 'copy') continue
    const copy = readCopy(statement)
    if (copy !== undefined) {
      if (copy.client) return copy.direction
    } else if (statement.some((token) => token.kind === 'word' && (token.value === 'stdin' || token.value === 'stdout'))) return 'unknown'
  }
  return undefined
}

// the keyword as a whole word: an ASCII letter, digit or `_` beside it makes another name (`copies`,
// `copy_count`); anything else (space, `;`, a comment's `/`, a quote, a non-ASCII letter) is read in full
const COPY_WORD = /\bcopy\b/i

/**
 * Refuses, before anything is sent, a statement text holding `COPY ... FROM STDIN` or
 * `COPY ... TO STDOUT` ({@link clientCopy}): `pool.query()` would drop the rows a COPY TO STDOUT
 * writes (resolving with none) and fail a COPY FROM STDIN with a CopyFail (QUERY_CANCELLED), and on
 * `pool.stream()`'s cursor pg threw a TypeError from its socket handler (the process died).
 * CONFIGURATION naming `copyFrom()` / `copyTo()`, `detail.use`. A COPY of a server file or a program
 * runs as any statement.
 */
export function refuseClientCopy(text: string): void {
  const direction = clientCopy(text)
  if (direction === undefined) return
  const use = direction === 'from' ? 'copyFrom' : direction === 'to' ? 'copyTo' : 'copyFrom or copyTo'
  const what = direction === 'from' ? 'COPY ... FROM STDIN' : direction === 'to' ? 'COPY ... TO STDOUT' : 'COPY ... STDIN/STDOUT'
  throw new DatabaseError(
    'CONFIGURATION',
    `${what} exchanges its rows with the client through the COPY protocol, which query(), stream() and the other statement methods do not speak (the rows would be lost or the COPY failed); it was not sent: use ${use}() from @dbpool/postgres`,
    { backend: 'postgres', retryable: false, detail: { use } },
  )
}
