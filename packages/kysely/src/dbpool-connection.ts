import {
  configError,
  DatabaseError,
  isOutcomeUnknown,
  splitSqlStatements,
  type Backend,
  type DatabasePool,
  type HeldLock,
  type Lane,
  type PoolConnection,
  type Transaction,
  type TransactionOptions,
} from '@dbpool/core'
import {
  SelectQueryNode,
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { requireObject } from '@dbpool/core/internal'
import { withCallerStack } from './caller-stack'
import { nextMark } from './connection-marks'
import { HeldLease } from './held-lease'
import { HeldTransaction } from './held-transaction'
import { toKyselyResult } from './query-result'
import { toDbpoolSettings } from './transaction-settings'

/** Rows per chunk when Kysely passes none (Kysely's `stream()` passes its own default, 100). */
const DEFAULT_CHUNK_SIZE = 100

const RELEASED: Promise<void> = Promise.resolve()

/**
 * A statement on a connection whose transaction is ending: it would otherwise borrow a connection of
 * its own and run outside the transaction (autocommit), kept even when the COMMIT fails. The same
 * family as dbpool's own refusal on a transaction handle (QUERY_FAILED, not retryable).
 */
function transactionEnding(): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    'this transaction is ending (its callback has settled or its COMMIT or ROLLBACK is on its way): a statement now would run outside it; await every statement inside the transaction',
    { retryable: false },
  )
}

/**
 * A statement on a `dbpoolTransaction()` trx whose transaction has ended (committed or rolled back):
 * the same words as dbpool's own handle used after its scope (QUERY_FAILED, not retryable).
 */
function transactionReleased(): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    'this transaction was released (it has ended: committed or rolled back): use its trx only inside the callback that received it; a statement now would run outside it',
    { retryable: false },
  )
}

/**
 * Work sent to a Kysely connection (`c` of `db.connection()`) while `dbpoolTransaction(c, fn)` runs
 * a transaction on it: it would run outside that transaction (on a connection of its own, or, on
 * SQLite, wait for the writer the transaction holds) or, Kysely's way, wait for `fn`, which may await
 * it. Refused before anything is sent, as dbpool's `conn.transaction()` refuses work on `conn`
 * (QUERY_FAILED, not retryable, `detail.reason` `'scope-open'`, `detail.scope` `'transaction'`).
 */
function scopeOpen(what: string): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `${what} refused and not run: dbpoolTransaction() is running a transaction on this Kysely connection; until it ends, work sent on this connection would run outside it or wait for it. Use the trx its callback received, or await dbpoolTransaction() first`,
    { retryable: false, detail: { reason: 'scope-open', scope: 'transaction' } },
  )
}

/**
 * A statement that changes a connection setting (SQLite: `PRAGMA foreign_keys = OFF`), run alone on a
 * connection Kysely acquired for it (a statement on `db`, outside `db.connection()` and transactions):
 * it ran (what it wrote is kept: `detail.outcome` `'committed'`), and the pool put the setting back
 * when Kysely released that connection right after, so no later statement ran under it
 * (`pool.query()` refuses it before it runs, `refused`). CONFIGURATION, not retryable, `detail` the
 * pool's (`pragma`, `pragmas`) and `outcome`.
 */
function settingNotKept(refused: DatabaseError): DatabaseError {
  const what = settingText(refused)
  return new DatabaseError(
    'CONFIGURATION',
    `${what} ran alone on a connection Kysely acquired for it (a statement on db, outside db.connection() and transactions): it ran, and anything it wrote is kept (committed), but the pool put the setting back when Kysely released that connection right after, so no later statement ran under it (pool.query() refuses it before it runs for the same reason). ${RUN_IT_WHERE}`,
    { backend: refused.backend, retryable: false, detail: { ...refused.detail, outcome: 'committed' } },
  )
}

