import { setImmediate as nextTurn } from 'node:timers/promises'
import { configError, DatabaseError, type Transaction as DbpoolTx, type TransactionOptions } from '@dbpool/core'
import { valueKind } from './value-kind'
import { SingleConnectionProvider, Transaction, type ControlledTransaction, type Kysely, type QueryExecutor } from 'kysely'
import { currentMark } from './connection-marks'
import { DbpoolConnection } from './dbpool-connection'
import { DbpoolPostgresAdapter, DbpoolSqliteAdapter } from './dbpool-dialect'

/**
 * Runs `fn` in a dbpool transaction and hands it a Kysely `Transaction` on it, with the plugins of
 * `db`: what `db.transaction().execute(fn)` does, plus dbpool's `retry`, which replays the whole
 * callback on SERIALIZATION_FAILURE, DEADLOCK and BUSY (a new `trx` each attempt, with backoff), and
 * its `isolation`, `readOnly` and `deferrable`. One difference: Kysely's `log` option (`new Kysely({ log })`)
 * sees none of the statements run through `trx`, nor their errors (Kysely logs only connections it
 * acquires itself); log in `fn`, or watch the pool's telemetry, where you need them.
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
 * Never waits for its own caller. Kysely runs one thing at a time on the connection of a `c` or a
 * `trx`; when that connection is still held by work that has not settled after one turn of the event
 * loop (a transaction of `c.startTransaction()` or `c.transaction()`, a `c.connection()` callback, a
 * stream's loop), the call is refused (QUERY_FAILED, `detail.reason` `'connection-busy'`) instead of
 * waiting for that work, which used to wait for it in turn, for ever. While `dbpoolTransaction(c,
 * fn)` runs, `c` itself refuses statements, streams and transactions (QUERY_FAILED, `detail.reason`
 * `'scope-open'`): they would run outside the transaction or wait for `fn`. Use `trx` in `fn`.
 *
 * @throws DatabaseError CONFIGURATION naming `dbpoolTransaction.db` when `db` is not a Kysely
 *   instance (or `Transaction`) on a {@link DbpoolDialect}, `dbpoolTransaction.fn` when `fn` is not a
 *   function, or for invalid options (as `pool.transaction()`); QUERY_FAILED when `db`'s connection
 *   is busy (`'connection-busy'`) or runs a `dbpoolTransaction()` (`'scope-open'`), when it already
 *   runs a transaction `db` is not the `trx` of, or `trx`'s transaction has ended
 *   (TRANSACTION_ROLLED_BACK after a failed commit); otherwise the error that ended the last attempt.
 */
export async function dbpoolTransaction<DB, T>(
  db: Kysely<DB> | Transaction<DB> | ControlledTransaction<DB, string[]>,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options?: TransactionOptions,
): Promise<T> {
  if (!isKysely(db))
    throw configError('dbpoolTransaction.db', valueKind(db), 'must be a Kysely instance (or a Transaction) on a DbpoolDialect')
  if (typeof fn !== 'function') throw configError('dbpoolTransaction.fn', fn, 'must be a function')
  if (db.isTransaction) return nested(db, fn, options)
  const bound = await boundConnection(db.getExecutor())
  // db.connection()'s c: its connection, not c.connection(), which would hold c's provider for the
  // whole transaction (a statement on c in fn then waited for ever); c refuses work meanwhile instead
  if (bound !== undefined) return run(bound, db.getExecutor(), fn, options)
  return db.connection().execute(async (scoped) => {
    const executor = scoped.getExecutor()
    return run(await ownConnection(executor), executor, fn, options)
  })
}

/** `fn` in a transaction run through `connection` (dbpool's `pool.transaction()` or `conn.transaction()`). */
function run<DB, T>(
  connection: DbpoolConnection,
  executor: QueryExecutor,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options: TransactionOptions | undefined,
): Promise<T> {
  const attempts: DbpoolConnection[] = []
  // each attempt's trx runs on a connection of its own, closed when fn settles: a statement fn
  // left running (a forgotten await) is refused, never run outside the transaction or in a replay
  return connection.runTransaction((tx) => runAttempt(connection, executor, tx, fn, attempts), options).finally(() => settled(attempts))
}

