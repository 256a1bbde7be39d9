import type { ReadFormats } from './postgres-read-formats'
import type { Client, CustomTypesConfig } from 'pg'
import { DatabaseError, type ReferencedHandle } from '@dbpool/core'
import type { ReadGuard } from './postgres-read-guard'
import type { StatementCache } from './postgres-statement-cache'

/** The pg.Client fields we read that @types/pg does not declare. */
interface PgClientInternals {
  /** From BackendKeyData. */
  readonly processID: number | null
  readonly secretKey: number | null
  /** `end()` was called (by dbpool or by the application on `conn.native.client`). */
  readonly _ending: boolean
  /** The socket has ended. */
  readonly _ended: boolean
  /** False once pg saw a socket or protocol error: pg refuses every further query. */
  readonly _queryable: boolean
  /** The statement being answered (outside pipeline mode). */
  readonly _activeQuery?: unknown
  /** Pipeline mode: statements written and not answered yet. */
  readonly _sentQueryQueue?: readonly unknown[]
  /** Statements not written yet. */
  readonly _queryQueue?: readonly unknown[]
  /** The server's last ReadyForQuery has come and no statement was written since (outside pipeline mode). */
  readonly readyForQuery?: boolean
  /** Pipeline mode: statements are written without waiting for the ones before (see statement sharing). */
  readonly pipeline?: boolean
}

/** What pg's queue takes: a Query, a cursor, a COPY stream, a probe; failed by pg (and by {@link PostgresConnection}) with handleError. */
interface PgSubmittable {
  handleError(err: Error, connection: unknown): void
}

const NOTHING_QUEUED: readonly object[] = Object.freeze([])

/** pg.Client's ref()/unref() of its socket, which @types/pg does not declare. */
interface PgClientRef {
  ref(): void
  unref(): void
}

/**
 * One physical Postgres connection: a pg.Client plus what the pool needs to know about it. The
 * client has an `error` listener from the moment it exists, so a socket error or a server kill is
 * recorded here (and reported through `onLost`), never thrown at the process.
 */
