import { DatabaseError } from '../errors/database-error'
import { OUTCOME_UNKNOWN, isOutcomeUnknown } from '../errors/error-outcome'
import { HANDLE_QUERY_OPTION_KEYS, checkQueryOptions, checkQueryText, extraArguments, hasExtraArgument } from '../config/call-options'
import { configError } from '../config/validate'
import type { Backend, ExecuteOptions, Lane, QueryResult, TransactionSettings, TransactionState } from '../driver/connection-manager'
import type { SqlFragment } from '../sql/sql'
import { eventLoopTurn, type Lease } from './lease'
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
   * Inside a transaction, a COMMIT or ROLLBACK run here ends it behind the pool's back: every later
   * statement, stream, savepoint or `native` of the transaction's handle is then refused without
   * running, and `transaction()` rejects, with QUERY_FAILED `detail: { reason: 'ended-outside',
   * outcome: 'unknown' }` (what ran before it was committed or rolled back by it; nothing after it).
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
   * anything is sent, and the outer transaction stays the callback's to commit or roll back. A `BEGIN`
   * issued on this handle and not answered yet counts (see the README, withConnection): on Postgres
   * it is waited for, at most `cancelTimeoutMs`, else refused (QUERY_FAILED, `detail.reason`
   * `'transaction-state-unknown'`); lone statements that cannot begin or end a transaction are not
   * waited for: this transaction's first statement queues behind them, as long as they run.
   *
   * `fn` gets a handle of its own (`tx`), valid for this transaction only. Once `fn` has settled,
   * while its COMMIT or ROLLBACK is in flight, `tx` refuses new statements, streams, savepoints and
   * `native` with QUERY_FAILED ("this transaction is ending"); once the transaction has ended, with
   * QUERY_FAILED ("this transaction was released"), as a released connection: one `fn` started
   * without awaiting it would otherwise run after the COMMIT or ROLLBACK, in autocommit, and be kept.
   *
   * One scope at a time: from this call until the transaction has ended, this handle refuses
   * `query()`, `stream()`, `native` and another `transaction()` with QUERY_FAILED, `detail:
   * { reason: 'scope-open', scope: 'transaction' }`, before anything is sent (refused, not queued: a
   * queue would deadlock an `fn` that awaits this handle). Work of another async branch would
   * otherwise run inside this transaction, committed or rolled back with it whatever its own caller
   * was told. `transaction()` while a stream of this handle is open is QUERY_FAILED too.
   */
  transaction<T>(fn: (tx: Transaction<C>) => Promise<T>, settings?: TransactionSettings): Promise<T>
  /**
   * Streams a statement's rows on this connection, a batch at a time (see `pool.stream()`). While
   * the stream is open the connection is busy with it: `query()` and a second `stream()` on this
   * handle are refused (QUERY_FAILED) until the loop ends or breaks. A stream still open when the
   * callback returns is closed before COMMIT, a savepoint's RELEASE, or the release.
   */
  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ConnectionStreamOptions): RowStream<R>
}

/** A connection inside a transaction; `transaction()` nests with a savepoint. */
export interface Transaction<C = unknown> extends PoolConnection<C> {
  /**
   * Runs `fn` inside a savepoint: released on success, rolled back to on error (which is rethrown).
   * When `fn` returned after a statement error had aborted the transaction (Postgres), the savepoint
   * is rolled back and this rejects with TRANSACTION_ROLLED_BACK, its `cause` that first error: the
   * transaction may go on after catching it. `fn` gets a handle of its own: once `fn` has settled,
   * while the RELEASE (or ROLLBACK TO) is in flight, it refuses new statements with QUERY_FAILED
   * ("this savepoint is ending"), and once the savepoint has ended with QUERY_FAILED ("this savepoint
   * was released"), never running them in the outer transaction. A stream `fn` left open is closed
   * before the RELEASE. A savepoint of its own that `fn` opened and did not await, still running when
   * `fn` resolves, rolls this one back (QUERY_FAILED, `detail.reason: 'scope-open'`).
   *
   * While the savepoint is open, this handle (the outer `tx`) refuses `query()`, `stream()`, `native`
   * and a second `transaction()` with QUERY_FAILED, `detail: { reason: 'scope-open', scope:
   * 'savepoint' }`, before anything is sent: a savepoint's ROLLBACK TO would otherwise also undo the
   * work of another async branch issued while it was open. Await the savepoint, or use its handle.
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
  settledTransactionState: ((conn: C, options?: { readonly predict?: boolean }) => Promise<TransactionState>) | undefined
  /** Runs a whole transaction under the pool's transaction span (telemetry). */
  traced<T>(run: () => Promise<T>): Promise<T>
}

