import { DatabaseError } from '../errors/database-error'
import { HANDLE_QUERY_OPTION_KEYS, checkQueryOptions, checkQueryText } from '../config/call-options'
import { configError } from '../config/validate'
import type { Backend, ExecuteOptions, Lane, QueryResult, TransactionSettings, TransactionState } from '../driver/connection-manager'
import type { SqlFragment } from '../sql/sql'
import type { Lease } from './lease'
import { TransactionOutcome } from '../transaction/transaction-outcome'
import { runOnHeldConnection, type HeldTransactionHost } from '../transaction/transaction'
import type { ConnectionStreamOptions, RowStream, StreamSupport } from './row-stream'

/** Anything `query()` accepts: an `sql` fragment, or backend-native text with its parameters. */
export type Queryable = SqlFragment | string

/** A leased connection, valid only inside the callback that received it. */
export interface PoolConnection<C = unknown> {
  /** The pool's id for this physical connection. */
  readonly id: number
  readonly lane: Lane
  readonly backend: Backend
  /**
   * The manager's connection, for backend-specific work: the better-sqlite3 `Database` on SQLite; on
   * Postgres a `PostgresConnection` whose `client` is the `pg.Client` (`conn.native.client.query(new Cursor(...))`).
   */
  readonly native: C
  /**
   * Runs one statement on this connection. `options`: `timeoutMs` (1 to 2^31 - 1) and `signal` (see
   * {@link ExecuteOptions}); a bad value or another key rejects with CONFIGURATION naming
   * `query.<option>` before anything runs.
   */
  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>>
  /**
   * Runs `fn` in a transaction on this connection, keeping its session (a session-level advisory
   * lock, `SET`, temporary tables): begins with the manager's statement (`BEGIN IMMEDIATE` on a SQLite
   * writer; isolation, `READ ONLY`, `DEFERRABLE` on Postgres), commits when `fn` resolves, rolls back
   * and rethrows when it rejects, with the same checks as `pool.transaction()` (TRANSACTION_ROLLED_BACK
   * when the engine threw the work away). No `retry`: a replay needs `pool.transaction()`. On a
   * connection of the read lane the transaction is read-only; `readOnly: false` there is CONFIGURATION.
   * Invalid settings are CONFIGURATION naming `transaction.<option>`. Inside the callback,
   * `tx.transaction()` nests with a savepoint.
   *
   * When the connection is already inside a transaction the callback opened itself (a `BEGIN` sent
   * through `conn.query()`, the Migrator's), this nests as a savepoint in it, as `tx.transaction()`
   * does (the same on both backends: a BEGIN would be refused by SQLite, and on Postgres its COMMIT
   * would commit the outer transaction): `settings` are then refused with CONFIGURATION before
   * anything is sent, and the outer transaction stays the callback's to commit or roll back.
   *
   * Once `fn` has settled, until the transaction has ended (its COMMIT or ROLLBACK in flight), the
   * handle refuses new statements, streams, savepoints and `native` with QUERY_FAILED: one `fn`
   * started without awaiting it would run after the COMMIT, outside the transaction.
   */
  transaction<T>(fn: (tx: Transaction<C>) => Promise<T>, settings?: TransactionSettings): Promise<T>
  /**
   * Streams a statement's rows on this connection, a batch at a time (see `pool.stream()`). While
   * the stream is open the connection is busy with it: `query()` and a second `stream()` on this
   * handle are refused (QUERY_FAILED) until the loop ends or breaks. A stream still open when the
   * callback returns is closed before COMMIT or the release.
   */
  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ConnectionStreamOptions): RowStream<R>
}

/** A connection inside a transaction; `transaction()` nests with a savepoint. */
export interface Transaction<C = unknown> extends PoolConnection<C> {
  /**
   * Runs `fn` inside a savepoint: released on success, rolled back to on error (which is rethrown).
   * When `fn` returned after a statement error had aborted the transaction (Postgres), the savepoint
   * is rolled back and this rejects with TRANSACTION_ROLLED_BACK, its `cause` that first error: the
   * transaction may go on after catching it. Once `fn` has settled, while the RELEASE (or ROLLBACK
   * TO) is in flight, the handle refuses new statements with QUERY_FAILED ("this savepoint is ending").
   */
  transaction<T>(fn: (tx: Transaction<C>) => Promise<T>): Promise<T>
}

/** @internal Runs a statement on a lease's connection (one function per pool, shared by handles). */
export type LeaseRunner<C> = <R>(
  lease: Lease<C>,
  query: Queryable,
  params: readonly unknown[] | undefined,
  options: ExecuteOptions | undefined,
) => Promise<QueryResult<R>>