export class PostgresConnection implements ReferencedHandle {
  readonly client: Client
  /** @internal Its named prepared statements; `undefined` with `prepare: false` (or `pgbouncer: true`). */
  readonly statements: StatementCache | undefined
  /** The same client, seen with the fields @types/pg does not declare. */
  readonly #pg: PgClientInternals
  /** The first fatal problem seen; once set the connection is never reused. */
  #broken: Error | undefined
  #ready = false
  #closing = false
  #lostReported = false
  /**
   * Statements issued while pg had one in hand (see {@link submit}), in the order issued, handed to pg
   * one at a time as it becomes idle; `undefined` when none waits (no allocation on the usual path).
   */
  #waiting: object[] | undefined = undefined
  /** Holds on the statements kept by {@link submit} (see {@link hold}): while above 0, none is handed to pg. */
  #holds = 0
  /**
   * A cancel request sent on this connection was not confirmed (see {@link holdForCancel}): it may
   * still land on any statement sent here, so none is sent any more; they fail with this error.
   */
  #unsendable: Error | undefined = undefined
  /** Writes are held (the socket corked) until the end of this tick: see {@link holdWritesForTick}. */
  #holding = false
  readonly #onLost: (err: Error) => void
  /** The latest value of each parameter the server reported (ParameterStatus: at startup, and on change for GUC_REPORT settings). */
  readonly #reported = new Map<string, string>()
  /** The host this connection reached (one of the config's `hosts`, as written there: a name stays a name). */
  readonly host: string
  readonly port: number
  /**
   * The address it connected to: {@link host}, or, for a name a host walk resolved itself (several
   * hosts or `target_session_attrs`), the one address of it that was used. Cancel requests go there.
   */
  readonly address: string
  /**
   * @internal A statement sent on this session mentioned read-only mode (`BEGIN READ ONLY`,
   * `SET default_transaction_read_only`...): a later 25006 may be the application's own doing,
   * not a server that became read-only.
   */
  readOnlyByApp = false
  /**
   * @internal A statement on this session set read-only mode for the session itself (`SET
   * default_transaction_read_only = on`, also from `sessionInit`): unlike {@link readOnlyByApp} it
   * outlives the lease, until `sessionReset: 'clean'` resets the session.
   */
  sessionReadOnlyByApp = false
  /**
   * @internal A statement on this session may have put settings back to their defaults (`RESET ALL`,
   * `DISCARD ALL`, `RESET search_path`...: see `resetsSession`), undoing the pool's setup (the startup
   * SETs behind PgBouncer, `sessionInit`): the release runs the setup again before anyone else uses it.
   */
  setupLost = false
  /**
   * @internal What this connection ran after connecting (the startup SETs behind PgBouncer, then
   * `sessionInit`), as the manager that opened it (the primary's, a replica's) configured it: run
   * again on release after a reset (see {@link setupLost}) and by `sessionReset: 'clean'`.
   */
  setup: readonly string[] = []
  /**
   * @internal Part of {@link setup} is a plain SET a reset drops (not given as a startup parameter, or
   * given as one the server did not take as its default): statements are then read for resets (see
   * `resetsSession`), and a `conn.native` lent marks the setup lost. False when every setup statement
   * became a startup parameter (a reset, however written, returns to it).
   */
  setupResettable = false
  /** @internal The sessionInit settings sent as startup parameters on this connection (lower-cased names). */
  startupSettings: readonly string[] = []
  /**
   * @internal A read-lane connection (to a read replica, or the primary's read-only one used when no
   * replica may serve): a 25006 there is the application's write on the read lane, never a failover.
   */
  onReplica = false
  /**
   * @internal The pool made this read-lane session read-only (`default_transaction_read_only` on, at
   * startup or with SET after connecting): its release checks that it still is (see
   * `PostgresConnectionManager.reset`), so a lease that turned it off cannot hand a writable session
   * to the next read-lane borrower.
   */
  readOnlySession = false
  /**
   * @internal A statement on this read-only session may have turned `default_transaction_read_only`
   * off (`SET ... read_only`, `READ WRITE`, `RESET`, `DISCARD`, `set_config`): read on release when
   * the server does not report the setting (before PostgreSQL 14, through PgBouncer).
   */
  readOnlyMayBeLost = false
  /**
   * @internal The last server error of a statement on this connection since the last statement that
   * succeeded: in an aborted transaction (status `E`), the error that aborted it, which a later 25P02
   * refusal names as its cause.
   */
  abortedBy: DatabaseError | undefined = undefined
  /**
   * @internal The session ended while a statement that may have committed was in flight (a COMMIT):
   * its transaction's fate is unknown, not rolled back.
   */
  endedInDoubt = false
  /**
   * @internal The last text that succeeded opened a transaction it left open after it committed part
   * of its work (`insert ...; commit; begin; insert ...`: see `committedBeforeLeftOpen`).
   */
  committedBeforeLeftOpen = false
  /**
   * @internal This connection's type parsers (see `createTypeParsers`; its cursors use them too) and
   * the guard they report values they cannot read exactly to (see `ReadGuard`).
   */
  reads: { readonly types: CustomTypesConfig; readonly guard: ReadGuard } | undefined = undefined
  /**
   * @internal IntervalStyle and extra_float_digits are SET after connecting rather than sent as
   * startup parameters (a PgBouncer, declared in session mode or not declared: see `ReadFormats`).
   */
  formatsBySet = false
  /**
   * @internal The output formats the pool gave this session (DateStyle with the server's input order,
   * IntervalStyle: see `ReadFormats`), then, once its setup has run, what the server reported after
   * it (a `sessionInit` input order or interval style: see `sessionReadFormats`): the baseline the
   * release restores when a statement changed them.
   */
  readFormats: ReadFormats | undefined = undefined
  /**
   * @internal A statement since the last release may have changed `extra_float_digits`, which the
   * server does not report (see `mayChangeFloatDigits`; `conn.native` taken too): the release sets it
   * back before anyone else uses the connection.
   */
  floatDigitsMayHaveChanged = false

