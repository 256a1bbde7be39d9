/**
 * Result rows built from better-sqlite3's raw mode (`stmt.raw(true)`: each row an array of values),
 * keyed by the column names of the plan that ran. Used for statements with a result column named
 * `__proto__`: better-sqlite3's own rows assign each key, which sets (or, for a value that is not an
 * object, ignores) the prototype, so that column vanished from the row; here it is an own property,
 * as node-postgres returns it. The names are read from `stmt.columns()` after every run of such a
 * statement (SQLite may re-prepare it after a schema change).
 *
 * Raw mode for every statement was tried (0.80 to 0.84 of a raw `.get()` on a point read) and taken
 * back: the names must then be cached, and SQLite renames a result column by itself after a schema
 * change made anywhere (docs/architecture.md, "Hot path of a SQLite point read").
 */

type Row = Record<string, unknown>

/** A statement's result columns as {@link rowObjects} needs them. */
export interface RowShape {
  readonly names: readonly string[]
  /** A column is named `__proto__` (set with `Object.defineProperty`, not by assignment). */
  readonly proto: boolean
}

/** 2^53 - 1 (as in sqlite-integers). */
const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** The shape of a result with these column names. */
export function rowShape(names: readonly string[]): RowShape {
  return { names, proto: names.includes('__proto__') }
}

/**
 * The rows of `arrays` as objects keyed by the shape's names, in column order. With `scan`, undefined
 * as soon as a value is a number beyond ±(2^53 - 1) (a rounded INTEGER or a large REAL: the caller
 * reads the statement again with safe integers, see `exactRows`).
 */
export function rowObjects(arrays: readonly unknown[], shape: RowShape, scan: boolean): Row[] | undefined {
  const { names, proto } = shape
  const count = arrays.length
  const width = names.length
  const rows: Row[] = new Array<Row>(count)
  for (let i = 0; i < count; i++) {
    const values = arrays[i] as readonly unknown[]
    const row: Row = {}
    for (let j = 0; j < width; j++) {
      const value = values[j]
      if (scan && typeof value === 'number' && (value > MAX_SAFE || value < -MAX_SAFE)) return undefined
      const name = names[j]!
      if (proto && name === '__proto__') Object.defineProperty(row, name, { value, writable: true, enumerable: true, configurable: true })
      else row[name] = value
    }
    rows[i] = row
  }
  return rows
}
