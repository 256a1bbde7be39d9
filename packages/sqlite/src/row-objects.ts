/**
 * Result rows built from better-sqlite3's raw mode (`stmt.raw(true)`: each row an array of values),
 * keyed by the statement's column names, read once when it was prepared.
 *
 * Why: better-sqlite3 builds each row object in C++, one `Object::Set` per column with a key
 * internalized from UTF-8 on every row; a raw array turned into an object here, with the names
 * already JS strings, costs less. Measured on a point read by primary key (3 columns): `.all()` made
 * 0.91 of `.get()`'s rate, raw `.all()` plus this loop 0.98 (docs/architecture.md, "Hot path").
 *
 * It also keeps a column named `__proto__`: better-sqlite3's own rows assign it, which sets (or, for
 * a value that is not an object, ignores) the prototype, so the column vanished from the row; here
 * it is an own property, as node-postgres returns it.
 *
 * Used only for statements whose columns cannot change while the statement stays cached: no `*` in
 * the text (see `CachedStatement.star`). SQLite names an unaliased column reference after the column's
 * declaration, so a case-only rename (`name` to `Name`) made elsewhere re-prepares the statement
 * under the new spelling while its rows keep the spelling it was prepared with; the column and its
 * values are the same (SQLite identifiers are case-insensitive).
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