/**
 * A text of several statements, one of which changes a connection setting (SQLite:
 * `PRAGMA foreign_keys = OFF; DELETE FROM parent`), as the first use of a Kysely connection: refused
 * before anything of it runs, as `pool.query()` refuses it (`refused`). On `db` the setting would
 * apply to the rest of the text and then be put back at Kysely's release; as the first statement of a
 * `db.connection()` callback it cannot be meant for later statements only. CONFIGURATION, not
 * retryable, `detail` the pool's (`pragma`, `pragmas`).
 */
function settingWithOtherWork(refused: DatabaseError): DatabaseError {
  const what = settingText(refused)
  return new DatabaseError(
    'CONFIGURATION',
    `${what} in a text of several statements, the first on a connection Kysely acquired (a statement on db, or the first of a db.connection() callback), is refused and nothing of it was run, as pool.query() refuses it: on db the rest of the text would run under the setting and the pool would put it back at Kysely's release right after. Run the PRAGMA alone as the first statement of db.connection(async (c) => ...), then the statements that need it on c. ${RUN_IT_WHERE}`,
    { backend: refused.backend, retryable: false, detail: refused.detail },
  )
}

const RUN_IT_WHERE =
  "Run it with the statements that need it on the c of db.connection(async (c) => ...) (restored when the callback returns) or in a Migrator migration, set it for every connection with the pool's sqlite options (foreignKeys, busyTimeoutMs, ...), or for a table rebuild mark a core Migrator migration foreign_keys:off"

function settingText(refused: DatabaseError): string {
  const pragmas = refused.detail?.pragmas
  return Array.isArray(pragmas) ? `PRAGMA ${pragmas.join(', ')}` : 'a statement that changes a connection setting'
}

/**
 * How the last transaction of a connection ended, kept until the next begins: what a later
 * `commit()` (Kysely's `commitTransaction` with no live transaction: a commit retried after it
 * failed, one after `close()` revoked the transaction, one after the `db.connection()` callback
 * returned) answers. `'committed'` lets a repeat of a successful commit resolve.
 */
type Ended =
  | { readonly how: 'committed' }
  | { readonly how: 'commit-failed'; readonly error: unknown }
  | { readonly how: 'rolled-back' }
  | { readonly how: 'released' }

/**
 * The error of a `commit` (or a savepoint command) with no live transaction on the connection. A
 * commit that resolved here would tell the caller (and Kysely's `isCommitted`) that work was kept
 * when none was: TRANSACTION_ROLLED_BACK when the transaction is known to be gone (its COMMIT failed,
 * a rollback, the connection's release), with the COMMIT error as `cause`; that error's code when
 * the COMMIT's outcome is unknown (`detail.outcome: 'unknown'`: it may have committed); QUERY_FAILED
 * when none was begun or the last one committed. Never retryable: committing again cannot help.
 *
 * @param what `'commit'`, or the savepoint command (`'savepoint'`, `'rollback to'`, `'release'`).
 */
function noTransaction(what: string, ended: Ended | undefined): DatabaseError {
  const statement = what === 'savepoint' ? 'SAVEPOINT' : `${what.toUpperCase()} SAVEPOINT`
  const head = `there is no transaction to ${what === 'commit' ? 'commit' : `run ${statement} in`} on this connection`
  if (ended === undefined || ended.how === 'committed')
    return new DatabaseError('QUERY_FAILED', `${head}: ${ended ? 'it was committed' : 'none was begun'}`, { retryable: false })
  if (ended.how === 'commit-failed') {
    const first = DatabaseError.is(ended.error) ? ended.error : undefined
    const why = first ? `${first.code}: ${first.message}` : String(ended.error)
    if (first !== undefined && isOutcomeUnknown(first))
      return new DatabaseError(
        first.code,
        `${head}: its COMMIT failed with an unknown outcome (it may have committed: check before running the work again); COMMIT error: ${why}`,
        { backend: first.backend, cause: first, retryable: false, detail: first.detail },
      )
    return new DatabaseError(
      'TRANSACTION_ROLLED_BACK',
      `nothing was committed: ${head}: its COMMIT failed and the transaction was rolled back (committing again cannot keep the work: run the whole transaction again); COMMIT error: ${why}`,
      { backend: first?.backend, cause: ended.error, retryable: false, sqlState: first?.sqlState, sqliteCode: first?.sqliteCode },
    )
  }
  const reason =
    ended.how === 'rolled-back'
      ? 'it was rolled back'
      : 'it was rolled back when Kysely released its connection (the db.connection() callback that started it had returned)'
  return new DatabaseError('TRANSACTION_ROLLED_BACK', `nothing was committed: ${head}: ${reason}`, { retryable: false })
}

