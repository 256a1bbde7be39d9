import { configError, type Transaction as DbpoolTx, type TransactionOptions } from '@dbpool/core'
import { SingleConnectionProvider, Transaction, type ControlledTransaction, type Kysely, type QueryExecutor } from 'kysely'
import { DbpoolConnection } from './dbpool-connection'

/**
 * Runs `fn` in a dbpool transaction and hands it a Kysely `Transaction` on it, with the plugins of
 * `db`: what `db.transaction().execute(fn)` does, plus dbpool's `retry`, which replays the whole
 * callback on SERIALIZATION_FAILURE, DEADLOCK and BUSY (a new `trx` each attempt, with backoff), and
 * its `isolation`, `readOnly` and `deferrable`.
 *
 * ```ts
 * await dbpoolTransaction(db, async (trx) => {
 *   const { balance } = await trx.selectFrom('account').select('balance').where('id', '=', from).executeTakeFirstOrThrow()
 *   await trx.updateTable('account').set({ balance: balance - amount }).where('id', '=', from).execute()
 *   // nested: a savepoint, rolled back to (and rethrown) when its callback rejects
 *   await dbpoolTransaction(trx, (sp) => sp.insertInto('audit').values({ from, amount }).execute())
 * }, { isolation: 'serializable', retry: true })
 * ```
 *
 * Where it runs, as `db.transaction()` in the same place:
 * - `db` is the Kysely instance: `pool.transaction(fn, options)`, on a connection of its own;
 * - `db` is the Kysely of a `db.connection()` callback that already ran a statement: the connection
 *   it holds (`conn.transaction()`: a temporary table, an advisory lock, SQLite's writer are there),
 *   except a SQLite reader, given back for a transaction that writes; `retry` there is CONFIGURATION
 *   (that transaction cannot be replayed on its session);
 * - `db` is a `trx` (of `dbpoolTransaction()`, `db.transaction()` or `db.startTransaction()`): `fn`
 *   runs in a savepoint of that transaction (dbpool's `tx.transaction()`: released when `fn`
 *   resolves, rolled back to when it rejects, the error rethrown; the outer `trx` refuses other work
 *   with QUERY_FAILED while it is open). `options` are CONFIGURATION there (a savepoint has none).
 *
 * `fn` must be safe to run more than once when `retry` is set. Inside it, `trx.transaction()` throws
 * (Kysely's rule for a `Transaction`) and `trx.startTransaction()` is refused with QUERY_FAILED: the
 * transaction belongs to dbpool, which commits when `fn` resolves and rolls back when it rejects;
 * nest with `dbpoolTransaction(trx, fn)`. Once `fn` has settled, `trx` refuses every statement with
 * QUERY_FAILED (one `fn` left running would otherwise run outside the transaction, or inside a
 * replay's).
 *
 * @throws DatabaseError CONFIGURATION naming `dbpoolTransaction.db` when `db` is not a Kysely
 *   instance (or `Transaction`) on a {@link DbpoolDialect}, `dbpoolTransaction.fn` when `fn` is not a
 *   function, or for invalid options (as `pool.transaction()`); QUERY_FAILED when `db`'s connection
 *   already runs a transaction `db` is not the `trx` of, or `trx`'s transaction has ended
 *   (TRANSACTION_ROLLED_BACK after a failed commit); otherwise the error that ended the last attempt.
 */
export async function dbpoolTransaction<DB, T>(
  db: Kysely<DB> | Transaction<DB> | ControlledTransaction<DB, string[]>,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options?: TransactionOptions,
): Promise<T> {
  if (!isKysely(db)) throw configError('dbpoolTransaction.db', db, 'must be a Kysely instance (or a Transaction) on a DbpoolDialect')
  if (typeof fn !== 'function') throw configError('dbpoolTransaction.fn', fn, 'must be a function')
  if (db.isTransaction) return nested(db, fn, options)
  return db.connection().execute(async (scoped) => {
    const executor = scoped.getExecutor()
    const connection = await ownConnection(executor)
    const attempts: DbpoolConnection[] = []
    // each attempt's trx runs on a connection of its own, closed when fn settles: a statement fn
    // left running (a forgotten await) is refused, never run outside the transaction or in a replay
    return connection.runTransaction((tx) => runAttempt(connection, executor, tx, fn, attempts), options).finally(() => settled(attempts))
  })
}

/** `dbpoolTransaction(trx, fn)`: `fn` in a savepoint of `trx`'s transaction. */
async function nested<DB, T>(
  trx: Kysely<DB>,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options: TransactionOptions | undefined,
): Promise<T> {
  if (options !== undefined)
    throw configError(
      'dbpoolTransaction.options',
      options,
      'must be left out when db is a trx: the call nests a savepoint in its transaction, which takes no isolation, readOnly, deferrable or retry',
    )
  // a controlled transaction's executor refuses here (Kysely's error) once it was committed or rolled back
  const executor = trx.getExecutor()
  const connection = await ownConnection(executor)
  const attempts: DbpoolConnection[] = []
  return connection.runSavepoint((sp) => runAttempt(connection, executor, sp, fn, attempts)).finally(() => settled(attempts))
}

/** The DbpoolConnection Kysely lent `executor` (one that holds nothing until it runs something). */
async function ownConnection(executor: QueryExecutor): Promise<DbpoolConnection> {
  const connection = await executor.provideConnection(async (c) => c)
  if (!(connection instanceof DbpoolConnection))
    throw configError('dbpoolTransaction.db', 'a Kysely instance on another dialect', 'must be a Kysely instance on a DbpoolDialect')
  return connection
}

/** One run of `fn` on `tx` (a transaction or a savepoint), through a Kysely connection closed when `fn` settles. */
async function runAttempt<DB, T>(
  owner: DbpoolConnection,
  executor: QueryExecutor,
  tx: DbpoolTx,
  fn: (trx: Transaction<DB>) => Promise<T>,
  attempts: DbpoolConnection[],
): Promise<T> {
  const attempt = new DbpoolConnection(owner.context)
  attempts.push(attempt)
  attempt.adopt(tx)
  try {
    const { dialect, driver } = owner.context
    const trx = new Transaction<DB>({
      config: { dialect },
      dialect,
      driver,
      executor: executor.withConnectionProvider(new SingleConnectionProvider(attempt)),
    })
    return await fn(trx)
  } finally {
    attempt.disown()
  }
}

/** The transaction (savepoint) has committed or rolled back: every attempt's trx says "was released". */
function settled(attempts: readonly DbpoolConnection[]): void {
  for (const attempt of attempts) attempt.ended()
}

/** Duck-typed (a Kysely from another copy of the package still passes); the dialect is checked on its connection. */
function isKysely(value: unknown): boolean {
  const db = value as Partial<Kysely<unknown>> | null | undefined
  return (
    typeof db === 'object' &&
    db !== null &&
    typeof db.getExecutor === 'function' &&
    typeof db.connection === 'function' &&
    typeof db.isTransaction === 'boolean'
  )
}
