import { checkEnum, checkInteger, configError, rejectUnknownKeys, requireObject, MAX_TIMER_MS } from '../config/validate'
import { DatabaseError } from '../errors/database-error'
import { OUTCOME_COMMITTED } from '../errors/error-outcome'
import { transactionLeftOpenError, transactionStateUnknownError } from '../transaction/transaction-outcome'
import type { Backend, ConnectedServer, ConnectionManager, Lane, RowCursor } from '../driver/connection-manager'
import type { CompiledQuery } from '../sql/sql'
import type { Lease } from './lease'
import type { Queryable } from './pool-connection'
import { markWaitDeadline } from './wait-deadline'

/** Rows fetched per batch when `batchSize` is not given. */
export const DEFAULT_STREAM_BATCH_SIZE = 1_000
/** The largest `batchSize` accepted. */
export const MAX_STREAM_BATCH_SIZE = 100_000

/** Options of `conn.stream()` and `tx.stream()` (the connection is the handle's own). */
export interface ConnectionStreamOptions {
  /**
   * Rows fetched per batch: one round trip on Postgres (pg-cursor's `read(batchSize)`), one slice of
   * work between two yields to the event loop on SQLite. 1 to 100,000; default 1,000.
   */
  readonly batchSize?: number
  /**
   * Deadline of the whole stream in ms, from the first `next()` (waiting for a connection included)
   * to the last row: then the iteration rejects with QUERY_TIMEOUT (Postgres: a read in flight is
   * cancelled on the server and its connection closed), or with ACQUIRE_TIMEOUT (retryable: nothing
   * was sent) when it passed before the stream had a connection. It ends the stream even when no
   * `next()` is waiting (a consumer that stopped reading: a `Readable` piped to a stalled client):
   * the cursor is closed and the connection given back then (a handle's stream: the handle takes
   * statements again, a transaction stays open), and the next `next()` rejects with it.
   * 1 to 2^31 - 1; default none.
   */
  readonly timeoutMs?: number
  /**
   * Aborting ends the stream with QUERY_CANCELLED, like `timeoutMs` (at once, `next()` waiting or
   * not). Either, while the stream still waits its turn behind statements issued before it on its
   * connection: never run, `retryable: true`, `detail.started: false`, those statements untouched.
   */
  readonly signal?: AbortSignal
}

/** Options of `pool.stream()`. */
export interface StreamOptions extends ConnectionStreamOptions {
  /**
   * The lane to borrow from (`'read'`: a reader where the pool has one, else the writer, read-only
   * as for `pool.query()`'s `lane`). Default:
   * where `pool.query()` would run the statement (SQLite: a reader for a read-only statement).
   */
  readonly lane?: Lane
}

const POOL_STREAM_KEYS = ['batchSize', 'lane', 'timeoutMs', 'signal'] as const
const HANDLE_STREAM_KEYS = ['batchSize', 'timeoutMs', 'signal'] as const
const LANES: readonly Lane[] = ['write', 'read']

/** @internal What streams need from the pool that owns them. */
export interface StreamAccess {
  readonly manager: ConnectionManager<unknown>
  compile(query: Queryable, params: readonly unknown[] | undefined): CompiledQuery
  /** The lane a statement runs on: the requested one where it exists, else where `pool.query()` would run it. */
  lane(compiled: CompiledQuery, requested: Lane | undefined): Lane
  /** Takes a lease (with its own admission: close() drains it); `signal` takes a waiting caller out of the queue. */
  acquire(lane: Lane, signal: AbortSignal): Promise<Lease<unknown>>
  release(lease: Lease<unknown>): void | Promise<void>
  /** Maps an error seen on the lease's connection; marks the connection broken when it is no longer usable. */
  fail(lease: Lease<unknown>, err: unknown): DatabaseError
  /**
   * A handle's stream is about to run `compiled` on its lease (`readYourWrites`: whether it may
   * write, see `ReplicaSet.noteStatement`).
   */
  noteStatement(lease: Lease<unknown>, compiled: CompiledQuery): void
  /**
   * A handle's stream ended: `readYourWrites` records the write position before the loop ends when
   * what it wrote committed (outside a transaction); undefined when there is nothing to record.
   */
  afterStatement(lease: Lease<unknown>): Promise<void> | undefined
  /** POOL_CLOSED. */
  closedError(): DatabaseError
  /** Telemetry of one stream, from its statement's start to its end (undefined: nothing watches). */
  watch(compiled: CompiledQuery): { end(error: DatabaseError | undefined): void } | undefined
}

