import { lex } from './postgres-session-statement'

/**
 * What the statement cache learns once from a statement text (kept with its cache entry, so a run of
 * a named statement reads a field instead of reading its text again).
 */
export interface StatementTraits {
  /**
   * The schema change a `SELECT n` (or `EXPLAIN`) command tag of this text means: the text creates a
   * table or view from a query (`CREATE TABLE ... AS`, `CREATE TABLE ... AS EXECUTE`, `CREATE
   * MATERIALIZED VIEW`, `SELECT ... INTO`, the same under `EXPLAIN ANALYZE`), which the server reports
   * with the tag of the query, not `CREATE ...`. `'here'` for one statement creating a temporary table
   * (it shadows for this session only), `'everywhere'` for any other, `undefined` for none. See
   * `schemaChangeOf` in postgres-statement.ts.
   */
  readonly queryDdl: 'everywhere' | 'here' | undefined
  /**
   * The text holds a string literal that may be a date/time value read from the clock when the
   * server parses it: `'now'`, `'today'`, `'tomorrow'`, `'yesterday'` (in any case, as a whole word
   * anywhere in the literal: `'today 12:00'`, `' NOW '`; not inside a longer word: `'unknown'`,
   * `'snowfall'` are plain text, as Postgres's date/time parser reads them). Parse converts a literal of a date/time type once, so a named
   * statement would keep the instant of its Parse: such a text is never named.
   */
  readonly clockLiteral: boolean
}

/** Texts whose traits are kept (the least recently used forgotten first; entries of the cache keep their own). */
const MAX_REMEMBERED_TEXTS = 512
const remembered = new Map<string, StatementTraits>()

/**
 * The {@link StatementTraits} of `text`, computed once per text (a bounded map, shared by every pool
 * of the process: the traits depend on the text alone). A text that cannot be read lexically (an
 * unterminated literal or comment) is judged on its raw text, conservatively: any word `now`, `today`,
 * `tomorrow`, `yesterday` is a clock literal, any `create` or `into` a schema change everywhere.
 */
export function statementTraits(text: string): StatementTraits {
  const known = remembered.get(text)
  if (known !== undefined) {
    // least recently used first out: a hit moves to the end (a full map drops one text, not all)
    remembered.delete(text)
    remembered.set(text, known)
    return known
  }
  const traits = traitsOf(text)
  if (remembered.size >= MAX_REMEMBERED_TEXTS) remembered.delete(remembered.keys().next().value as string)
  remembered.set(text, traits)
  return traits
}

/** @internal Whether the traits of `text` are remembered (for tests of the bound and its order). */
export function traitsRemembered(text: string): boolean {
  return remembered.has(text)
}

/**
 * {@link StatementTraits.queryDdl} of `text`, for a statement with no cache entry (run unnamed) whose
 * command tag is `SELECT n` or `EXPLAIN`: a text without the word `create` or `into` (as a whole word,
 * any case) creates no table from a query, answered by one regular expression without reading the text
 * or touching the remembered traits; any other is {@link statementTraits}'. The pre-check can only
 * send more texts to the full reading, never skip a `CREATE TABLE ... AS` or `SELECT ... INTO` (their
 * keywords stand as words).
 */
export function queryDdlOfText(text: string): StatementTraits['queryDdl'] {
  return RAW_DDL_WORD.test(text) ? statementTraits(text).queryDdl : undefined
}

// the special date/time inputs Postgres reads from the clock (datetktbl: DTK_NOW, DTK_TODAY, DTK_TOMORROW,
// DTK_YESTERDAY), as whole tokens: ParseDateTime (datetime.c) reads a field of letters up to the first
// character that is not one (space, digit, punctuation: 'today 12:00', 'now+02', 'x_now'), so 'unknown'
// or 'snowfall' is none. Conservative where Postgres might join more to the word ('now-1' is a date
// field there): only an ASCII letter on either side rules a match out. 'epoch', 'infinity', 'allballs'
// are constants.
const CLOCK_WORD = /(?<![a-z])(?:now|today|tomorrow|yesterday)(?![a-z])/i
const QUOTED_NAME = /"(?:[^"]|"")*"/g
const CREATE_HEAD = /^create\b/i
const CREATE_TEMP = /^create\s+(?:(?:global|local)\s+)?temp(?:orary)?\s/i
const QUERY_HEAD = /^(?:select|with|\()/i
const EXPLAIN_HEAD = /^explain\s+(?:\([^)]*\)\s*|(?:analy[sz]e|verbose)\s+)*/i
const INTO_OR_PARENTHESIS = /[()]|\binto\b/gi
const INSERT_OR_MERGE_BEFORE = /\b(?:insert|merge)\s*$/i
const TEMP_AFTER_INTO = /^\s+(?:(?:global|local)\s+)?temp(?:orary)?\b/i
const RAW_DDL_WORD = /\b(?:create|into)\b/i

function traitsOf(text: string): StatementTraits {
  const lexed = lex(text)
  if (lexed === undefined) {
    return { queryDdl: RAW_DDL_WORD.test(text) ? 'everywhere' : undefined, clockLiteral: CLOCK_WORD.test(text) }
  }
  const clockLiteral = lexed.literals.some((literal) => CLOCK_WORD.test(literal.value))
  return { queryDdl: queryDdlOf(lexed.code.replace(QUOTED_NAME, '"_"')), clockLiteral }
}

/** StatementTraits.queryDdl of lexed code (comments and literals gone, quoted names blanked). */
function queryDdlOf(code: string): 'everywhere' | 'here' | undefined {
  let statements = 0
  let found: 'here' | undefined
  for (const piece of code.split(';')) {
    const statement = piece.trim()
    if (statement === '') continue
    statements++
    const kind = statementDdl(statement.replace(EXPLAIN_HEAD, ''))
    if (kind === 'everywhere') return kind
    if (kind === 'here') found = kind
  }
  // a temp table and another statement in one text: everywhere (as for CREATE TEMP: see schemaChangeOf)
  return found !== undefined && statements > 1 ? 'everywhere' : found
}

/** One statement: `CREATE ...` (under a `SELECT n` tag: a table or materialized view from a query) or `SELECT ... INTO` at the top level. */
function statementDdl(statement: string): 'everywhere' | 'here' | undefined {
  if (CREATE_HEAD.test(statement)) return CREATE_TEMP.test(statement) ? 'here' : 'everywhere'
  if (!QUERY_HEAD.test(statement)) return undefined
  let depth = 0
  for (const match of statement.matchAll(INTO_OR_PARENTHESIS)) {
    const word = match[0]
    if (word === '(') depth++
    else if (word === ')') depth--
    else if (depth <= 0) {
      const at = match.index ?? 0
      // INSERT INTO / MERGE INTO of a data-modifying WITH: not a new table
      if (INSERT_OR_MERGE_BEFORE.test(statement.slice(0, at))) continue
      return TEMP_AFTER_INTO.test(statement.slice(at + word.length)) ? 'here' : 'everywhere'
    }
  }
  return undefined
}
