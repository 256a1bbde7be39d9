import { DatabaseError } from '../errors/database-error'
import { SqlJson } from './parameters'

/** The placeholder style a backend uses: `$1` (Postgres) or `?` (SQLite). */
export type SqlDialect = 'postgres' | 'sqlite'

/** A statement ready for a backend: text with placeholders and its parameters in order. */
export interface CompiledQuery {
  readonly text: string
  readonly params: readonly unknown[]
}

const FRAGMENT = Symbol('dbpool.sql.fragment')

/** What renders as text rather than as a parameter: fragments, identifiers and raw text (one `instanceof` per value). */
abstract class SqlNode {}

/** A quoted identifier made by {@link sql.id}. */
class SqlIdentifier extends SqlNode {
  constructor(readonly parts: readonly string[]) {
    super()
  }
}

/** Trusted text spliced as is, made by {@link sql.raw}. */
class SqlRaw extends SqlNode {
  constructor(readonly text: string) {
    super()
  }
}

/**
 * Compiled text per template call site and dialect, for templates whose values are all parameters
 * (the common case): the text depends only on the template then. A template strings array is the
 * same frozen object every time its call site runs, so it keys a WeakMap.
 */
const TEXT_CACHE = new WeakMap<TemplateStringsArray, { postgres?: string; sqlite?: string }>()

/**
 * A piece of SQL with its values kept apart from the text. Values become parameters; fragments
 * nest. Build with the {@link sql} tag.
 */
export class SqlFragment extends SqlNode {
  readonly [FRAGMENT] = true
  /** @internal */
  constructor(
    readonly strings: readonly string[],
    readonly values: readonly unknown[],
    /** @internal The call site's template object, when built by the tag (the cache key). */
    readonly template?: TemplateStringsArray,
  ) {
    super()
  }

  /** Compiles for one backend's placeholder style. */
  compile(dialect: SqlDialect): CompiledQuery {
    const template = this.template
    if (template !== undefined && onlyParameters(this.values)) {
      let texts = TEXT_CACHE.get(template)
      if (texts === undefined) TEXT_CACHE.set(template, (texts = {}))
      const text = (texts[dialect] ??= this.#render(dialect, []))
      // the values are the parameters, in order: the tag's rest array is ours, never shared
      return { text, params: this.values }
    }
    const params: unknown[] = []
    const text = this.#render(dialect, params)
    return { text, params }
  }

  #render(dialect: SqlDialect, params: unknown[]): string {
    let text = this.strings[0] ?? ''
    for (let i = 0; i < this.values.length; i++) {
      text += renderValue(this.values[i], dialect, params) + (this.strings[i + 1] ?? '')
    }
    return text
  }

  /** @internal */
  static render(fragment: SqlFragment, dialect: SqlDialect, params: unknown[]): string {
    return fragment.#render(dialect, params)
  }
}

function onlyParameters(values: readonly unknown[]): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] instanceof SqlNode) return false
  return true
}