/**
 * `conn.transaction()` when the engine has not answered the statements issued on the connection before
 * it (within the manager's bound): whether a transaction is open is not known, and a BEGIN + COMMIT
 * there could commit one the callback opened. Nothing of its own was sent; what was issued before may
 * have committed or not (`detail.outcome: 'unknown'`), and the connection is closed at its release.
 */
function stateUnknown(backend: Backend): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    "conn.transaction() cannot tell whether the connection is inside a transaction: statements issued on it before were not answered in time, and a transaction of its own there could commit one they opened; nothing of its own was sent. Those statements' outcome is unknown (they may have committed; check before running them again), and the connection is closed instead of reused. Await the connection's statements that may begin or end a transaction before conn.transaction()",
    { backend, retryable: false, detail: { reason: 'transaction-state-unknown', outcome: OUTCOME_UNKNOWN } },
  )
}

/** What a handle stands for: a `withConnection` connection, a transaction, or a savepoint of one. */
type HandleScope = 'connection' | 'transaction' | 'savepoint'

/**
 * A statement sent to a transaction (or savepoint) whose callback has settled: its COMMIT, ROLLBACK
 * or RELEASE is on its way, and a statement now would run after it, outside the transaction
 * (autocommit). The same family as a statement on a released handle (QUERY_FAILED, not retryable).
 */
function ending(scope: HandleScope): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `this ${scope} is ending (its callback has settled; its ${scope === 'savepoint' ? 'RELEASE or ROLLBACK TO' : 'COMMIT or ROLLBACK'} is on its way): a statement now would run outside it; await every statement inside the callback`,
    { retryable: false },
  )
}

/**
 * A handle used after its scope ended: the connection given back to the pool, or the transaction
 * (savepoint) of `conn.transaction()` (`tx.transaction()`) committed or rolled back. The same error
 * on every entry point: a statement now would run outside the scope its caller meant.
 */
function released(scope: HandleScope, root: boolean): DatabaseError {
  // a pool.transaction() root is a 'transaction' scope: its savepoints say so (r12b tx-scopes 10)
  if (root && scope === 'connection')
    return new DatabaseError('QUERY_FAILED', 'this connection was released: use it only inside the callback that received it')
  return new DatabaseError(
    'QUERY_FAILED',
    `this ${scope} was released (it has ended: committed, rolled back or released): use its handle only inside the callback that received it; a statement now would run outside it`,
    { retryable: false },
  )
}

/**
 * Work sent to a handle while a transaction or savepoint opened on it (`conn.transaction()`,
 * `tx.transaction()`) is still open: it would run inside that scope and share its fate (rolled back
 * with it while its caller was told it succeeded, or committed when its caller was told it rolled
 * back), so it is refused before anything is sent. `detail.reason` is `'scope-open'`.
 */
function scopeOpen(what: string, child: HandleScope): DatabaseError {
  const scope = child === 'savepoint' ? 'a savepoint (tx.transaction())' : 'a transaction (conn.transaction())'
  return new DatabaseError(
    'QUERY_FAILED',
    `${what} refused and not run: ${scope} is open on this connection; until it ends, work sent here would run inside it and be committed or rolled back with it. Use the handle its callback received, or await it first`,
    { retryable: false, detail: { reason: 'scope-open', scope: child } },
  )
}

/** A callback that settled while a transaction or savepoint it opened (not awaited) was still running. */
function scopeLeftOpen(scope: HandleScope, child: HandleScope): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `the ${scope}'s callback settled while a ${child} it opened (${child === 'savepoint' ? 'tx.transaction()' : 'conn.transaction()'} not awaited) was still running: the ${scope} is rolled back, nothing of it is kept; await every transaction() inside the callback`,
    { retryable: false, detail: { reason: 'scope-open', scope: child } },
  )
}

function streamOpen(what: string): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    `${what} refused: a stream is open on this connection (it is busy reading the stream's rows); finish or break the stream's loop first`,
    { retryable: false },
  )
}

