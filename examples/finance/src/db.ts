import type { ConnectionStreamOptions, ExecuteOptions, QueryResult, Queryable, Transaction, TransactionOptions } from '@dbpool/core'

/**
 * What the repositories run on: a `DatabasePool` or a `Transaction` handed out by one. Inside a
 * transaction, `transaction()` opens a savepoint (its options are ignored), so a repository method
 * that writes several rows is atomic either way.
 */
export interface Db {
  /** Runs one statement. */
  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>>
  /** Streams a statement's rows a batch at a time (`pool.stream()`, or `tx.stream()` inside a transaction). */
  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ConnectionStreamOptions): AsyncIterable<R>
  /** Runs `fn` atomically: a transaction on a pool, a savepoint inside a transaction. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>
}
