import type Database from 'better-sqlite3'

type Statement = Database.Statement<unknown[], unknown>

/**
 * `stmt.all(...params)` without a spread call. better-sqlite3's methods are native functions, and V8
 * calls a native function through its generic builtin when the arguments are spread from an array
 * (or passed with `apply`), but through its fast API-call stub when they are listed: on a point read
 * by primary key through the pool the spread cost about 150 ns of a 3.5 µs statement (see
 * docs/architecture.md, "Hot path"). Up to 8 parameters are listed (most statements); longer lists
 * keep the spread.
 *
 * `p` holds what `sqliteParameters` returned: values only, never a plain object (which
 * better-sqlite3 would bind as named parameters).
 */
export function allRows(stmt: Statement, p: readonly unknown[]): unknown[] {
  switch (p.length) {
    case 0:
      return stmt.all()
    case 1:
      return stmt.all(p[0])
    case 2:
      return stmt.all(p[0], p[1])
    case 3:
      return stmt.all(p[0], p[1], p[2])
    case 4:
      return stmt.all(p[0], p[1], p[2], p[3])
    case 5:
      return stmt.all(p[0], p[1], p[2], p[3], p[4])
    case 6:
      return stmt.all(p[0], p[1], p[2], p[3], p[4], p[5])
    case 7:
      return stmt.all(p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    case 8:
      return stmt.all(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7])
    default:
      return stmt.all(...p)
  }
}

/** `stmt.run(...params)` without a spread call (see {@link allRows}). */
export function runStatement(stmt: Statement, p: readonly unknown[]): Database.RunResult {
  switch (p.length) {
    case 0:
      return stmt.run()
    case 1:
      return stmt.run(p[0])
    case 2:
      return stmt.run(p[0], p[1])
    case 3:
      return stmt.run(p[0], p[1], p[2])
    case 4:
      return stmt.run(p[0], p[1], p[2], p[3])
    case 5:
      return stmt.run(p[0], p[1], p[2], p[3], p[4])
    case 6:
      return stmt.run(p[0], p[1], p[2], p[3], p[4], p[5])
    case 7:
      return stmt.run(p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    case 8:
      return stmt.run(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7])
    default:
      return stmt.run(...p)
  }
}