/**
 * @internal The object user code holds; it refuses work once its scope has ended. A `withConnection`
 * callback or a `pool.transaction()` attempt gets a root handle; each `conn.transaction()` and
 * `tx.transaction()` gives its callback a child handle of its own on the same lease, closed when that
 * scope ends (later use: QUERY_FAILED, as a released connection). While a child is open its parent
 * refuses statements, streams, `native` and a second scope (QUERY_FAILED, `detail.reason`
 * `'scope-open'`), so one scope's work never lands in another's.
 */
export class ConnectionHandle<C> implements Transaction<C> {
  #lease: Lease<C> | undefined
  #scope: HandleScope
  /** The handle this one's scope was opened on (undefined on a root handle). */
  #parent: ConnectionHandle<C> | undefined
  /** The scope open on this handle: this handle refuses work until it ends. */
  #child: ConnectionHandle<C> | undefined
  /** Savepoint numbering, shared by a root handle and all its children (`dbpool_sp_<n>`). */
  #names: { savepoints: number } = { savepoints: 0 }
  /**
   * Set from the moment this scope's callback settles (before its COMMIT, ROLLBACK, RELEASE or
   * ROLLBACK TO is sent) until the handle is closed: new statements, streams, savepoints and `native`
   * are refused then (see {@link ending}), on this handle and its children.
   */
  #ending = false
  /** Set while the handle (or the savepoint of a transaction) runs a transaction's callback. */
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
    this.#scope = held ? 'connection' : 'transaction'
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
    this.#refuseIfBusy('native')
    // inside a transaction that was ended through an earlier `native` (copyFrom() would run in autocommit)
    const ended = this.#outcome?.checkOpen()
    if (ended) throw ended
    lease.nativeTaken = true
    if (lease.conn.lane === 'write') lease.wrote = true
    lease.conn.nativeLent?.()
    return lease.conn.native
  }

  /** The manager's connection for the pool's own use (not counted as a possible write, see {@link native}). */
  ownNative(): C {
    return this.#live().conn.native
  }

  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>> {
    // eslint-disable-next-line prefer-rest-params -- arguments, not a rest parameter: the public signature stays 3 arguments
    if (arguments.length > 3 && hasExtraArgument(arguments)) return Promise.reject(extraArguments('query', arguments))
    // a statement left running by a callback that settled (a forgotten await): it would run after the
    // COMMIT, outside the transaction; one sent while a scope opened here is open would run inside it
    if (this.#ending || this.#child !== undefined || this.#parent !== undefined) {
      const refused = this.#busy('query()')
      if (refused) return Promise.reject(refused)
    }
    return this.#query<R>(query, params, options)
  }

  /** {@link query} without the scope checks. */
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
    // the engine (or a COMMIT or ROLLBACK through tx.native) ended the transaction: a statement now
    // would run in autocommit and be kept
    const ended = outcome.checkOpen()
    if (ended) return Promise.reject(ended)
    let refused: DatabaseError | undefined
    try {
      refused = outcome.refuseControl(query)
    } catch (err) {
      return Promise.reject(err)
    }
    if (refused) return Promise.reject(refused)
    return this.#watched<R>(outcome, this.control<R>(query, params, options))
  }

  #watched<R>(outcome: TransactionOutcome | undefined, running: Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    if (outcome === undefined) return running
    return running.then(
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

  /**
   * A savepoint's own statement (SAVEPOINT, RELEASE, ROLLBACK TO) on this savepoint's handle: watched
   * like the callback's statements; a stream the callback left open is closed first. Refused when an
   * enclosing scope is ending or closed (it would run after the enclosing COMMIT or ROLLBACK).
   */
  #scopeStatement(text: string): Promise<QueryResult<Record<string, unknown>>> {
    for (let h = this.#parent; h !== undefined; h = h.#parent) {
      if (h.#lease === undefined) return Promise.reject(released(h.#scope, h.#parent === undefined))
      if (h.#ending) return Promise.reject(ending(h.#scope))
    }
    const outcome = this.#outcome
    // a savepoint's own statements run only while the transaction is open (not after a COMMIT through tx.native)
    const ended = outcome?.checkOpen()
    if (ended) return Promise.reject(ended)
    return this.#watched(outcome, this.control(text))
  }

  stream<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ConnectionStreamOptions): RowStream<R> {
    const streams = this.streams
    if (!streams) throw new DatabaseError('CONFIGURATION', 'this connection handle cannot stream')
    // eslint-disable-next-line prefer-rest-params -- arguments, not a rest parameter: the public signature stays 3 arguments
    if (arguments.length > 3 && hasExtraArgument(arguments)) options = extraArguments('stream', arguments) as ConnectionStreamOptions
    return streams.onLease<R>(
      {
        begin: (close) => {
          checkQueryText(query)
          const lease = this.#live()
          this.#refuseIfBusy('stream()')
          if (this.#closeStream) throw streamOpen('stream()')
          const outcome = this.#outcome
          const ended = outcome?.checkOpen()
          if (ended) throw ended
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

  /** @internal This handle's lease (for a transaction's {@link TransactionOutcome}); undefined once released. */
  currentLease(): Lease<C> | undefined {
    return this.#lease
  }

  /** @internal Runs a statement without the transaction checks (BEGIN, COMMIT, ROLLBACK). */
  control<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>> {
    // a scope whose enclosing handle was released (a withConnection callback returned while a
    // conn.transaction() it did not await ran): its BEGIN / COMMIT / ROLLBACK must not reach the
    // runner with the lease given back (it said POOL_CLOSED on an open pool)
    for (let h = this.#parent; h !== undefined; h = h.#parent) {
      if (h.#lease === undefined) return Promise.reject(released(h.#scope, h.#parent === undefined))
    }
    // a stream the callback left open is closed first (its close is sent before this statement)
    if (this.#closeStream) void this.#closeStream()
    try {
      const lease = this.#live()
      const running = this.runner<R>(lease, query, params, options)
      // when it settles, for withConnection's check of a connection lost with a COMMIT in doubt
      const last: { settledTurn: number | undefined } = { settledTurn: undefined }
      lease.lastStatement = last
      const settled = (): void => {
        last.settledTurn = eventLoopTurn()
      }
      running.then(settled, (err: unknown) => {
        // its own error says its outcome is unknown: a callback that awaited it saw that
        if (isOutcomeUnknown(err)) lease.inDoubtStatement = last
        settled()
      })
      return running
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
   * @internal A transaction's callback has settled: from now on new work is refused, on this handle
   * and its children (its COMMIT or ROLLBACK goes through {@link control}), until it is closed.
   */
  callbackSettled(): void {
    this.#ending = true
  }

  /**
   * @internal After the callback resolved: throws (QUERY_FAILED, `detail.reason` `'scope-open'`) when
   * a savepoint it opened and did not await is still open: the transaction must then roll back, not
   * commit half of it.
   */
  checkScopesEnded(): void {
    this.#checkNoChild()
  }

  #checkNoChild(): void {
    const child = this.#child
    if (child !== undefined) throw scopeLeftOpen(this.#scope, child.#scope)
  }

  /**
   * Refuses work on this handle: its scope or an enclosing one is ending (QUERY_FAILED "is ending"),
   * an enclosing one has ended (QUERY_FAILED "was released"), or a scope opened on it is still open
   * (QUERY_FAILED, `detail.reason` `'scope-open'`). A handle that was itself released is left to
   * {@link #live} (the statement's own checks come first, as they always did).
   */
  #refuseIfBusy(what: string): void {
    const refused = this.#busy(what)
    if (refused) throw refused
  }

  /** {@link #refuseIfBusy}'s error, or undefined. */
  #busy(what: string): DatabaseError | undefined {
    if (this.#lease === undefined) return undefined
    if (this.#ending) return ending(this.#scope)
    const child = this.#child
    if (child !== undefined) return scopeOpen(what, child.#scope)
    for (let h = this.#parent; h !== undefined; h = h.#parent) {
      if (h.#lease === undefined) return released(h.#scope, h.#parent === undefined)
      if (h.#ending) return ending(h.#scope)
    }
    return undefined
  }

  /** @internal transaction() watches the statements of `fn` through this. */
  track(outcome: TransactionOutcome | undefined): void {
    this.#outcome = outcome
  }

  async transaction<T>(fn: (tx: Transaction<C>) => Promise<T>, settings?: TransactionSettings): Promise<T> {
    this.#refuseIfBusy('transaction()')
    const lease = this.#live()
    if (this.#closeStream) throw streamOpen('transaction()')
    const held = this.held
    if (held && this.#scope === 'connection') {
      // the scope is claimed before anything is awaited: a second transaction() or a statement of
      // another async branch is refused from now on, until this one has ended
      const child = this.#open('transaction', undefined)
      try {
        // the callback began a transaction by hand (a BEGIN through conn.query(), the Migrator's): a
        // BEGIN now would be refused (SQLite) or ignored (Postgres: a warning), and the COMMIT after fn
        // would commit the outer transaction. It nests as a savepoint instead, as tx.transaction() does.
        // statements it issued and did not await count: a BEGIN still waiting for the event loop (SQLite,
        // lease.pending) or for the server's answer (Postgres, 'unknown') is settled first
        const state = held.transactionState?.(lease.conn.native)
        if (
          state === 'open' ||
          state === 'failed' ||
          (state !== undefined && lease.pending !== undefined) ||
          (state === 'unknown' && held.settledTransactionState)
        )
          return await this.#inOpenTransaction(held, lease, child, state, fn, settings)
        return await held.traced(() =>
          runOnHeldConnection(held, child, fn, settings, lease.conn.lane === 'read', (err) => held.markBroken(lease, err)),
        )
      } finally {
        this.#closeChild(child)
      }
    }
    if (typeof fn !== 'function') throw configError('transaction callback', fn, 'must be a function')
    if (settings !== undefined)
      throw new DatabaseError('CONFIGURATION', 'transaction settings cannot change inside a transaction: tx.transaction() is a savepoint')
    const child = this.#open('savepoint', this.#outcome)
    try {
      return await child.#savepoint(fn)
    } finally {
      this.#closeChild(child)
    }
  }

  /** Opens a child scope on this handle (same lease): this handle refuses work until {@link #closeChild}. */
  #open(scope: 'transaction' | 'savepoint', outcome: TransactionOutcome | undefined): ConnectionHandle<C> {
    const child = new ConnectionHandle<C>(this.#live(), this.backend, this.runner, this.held, this.streams)
    child.#scope = scope
    child.#parent = this
    child.#names = this.#names
    child.#outcome = outcome
    this.#child = child
    return child
  }

  /** The child's scope has ended: it refuses everything from now on; this handle serves again. */
  #closeChild(child: ConnectionHandle<C>): void {
    child.#close()
    if (this.#child === child) this.#child = undefined
  }

  #close(): void {
    // a stream left open: its cursor is closed (the scope's own end closed it before, through control())
    if (this.#closeStream) void this.#closeStream()
    this.#lease = undefined
    this.#outcome = undefined
    this.#ending = false
  }

  /**
   * `conn.transaction()` on a handle whose connection is already inside a transaction the callback
   * opened itself: a savepoint in it (settings refused with CONFIGURATION before anything is sent),
   * watched like a nested `tx.transaction()` (COMMIT, ROLLBACK, BEGIN through `tx.query()` refused; a
   * caught statement error rolls the savepoint back and rejects with TRANSACTION_ROLLED_BACK). The
   * outer transaction stays the callback's to commit or roll back. Statements the callback issued and
   * did not await are settled first: the ones waiting for the event loop (SQLite) run, and a state
   * `'unknown'` (Postgres: answers still on their way) is settled by the manager; a state still not
   * known then is refused (QUERY_FAILED, `detail.reason` `'transaction-state-unknown'`, `detail.outcome`
   * `'unknown'`, nothing of its own sent; the connection is closed at its release, never reused), never
   * taken as no transaction (its BEGIN would be ignored and its COMMIT commit the outer one). Asked
   * with `predict`, the manager answers at once when the statements still unanswered cannot change
   * the state (Postgres: lone statements that cannot open or end a transaction): then the BEGIN or
   * SAVEPOINT queues behind them and waits as long as they run, with no bound of its own (their own
   * `timeoutMs` bounds them). `child`: the scope already claimed.
   */
  async #inOpenTransaction<T>(
    held: HeldConnectionHost<C>,
    lease: Lease<C>,
    child: ConnectionHandle<C>,
    state: TransactionState,
    fn: (tx: Transaction<C>) => Promise<T>,
    settings: TransactionSettings | undefined,
  ): Promise<T> {
    const native = lease.conn.native
    if (lease.pending !== undefined) {
      while (lease.pending !== undefined) await lease.pending
      state = held.transactionState!(native)
    }
    if (state === 'unknown' && held.settledTransactionState) {
      // a slow statement beside it (Promise.all of an awaited query and conn.transaction()) that cannot
      // change the state is not waited for: the BEGIN queues behind it (see settledTransactionState)
      state = await held.settledTransactionState(native, { predict: true })
      // never rolled back and reused behind statements still running: closed at the release
      if (state === 'unknown') throw held.markBroken(lease, stateUnknown(this.backend))
    }
    if (state !== 'open' && state !== 'failed')
      return held.traced(() =>
        runOnHeldConnection(held, child, fn, settings, lease.conn.lane === 'read', (err) => held.markBroken(lease, err)),
      )
    if (typeof fn !== 'function') throw configError('transaction callback', fn, 'must be a function')
    if (settings !== undefined)
      throw new DatabaseError(
        'CONFIGURATION',
        "transaction settings cannot apply: the connection's transaction is already open (a BEGIN sent through conn.query()), so conn.transaction() is a savepoint inside it",
        { backend: this.backend, retryable: false },
      )
    const readState = held.transactionState
    child.#scope = 'savepoint'
    child.#outcome = new TransactionOutcome(this.backend, readState && (() => readState(native)), lease)
    return child.#savepoint(fn).catch(this.#noteError)
  }

  /** Runs `fn` inside a savepoint, on this savepoint's own handle (see {@link Transaction.transaction}). */
  async #savepoint<T>(fn: (tx: Transaction<C>) => Promise<T>): Promise<T> {
    const name = `dbpool_sp_${++this.#names.savepoints}`
    await this.#scopeStatement(`SAVEPOINT ${name}`)
    const outcome = this.#outcome
    const recovered = outcome?.errors.length ?? 0
    let result: T
    let releasing = false
    try {
      try {
        result = await fn(this)
      } finally {
        // until the savepoint has ended, a statement fn left running would land outside it
        this.#ending = true
      }
      // a savepoint opened inside and not awaited: this one rolls back rather than release half of it
      this.#checkNoChild()
      // a savepoint whose work the engine threw away is rolled back, not released
      outcome?.checkSavepoint(recovered)
      releasing = true
      await this.#scopeStatement(`RELEASE SAVEPOINT ${name}`)
    } catch (err) {
      // a RELEASE refused because an earlier error aborted the transaction must not hide that error
      const reported = releasing && outcome ? outcome.releaseFailed(err, recovered) : err
      await this.#rollbackTo(name, recovered, reported)
      throw reported
    }
    return result
  }

  /** Undoes a savepoint after `fn` failed. Its own failure never replaces `err`: the whole transaction is abandoned instead. */
  async #rollbackTo(name: string, recovered: number, err: unknown): Promise<void> {
    const outcome = this.#outcome
    try {
      await this.#scopeStatement(`ROLLBACK TO SAVEPOINT ${name}`)
      await this.#scopeStatement(`RELEASE SAVEPOINT ${name}`)
    } catch (cleanupError) {
      // e.g. SQLite ended the transaction by itself ("no such savepoint"): err is what the caller must see
      outcome?.abandon(err)
      void cleanupError
      return
    }
    // the errors inside the savepoint were undone with it: they no longer decide the outcome
    if (outcome && outcome.errors.length > recovered) outcome.errors.length = recovered
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

  /**
   * `readYourWrites`: work done through {@link native} (a COPY) has completed: records the write
   * position now when it left a write committed (no transaction open), as a statement does, rather
   * than at the lease's end. undefined when there is nothing to record (or the handle was released).
   */
  nativeDone(): Promise<void> | undefined {
    const lease = this.#lease
    return lease?.active ? this.streams?.afterStatement(lease) : undefined
  }

  /** Ends the handle: every later call throws. */
  detach(): void {
    // a stream left open: its cursor is closed before the connection is released
    this.#close()
  }

  #live(): Lease<C> {
    if (!this.#lease) throw released(this.#scope, this.#parent === undefined)
    return this.#lease
  }
}

/**
 * `readYourWrites`: what a backend ran through `conn.native` (a COPY) has completed; records the write
 * position now when it left a write committed, as a statement on the handle does, so that a read-lane
 * read right after sees it (not only at the lease's end). Resolves once recorded (never rejects: a
 * failed recording leaves the position unknown); undefined when there is nothing to record.
 */
export function nativeWorkDone(conn: PoolConnection): Promise<void> | undefined {
  return conn instanceof ConnectionHandle ? conn.nativeDone() : undefined
}
