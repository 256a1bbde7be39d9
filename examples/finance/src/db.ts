import {
  DatabasePool,
  type ConnectionStreamOptions,
  type ExecuteOptions,
  type QueryResult,
  type Queryable,
  type Transaction,
  type TransactionOptions,
} from '@dbpool/core'

/**
 * What the repositories run on: a `DatabasePool` or a `Transaction` handed out by one. Inside a
 * transaction, `transaction()` opens a savepoint and takes no options (dbpool refuses them with
 * CONFIGURATION): the repositories go through {@link atomically}, which passes isolation and
 * read-only settings only to a pool, so every method works on either, atomically.
 */
export interface Db {
  /** Runs one statement. */
  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>>
  /** Streams a statement's rows a batch at a time (`pool.stream()`, or `tx.stream()` inside a transaction). */
  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ConnectionStreamOptions): AsyncIterable<R>
  /** Runs `fn` atomically: a transaction on a pool, a savepoint inside a transaction. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>
}

/**
 * True when `db` is a pool (`db.transaction()` begins a transaction and takes options: `isolation`,
 * `readOnly`, `retry`); false for a transaction handed out by one (`transaction()` is a savepoint).
 */
export function isPool(db: Db): boolean {
  return db instanceof DatabasePool
}

/**
 * Runs `fn` atomically on `db`: on a pool, in a transaction begun with `options`; inside a
 * transaction, in a savepoint of it, `options` left out (a savepoint cannot change them): the work
 * then runs under the caller's isolation, sees the caller's snapshot (one snapshot for all its
 * statements only when the caller's transaction is repeatable read or serializable, or on SQLite),
 * and a failure is the caller's to replay.
 */
export function atomically<T>(db: Db, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions): Promise<T> {
  return isPool(db) ? db.transaction(fn, options) : db.transaction(fn)
}