/**
 * @internal What a `withConnection` handle needs to begin a transaction on its own lease (one object
 * per pool): the manager's begin statement and transaction state, and how to mark a connection broken.
 */
export interface HeldConnectionHost<C> extends HeldTransactionHost<C> {
  markBroken(lease: Lease<C>, err: unknown): DatabaseError
  /**
   * The manager's `settledTransactionState`, when it has one: the state once the engine reported it
   * (Postgres, while a statement's ReadyForQuery is on its way), asked only when `transactionState` is `'unknown'`.
   */
  settledTransactionState: ((conn: C) => Promise<TransactionState>) | undefined
  /** Runs a whole transaction under the pool's transaction span (telemetry). */
  traced<T>(run: () => Promise<T>): Promise<T>
}

/**
 * A statement sent to a transaction (or savepoint) whose callback has settled: its COMMIT, ROLLBACK
 * or RELEASE is on its way, and a statement now would run after it, outside the transaction
 * (autocommit). The same family as a statement on a released handle (QUERY_FAILED, not retryable).
 */
function ending(scope: 'transaction' | 'savepoint'): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `this ${scope} is ending (its callback has settled; its ${scope === 'transaction' ? 'COMMIT or ROLLBACK' : 'RELEASE or ROLLBACK TO'} is on its way): a statement now would run outside it; await every statement inside the callback`,
    { retryable: false },
  )
}

function streamOpen(what: string): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `${what} refused: a stream is open on this connection (it is busy reading the stream's rows); finish or break the stream's loop first`,
    { retryable: false },
  )
}

/** @internal The object user code holds; it refuses work once its lease has ended. */
export class ConnectionHandle<C> implements Transaction<C> {
  #lease: Lease<C> | undefined
  #savepoints = 0
  /**
   * Set from the moment a transaction's callback settles (before its COMMIT or ROLLBACK is sent) until
   * the handle is detached, or, on a `withConnection` handle, until the transaction has ended: new
   * statements, streams, savepoints and `native` are refused then (see {@link ending}).
   */
  #txEnding = false
  /** Savepoints of this handle whose callback settled and whose RELEASE / ROLLBACK TO is in flight. */
  #spEnding = 0
  /** Set while the handle runs a transaction's callback. */
  #outcome: TransactionOutcome | undefined

  /** Closes the stream open on this handle, if one is. */
  #closeStream: (() => Promise<void>) | undefined

  /**
   * The last error of a statement run outside `transaction()` (a TRANSACTION_ROLLED_BACK refusal
   * counts as its cause): what aborted a transaction the callback began by hand, for
   * {@link ConnectionHandle.lastError}.
   */
  #lastError: DatabaseError | undefined

  constructor(
    lease: Lease<C>,
    readonly backend: Backend,
    private readonly runner: LeaseRunner<C>,
    /** Given to `withConnection` handles: `transaction()` outside a transaction begins one on the lease. */
    private readonly held?: HeldConnectionHost<C>,
    private readonly streams?: StreamSupport,
  ) {
    this.#lease = lease
  }

  get id(): number {
    return this.#live().conn.id
  }

  get lane(): Lane {
    return this.#live().conn.lane
  }

  /**
   * The application's way to the manager's connection. What it runs there does not pass the pool's
   * statement path, so on the write lane the lease counts as one that may have written
   * (`readYourWrites` records the write position at its release: `copyFrom()`, a raw `pg.Client` query),
   * and the manager is told (`ConnectionManager.nativeLent`: SQLite's `*` check then reads every
   * schema's version, so a TEMP table or an ATTACH done through `native` is seen).
   */
  get native(): C {
    const lease = this.#live()
    this.#refuseIfEnding()
    if (lease.conn.lane === 'write') lease.wrote = true
    lease.conn.nativeLent?.()
    return lease.conn.native
  }