  /** @internal */
  constructor(
    client: Client,
    onLost: (err: Error) => void,
    statements?: StatementCache,
    at: { host: string; port: number; address?: string } = { host: '', port: 0 },
  ) {
    this.client = client
    this.statements = statements
    this.host = at.host
    this.port = at.port
    this.address = at.address ?? at.host
    this.#pg = client as unknown as PgClientInternals
    this.#onLost = onLost
    client.connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) =>
      this.#reported.set(msg.parameterName, msg.parameterValue),
    )
    client.on('error', (err) => {
      this.#flush(err)
      this.#fail(err)
    })
    client.on('end', () => {
      // pg's own error for what was in its queue when end() was called
      this.#flush(new Error('Connection terminated'))
      this.#fail(
        new Error(this.#pg._ending ? 'the connection was ended by a call to end() on its pg client' : 'the server closed the connection'),
      )
    })
    // pg is idle again (the last statement's ReadyForQuery, or a statement it refused before writing it)
    client.on('drain', () => this.#drain())
  }

  /**
   * @internal Hands `query` (a pg Query, cursor, COPY stream or probe) to pg when pg is idle, else
   * keeps it until pg is: pg is given one statement at a time outside pipeline mode, never a second
   * while one is in hand ("Calling client.query() when the client is already executing a query is
   * deprecated", pg 8.23; refused by pg 9), and statements go in the order issued. In pipeline mode
   * (statement sharing), and on a client pg refuses work on (lost, ended), it goes to pg at once.
   * While a {@link hold} is on, it is kept even when pg is idle. When the connection is lost, the
   * statements kept fail with the loss, as pg fails its own queue; after a cancel request that was
   * not confirmed (see {@link holdForCancel}) it fails not started, on the next tick.
   */
  submit<T extends object>(query: T): T {
    const unsendable = this.#unsendable
    if (unsendable !== undefined) {
      const connection = this.client.connection
      process.nextTick(() => (query as PgSubmittable).handleError(unsendable, connection))
    } else if (this.#waiting === undefined && this.#idle()) this.client.query(query as never)
    else (this.#waiting ??= []).push(query)
    return query
  }

  /**
   * @internal Hands `query` to pg ahead of every statement kept by {@link submit}, past any
   * {@link hold}: false, and nothing sent, unless pg is idle (nothing in hand). For the manager's
   * abort of a transaction whose result it refused, which must be the next statement the server sees.
   */
  submitFirst(query: object): boolean {
    if (this.#unsendable !== undefined || !this.#pgIdle()) return false
    this.client.query(query as never)
    return true
  }

  /**
   * @internal Keeps every statement kept by {@link submit}, and every one submitted from now on, from
   * pg until the returned function is called (once is enough; later calls do nothing): the manager
   * holds them while it still has to act on the statement just answered before the server sees the
   * next one (a result it refuses, see `#refusedAfterRun`; a cancel request in flight, see
   * {@link holdForCancel}). Released, the kept statements are handed over in the order issued.
   */
  hold(): () => void {
    this.#holds++
    let held = true
    return () => {
      if (!held) return
      held = false
      this.#holds--
      if (this.#holds === 0) this.#drain()
    }
  }

  /**
   * @internal A cancel request for the statement pg has in hand is on its way (`cancel` resolves true
   * once the server confirmed it): the statements issued behind it are kept until then, so that a
   * cancel landing late (its statement completed meanwhile) can never hit one of them. Not confirmed,
   * it may still land on whatever runs here: the statements kept, and any submitted later, fail not
   * started (CONNECTION_LOST, `retryable: true`, `detail.started: false`), the connection is never
   * reused, and it is closed as soon as pg has nothing in hand.
   */
  holdForCancel(cancel: Promise<boolean>): void {
    const release = this.hold()
    void cancel.then((confirmed) => {
      if (!confirmed) this.#cancelUnconfirmed()
      release()
    })
  }

  #cancelUnconfirmed(): void {
    const error = new DatabaseError(
      'CONNECTION_LOST',
      'the statement was never sent: a cancel request for the statement before it on its connection was not confirmed by the server, and could have cancelled this one instead, so the connection is closed',
      { backend: 'postgres', retryable: true, detail: { started: false } },
    )
    this.#unsendable ??= error
    this.markBroken(error)
    this.#flush(error)
    if (this.#pgIdle()) this.kill()
  }

  /** @internal The statements kept by {@link submit}, not handed to pg yet (the order issued). */
  get queued(): readonly object[] {
    return this.#waiting ?? NOTHING_QUEUED
  }

  /**
   * @internal Takes `query` out of the statements kept by {@link submit} (given up on before it was
   * sent). False when it is not there (handed to pg already).
   */
  unqueue(query: object): boolean {
    const waiting = this.#waiting
    const at = waiting === undefined ? -1 : waiting.indexOf(query)
    if (at < 0) return false
    waiting!.splice(at, 1)
    if (waiting!.length === 0) this.#waiting = undefined
    return true
  }

  /** Whether pg may be handed a statement now without holding it in its own queue (and no {@link hold} keeps it). */
  #idle(): boolean {
    const pg = this.#pg
    // refused by pg itself (lost, ended): at once, as pg would have it
    if (!pg._queryable || pg._ending) return true
    if (this.#holds > 0) return false
    // pipelined: at once too
    return pg.pipeline === true || this.#pgIdle()
  }

  /** pg has nothing in hand nor in its own queue (outside pipeline mode). */
  #pgIdle(): boolean {
    const pg = this.#pg
    return pg.readyForQuery === true && pg._activeQuery == null && (pg._queryQueue?.length ?? 0) === 0
  }

  /** pg became idle: the statements kept are handed over, one at a time (all at once when pipelined). */
  #drain(): void {
    // a cancel request not confirmed (see holdForCancel): closed once its statement is answered
    if (this.#unsendable !== undefined && this.#pgIdle() && !this.#closing) {
      this.kill()
      return
    }
    const waiting = this.#waiting
    if (waiting === undefined) return
    while (waiting.length > 0 && this.#idle()) this.client.query(waiting.shift() as never)
    if (waiting.length === 0 && this.#waiting === waiting) this.#waiting = undefined
  }

  /** The connection is gone: the statements kept fail with `err` on the next tick, as pg fails its queue (_errorAllQueries). */
  #flush(err: Error): void {
    const waiting = this.#waiting
    if (waiting === undefined) return
    this.#waiting = undefined
    // emptied in place: a #drain still looping over it hands none of them to pg
    const kept = waiting.splice(0)
    const connection = this.client.connection
    for (const query of kept) process.nextTick(() => (query as PgSubmittable).handleError(err, connection))
  }

  /** The backend's process id (`pg_backend_pid()`), once connected. */
  get processId(): number | null {
    return this.#pg.processID
  }

  /**
   * A setting the server reported with ParameterStatus (`server_version`, and since PostgreSQL 14
   * `in_hot_standby` and `default_transaction_read_only`), or `undefined`.
   */
  serverParameter(name: string): string | undefined {
    return this.#reported.get(name)
  }

  /** @internal The cancel key sent by the server at startup. */
  get secretKey(): number | null {
    return this.#pg.secretKey
  }

  /**
   * False once the socket failed, the server ended the session, a fatal error was seen, or it was
   * closed, including by the application: `end()` called on the pg client (ending or ended), pg
   * refusing queries after an error, or the socket destroyed. These are read from pg at once, not
   * from its `end` / `error` events, which arrive a tick or a round trip later: a connection released
   * in between must not go back to the free list.
   */
  get usable(): boolean {
    if (this.#broken !== undefined || this.#closing) return false
    const pg = this.#pg
    return !pg._ending && !pg._ended && pg._queryable && this.client.connection.stream.destroyed !== true
  }

  /** Why it is not usable, if it is not. */
  get brokenBy(): Error | undefined {
    return this.#broken
  }

  /** True after {@link close} began. */
  get closing(): boolean {
    return this.#closing
  }

  /** @internal Connect and session setup done: from now on a loss is reported through `onLost`. */
  markReady(): void {
    this.#ready = true
  }

  /**
   * @internal Never reuse this connection, and tell the pool now through `onLost` (an idle one is
   * closed at once, a leased one when its lease ends): its server is not the one to use any more
   * (a failover moved new connections elsewhere, or the server became read-only).
   */
  evict(reason: Error): void {
    this.#broken ??= reason
    if (!this.#ready || this.#lostReported || this.#closing) return
    this.#lostReported = true
    this.#onLost(reason)
  }

  /** @internal Never reuse this connection (fatal SQLSTATE, deadline, failed reset). */
  markBroken(reason: Error): void {
    this.#broken ??= reason
  }

  /**
   * pg.Client's ref() of its socket ({@link ReferencedHandle}): with the pool's `allowExitOnIdle`,
   * the socket is unref'd while the connection is idle and ref'd while it is leased, as pg-pool does.
   */
  ref(): void {
    const client: PgClientRef = this.client as unknown as PgClientRef
    client.ref()
  }

  /** pg.Client's unref() of its socket: see {@link ref}. */
  unref(): void {
    const client: PgClientRef = this.client as unknown as PgClientRef
    client.unref()
  }

  /**
   * @internal Holds the socket's writes until the end of the current tick (cork, then uncork in
   * `process.nextTick`), so every pipelined statement written in this tick leaves in one write
   * instead of one system call each, as postgres.js batches its writes. Statements sent from promise
   * continuations all run before the tick ends.
   */
  holdWritesForTick(): void {
    if (this.#holding) return
    const stream = this.client.connection.stream as { cork?: () => void; uncork?: () => void }
    if (stream.cork === undefined || stream.uncork === undefined) return
    this.#holding = true
    stream.cork()
    process.nextTick(() => {
      this.#holding = false
      stream.uncork?.()
    })
  }

  /** @internal Destroys the socket at once, without the Terminate handshake. */
  kill(): void {
    this.#closing = true
    this.client.connection.stream.destroy()
  }

  /**
   * @internal Closes gracefully when healthy and idle (Terminate, bounded by `timeoutMs`), else
   * destroys the socket at once: a connection with statements in flight or queued (a lease revoked by
   * `close()` at its deadline) is not waited for. pg's own `end()` destroys the socket under an active
   * statement, but in pipeline mode it waits for every statement on the wire to finish (then
   * Terminate), which could hold `close()` for as long as the longest statement runs. The statements
   * fail with the connection loss; one that may have committed reports its outcome as unknown.
   */
  async close(timeoutMs: number): Promise<void> {
    const wasUsable = this.usable
    this.#closing = true
    if (!wasUsable || this.#busy()) {
      this.client.connection.stream.destroy()
      return
    }
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.client.connection.stream.destroy()
        resolve()
      }, timeoutMs)
    })
    try {
      await Promise.race([this.client.end().catch(() => undefined), deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Statements answered, on the wire or queued on this client, in pg or kept by {@link submit} (pg's fields; missing ones count as busy). */
  #busy(): boolean {
    const pg = this.#pg
    if (pg._activeQuery || this.#waiting !== undefined) return true
    const sent = pg._sentQueryQueue
    const queued = pg._queryQueue
    return sent === undefined || queued === undefined || sent.length > 0 || queued.length > 0
  }

  #fail(err: Error): void {
    if (this.#closing) return
    this.#broken ??= err
    if (!this.#ready || this.#lostReported) return
    this.#lostReported = true
    this.#onLost(err)
  }
}