/** What every connection of one driver shares. */
export interface ConnectionContext {
  readonly pool: DatabasePool
  readonly backend: Backend
  /** A SQLite pool with readers: selects outside a transaction borrow a reader (never a Postgres replica). */
  readonly readLane: boolean
  /** The dialect and driver this connection belongs to (for the `Transaction` of `dbpoolTransaction()`). */
  readonly dialect: Dialect
  readonly driver: Driver
}

/**
 * Kysely's connection on a dbpool pool. It holds nothing until its first statement or transaction:
 *
 * - a statement outside a transaction borrows a connection with `pool.withConnection()` and keeps it
 *   until Kysely releases this connection, so a `db.connection()` callback keeps one session
 *   (on a pool with readers, a first `select` borrows a reader; a later statement that is not a
 *   `select` moves to the writer);
 * - `beginTransaction` runs a dbpool transaction: `pool.transaction()` (writer with `BEGIN IMMEDIATE`
 *   on SQLite, a reader for a read-only one), or `conn.transaction()` on the connection already held
 *   (the session is kept, e.g. Migrator's advisory lock) when its lane can run it;
 * - inside `dbpoolTransaction()` it runs on the transaction dbpool lends.
 *
 * `release()` ends whatever it still holds, so nothing outlives Kysely's `releaseConnection`.
 */
export class DbpoolConnection implements DatabaseConnection {
  #lease: HeldLease | undefined
  #transaction: HeldTransaction | undefined
  #adopted: Transaction | undefined
  /** Set by {@link release}: a connection borrowed after it (a statement still waiting) goes straight back. */
  #released = false
  /**
   * Set while the transaction ends (from Kysely's commit or rollback until it succeeds; a failed
   * COMMIT keeps it until the rollback Kysely sends next) and, for `dbpoolTransaction()`, from the
   * end of the callback on: statements and streams are refused instead of borrowing a connection.
   */
  #ending = false
  /** Set by {@link ended}: the `dbpoolTransaction()` transaction is over, so a refusal says "was released". */
  #ended = false
  /** How the last transaction begun here ended (see {@link Ended}); undefined while one is live or none was begun. */
  #last: Ended | undefined
  /** Statements, streams and transactions begun on this connection (see {@link #alone}). */
  #uses = 0
  /**
   * The pool's refusal of the first statement, when it borrowed the held connection and changes a
   * setting the pool restores at once: if it stays the only use, it ran alone on a connection acquired
   * for it (Kysely's one-statement acquire and release), and the release rejects (see {@link settingNotKept}).
   */
  #alone: DatabaseError | undefined
  /**
   * Set while `dbpoolTransaction(c, fn)` runs its transaction through this connection (see
   * {@link runTransaction}): statements, streams and transactions sent here are refused ({@link scopeOpen}).
   */
  #scopeOpen = false
  /** @internal Made after every earlier connection (see `connection-marks`): `dbpoolTransaction()` tells a fresh one. */
  readonly serial = nextMark()
  /** The run lock of a Kysely Migrator run on this connection (SQLite: see {@link lockForMigration}), until its release. */
  #runLock: HeldLock | undefined

  /**
   * Made by {@link DbpoolDriver}'s `acquireConnection()` (and one per `dbpoolTransaction()` attempt).
   *
   * @throws DatabaseError CONFIGURATION naming `DbpoolConnection.context` when it holds no pool.
   */
  constructor(readonly context: ConnectionContext) {
    if (typeof context?.pool?.transaction !== 'function')
      throw configError('DbpoolConnection.context', context, "must be a DbpoolDriver's connection context (with its pool)")
  }

