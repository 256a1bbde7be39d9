/**
 * A counter of `DbpoolDriver.init()` calls and `DbpoolConnection`s made (one process-wide count).
 * `dbpoolTransaction()` reads it around a synchronous call into Kysely's connection provider to
 * tell the application's `db` (whose provider asks the driver for a new connection) from a Kysely
 * bound to one connection (`db.connection()`'s `c`, a `trx`), without waiting on the latter.
 */
let count = 0

/** Counts one more init or connection; returns the new count (a connection's serial). */
export function nextMark(): number {
  return ++count
}

/** The count now. */
export function currentMark(): number {
  return count
}
