import { DatabaseError, type TransactionOptions } from '@dbpool/core'
import { SingleConnectionProvider, Transaction, type Kysely } from 'kysely'
import { DbpoolConnection } from './dbpool-connection'

/**
 * Runs `fn` in a dbpool transaction (`pool.transaction(fn, options)`) and hands it a Kysely
 * `Transaction` on it, with the plugins of `db`: what `db.transaction().execute(fn)` does, plus
 * dbpool's `retry`, which replays the whole callback on SERIALIZATION_FAILURE, DEADLOCK and BUSY (a
 * new `trx` each attempt, with backoff), and its `isolation`, `readOnly` and `deferrable`.
 *
 * ```ts
 * await dbpoolTransaction(db, async (trx) => {
 *   const { balance } = await trx.selectFrom('account').select('balance').where('id', '=', from).executeTakeFirstOrThrow()
 *   await trx.updateTable('account').set({ balance: balance - amount }).where('id', '=', from).execute()
 * }, { isolation: 'serializable', retry: true })
 * ```
 *
 * `fn` must be safe to run more than once when `retry` is set. Inside it, `trx.transaction()` throws
 * (Kysely's rule for a `Transaction`) and `trx.startTransaction()` is refused with QUERY_FAILED: the
 * transaction belongs to dbpool, which commits when `fn` resolves and rolls back when it rejects.
 * Once `fn` has settled, `trx` refuses every statement with QUERY_FAILED (one `fn` left running
 * would otherwise run outside the transaction, or inside a replay's).
 *
 * @throws DatabaseError CONFIGURATION when `db` does not run on a {@link DbpoolDialect}, or for
 *   invalid options (as `pool.transaction()`); otherwise the error that ended the last attempt.
 */
export async function dbpoolTransaction<DB, T>(
  db: Kysely<DB>,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options?: TransactionOptions,
): Promise<T> {
  if (typeof fn !== 'function') throw new DatabaseError('CONFIGURATION', 'dbpoolTransaction: the callback must be a function')
  return db.connection().execute(async (scoped) => {
    // the connection Kysely lent `scoped` (it holds nothing until it runs something)
    const connection = await scoped.getExecutor().provideConnection(async (c) => c)
    if (!(connection instanceof DbpoolConnection))
      throw new DatabaseError('CONFIGURATION', 'dbpoolTransaction: db must be a Kysely instance on a DbpoolDialect')
    const attempts: DbpoolConnection[] = []
    const settled = (): void => {
      for (const attempt of attempts) attempt.ended()
    }
    return connection.pool
      .transaction(async (tx) => {
        // each attempt's trx runs on a connection of its own, closed when fn settles: a statement fn
        // left running (a forgotten await) is refused, never run outside the transaction or in a replay
        const attempt = new DbpoolConnection(connection.context)
        attempts.push(attempt)
        attempt.adopt(tx)
        try {
          const { dialect, driver } = connection.context
          const executor = scoped.getExecutor().withConnectionProvider(new SingleConnectionProvider(attempt))
          const trx = new Transaction<DB>({ config: { dialect }, dialect, driver, executor })
          return await fn(trx)
        } finally {
          attempt.disown()
        }
      }, options)
      .finally(settled)
  })
}
