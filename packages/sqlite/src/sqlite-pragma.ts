import { splitSqlStatements } from '@dbpool/core'
import { transactionControlOf } from '@dbpool/core/internal'

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
  /** The names of the settings the text sets, lower-cased, with their schema when one is given (`temp.cache_size`). */
  readonly names: readonly string[]
  /**
   * A `foreign_keys` assignment the text itself runs inside a transaction it opened (`BEGIN; PRAGMA
   * foreign_keys = OFF; ...`): SQLite ignores it there.
   */
  readonly foreignKeysInOwnTransaction: boolean
}

const NOTHING: PragmaScan = Object.freeze({ effect: 0, names: [], foreignKeysInOwnTransaction: false })

/**
 * PRAGMAs that take an argument and change no setting of the connection: they read or act
 * (`table_info(t)`, `wal_checkpoint(TRUNCATE)`, `optimize`, `foreign_key_check`...).
 */
const QUERY_PRAGMAS: ReadonlySet<string> = new Set([
  'table_info',
  'table_xinfo',
  'table_list',
  'index_info',
  'index_xinfo',
  'index_list',
  'foreign_key_list',
  'foreign_key_check',
  'integrity_check',
  'quick_check',
  'wal_checkpoint',
  'incremental_vacuum',
  'optimize',
  'shrink_memory',
  'collation_list',
  'compile_options',
  'database_list',
  'function_list',
  'module_list',
  'pragma_list',
  'data_version',
  'freelist_count',
  'page_count',
])

/**
 * The PRAGMA effect of one statement text (see {@link scanPragmas}); a text without the word
 * `pragma` costs one case-insensitive search.
 */
export function pragmaEffect(text: string): PragmaEffect {
  return scanPragmas(text, false).effect
}

/**
 * Reads every PRAGMA statement of `text` (several statements allowed: comments, strings and trigger
 * bodies skipped, see `splitSqlStatements`). A PRAGMA sets something when it has `= value` or
 * `(value)` and is not one of the {@link QUERY_PRAGMAS}. The name is read the way SQLite reads it:
 * case-insensitive, bare or quoted (`"foreign_keys"`, `` `foreign_keys` ``, `[foreign_keys]`, and
 * `'foreign_keys'`, which SQLite accepts as a name there), with an optional schema (`main.`,
 * `"main".`), so that no spelling escapes the checks.
 *
 * @param inTransaction A transaction is open before the text runs (for {@link PragmaScan.foreignKeysInOwnTransaction}).
 */
export function scanPragmas(text: string, inTransaction: boolean): PragmaScan {
  if (!/pragma/i.test(text)) return NOTHING
  let effect: PragmaEffect = 0
  const names: string[] = []
  let open = inTransaction
  let inOwn = false
  for (const statement of splitSqlStatements(text, 'sqlite')) {
    const head = statement.head
    const control = transactionControlOf(head)
    if (control === 'BEGIN') open = true
    else if (control !== undefined) open = false
    else if (head[0] === 'SAVEPOINT') open = true
    if (head[0] !== 'PRAGMA') continue
    const parsed = parsePragma(statement.text)
    if (parsed === undefined || !parsed.sets || QUERY_PRAGMAS.has(parsed.name)) continue
    names.push(parsed.schema === undefined ? parsed.name : `${parsed.schema}.${parsed.name}`)
    if (parsed.name === 'foreign_keys') {
      effect = SETS_FOREIGN_KEYS
      if (open && !inTransaction) inOwn = true
    } else if (effect === 0) effect = SETS_SETTING
  }
  return effect === 0 ? NOTHING : { effect, names, foreignKeysInOwnTransaction: inOwn }
}

/** A PRAGMA statement's schema and name (unquoted, lower-cased) and whether it gives a value. */
function parsePragma(text: string): { schema: string | undefined; name: string; sets: boolean } | undefined {
  const tokens = new Tokens(text)
  if (tokens.word()?.toLowerCase() !== 'pragma') return undefined
  let name = tokens.name()
  if (name === undefined) return undefined
  let schema: string | undefined
  if (tokens.peek() === '.') {
    tokens.skip()
    schema = name
    name = tokens.name()
    if (name === undefined) return undefined
  }
  const next = tokens.peek()
  return { schema, name, sets: next === '=' || next === '(' }
}

/** Just enough of SQLite's tokenizer for a PRAGMA's head: blanks and comments, words, quoted names. */
class Tokens {
  #at = 0

  constructor(private readonly text: string) {}

  /** The next character after blanks and comments ('' at the end). */
  peek(): string {
    this.#blanks()
    return this.text[this.#at] ?? ''
  }

  skip(): void {
    this.#at++
  }

  word(): string | undefined {
    this.#blanks()
    const match = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(this.text.slice(this.#at, this.#at + 64))
    if (match === null) return undefined
    this.#at += match[0].length
    return match[0]
  }

  /** A bare or quoted name, unquoted and lower-cased (SQLite compares names case-insensitively). */
  name(): string | undefined {
    const first = this.peek()
    const close = first === '"' ? '"' : first === '`' ? '`' : first === "'" ? "'" : first === '[' ? ']' : undefined
    if (close === undefined) return this.word()?.toLowerCase()
    let out = ''
    let i = this.#at + 1
    for (;;) {
      const ch = this.text[i]
      if (ch === undefined) return undefined
      if (ch === close) {
        // a doubled quote is one quote character ([...] has no escape)
        if (close !== ']' && this.text[i + 1] === close) {
          out += ch
          i += 2
          continue
        }
        break
      }
      out += ch
      i++
    }
    this.#at = i + 1
    return out.toLowerCase()
  }

  #blanks(): void {
    const text = this.text
    for (;;) {
      while (this.#at < text.length && /\s/.test(text[this.#at]!)) this.#at++
      if (text.startsWith('--', this.#at)) {
        const end = text.indexOf('\n', this.#at)
        this.#at = end < 0 ? text.length : end + 1
      } else if (text.startsWith('/*', this.#at)) {
        const end = text.indexOf('*/', this.#at + 2)
        this.#at = end < 0 ? text.length : end + 2
      } else return
    }
  }
}