  /** The pool this connection borrows from. */
  get pool(): DatabasePool {
    return this.context.pool
  }

  /** Kysely's `executeQuery`: rejects with dbpool's DatabaseError, the caller's frames added to its stack. */
  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    try {
      this.#uses++
      if (this.#scopeOpen) throw scopeOpen('a statement')
      const conn = this.#adopted ?? this.#transaction?.tx ?? this.#leased(compiled) ?? (await this.#hold(compiled))
      return await this.#run<R>(conn, compiled)
    } catch (err) {
      // a statement that failed changed no setting: its own error is the answer
      this.#alone = undefined
      throw withCallerStack(err)
    }
  }

  /**
   * Kysely's `stream()`: the rows through dbpool's `RowStream`, fetched `chunkSize` at a time
   * (`batchSize`) and handed to Kysely in chunks of that size. Inside a transaction or on the
   * connection already held, the stream runs there (`tx.stream()` / `conn.stream()`); otherwise it is
   * `pool.stream()`, which borrows for the iteration (a SQLite reader for a select). Ending the loop
   * early (break, throw) closes the cursor and gives the connection back.
   */
  async *streamQuery<R>(compiled: CompiledQuery, chunkSize = DEFAULT_CHUNK_SIZE): AsyncIterableIterator<QueryResult<R>> {
    this.#uses++
    if (this.#scopeOpen) throw withCallerStack(scopeOpen('a stream'))
    const held = this.#adopted ?? this.#transaction?.tx ?? this.#leased(compiled)
    const options = { batchSize: chunkSize }
    const rows =
      held !== undefined
        ? held.stream<R>(compiled.sql, compiled.parameters, options)
        : this.context.pool.stream<R>(compiled.sql, compiled.parameters, options)
    let chunk: R[] = []
    try {
      for await (const row of rows) {
        chunk.push(row)
        if (chunk.length >= chunkSize) {
          yield { rows: chunk }
          chunk = []
        }
      }
    } catch (err) {
      // the statement's or the cursor's error (a loop ended early by the consumer is a return(), not this)
      throw withCallerStack(err)
    }
    if (chunk.length > 0) yield { rows: chunk }
  }

  /** Kysely's `beginTransaction`: rejects with dbpool's error (POOL_CLOSED, ACQUIRE_TIMEOUT, BUSY...), the caller's frames added. */
  async begin(settings: TransactionSettings): Promise<void> {
    try {
      await this.#begin(settings)
    } catch (err) {
      throw withCallerStack(err)
    }
  }

  async #begin(settings: TransactionSettings): Promise<void> {
    this.#uses++
    if (this.#scopeOpen) throw scopeOpen('a transaction')
    if (this.#ending) throw this.#ended ? transactionReleased() : transactionEnding()
    if (this.#adopted || this.#transaction) throw this.#alreadyOpen()
    const options = toDbpoolSettings(settings, this.context.backend)
    this.#last = undefined
    const lease = this.#lease
    if (lease !== undefined && (lease.lane === 'write' || options.readOnly === true)) {
      // the session is kept: a lock or setting taken before the transaction still holds inside it
      this.#transaction = await HeldTransaction.begin((body) => lease.conn.transaction(body, options))
      return
    }
    if (lease !== undefined) {
      // a reader cannot write: give it back, the transaction takes the writer
      this.#lease = undefined
      await lease.release()
    }
    this.#transaction = await HeldTransaction.begin((body) => this.context.pool.transaction(body, options))
  }

  /**
   * Kysely's `commitTransaction`: rejects with dbpool's error when the work was not committed. With
   * no live transaction (a commit retried after one failed, or after `close()` revoked the
   * transaction, or after the `db.connection()` callback that started it returned) it rejects too,
   * never resolving for work that was not kept: TRANSACTION_ROLLED_BACK (the first COMMIT error as
   * `cause`), that error's code when the first COMMIT's outcome is unknown, QUERY_FAILED when none
   * was begun; all not retryable. Only a repeat of a commit that succeeded resolves.
   */
  async commit(): Promise<void> {
    const transaction = this.#transaction
    this.#transaction = undefined
    if (!transaction) {
      const last = this.#last
      if (last?.how === 'committed') return
      throw withCallerStack(noTransaction('commit', last))
    }
    // a statement reaching this connection while the COMMIT is in flight is refused, never run on a
    // connection of its own; after a failed commit Kysely rolls back (dbpool already did): refused until then
    this.#ending = true
    try {
      await transaction.commit()
    } catch (err) {
      this.#last = { how: 'commit-failed', error: err }
      throw withCallerStack(err)
    }
    this.#last = { how: 'committed' }
    this.#ending = false
  }

  /**
   * Kysely's `savepoint`, `rollbackToSavepoint` and `releaseSavepoint` (`command` is the statement's
   * verb): run in the live transaction only. Without one (after a failed or retried commit, a
   * rollback, `close()`, the release) the statement would run on a connection of its own, outside
   * any transaction (on SQLite a SAVEPOINT there begins one): refused instead, with the same error
   * as a commit there (TRANSACTION_ROLLED_BACK, or QUERY_FAILED while the COMMIT is in flight).
   */
  async savepointCommand(command: string, compiled: CompiledQuery): Promise<void> {
    if (this.#adopted === undefined && this.#transaction === undefined) throw withCallerStack(this.#noLiveTransaction(command))
    await this.executeQuery(compiled)
  }

  /** Kysely's `rollbackTransaction`: statements are refused until the rollback has settled. */
  rollback(): Promise<void> {
    const transaction = this.#transaction
    this.#transaction = undefined
    if (!transaction) {
      // after a failed COMMIT (Kysely's db.transaction() rolls back then): dbpool already rolled back
      this.#ending = false
      return RELEASED
    }
    this.#ending = true
    this.#last = { how: 'rolled-back' }
    return transaction.rollback().finally(() => {
      this.#ending = false
    })
  }

  /**
   * Kysely's `releaseConnection`: rolls back a transaction left open, gives the held connection back.
   * Rejects, once the connection is back, with CONFIGURATION (see {@link settingNotKept}) when the
   * only thing run here was one statement that changed a connection setting the pool restores at the
   * release (SQLite `PRAGMA foreign_keys = OFF` through `db`): Kysely rejects that statement's call
   * with it, instead of resolving for a setting that did not last.
   */
  release(): Promise<void> {
    // a Migrator run's lock never outlives the connection, whatever path ended the run
    this.unlockForMigration()
    const transaction = this.#transaction
    const lease = this.#lease
    this.#released = true
    this.#transaction = undefined
    this.#lease = undefined
    if (transaction === undefined) {
      if (lease === undefined) return RELEASED
      const refused = this.#uses === 1 ? this.#alone : undefined
      // the common case, one statement on a held connection: no extra async frame
      if (refused === undefined) return lease.release()
      return lease.release().then(() => {
        throw withCallerStack(settingNotKept(refused))
      })
    }
    this.#last = { how: 'released' }
    return this.#end(transaction, lease)
  }

  async #end(transaction: HeldTransaction, lease: HeldLease | undefined): Promise<void> {
    try {
      if (transaction) await transaction.rollback()
    } finally {
      if (lease) await lease.release()
    }
  }

  /**
   * @internal Kysely's `acquireMigrationLock` on SQLite (`DbpoolSqliteAdapter`): takes the pool's
   * exclusive lock `name` (a lock file next to the database, see `DatabasePool.exclusiveLock`), held
   * until {@link unlockForMigration} or this connection's release. Every run of Kysely's Migrator
   * through this dialect takes it before it reads which migrations are pending, so two runs (another
   * pool, another process) never both apply one, also with `disableTransactions`, where each
   * statement commits on its own and no transaction keeps them apart. Nothing on a pool without such a
   * lock (Postgres: Kysely's adapter takes `pg_advisory_lock`). A second call while it is held is a no-op.
   *
   * @throws DatabaseError BUSY (retryable) when another run held it past `timeoutMs`; POOL_CLOSED;
   *   CONFIGURATION (`detail.lockFile`) when the lock file cannot be created (a `readonly` pool takes none).
   */
  async lockForMigration(name: string, timeoutMs: number): Promise<void> {
    if (this.#runLock !== undefined) return
    const lock = await this.context.pool.exclusiveLock?.(name, timeoutMs)
    if (lock === undefined) return
    if (this.#released) {
      // the run's connection was released while the lock was on its way: give it back at once
      lock.release()
      throw new DatabaseError('QUERY_FAILED', 'this Kysely connection was released before its migration lock was taken', {
        retryable: false,
      })
    }
    this.#runLock = lock
  }

  /** @internal Kysely's `releaseMigrationLock`: frees the lock of {@link lockForMigration} (idempotent). */
  unlockForMigration(): void {
    const lock = this.#runLock
    this.#runLock = undefined
    lock?.release()
  }

  /**
   * @internal Closes the connection this one holds at its release instead of giving it back to the
   * pool (Kysely's Migrator ran on its session: see `DbpoolPostgresAdapter`); false when it holds none.
   */
  discardAtRelease(reason: DatabaseError): boolean {
    const conn = this.#lease?.conn as { discardAtRelease?: (reason: DatabaseError) => boolean } | undefined
    return typeof conn?.discardAtRelease === 'function' ? conn.discardAtRelease(reason) : false
  }

  /**
   * @internal `dbpoolTransaction(db, fn)` on this connection, as Kysely's `beginTransaction` here
   * would run it: on the connection a `db.connection()` callback already holds (`conn.transaction()`,
   * its session kept: a temporary table, an advisory lock, SQLite's writer it holds), else
   * `pool.transaction()` (a reader it holds is given back first for a transaction that writes).
   *
   * @throws DatabaseError CONFIGURATION for options that are not a plain object (as `pool.transaction()`),
   *   or for `retry` on a held connection (`conn.transaction()` cannot
   *   replay: a replay would need another connection, and the session would be lost), before
   *   anything runs; QUERY_FAILED when a transaction is already open here (nest in it with
   *   `dbpoolTransaction(trx, fn)`).
   */
  async runTransaction<T>(body: (tx: Transaction) => Promise<T>, options: TransactionOptions | undefined): Promise<T> {
    this.#uses++
    if (this.#scopeOpen) throw scopeOpen('dbpoolTransaction()')
    if (this.#ending) throw this.#ended ? transactionReleased() : transactionEnding()
    if (this.#adopted || this.#transaction) throw this.#alreadyOpen()
    const lease = this.#lease
    // checked as pool.transaction() checks it, before anything runs: a string or null was taken for
    // no options (the transaction ran at the default isolation)
    const raw = requireObject('transaction', options) as TransactionOptions
    const { retry, ...settings } = raw
    if (lease !== undefined && (lease.lane === 'write' || raw.readOnly === true) && retry !== undefined && retry !== false)
      throw configError(
        'dbpoolTransaction.retry',
        retry,
        'inside db.connection() after a statement the transaction runs on the connection the callback holds (its session kept), which cannot be replayed; retry the whole db.connection() callback, or call dbpoolTransaction(db, fn, { retry }) outside it',
      )
    // claimed before anything is awaited: work sent here meanwhile is refused, never run outside the transaction
    this.#scopeOpen = true
    try {
      if (lease !== undefined && (lease.lane === 'write' || raw.readOnly === true))
        return await lease.conn.transaction(body, options === undefined ? undefined : settings)
      if (lease !== undefined) {
        // a reader cannot write: give it back, the transaction takes the writer
        this.#lease = undefined
        await lease.release()
      }
      return await this.context.pool.transaction(body, options)
    } finally {
      this.#scopeOpen = false
    }
  }

  /**
   * @internal `dbpoolTransaction(trx, fn)`: `body` in a savepoint of the transaction this connection
   * runs (dbpool's `tx.transaction()`: released when `body` resolves, rolled back to when it rejects;
   * the outer handle refuses other work while it is open).
   *
   * @throws DatabaseError TRANSACTION_ROLLED_BACK or QUERY_FAILED when there is no live transaction
   *   (as a savepoint command there).
   */
  runSavepoint<T>(body: (tx: Transaction) => Promise<T>): Promise<T> {
    const tx = this.#adopted ?? this.#transaction?.tx
    if (tx === undefined) throw this.#noLiveTransaction('savepoint')
    return tx.transaction(body)
  }

  /**
   * Why `what` (a savepoint command, `dbpoolTransaction(trx, fn)`) finds no live transaction: the
   * transaction is ending (its COMMIT in flight, a `dbpoolTransaction()` callback settled) or was
   * released; otherwise how it ended ({@link noTransaction}).
   */
  #noLiveTransaction(what: string): DatabaseError {
    if (this.#ended) return transactionReleased()
    if (this.#ending && this.#last === undefined) return transactionEnding()
    return noTransaction(what, this.#last)
  }

  /** A second transaction on this connection: refused, naming the way to nest that works where it is. */
  #alreadyOpen(): DatabaseError {
    const nest = this.#adopted
      ? 'inside dbpoolTransaction(), nest with dbpoolTransaction(trx, fn): a savepoint of the transaction'
      : 'nest with dbpoolTransaction(trx, fn) (a savepoint of the transaction), or trx.savepoint() of a controlled transaction'
    return new DatabaseError('QUERY_FAILED', `a transaction is already open on this connection (${nest})`, { retryable: false })
  }

  /** @internal `dbpoolTransaction()`: statements run on `tx` until {@link disown}. */
  adopt(tx: Transaction): void {
    if (this.#adopted || this.#transaction || this.#lease || this.#ending)
      throw new DatabaseError('QUERY_FAILED', 'dbpoolTransaction() needs a connection of its own')
    this.#adopted = tx
  }

  /**
   * @internal The end of `dbpoolTransaction()`'s callback: this connection (one per attempt) refuses
   * every later statement, which would otherwise run outside the transaction.
   */
  disown(): void {
    this.#adopted = undefined
    this.#ending = true
  }

  /** @internal The `dbpoolTransaction()` transaction this attempt ran in has settled (committed or rolled back). */
  ended(): void {
    this.#ended = true
  }

  /** The held connection, when it can run `compiled` (a reader runs selects only). */
  #leased(compiled: CompiledQuery): PoolConnection | undefined {
    // outside a transaction: one that is ending refuses here, before the held connection or a new one
    if (this.#ending) throw this.#ended ? transactionReleased() : transactionEnding()
    const lease = this.#lease
    if (lease === undefined) return undefined
    if (lease.lane === 'read' && !SelectQueryNode.is(compiled.query)) return undefined
    return lease.conn
  }

  async #hold(compiled: CompiledQuery): Promise<PoolConnection> {
    const previous = this.#lease
    if (previous !== undefined) {
      this.#lease = undefined
      await previous.release()
    }
    const lane: Lane = this.context.readLane && SelectQueryNode.is(compiled.query) ? 'read' : 'write'
    if (this.#uses === 1) {
      // the first use of this connection: a setting changed with other work in the same text would
      // apply to that work, then be put back at the release: refused before it runs (see settingWithOtherWork)
      const refused = this.context.pool.settingChangeError?.(compiled.sql)
      if (refused !== undefined && splitSqlStatements(compiled.sql, 'sqlite').length > 1) throw settingWithOtherWork(refused)
      // alone, if it stays the only use the release rejects (see #alone)
      this.#alone = refused
    }
    const lease = await HeldLease.take(this.context.pool, lane)
    if (this.#released) {
      await lease.release()
      throw new DatabaseError('QUERY_FAILED', 'this Kysely connection was released before its statement got a connection')
    }
    this.#lease = lease
    return lease.conn
  }

  #run<R>(conn: PoolConnection, compiled: CompiledQuery): Promise<QueryResult<R>> {
    const backend = this.context.backend
    return conn.query<R>(compiled.sql, compiled.parameters).then((result) => toKyselyResult(backend, result))
  }
}
