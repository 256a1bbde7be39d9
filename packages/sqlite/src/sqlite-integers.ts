import type Database from 'better-sqlite3'
import { rowObjects, type RowShape } from './row-objects'
import { allRows } from './statement-call'

/**
 * Exact integers on read while `safeIntegers` is off. better-sqlite3 then returns every INTEGER as
 * a JS number, which rounds a value beyond ±(2^53 - 1) silently (9007199254740993 comes back as
 * 9007199254740992, and looking the row up by it finds nothing). A rounded integer is always
 * beyond that range, so a cheap scan of the numbers read finds every candidate; reading again with
 * safe integers then tells an INTEGER (a bigint, kept) from a REAL (a number, kept as it is). The
 * manager reads again only a statement that writes nothing on a connection never lent through
 * `conn.native` (no application function can run in it: see the manager's `IntegerReading`); every
 * other statement is read once with safe integers and narrowed ({@link narrowIntegers}).
 */

/** 2^53 - 1: the largest integer a number holds exactly. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER)

type Row = Record<string, unknown>

/** True when some value in `rows` is a number beyond ±(2^53 - 1) (a rounded INTEGER, or a large REAL). */
export function hasUnsafeNumber(rows: readonly unknown[]): boolean {
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as Row
    // for-in, not cached column names: a `select *` sees new columns after an ALTER TABLE
    for (const key in row) {
      const value = row[key]
      if (typeof value === 'number' && (value > MAX_SAFE || value < -MAX_SAFE)) return true
    }
  }
  return false
}

/**
 * Runs a read-only statement again (one that can run twice unseen: see above) with safe integers and narrows the rows: an INTEGER within
 * ±(2^53 - 1) becomes a number, one beyond stays a bigint, a REAL stays a number.
 */
export function exactRows<R>(stmt: Database.Statement<unknown[], unknown>, params: readonly unknown[], shape?: RowShape): R[] {
  stmt.safeIntegers(true)
  let rows: unknown[]
  try {
    rows = allRows(stmt, params)
  } finally {
    stmt.safeIntegers(false)
  }
  // raw mode (`shape`): each row is an array of values, keyed by the shape's names after narrowing
  narrowIntegers(rows)
  return (shape === undefined ? rows : rowObjects(rows, shape, false)!) as R[]
}

/** In place: every bigint within ±(2^53 - 1) in `rows` becomes a number. */
export function narrowIntegers(rows: readonly unknown[]): void {
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as Row
    for (const key in row) {
      const value = row[key]
      if (typeof value === 'bigint' && value <= MAX_SAFE_BIG && value >= -MAX_SAFE_BIG) row[key] = Number(value)
    }
  }
}

/** A number when `value` is within ±(2^53 - 1), else the bigint itself. */
export function narrow(value: bigint): number | bigint {
  return value <= MAX_SAFE_BIG && value >= -MAX_SAFE_BIG ? Number(value) : value
}