/** @internal A handle's side of a stream on its own lease (see `ConnectionHandle.stream`). */
export interface HandleStreamHooks {
  /** The handle's lease, now holding the stream (throws when released, or a stream is already open). */
  begin(close: () => Promise<void>): Lease<unknown>
  /** The stream ended (`error` when it failed). */
  end(error: DatabaseError | undefined): void
}

/** How one iteration gets its connection and gives it back. */
interface Loan {
  readonly lease: Lease<unknown>
  end(error: DatabaseError | undefined): void | Promise<void>
}

interface StreamSource {
  readonly access: StreamAccess
  /** undefined: `pool.stream()`, which takes a lease of its own. */
  readonly hooks: HandleStreamHooks | undefined
}

/**
 * @internal Builds the streams of one pool: `pool.stream()` (a lease per iteration) and the
 * handles' `stream()` (on their lease).
 */
export class StreamSupport {
  readonly #access: StreamAccess
  readonly #pool: StreamSource

  constructor(access: StreamAccess) {
    this.#access = access
    this.#pool = { access, hooks: undefined }
  }

  /** `pool.stream()`. */
  pool<R>(query: Queryable, params: readonly unknown[] | undefined, options: StreamOptions | undefined): RowStream<R> {
    return new RowStream<R>(this.#pool, query, params, options)
  }

  /** Work on a handle's lease outside the statement path ended (see `ConnectionHandle.nativeDone`): as a stream's end. */
  afterStatement(lease: Lease<unknown>): Promise<void> | undefined {
    return this.#access.afterStatement(lease)
  }

  /** `conn.stream()` / `tx.stream()`. */
  onLease<R>(
    hooks: HandleStreamHooks,
    query: Queryable,
    params: readonly unknown[] | undefined,
    options: ConnectionStreamOptions | undefined,
  ): RowStream<R> {
    return new RowStream<R>({ access: this.#access, hooks }, query, params, options)
  }
}

/**
 * The rows of one statement as an `AsyncIterable` (`for await`, `Readable.from(stream)`), read in
 * batches with backpressure: the next batch is fetched only when the consumer has taken every row
 * of the last one. Nothing runs until the iteration starts; each iteration runs the statement once.
 *
 * `pool.stream()` holds one lease for the whole iteration and releases it when the loop ends,
 * breaks or throws, or its `timeoutMs` / `signal` stops it, `next()` waiting or not (the release rules apply: an unfinished cursor is closed first, an open
 * transaction rolled back). `conn.stream()` / `tx.stream()` run on the handle's connection; while
 * such a stream is open the handle refuses other statements (the connection is busy with it).
 *
 * Errors (rejections of `next()`): CONFIGURATION for invalid options or a manager that cannot
 * stream; the parameter contract of `pool.query()` (INVALID_PARAMETER, SYNTAX_ERROR, nothing sent);
 * the statement's own errors, mapped; QUERY_TIMEOUT / QUERY_CANCELLED from `timeoutMs` / `signal`;
 * ACQUIRE_TIMEOUT, POOL_CLOSED as for `pool.query()`. Such an error ending a stream of a write run
 * outside a transaction after its first batch says what became of it: `detail.outcome: 'committed'`
 * (its work committed: Postgres at the Sync ending its portal, SQLite at its first step) or
 * `'unknown'` (its commit in flight), `retryable: false` (see `RowCursor.outcome`).
 */
export class RowStream<R = Record<string, unknown>> implements AsyncIterable<R> {
  readonly #source: StreamSource
  readonly #query: Queryable
  readonly #params: readonly unknown[] | undefined
  readonly #options: unknown

  /** @internal */
  constructor(source: StreamSource, query: Queryable, params: readonly unknown[] | undefined, options: unknown) {
    this.#source = source
    this.#query = query
    this.#params = params
    this.#options = options
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<R> {
    return new RowIterator<R>(this.#source, this.#query, this.#params, this.#options)
  }
}

interface ResolvedStreamOptions {
  readonly batchSize: number
  readonly lane: Lane | undefined
  readonly timeoutMs: number | undefined
  readonly signal: AbortSignal | undefined
}

function streamOptions(options: unknown, handle: boolean): ResolvedStreamOptions {
  // stream() was given more than 3 arguments (see extraArguments): refused when the iteration starts
  if (options instanceof DatabaseError) throw options
  const raw = requireObject('stream options', options)
  rejectUnknownKeys('stream', raw, handle ? HANDLE_STREAM_KEYS : POOL_STREAM_KEYS)
  const batchSize =
    raw.batchSize === undefined ? DEFAULT_STREAM_BATCH_SIZE : checkInteger('stream.batchSize', raw.batchSize, 1, MAX_STREAM_BATCH_SIZE)
  const lane = raw.lane === undefined ? undefined : checkEnum('stream.lane', raw.lane, LANES)
  const timeoutMs = raw.timeoutMs === undefined ? undefined : checkInteger('stream.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS)
  const signal = raw.signal as Partial<AbortSignal> | undefined
  if (
    signal !== undefined &&
    (typeof signal !== 'object' ||
      signal === null ||
      typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function' ||
      typeof signal.removeEventListener !== 'function')
  )
    throw configError('stream.signal', signal, 'must be an AbortSignal')
  return { batchSize, lane, timeoutMs, signal: signal as AbortSignal | undefined }
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true })
const NO_ROWS: readonly never[] = Object.freeze([])
const ignore = (): void => undefined

/** One iteration of a {@link RowStream}: one statement, one connection, one cursor. */
class RowIterator<R> implements AsyncIterableIterator<R> {
  readonly #source: StreamSource
  readonly #query: Queryable
  readonly #params: readonly unknown[] | undefined
  readonly #rawOptions: unknown
  #state: 'new' | 'open' | 'done' = 'new'
  #rows: readonly R[] = NO_ROWS
  #index = 0
  #loan: Loan | undefined
  #cursor: RowCursor<R> | undefined
  /** The cursor opened for this iteration, kept after it is closed: it tells what became of its statement. */
  #ran: RowCursor<R> | undefined
  /** Aborted by the deadline or the caller's signal; its reason is the stream's error. */
  readonly #stop = new AbortController()
  #stopped: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #signal: AbortSignal | undefined
  #pending: Promise<IteratorResult<R>> | undefined
  #ending: Promise<void> | undefined
  #failure: DatabaseError | undefined
  /** `#advance` is running: a deadline or abort then ends the stream through it (see {@link #halt}). */
  #advancing = false
  /** The deadline or the signal ended the stream while no `next()` was running: later ones reject with it. */
  #halted: DatabaseError | undefined
  #watch: { end(error: DatabaseError | undefined, server?: ConnectedServer): void } | undefined

  constructor(source: StreamSource, query: Queryable, params: readonly unknown[] | undefined, options: unknown) {
    this.#source = source
    this.#query = query
    this.#params = params
    this.#rawOptions = options
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<R> {
    return this
  }

  next(): Promise<IteratorResult<R>> {
    // rows fetched before close() revoked the lease are not handed out after it
    if (this.#index < this.#rows.length && this.#loan!.lease.active)
      return Promise.resolve({ value: this.#rows[this.#index++] as R, done: false })
    // one batch at a time: a call made while one is fetched waits for it
    const pending = this.#pending
    if (pending) return pending.then(this.#nextAfter, this.#nextAfter)
    const advancing = this.#advance()
    this.#pending = advancing
    const clear = (): void => {
      if (this.#pending === advancing) this.#pending = undefined
    }
    advancing.then(clear, clear)
    return advancing
  }

  readonly #nextAfter = (): Promise<IteratorResult<R>> => this.next()

  /** Ends the iteration early (a `break` in `for await`): the cursor is closed and the connection released. */
  async return(value?: unknown): Promise<IteratorResult<R>> {
    await this.#pending?.catch(ignore)
    await this.#finish(undefined)
    return { value: value as R, done: true }
  }

  /** Ends the iteration early, like {@link return}, and rejects with `error`. */
  async throw(error?: unknown): Promise<IteratorResult<R>> {
    await this.#pending?.catch(ignore)
    await this.#finish(undefined)
    throw error
  }

  async #advance(): Promise<IteratorResult<R>> {
    this.#advancing = true
    try {
      return await this.#step()
    } finally {
      this.#advancing = false
    }
  }

  async #step(): Promise<IteratorResult<R>> {
    if (this.#state === 'done') {
      // a stream the deadline or the signal is closing: its error once the connection is given back
      if (this.#halted) {
        await this.#ending?.catch(ignore)
        throw (this.#halted = this.#settled(this.#halted))
      }
      if (this.#closedEarly) throw (this.#closedEarly = this.#settled(this.#closedEarly))
      return DONE
    }
    try {
      if (this.#state === 'new') await this.#open()
      const rows = await this.#read()
      if (this.#closedEarly) throw (this.#closedEarly = this.#settled(this.#closedEarly))
      if (rows.length === 0) {
        await this.#finish(undefined)
        // the statement left a transaction open (see #end): rolled back at the release, not done
        if (this.#failure !== undefined) throw this.#failure
        return DONE
      }
      this.#rows = rows
      this.#index = 1
      return { value: rows[0] as R, done: false }
    } catch (err) {
      const error = this.#toError(err)
      await this.#finish(error)
      throw this.#settled(error)
    }
  }

  /**
   * `error`, which ended the stream, told what became of its statement once the cursor is closed (see
   * `RowCursor.outcome`): a write outside a transaction that already ran (Postgres: committed by its
   * cursor's Sync; SQLite: at its first step, by its reset) is `detail.outcome: 'committed'` (never
   * when that commit failed: a deferred foreign key), or `'unknown'` when
   * its commit was in flight, and never `retryable`. Only on this error path; an error that already
   * carries an outcome is kept.
   */
  #settled(error: DatabaseError): DatabaseError {
    const outcome = this.#ran?.outcome?.()
    if (outcome === undefined || error.detail?.outcome !== undefined) return error
    const what =
      outcome === OUTCOME_COMMITTED
        ? 'the statement had already run and its changes were committed: do not run it again as is'
        : 'the statement had already run and its commit was in flight: its outcome is unknown, it may have committed; check before running it again'
    return new DatabaseError(error.code, `${error.message} (${what})`, {
      backend: error.backend,
      sqlState: error.sqlState,
      sqliteCode: error.sqliteCode,
      poolStats: error.poolStats,
      cause: error.cause ?? error,
      retryable: false,
      detail: { ...error.detail, outcome },
    })
  }

  /** Set when the handle closed the stream before its end (see {@link #closeFromHandle}). */
  #closedEarly: DatabaseError | undefined
  /** `#open` waits for the statements issued before the stream on its lease (`lease.pending`). */
  #waitingTurn = false

  async #open(): Promise<void> {
    this.#state = 'open'
    const { access, hooks } = this.#source
    const options = streamOptions(this.#rawOptions, hooks !== undefined)
    const compiled = access.compile(this.#query, this.#params)
    this.#watch = access.watch(compiled)
    const manager = access.manager
    if (!manager.openCursor)
      throw new DatabaseError('CONFIGURATION', `the ${manager.backend} connection manager cannot stream rows (it has no openCursor)`, {
        backend: manager.backend,
      })
    this.#arm(options, manager.backend)
    const stop = this.#stop.signal
    if (stop.aborted) throw stop.reason
    if (hooks) {
      const lease = hooks.begin(() => this.#closeFromHandle())
      access.noteStatement(lease, compiled)
      this.#loan = {
        lease,
        end: (error) => {
          hooks.end(error)
          return access.afterStatement(lease)
        },
      }
    } else {
      // a setting changed on a lease of the stream's own is restored when it ends: refused, as pool.query() refuses it
      manager.checkLeaseFree?.(compiled)
      let lease: Lease<unknown>
      try {
        lease = await access.acquire(access.lane(compiled, options.lane), stop)
      } catch (err) {
        // the deadline or the signal took the caller out of the queue: the lane says why (ACQUIRE_TIMEOUT
        // naming stream.timeoutMs, made and counted there), an abort is the stream's own QUERY_CANCELLED
        throw stop.aborted && !DatabaseError.is(err, 'ACQUIRE_TIMEOUT') ? stop.reason : err
      }
      this.#loan = { lease, end: () => access.release(lease) }
      if (stop.aborted) throw stop.reason
    }
    const lease = this.#loan.lease
    // statements issued on the lease before the stream, still waiting for the event loop, run first
    // (a synchronous driver's fairness yield): the stream then sees what they wrote
    let waited = false
    if (lease.pending !== undefined) {
      // the deadline or the signal ends the wait at once (the statements before it are not touched)
      this.#stopped ??= new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), { once: true }))
      this.#waitingTurn = true
      try {
        while (lease.pending !== undefined && !stop.aborted && (this.#state as string) !== 'done') {
          waited = true
          await Promise.race([lease.pending, this.#stopped])
        }
      } finally {
        this.#waitingTurn = false
      }
    }
    // stopped while it waited its turn: its statement never ran
    if (stop.aborted) throw waited ? notStarted(stop.reason as DatabaseError) : stop.reason
    // closed by its handle while it waited its turn (see #closeFromHandle): never run, no cursor opened
    if ((this.#state as string) === 'done') throw this.#closedEarly ?? closedWaiting(manager.backend)
    try {
      this.#cursor = this.#ran = manager.openCursor<R>(lease.conn.native, compiled, { batchSize: options.batchSize })
    } catch (err) {
      throw access.fail(lease, err)
    }
  }

  /** Starts the deadline and listens to the caller's signal; both stop the stream through `#stop`. */
  #arm(options: ResolvedStreamOptions, backend: Backend): void {
    const { timeoutMs, signal } = options
    if (signal) {
      if (signal.aborted) {
        this.#halt(cancelled(backend, signal.reason))
        return
      }
      this.#signal = signal
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => {
        // still waiting for a connection, the stream leaves the queue with ACQUIRE_TIMEOUT (see markWaitDeadline)
        this.#halt(
          markWaitDeadline(
            new DatabaseError('QUERY_TIMEOUT', `stream exceeded its ${timeoutMs} ms deadline (stream.timeoutMs)`, {
              backend,
              retryable: false,
              detail: { timeoutMs },
            }),
            { timeoutMs, option: 'stream.timeoutMs', subject: 'the statement' },
          ),
        )
      }, timeoutMs)
    }
  }

  readonly #onAbort = (): void => {
    this.#halt(cancelled(this.#source.access.manager.backend, this.#signal?.reason))
  }

  /**
   * The deadline passed or the signal aborted. A `next()` running now rejects with `reason` (a read in
   * flight is abandoned, see {@link #read}). Otherwise the consumer is between `next()` calls (it may
   * never call one again: a `Readable` piped to a client that stopped reading), so the cursor is
   * closed and the connection given back now, as `return()` would: a stalled consumer never keeps a
   * lease, a SQLite read snapshot or a Postgres portal past the deadline. Its next `next()` rejects
   * with `reason`.
   */
  #halt(reason: DatabaseError): void {
    if (this.#stop.signal.aborted) return
    // rows already fetched are not handed out any more: the stream is over
    this.#rows = NO_ROWS
    this.#index = 0
    this.#stop.abort(reason)
    if (this.#advancing || this.#state !== 'open' || this.#ending !== undefined) return
    this.#halted = reason
    this.#finish(reason).catch(ignore)
  }

  /**
   * An empty batch is the end of the rows only while the lease is still the stream's: close() revoking
   * it while the batch was read (its deadline closes the cursor: SQLite's then reads as exhausted) cut
   * the result short, which is POOL_CLOSED, never a normal end of the iteration.
   */
  #checkedEnd(lease: Lease<unknown>, rows: R[]): R[] {
    if (rows.length === 0 && !lease.active) throw this.#source.access.closedError()
    return rows
  }

  async #read(): Promise<R[]> {
    const stop = this.#stop.signal
    if (stop.aborted) throw stop.reason
    const loan = this.#loan
    const cursor = this.#cursor
    // ended while the connection was being borrowed (the handle it runs on was released); close()
    // revoking the lease meanwhile is POOL_CLOSED, never a quiet end
    if (this.#state === 'done' || loan === undefined || cursor === undefined) {
      if (loan !== undefined && !loan.lease.active) throw this.#source.access.closedError()
      return []
    }
    if (!loan.lease.active) throw this.#source.access.closedError()
    const reading = cursor.read()
    if (this.#timer === undefined && this.#signal === undefined) {
      let batch: R[]
      try {
        batch = await reading
      } catch (err) {
        throw this.#source.access.fail(loan.lease, err)
      }
      return this.#checkedEnd(loan.lease, batch)
    }
    this.#stopped ??= new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), { once: true }))
    let rows: R[] | undefined
    try {
      rows = await Promise.race([reading, this.#stopped.then(() => undefined)])
    } catch (err) {
      throw this.#source.access.fail(loan.lease, err)
    }
    if (rows !== undefined && !stop.aborted) return this.#checkedEnd(loan.lease, rows)
    // the deadline or the signal won: the read in flight is given up (Postgres: cancelled, connection closed)
    reading.catch(ignore)
    const reason = stop.reason as DatabaseError
    throw cursor.abandon?.(reason) ?? reason
  }

  #toError(err: unknown): DatabaseError {
    if (DatabaseError.is(err)) return err
    return this.#source.access.manager.mapError(err)
  }

  /** Closes the cursor, then gives the connection back; once. */
  /**
   * The handle closed the stream before its end: its callback returned, or its transaction commits,
   * while the stream was open. A read still waiting, or a later one, rejects: ending the iteration
   * quietly would look like the end of the rows.
   */
  #closeFromHandle(): Promise<void> {
    // still waiting its turn behind the statements issued before it: its statement never ran (as on
    // Postgres, where the statement kept unsent is taken out: re-review r11 item 7)
    if (this.#waitingTurn) this.#closedEarly ??= closedWaiting(this.#source.access.manager.backend)
    this.#closedEarly ??= new DatabaseError(
      'QUERY_FAILED',
      "the stream was closed before its last row: its connection's callback returned (or its transaction ended) while the stream was open; read it to its end or break its loop inside the callback",
      { backend: this.#source.access.manager.backend, retryable: false },
    )
    return this.#finish(undefined)
  }

  #finish(error: DatabaseError | undefined): Promise<void> {
    this.#failure ??= error
    this.#ending ??= this.#end()
    return this.#ending
  }

  async #end(): Promise<void> {
    this.#state = 'done'
    this.#rows = NO_ROWS
    this.#index = 0
    clearTimeout(this.#timer)
    this.#signal?.removeEventListener('abort', this.#onAbort)
    const cursor = this.#cursor
    this.#cursor = undefined
    const loan = this.#loan
    this.#loan = undefined
    try {
      // close() is called synchronously here: a handle detaching right after sees the cursor closing
      if (cursor) await cursor.close()
    } catch (err) {
      if (loan) this.#source.access.fail(loan.lease, err)
    }
    // a stream on a lease of its own whose statement left a transaction open (`BEGIN`, `SAVEPOINT`):
    // the release rolls it back, so it is reported as pool.query() reports it (a handle's stream runs
    // in the handle's transaction: its callback decides)
    if (loan && this.#failure === undefined && this.#source.hooks === undefined) {
      const manager = this.#source.access.manager
      let state = manager.transactionState?.(loan.lease.conn.native)
      // an answer still on its way (Postgres) is settled; still unknown: neither idle nor open, the outcome is unknown
      // (the manager closes such a connection at its release: see transactionStateUnknownError)
      if (state === 'unknown' && manager.settledTransactionState) state = await manager.settledTransactionState(loan.lease.conn.native)
      if (state === 'open' || state === 'failed') this.#failure = transactionLeftOpenError(manager.backend, 'stream')
      else if (state === 'unknown' && manager.settledTransactionState)
        this.#failure = transactionStateUnknownError(manager.backend, 'the stream ended')
    }
    if (loan) await loan.end(this.#failure)
    // a multi-host target or a replica: the span names the server the stream's connection reached
    const serverOf = this.#source.access.manager.serverOf
    this.#watch?.end(this.#failure, loan && serverOf ? serverOf.call(this.#source.access.manager, loan.lease.conn.native) : undefined)
  }
}

function cancelled(backend: Backend, reason: unknown): DatabaseError {
  return new DatabaseError('QUERY_CANCELLED', 'the stream was cancelled (AbortSignal aborted)', {
    backend,
    retryable: false,
    cause: reason,
  })
}

/**
 * QUERY_FAILED for a stream its handle closed (its callback returned, or its transaction ended) while
 * it still waited its turn behind the statements issued before it on its lease: its statement never
 * ran, so it may be run again (`retryable: true`, `detail.started: false`).
 */
function closedWaiting(backend: Backend): DatabaseError {
  return new DatabaseError(
    'QUERY_FAILED',
    'the stream was closed (its handle released, or its transaction ended) while it still waited its turn behind the statements issued before it on its connection: it was never run',
    { backend, retryable: true, detail: { started: false } },
  )
}

/**
 * `reason` (the stream's deadline or abort) for a stream stopped while it still waited its turn behind
 * the statements issued before it on its lease: its statement never ran, so it may be run again
 * (`retryable: true`, `detail.started: false`), as a statement withdrawn from its turn is.
 */
function notStarted(reason: DatabaseError): DatabaseError {
  return new DatabaseError(
    reason.code,
    `${reason.message}, while it still waited its turn behind the statements issued before it on its connection: it was never run (nothing was cancelled)`,
    { backend: reason.backend, retryable: true, cause: reason.cause, detail: { ...reason.detail, started: false } },
  )
}
