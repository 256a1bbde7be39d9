import { lex } from './sqlite-lex'
import { settingOf } from './sqlite-session-settings'

/**
 * What a statement text does with PRAGMAs, read once per prepared text (a cache miss) or per run of a
 * multi-statement script: `0` nothing, {@link SETS_SETTING} it changes a connection setting,
 * {@link SETS_FOREIGN_KEYS} it sets `foreign_keys` (a setting too).
 */
export type PragmaEffect = 0 | 1 | 2

/** The text sets a connection setting (`PRAGMA recursive_triggers = ON`, `PRAGMA cache_size(100)`...). */
export const SETS_SETTING = 1
/** The text sets `PRAGMA foreign_keys`, in any spelling (see {@link pragmaEffect}). */
export const SETS_FOREIGN_KEYS = 2

/** The result of {@link scanPragmas}. */
export interface PragmaScan {
  readonly effect: PragmaEffect
  /**
   * The connection settings the text sets, as `settingOf` names them: lower-cased, a connection-wide
   * flag without its (ignored) schema (`temp.foreign_keys` is `foreign_keys`), a per-schema setting of
   * another schema than main with it (`temp.cache_size`).
   */
  readonly names: readonly string[]
  /**
   * A `foreign_keys` assignment the text itself runs inside a transaction it opened (`BEGIN; PRAGMA
   * foreign_keys = OFF; ...`): SQLite ignores it there.
   */
  readonly foreignKeysInOwnTransaction: boolean
}

const NOTHING: PragmaScan = Object.freeze({ effect: 0, names: [], foreignKeysInOwnTransaction: false })

/**
 * The PRAGMA effect of one statement text (see {@link scanPragmas}); a text without the word
 * `pragma` costs one case-insensitive search.
 */
export function pragmaEffect(text: string): PragmaEffect {
  return scanPragmas(text, false).effect
}

/** Whether `text` holds a `PRAGMA` keyword outside strings, quoted names and comments (`pragma_table_info(...)` does not). */
export function mentionsPragma(text: string): boolean {
  return /pragma/i.test(text) && lex(text).some((token) => token.length === 7 && token.toLowerCase() === 'wpragma')
}

/**
 * Reads every PRAGMA of `text`, wherever it stands (several statements, `EXPLAIN PRAGMA ...`): the
 * text is read with SQLite's own lexical rules (`'strings'`, `"names"`, `` `names` ``, `[names]`,
 * `--` and `/* *\/` comments), and every `PRAGMA` keyword outside them is read, without relying on
 * where statements end (a trigger body cannot hide one). A PRAGMA sets something when it has
 * `= value` or `(value)` and names a connection setting (`settingOf`: settings of the database file,
 * process-wide ones, reading PRAGMAs and names SQLite does not know are not). The name is read the way
 * SQLite reads it: case-insensitive, bare or quoted (`"foreign_keys"`, `` `foreign_keys` ``,
 * `[foreign_keys]`, and `'foreign_keys'`, which SQLite accepts as a name there), with an optional
 * schema (`main.`, `"temp".`), so that no spelling escapes the checks.
 *
 * @param inTransaction A transaction is open before the text runs (for {@link PragmaScan.foreignKeysInOwnTransaction}).
 */
export function scanPragmas(text: string, inTransaction: boolean): PragmaScan {
  if (!/pragma/i.test(text)) return NOTHING
  const tokens = lex(text)
  let effect: PragmaEffect = 0
  const names: string[] = []
  let open = inTransaction
  let inOwn = false
  // statement heads, for the transaction the text opens itself; trigger bodies (`BEGIN ... END`) hold `;`
  let atHead = true
  let trigger: 'no' | 'head' | 'body' = 'no'
  let afterSemicolon = false
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!
    if (token === ';') {
      if (trigger === 'body') afterSemicolon = true
      else {
        atHead = true
        trigger = 'no'
      }
      continue
    }
    const word = token.startsWith('w') ? token.slice(1).toUpperCase() : ''
    if (trigger === 'body') {
      // a trigger body's END follows the `;` of its last statement (SQLite requires it); a CASE's never does
      if (afterSemicolon && word === 'END') trigger = 'no'
      afterSemicolon = false
    } else if (atHead) {
      atHead = false
      if (word === 'BEGIN' || word === 'SAVEPOINT') open = true
      else if (word === 'COMMIT' || word === 'END') open = false
      else if (word === 'ROLLBACK' && !rollsBackToSavepoint(tokens, i)) open = false
      else if (word === 'CREATE' && isTrigger(tokens, i)) trigger = 'head'
    } else if (trigger === 'head' && word === 'BEGIN' && BODY_START.has(wordAt(tokens, i + 1))) {
      trigger = 'body'
      afterSemicolon = false
    }
    if (word !== 'PRAGMA') continue
    const name = settingAt(tokens, i + 1)
    if (name === undefined) continue
    names.push(name)
    if (name === 'foreign_keys') {
      effect = SETS_FOREIGN_KEYS
      if (open && !inTransaction) inOwn = true
    } else if (effect === 0) effect = SETS_SETTING
  }
  return effect === 0 ? NOTHING : { effect, names, foreignKeysInOwnTransaction: inOwn }
}

// the statements a trigger body holds
const BODY_START: ReadonlySet<string> = new Set(['INSERT', 'UPDATE', 'DELETE', 'SELECT', 'WITH', 'REPLACE', 'VALUES'])

function wordAt(tokens: readonly string[], i: number): string {
  const token = tokens[i]
  return token?.startsWith('w') ? token.slice(1).toUpperCase() : ''
}

/** `CREATE [TEMP|TEMPORARY] TRIGGER` at `i`. */
function isTrigger(tokens: readonly string[], i: number): boolean {
  const next = wordAt(tokens, i + 1)
  return next === 'TRIGGER' || ((next === 'TEMP' || next === 'TEMPORARY') && wordAt(tokens, i + 2) === 'TRIGGER')
}

/** `ROLLBACK [TRANSACTION] TO` at `i`. */
function rollsBackToSavepoint(tokens: readonly string[], i: number): boolean {
  const next = wordAt(tokens, i + 1)
  return next === 'TO' || (next === 'TRANSACTION' && wordAt(tokens, i + 2) === 'TO')
}

/** The setting a PRAGMA whose name starts at `i` sets (`settingOf`), undefined when it reads or sets none. */
function settingAt(tokens: readonly string[], i: number): string | undefined {
  let name = nameOf(tokens[i])
  if (name === undefined) return undefined
  let schema: string | undefined
  if (tokens[i + 1] === '.') {
    schema = name
    i += 2
    name = nameOf(tokens[i])
    if (name === undefined) return undefined
  }
  const next = tokens[i + 1]
  if (next !== '=' && next !== '(') return undefined
  return settingOf(schema, name)
}

/** A bare word, quoted name or string token as a name, lower-cased (SQLite compares names case-insensitively). */
function nameOf(token: string | undefined): string | undefined {
  if (token === undefined) return undefined
  const kind = token[0]
  return kind === 'w' || kind === 'n' ? token.slice(1).toLowerCase() : undefined
}