/**
 * Work on a Kysely bound to one connection (`db.connection()`'s `c`, a `trx`) that has not settled
 * when `dbpoolTransaction()` is called on it: Kysely's single-connection provider runs one thing at
 * a time and would make the transaction wait for it, for ever when that work (a transaction of
 * `c.startTransaction()` or `c.transaction()`, a `c.connection()` callback, a stream's loop) awaits
 * this call. Refused before anything runs: QUERY_FAILED, not retryable, `detail.reason`
 * `'connection-busy'` (the family of dbpool's `'scope-open'` refusal: work on a handle is refused,
 * not queued, while a scope holds it).
 */
function connectionBusy(what: string): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `dbpoolTransaction() refused and not run: ${what} was in use by other work that had not settled (a transaction of c.startTransaction() or c.transaction() still open, a c.connection() callback, a stream being read, or a statement of another async branch still running). Kysely runs one thing at a time on one connection and would make this transaction wait for that work, for ever when that work awaits it. Nest in an open transaction with dbpoolTransaction(trx, fn), or await the other work first`,
    { retryable: false, detail: { reason: 'connection-busy' } },
  )
}

const NOT_HANDED = Symbol('not handed')

/**
 * The {@link DbpoolConnection} a Kysely bound to one connection (`db.connection()`'s `c`, a `trx`)
 * runs on, waiting for it one turn of the event loop at most; undefined for the application's `db`
 * (Kysely's provider there asks the driver for a new connection). Kysely's single-connection
 * provider hands its connection over synchronously when nothing else runs on it, and the provider
 * of `db` calls the driver's `init()` or `acquireConnection()` synchronously (`connection-marks`
 * counts both). A provider that did neither is busy, or `db`'s first init is still on its way
 * (another caller started it): after one turn a new connection says the latter, and an old one
 * work that settled by itself (Kysely's release of a committed transaction or a finished loop, a
 * statement); one still held then is held by work that has not settled (a transaction, a
 * `connection()` callback, a stream's loop, a slow statement), which may await this very call.
 *
 * @throws DatabaseError QUERY_FAILED `detail.reason` `'connection-busy'` when the bound connection
 *   was busy ({@link connectionBusy}); Kysely's own error for a `trx` already committed or rolled back.
 */
async function boundConnection(
  executor: QueryExecutor,
  what = 'the Kysely connection it was given',
): Promise<DbpoolConnection | undefined> {
  const mark = currentMark()
  let handed: unknown = NOT_HANDED
  // a synchronous throw here: a trx already committed or rolled back (Kysely's assertion)
  const provided = executor.provideConnection(async (connection) => {
    handed = connection
  })
  if (handed !== NOT_HANDED) return dbpoolConnection(handed)
  if (currentMark() !== mark) {
    // the application's db: a new connection on its way, given back as soon as handed (unused)
    provided.catch(() => undefined)
    return undefined
  }
  // rejects with the provider's error (a destroyed db)
  await Promise.race([provided, nextTurn()])
  if (handed !== NOT_HANDED) {
    const connection = dbpoolConnection(handed)
    // a new one: db's first init was on its way; an old one: work that settled by itself (Kysely's
    // own release after a commit or a loop, a statement), so not one that waits for this call
    return connection.serial > mark ? undefined : connection
  }
  if (executor.adapter instanceof DbpoolSqliteAdapter || executor.adapter instanceof DbpoolPostgresAdapter) {
    provided.catch(() => undefined)
    throw connectionBusy(what)
  }
  // a db of another dialect (whose driver may hand its connection over later): its connection decides, as before
  await provided
  return dbpoolConnection(handed)
}

function dbpoolConnection(connection: unknown): DbpoolConnection {
  if (!(connection instanceof DbpoolConnection))
    throw configError('dbpoolTransaction.db', 'a Kysely instance on another dialect', 'must be a Kysely instance on a DbpoolDialect')
  return connection
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
  const connection = await boundConnection(executor, 'its trx')
  if (connection === undefined)
    throw configError('dbpoolTransaction.db', 'a Transaction with no connection of its own', 'must be a trx of a DbpoolDialect')
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