function renderValue(value: unknown, dialect: SqlDialect, params: unknown[]): string {
  if (value instanceof SqlFragment) return SqlFragment.render(value, dialect, params)
  if (value instanceof SqlIdentifier) return value.parts.map(quoteIdentifier).join('.')
  if (value instanceof SqlRaw) return value.text
  params.push(value)
  return dialect === 'postgres' ? `$${params.length}` : '?'
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * A name part for {@link sql.id}: a non-empty string without U+0000 (the protocol ends strings there)
 * and without a lone UTF-16 surrogate (UTF-8 would turn it into U+FFFD: another name). SYNTAX_ERROR.
 */
function checkIdentifier(part: unknown): string {
  if (
    typeof part !== 'string' ||
    part.length === 0 ||
    part.includes('\u0000') ||
    !(part as string & { isWellFormed(): boolean }).isWellFormed()
  ) {
    throw new DatabaseError(
      'SYNTAX_ERROR',
      `invalid SQL identifier ${JSON.stringify(part)}: must be a non-empty string without NUL and without a lone UTF-16 surrogate`,
    )
  }
  return part
}

/** The `sql` tag and its helpers. */
export interface SqlTag {
  (strings: TemplateStringsArray, ...values: unknown[]): SqlFragment
  /** A safely quoted identifier; `sql.id('public', 'accounts')` renders `"public"."accounts"`. */
  id(...parts: string[]): SqlFragment
  /**
   * Joins fragments or values with a separator (default `, `): trusted text, or a fragment
   * (`sql.join(conditions, sql\` and \`)`); values become parameters. Anything else (an items
   * argument that is not an array, a separator of another type) throws SYNTAX_ERROR: an object
   * separator used to be spliced into the text as `[object Object]`. So does a sparse array
   * (`sql.join([1, , 3])`): a hole is a missing item, most likely a bug, and used to drop the
   * separator after it (`$1$2, $3`); write `null` (or `undefined`) for a NULL item.
   */
  join(items: readonly unknown[], separator?: string | SqlFragment): SqlFragment
  /** Trusted SQL text, spliced verbatim. Never pass user input. */
  raw(text: string): SqlFragment
  /**
   * One JSON parameter holding `value` (any JSON value, arrays included), the same on every backend:
   * `sql\`insert into docs (body) values (${sql.json({ tags: ['a'] })})\``. A bigint inside is written
   * as a JSON integer of its exact digits; what JSON.stringify would change silently (NaN, Infinity,
   * functions, `undefined`, Buffers and typed arrays, class instances without `toJSON()`, cycles...) is
   * refused (INVALID_PARAMETER) when the statement runs. Also accepted in a params array.
   */
  json(value: unknown): SqlJson
  /** An empty fragment, handy for optional clauses. */
  readonly empty: SqlFragment
}

/**
 * Tagged template for SQL: interpolated values become parameters (never text); fragments compose.
 *
 * ```ts
 * const byOwner = sql`owner_id = ${ownerId}`
 * await pool.query(sql`select * from ${sql.id('accounts')} where ${byOwner} limit ${10}`)
 * // postgres: select * from "accounts" where owner_id = $1 limit $2
 * ```
 */
export const sql: SqlTag = Object.assign(
  (strings: TemplateStringsArray, ...values: unknown[]): SqlFragment => new SqlFragment(strings, values, strings),
  {
    id: (...parts: string[]): SqlFragment => {
      if (parts.length === 0) throw new DatabaseError('SYNTAX_ERROR', 'sql.id() needs at least one name')
      return new SqlFragment(['', ''], [new SqlIdentifier(parts.map(checkIdentifier))])
    },
    join: (items: readonly unknown[], separator: string | SqlFragment = ', '): SqlFragment => {
      if (!Array.isArray(items)) throw new DatabaseError('SYNTAX_ERROR', 'sql.join() needs an array of items')
      for (let i = 0; i < items.length; i++)
        if (!(i in items))
          throw new DatabaseError(
            'SYNTAX_ERROR',
            `sql.join() items has a hole at index ${i} (a sparse array): write null for a NULL item`,
            { detail: { index: i } },
          )
      if (items.length === 0) return new SqlFragment([''], [])
      if (separator instanceof SqlFragment) {
        const values: unknown[] = []
        for (let i = 0; i < items.length; i++) {
          if (i > 0) values.push(separator)
          values.push(items[i])
        }
        return new SqlFragment(new Array<string>(values.length + 1).fill(''), values)
      }
      if (typeof separator !== 'string') throw new DatabaseError('SYNTAX_ERROR', 'sql.join() needs a string or sql fragment as separator')
      const strings = ['', ...items.slice(1).map(() => separator), '']
      return new SqlFragment(strings, [...items])
    },
    raw: (text: string): SqlFragment => {
      if (typeof text !== 'string') throw new DatabaseError('SYNTAX_ERROR', 'sql.raw() needs a string')
      return new SqlFragment(['', ''], [new SqlRaw(text)])
    },
    json: (value: unknown): SqlJson => new SqlJson(value),
    empty: new SqlFragment([''], []),
  },
)

/** True for values built by the {@link sql} tag. */
export function isSqlFragment(value: unknown): value is SqlFragment {
  return value instanceof SqlFragment
}