  /** The manager's connection for the pool's own use (not counted as a possible write, see {@link native}). */
  ownNative(): C {
    return this.#live().conn.native
  }

  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>> {
    // a statement left running by a callback that settled (a forgotten await): it would run after the COMMIT, outside the transaction
    if (this.#txEnding || this.#spEnding > 0) return Promise.reject(ending(this.#txEnding ? 'transaction' : 'savepoint'))
    return this.#query<R>(query, params, options)
  }

  /** {@link query} without the ending check: the savepoint statements of {@link #savepoint}. */
  #query<R>(query: Queryable, params: readonly unknown[] | undefined, options: ExecuteOptions | undefined): Promise<QueryResult<R>> {
    // refused before anything runs, as pool.query() refuses them (never counted as a statement error of the transaction)
    try {
      checkQueryText(query)
      if (options !== undefined) checkQueryOptions(options, HANDLE_QUERY_OPTION_KEYS)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#closeStream) return Promise.reject(streamOpen('query()'))
    const outcome = this.#outcome
    if (outcome === undefined) return this.control<R>(query, params, options).catch(this.#noteError)
    // the engine ended the transaction: a statement now would run in autocommit and be kept
    if (outcome.ended) return Promise.reject(outcome.ended)
    let refused: DatabaseError | undefined
    try {
      refused = outcome.refuseControl(query)
    } catch (err) {
      return Promise.reject(err)
    }
    if (refused) return Promise.reject(refused)
    return this.control<R>(query, params, options).then(
      (result) => {
        outcome.afterStatement(undefined)
        return result
      },
      (err: unknown) => {
        outcome.afterStatement(err)
        throw err
      },
    )
  }

  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ConnectionStreamOptions): RowStream<R> {
    const streams = this.streams
    if (!streams) throw new DatabaseError('CONFIGURATION', 'this connection handle cannot stream')
    return streams.onLease<R>(
      {
        begin: (close) => {
          checkQueryText(query)
          const lease = this.#live()
          this.#refuseIfEnding()
          if (this.#closeStream) throw streamOpen('stream()')
          const outcome = this.#outcome
          if (outcome?.ended) throw outcome.ended
          const refused = outcome?.refuseControl(query)
          if (refused) throw refused
          this.#closeStream = close
          return lease as Lease<unknown>
        },
        end: (error) => {
          this.#closeStream = undefined
          this.#outcome?.afterStatement(error)
        },
      },
      query,
      params,
      options,
    )
  }

  /** @internal Runs a statement without the transaction checks (BEGIN, COMMIT, ROLLBACK). */
  control<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>> {
    // a stream the callback left open is closed first (its close is sent before this statement)
    if (this.#closeStream) void this.#closeStream()
    try {
      return this.runner<R>(this.#live(), query, params, options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  readonly #noteError = (err: unknown): never => {
    if (DatabaseError.is(err)) this.#lastError = err.code === 'TRANSACTION_ROLLED_BACK' && DatabaseError.is(err.cause) ? err.cause : err
    throw err
  }

  /** @internal The last statement error outside `transaction()` (see `withConnection`'s check of a transaction left open). */
  get lastError(): DatabaseError | undefined {
    return this.#lastError
  }

  /**
   * @internal A transaction's callback has settled: from now on new statements are refused (its
   * COMMIT or ROLLBACK goes through {@link control}), until {@link transactionEnded}.
   */
  callbackSettled(): void {
    this.#txEnding = true
  }

  /**
   * @internal The transaction's COMMIT or ROLLBACK has settled. A `withConnection` handle serves its
   * callback again; any other handle stays closed until it is detached.
   */
  transactionEnded(): void {
    if (this.held) this.#txEnding = false
  }

  #refuseIfEnding(): void {
    if (this.#txEnding || this.#spEnding > 0) throw ending(this.#txEnding ? 'transaction' : 'savepoint')
  }

  /** @internal transaction() watches the statements of `fn` through this. */
  track(outcome: TransactionOutcome | undefined): void {
    this.#outcome = outcome
  }

  async transaction<T>(fn: (tx: Transaction<C>) => Promise<T>, settings?: TransactionSettings): Promise<T> {
    this.#refuseIfEnding()
    const held = this.held
    if (held && this.#outcome === undefined) {
      const lease = this.#live()
      // the callback began a transaction by hand (a BEGIN through conn.query(), the Migrator's): a
      // BEGIN now would be refused (SQLite) or ignored (Postgres: a warning), and the COMMIT after fn
      // would commit the outer transaction. It nests as a savepoint instead, as tx.transaction() does.
      const state = held.transactionState?.(lease.conn.native)
      if (state === 'open' || state === 'failed' || (state === 'unknown' && held.settledTransactionState))
        return this.#inOpenTransaction(held, lease, state, fn, settings)
      return held.traced(() =>
        runOnHeldConnection(held, this, fn, settings, lease.conn.lane === 'read', (err) => held.markBroken(lease, err)),
      )
    }
    if (typeof fn !== 'function') throw configError('transaction callback', fn, 'must be a function')
    if (settings !== undefined)
      throw new DatabaseError('CONFIGURATION', 'transaction settings cannot change inside a transaction: tx.transaction() is a savepoint')
    return this.#savepoint(fn)
  }

  /**
   * `conn.transaction()` on a handle whose connection is already inside a transaction the callback
   * opened itself: a savepoint in it (settings refused with CONFIGURATION before anything is sent),
   * watched like a nested `tx.transaction()` (COMMIT, ROLLBACK, BEGIN through `tx.query()` refused; a
   * caught statement error rolls the savepoint back and rejects with TRANSACTION_ROLLED_BACK). The
   * outer transaction stays the callback's to commit or roll back. `state` `'unknown'` (Postgres, a
   * statement's answer still on its way) is settled first.
   */
  async #inOpenTransaction<T>(
    held: HeldConnectionHost<C>,
    lease: Lease<C>,
    state: TransactionState,
    fn: (tx: Transaction<C>) => Promise<T>,
    settings: TransactionSettings | undefined,
  ): Promise<T> {
    const native = lease.conn.native
    if (state === 'unknown') state = await held.settledTransactionState!(native)
    if (state !== 'open' && state !== 'failed')
      return held.traced(() =>
        runOnHeldConnection(held, this, fn, settings, lease.conn.lane === 'read', (err) => held.markBroken(lease, err)),
      )
    if (typeof fn !== 'function') throw configError('transaction callback', fn, 'must be a function')
    if (settings !== undefined)
      throw new DatabaseError(
        'CONFIGURATION',
        "transaction settings cannot apply: the connection's transaction is already open (a BEGIN sent through conn.query()), so conn.transaction() is a savepoint inside it",
        { backend: this.backend, retryable: false },
      )
    const readState = held.transactionState
    this.track(new TransactionOutcome(this.backend, readState && (() => readState(native))))
    try {
      return await this.#savepoint(fn).catch(this.#noteError)
    } finally {
      this.track(undefined)
    }
  }

  /** Runs `fn` inside a savepoint of the transaction this handle is in (see {@link Transaction.transaction}). */
  async #savepoint<T>(fn: (tx: Transaction<C>) => Promise<T>): Promise<T> {
    const name = `dbpool_sp_${++this.#savepoints}`
    await this.#query(`SAVEPOINT ${name}`, undefined, undefined)
    const recovered = this.#outcome?.errors.length ?? 0
    let result: T
    let releasing = false
    let settled = false
    try {
      try {
        result = await fn(this)
      } finally {
        // until the savepoint has ended, a statement fn left running would land outside it
        settled = true
        this.#spEnding++
      }
      // a savepoint whose work the engine threw away is rolled back, not released
      this.#outcome?.checkSavepoint(recovered)
      releasing = true
      await this.#query(`RELEASE SAVEPOINT ${name}`, undefined, undefined)
    } catch (err) {
      // a RELEASE refused because an earlier error aborted the transaction must not hide that error
      const reported = releasing && this.#outcome ? this.#outcome.releaseFailed(err, recovered) : err
      await this.#rollbackTo(name, recovered, reported)
      throw reported
    } finally {
      if (settled) this.#spEnding--
    }
    return result
  }

  /** Undoes a savepoint after `fn` failed. Its own failure never replaces `err`: the whole transaction is abandoned instead. */
  async #rollbackTo(name: string, recovered: number, err: unknown): Promise<void> {
    try {
      await this.#query(`ROLLBACK TO SAVEPOINT ${name}`, undefined, undefined)
      await this.#query(`RELEASE SAVEPOINT ${name}`, undefined, undefined)
    } catch (cleanupError) {
      // e.g. SQLite ended the transaction by itself ("no such savepoint"): err is what the caller must see
      this.#outcome?.abandon(err)
      void cleanupError
      return
    }
    // the errors inside the savepoint were undone with it: they no longer decide the outcome
    if (this.#outcome && this.#outcome.errors.length > recovered) this.#outcome.errors.length = recovered
  }

  /**
   * @internal Closes this connection at its release instead of giving it back to the pool, for a
   * session whose state cannot be trusted (the Migrator, after a migration's SQL ran on it).
   * `withConnection` handles only; elsewhere false (nothing done).
   */
  discardAtRelease(reason: DatabaseError): boolean {
    const lease = this.#live()
    if (!this.held) return false
    this.held.markBroken(lease, reason)
    return true
  }

  /** Ends the handle: every later call throws. */
  detach(): void {
    // a stream left open: its cursor is closed before the connection is released
    if (this.#closeStream) void this.#closeStream()
    this.#lease = undefined
    this.#outcome = undefined
    // from now on every call reports the release (#live)
    this.#txEnding = false
  }

  #live(): Lease<C> {
    if (!this.#lease)
      throw new DatabaseError('QUERY_FAILED', 'this connection was released: use it only inside the callback that received it')
    return this.#lease
  }
}
