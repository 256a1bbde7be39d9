import type { DatabaseError } from '../errors/database-error'
import type { CompiledQuery, SqlDialect } from '../sql/sql'
import type { HealthCheckDetail } from '../health/health-report'

/** The backends dbpool supports. */
export type Backend = 'postgres' | 'sqlite'

/** A pool lane: `write` always exists; `read` exists when the manager asks for readers. */
export type Lane = 'write' | 'read'

/** A normalised statement result: `rows` is always an array. */
export interface QueryResult<R = Record<string, unknown>> {
  /** Returned rows (empty for statements that return none). */
  readonly rows: R[]
  /** Rows returned by a query, or rows changed by a write. */
  readonly rowCount: number
  /** SQLite: the rowid of the last inserted row. */
  readonly lastInsertRowid?: number | bigint
  /**
   * Postgres: the command tag of the (last) statement, e.g. `'INSERT'`, `'COMMIT'`, or `'ROLLBACK'`
   * when the server answered a COMMIT of an aborted transaction by rolling it back.
   */
  readonly command?: string
}

/**
 * Where a connection stands with respect to a transaction, as the engine reports it:
 * `idle` (none open), `open`, `failed` (Postgres: aborted, every statement refused until ROLLBACK),
 * or `unknown` (Postgres: the server has not yet sent ReadyForQuery, which carries the status).
 */
export type TransactionState = 'idle' | 'open' | 'failed' | 'unknown'

/** Per-statement deadline and cancellation. */
export interface ExecuteOptions {
  /**
   * Client-side deadline in ms, from the call; on expiry the statement is cancelled and QUERY_TIMEOUT
   * thrown. One still waiting its turn on its connection then leaves the queue, never run
   * (`retryable: true`, `detail.started: false`), and the statement running there is not touched.
   */
  readonly timeoutMs?: number
  /** Aborting cancels the statement (QUERY_CANCELLED); one still waiting its turn leaves the queue, as for `timeoutMs`. */
  readonly signal?: AbortSignal
}

/** How a manager opens a cursor for `pool.stream()` (see {@link ConnectionManager.openCursor}). */
export interface CursorOptions {
  /** Rows fetched per batch (per round trip on Postgres, per slice of work on SQLite). */
  readonly batchSize: number
}

/**
 * One statement's rows, read a batch at a time on one connection ({@link ConnectionManager.openCursor}).
 * The pool reads until an empty batch, then closes it; it closes it early when the consumer stops.
 */
export interface RowCursor<R = Record<string, unknown>> {
  /**
   * The next rows (at most `batchSize`); an empty array once every row was read. Rejects with a
   * mapped DatabaseError (the statement failed, or its connection was lost).
   */
  read(): Promise<R[]>
  /**
   * Ends the statement early (Postgres: closes the portal; SQLite: resets the statement); idempotent,
   * never rejects. A connection that cannot be made clean is marked unusable, so its release destroys it.
   */
  close(): void | Promise<void>
  /**
   * Gives up on a `read()` still in flight at once (the stream's deadline passed or its signal
   * aborted): Postgres sends a cancel request and closes the connection (a cursor still waiting its
   * turn behind statements issued before it is taken out unsent instead, the connection kept).
   * Returns the error to report instead of `reason` when the backend knows more (Postgres: the
   * statement's commit was in flight, so it is restated with `detail.outcome: 'unknown'`; never sent,
   * `retryable: true` and `detail.started: false`), or nothing. Optional: a manager whose reads
   * cannot be interrupted leaves it out.
   */
  abandon?(reason: DatabaseError): DatabaseError | void
  /**
   * After `close()` (or a failed read): what became of a statement that may write and ran outside a
   * transaction, for the error that ended its stream early (the deadline, the signal, `close()`'s
   * deadline). `'committed'`: its work is known committed (Postgres: the portal's Close and Sync were
   * answered with ReadyForQuery `I` and no ErrorResponse before it, or its CommandComplete came with
   * the first batches; SQLite: an auto-commit statement makes its changes at its first step and its
   * reset committed them); `'unknown'`: its commit was in flight when the connection was lost;
   * undefined: it did not commit (the server rolled it back with the session, or it failed, its
   * commit too: a deferred foreign key), it is read-only, it ran inside a
   * transaction, or it never ran. The pool restates the stream's error with it as `detail.outcome`
   * (`retryable: false`) unless that error already carries one. Optional.
   */
  outcome?(): 'committed' | 'unknown' | undefined
}

/** Transaction isolation levels (SQLite always runs serializable, which satisfies every level). */
export const ISOLATION_LEVELS = ['read committed', 'repeatable read', 'serializable'] as const
/** One of {@link ISOLATION_LEVELS}. */
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number]

/** How a transaction begins. */
export interface TransactionSettings {
  readonly isolation?: IsolationLevel
  readonly readOnly?: boolean
  /** Postgres: `DEFERRABLE` (only with serializable read only). */
  readonly deferrable?: boolean
}

/**
 * Whether a session can be relied on through a manager's target, for features built on one
 * (LISTEN, session advisory locks, `sessionInit`, session reset). Postgres behind PgBouncer in
 * transaction mode has none: `sessions: false`, with the reason to put in a CONFIGURATION error.
 */
export interface SessionFeatures {
  /** The PgBouncer pooling mode in front of the server, or `false` for a direct connection. */
  readonly pgbouncer: 'transaction' | 'session' | false
  /** Whether state set by one statement (LISTEN, SET, a session lock, a named statement) is there for the next on the same connection. */
  readonly sessions: boolean
  /** Why not, when `sessions` is false. */
  readonly reason?: string
}

/** What a `failover` pool event carries: the server the pool used, and the one new connections now reach. */
export interface FailoverInfo {
  /** The previous server, `host:port` (IPv6 in brackets). */
  readonly from: string
  /** The server new connections reach now, `host:port`. */
  readonly to: string
  readonly lane: Lane
}

/** Callbacks the pool hands to every new connection. */
export interface ConnectionHooks {
  /** Call when the connection dies outside a statement (socket error, server kill). */
  onLost(error: DatabaseError): void
  /**
   * Call when a new connection reached another server than the connections before it (a multi-host
   * target after a failover): the pool emits `failover`. Optional for callers of `connect()`.
   */
  onFailover?(info: FailoverInfo): void
  /**
   * Aborts once the pool no longer wants the connection being opened (close() gave up on its
   * waiters): the manager should stop connecting at once (destroy the socket in flight, try no other
   * host) and reject. The pool rejects the connect with POOL_CLOSED then anyway, and destroys a
   * connection that still arrives. Optional for callers of `connect()`.
   */
  readonly signal?: AbortSignal
  /**
   * Call as a connect walks several hosts (a multi-host target): with `outcome` undefined when an
   * attempt on `host` (`db1:5432`, or `db1:5432 (10.0.0.2)` for one address of a name) starts, with
   * `outcome` (`CONNECTION_FAILED: timed out after 2000 ms`, `is read-only`) when it did not give the
   * connection. When the pool's own deadline (`createTimeoutMs`) ends the connect first, its
   * CONNECTION_FAILED names each host tried and why, and the one still under way. Optional.
   */
  onAttempt?(host: string, outcome?: string): void
}

/** How many lanes a manager wants and how big they may be. */
export interface LaneLayout {
  /** Cap on the write lane (SQLite: 1); `undefined` means the pool's `max`. */
  readonly writeMax?: number
  /** Read-only connections in the read lane; `0` means no read lane. */
  readonly readers: number
  /**
   * Servers of the read lane (Postgres replicas), as `host:port` labels: the read lane then holds a
   * pool per target, each up to the pool's `max` (`readers` is ignored), and `connect('read', hooks, i)`
   * opens a connection to target `i`. See the pool's `replicas` behaviour in docs/architecture.md.
   */
  readonly readTargets?: readonly string[]
  /**
   * With `readTargets`: `connect('read', hooks, readTargets.length)` opens a **read-only** connection
   * to the primary (Postgres: a session with `default_transaction_read_only=on`), on which read-lane
   * work runs when no replica may serve it, so a write there fails with READ_ONLY as on a replica.
   * Without it, that work runs on the write lane. Default: `false`.
   */
  readonly readOnlyFallback?: boolean
}

/**
 * What a replica reports about itself (see `ConnectionManager.replicaStatus`): its position in the
 * primary's write-ahead log and how far behind it is.
 */
export interface ReplicaStatus {
  /**
   * Whether the server is a standby (`pg_is_in_recovery()`); a promoted one is not, and the pool then
   * takes it out of the read lane at once (reason `not-standby`) and closes its connections.
   */
  readonly inRecovery: boolean
  /**
   * Everything up to this position is visible to new reads (Postgres: `pg_last_wal_replay_lsn()` on a
   * standby), as a number; 0 on a server that is not a standby (a promoted server writes on a
   * timeline of its own: its positions are not comparable with the primary's).
   */
  readonly position: bigint
  /** Replay lag in ms: 0 when it replayed all it received, else the age of the last replayed commit. */
  readonly lagMs: number
}

/**
 * A native connection holding something that keeps Node's event loop alive (a socket) may offer
 * Node's `ref()` / `unref()` pair, as `net.Socket` and `pg.Client` do. With the pool option
 * `allowExitOnIdle` the pool calls `unref()` when the connection goes idle and `ref()` when it is
 * leased (what pg-pool does with its clients), so an idle pool never keeps the process alive.
 */
export interface ReferencedHandle {
  /** Keep the process alive while this handle is open (Node's default). */
  ref(): void
  /** Let the process exit even though this handle is open. */
  unref(): void
}

/**
 * Where a manager's statements go, as OpenTelemetry's database conventions name it: span and metric
 * attributes `db.namespace`, `server.address` and `server.port`.
 */
export interface TelemetryTarget {
  /** `db.namespace`: the Postgres database name; the SQLite file path. */
  readonly namespace?: string
  /** `server.address`: the Postgres host name, IP address or Unix socket directory. */
  readonly serverAddress?: string
  /** `server.port`: the Postgres port. */
  readonly serverPort?: number
}

/** The server a connection reached (see {@link ConnectionManager.serverOf}). */
export interface ConnectedServer {
  /** `server.address`: host name, IP address or Unix socket directory. */
  readonly address: string
  /** `server.port`. */
  readonly port?: number
}

/**
 * Creates, checks, resets and destroys physical connections of one backend, runs statements on
 * them and maps native errors. A manager never pools: {@link DatabasePool} does.
 */
/** A lock taken with `ConnectionManager.exclusiveLock()`. */
export interface HeldLock {
  /** Frees the lock (idempotent; never throws). */
  release(): void
}

export interface ConnectionManager<C = unknown> {
  /** Which backend this is. */
  readonly backend: Backend
  /** Placeholder style for compiled `sql` fragments. */
  readonly dialect: SqlDialect
  /** The redacted target, e.g. `postgres://app@db:5432/ledger`. Never contains a password. */
  readonly target: string
  /** Lanes this manager needs. */
  readonly lanes: LaneLayout
  /** Where statements go, for span and metric attributes. Default: only `db.system.name` is set. */
  readonly telemetryTarget?: TelemetryTarget
  /**
   * The server `conn` reached, when that can differ from {@link telemetryTarget} (a multi-host target,
   * read replicas): the pool puts it in `server.address` / `server.port` of the statement's span and
   * `db.client.operation.duration` instead of the target's first host. Absent: the target is used.
   */
  serverOf?(conn: C): ConnectedServer
  /**
   * Hides the secrets this manager knows (passwords it handed to the driver) in a text bound for a log
   * line or a span. Default: none beyond what the pool always hides (passwords in URLs).
   */
  redact?(text: string): string
  /**
   * Told each time the application reads `PoolConnection.native` of this connection (before it gets
   * it): what it runs there bypasses {@link execute}, so state the manager keeps from the statements
   * it saw may be stale (SQLite: the `*` check then reads every schema's version, a TEMP table or an
   * ATTACH done there included). Synchronous and cheap; absent: nothing to note.
   */
  nativeLent?(conn: C): void
  /** What sessions can be relied on for (see {@link SessionFeatures}); absent means a plain session. */
  readonly sessionFeatures?: SessionFeatures
  /**
   * Opens a connection for a lane, with session setup applied; `target`: the index of a read target
   * (`lanes.readTargets`) for the read lane. Throws a mapped DatabaseError.
   */
  connect(lane: Lane, hooks: ConnectionHooks, target?: number): Promise<C>
  /**
   * How long a {@link connect} for `lane` (and `target`) may take by the manager's own deadlines, in
   * ms, when the backend has any (Postgres: a multi-host walk gives each host libpq's
   * `connect_timeout`; an explicit `connectTimeoutMs`). The pool waits for a connect the longer of
   * this and its `createTimeoutMs`, so its deadline never cuts a walk before the later hosts are
   * tried. Absent: `createTimeoutMs` alone.
   */
  connectDeadlineMs?(lane: Lane, target?: number): number
  /** Cheap, synchronous: false once the connection ended or saw a fatal error. */
  isUsable(conn: C): boolean
  /** A real round trip, bounded by `timeoutMs`. */
  ping(conn: C, timeoutMs: number): Promise<void>
  /**
   * On release: roll back an open transaction; throw (or reject) if the connection can't be made
   * clean. Return nothing when there is nothing to do: the release then stays synchronous.
   */
  reset(conn: C): void | Promise<void>
  /** Closes the connection; never throws. */
  destroy(conn: C): Promise<void>
  /**
   * Ends a leased connection whose server stopped answering, at once, without a goodbye: the
   * statement in flight on it fails (CONNECTION_LOST) instead of waiting for an answer that will not
   * come, and the connection is never reused (`isUsable` false; the lease's release destroys it).
   * The pool calls it on a replica's leased connections when its keepalive pass finds the replica
   * not answering. Optional: without it, such a statement waits for its own deadline. Never throws.
   */
  interrupt?(conn: C, reason: DatabaseError): void
  /**
   * Optional: the pool lends a write-lane connection for work asked on the read lane while it has no
   * read lane (`{ lane: 'read' }` on `query`, `stream`, `withConnection`; SQLite with `readers: 0`, a
   * rollback-journal file, `:memory:`). The manager makes the connection refuse writes until its
   * `reset` (the release), so that such work behaves as on a read-lane connection whatever the lane
   * layout (SQLite: `PRAGMA query_only`, READ_ONLY). Such work then always takes a lease (never the
   * lease-free path). Never throws: a connection that cannot be made read-only is marked unusable.
   * Without it (Postgres without replicas), read-lane work runs on the write lane unchanged.
   */
  lendForRead?(conn: C): void
  /** Runs one statement; throws a mapped DatabaseError. */
  execute<R = Record<string, unknown>>(conn: C, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>>
  /**
   * Synchronous drivers only (better-sqlite3): runs one auto-commit statement to completion before
   * returning, throwing a mapped DatabaseError. When present, `pool.query()` runs a statement directly
   * on an idle connection of its lane instead of taking a lease: nothing can interleave with a
   * synchronous statement, so a lease would only add cost. Undefined when the statement must wait
   * for the event loop before it can run (SQLite: a lock another connection holds; the attempt
   * changed nothing): the pool then runs it on a lease through `execute`, which waits off the thread.
   *
   * After a statement on a write-lane connection the pool reads `transactionState` and rolls back a
   * transaction the text left open (TRANSACTION_ROLLED_BACK). On a read-lane connection it does not
   * (the point-read hot path): the manager throws `transactionLeftOpenError` (`@dbpool/core/internal`)
   * itself when a statement that can open one (`BEGIN`, `SAVEPOINT`, a script) left one open, and the
   * pool, as after any error of this path, resets the connection (`reset`: ROLLBACK).
   */
  executeSync?<R = Record<string, unknown>>(conn: C, query: CompiledQuery): QueryResult<R> | undefined
  /**
   * Synchronous drivers only: a statement on a leased connection (a transaction's, a `withConnection`
   * callback's) without a deadline or signal, run to completion now and its result returned, as
   * `execute` would resolve; or undefined, without running anything (or after an attempt that changed
   * nothing: SQLite found a lock another connection holds), when the driver wants the event loop to
   * turn first (the pool then calls `execute`, which yields or waits, then runs it). Throws what
   * `execute` rejects with. Saves `execute`'s promise and async frame per statement: a SQLite
   * transaction's BEGIN, statements and COMMIT each ran through two of them (see docs/architecture.md,
   * "Hot path").
   */
  executeNow?<R = Record<string, unknown>>(conn: C, query: CompiledQuery): QueryResult<R> | undefined
  /**
   * Pipelining drivers only (pg.Client in pipeline mode): how many lone auto-commit statements may be
   * in flight on one connection. Above 1, `pool.query()` shares connections between callers instead
   * of queueing them (see `canPipeline`), joining only connections whose statements in flight are all
   * reads (`canPipeline` said `'read'`), and, while an exclusive lease is out, none whose oldest
   * statement has run longer than `STALLED_HEAD_MS` (25 ms): it waits for a connection of its own,
   * bounded by `acquireTimeoutMs`.
   */
  readonly pipelineDepth?: number
  /**
   * Whether a statement may share a connection: no transaction control, no session state. `'read'`:
   * it may, and it cannot wait on a row lock (Postgres: a SELECT known read-only, no locking clause),
   * so other statements may be pipelined behind it; `true`: it may, but nothing joins behind it (a
   * write may wait on a row lock the caller of a later statement holds). Called per statement: cache
   * the verdict per text. Default: no.
   */
  canPipeline?(query: CompiledQuery): boolean | 'read'
  /**
   * Runs a statement that may share the connection with other in-flight statements (switching the
   * connection to pipeline mode; `reset` switches it back). Default: `execute`.
   */
  executeShared?<R = Record<string, unknown>>(conn: C, query: CompiledQuery): Promise<QueryResult<R>>
  /**
   * Streaming drivers: opens a cursor over `query`'s rows on `conn` (Postgres: a server-side portal
   * through pg-cursor; SQLite: better-sqlite3's `iterate()`). Checks the text and parameters like
   * `execute` before anything is sent (INVALID_PARAMETER, SYNTAX_ERROR; thrown synchronously). The
   * pool holds the connection's lease until the cursor is closed. Without it, `pool.stream()` is
   * refused with CONFIGURATION.
   */
  openCursor?<R = Record<string, unknown>>(conn: C, query: CompiledQuery, options: CursorOptions): RowCursor<R>
  /**
   * The engine's view of the connection's transaction, read cheaply and synchronously (Postgres:
   * the ReadyForQuery status; SQLite: `sqlite3_get_autocommit`, and `failed` once a statement failed
   * inside the transaction, which dbpool then aborts as Postgres does). `transaction()` uses it to notice a
   * transaction the engine aborted or ended by itself. Default: not known (nothing is checked).
   */
  transactionState?(conn: C): TransactionState
  /**
   * Whether the text just run on the connection, which left a transaction open, may have committed
   * part of its work before that transaction opened (SQLite: a script whose own COMMIT ran before its
   * BEGIN, `insert ...; commit; begin; insert ...`). `pool.query()` then reports the transaction it
   * rolls back with `detail.outcome: 'unknown'` (see `transactionLeftOpenError`), never as if nothing
   * of the text was kept. Default: no.
   */
  committedBeforeLeftOpen?(conn: C): boolean
  /**
   * The transaction state once the engine has reported it, for a state {@link transactionState} gives
   * as `unknown` (Postgres: a failed statement settles before the server's ReadyForQuery, which
   * carries the status; statements issued and not awaited still queued): waits until every statement
   * issued on the connection is answered, bounded by the manager (then `unknown`, which callers count
   * as possibly open, never as idle, and report as an unknown outcome, QUERY_FAILED `detail.outcome:
   * 'unknown'`; a manager should then make the connection unusable, so it is closed at its release,
   * never rolled back and reused behind statements still running); never rejects. `withConnection` asks it when its callback
   * returned, `conn.transaction()` before it decides between a transaction and a savepoint, `pool.query()`
   * and a stream after their statement. Default: `transactionState`.
   *
   * `options.predict` (`conn.transaction()`): when the state before the statements still unanswered
   * is known and none of them can begin or end a transaction (a manager decides what it can tell from
   * their text; one failing inside a transaction leaves it failed, a savepoint's case as open is),
   * answers that state at once instead of waiting: work queued behind them on the connection runs
   * after them in order anyway (as long as they run), so a transaction beside a slow awaited
   * statement is not refused.
   */
  settledTransactionState?(conn: C, options?: { readonly predict?: boolean }): Promise<TransactionState>
  /**
   * A lock held across connections, pools and processes on this database until its `release()`, for
   * work that runs statements outside one transaction and must not interleave with another run of
   * it (SQLite: Kysely's Migrator with `disableTransactions`, whose statements each commit on their
   * own). SQLite: an exclusive lock on `<database>-<name>.lock`, a file next to the database that SQLite
   * locks and the operating system frees when the holding process dies; waits (polling, off the
   * event loop) up to `timeoutMs`, then rejects with BUSY; a lock file it cannot create or open is
   * CONFIGURATION (`detail.lockFile`); an in-memory or `readonly` pool takes none (resolves a no-op
   * lock). Absent: the backend needs none (Postgres has advisory locks, which the caller takes itself).
   * `signal` (the pool's close()) ends the wait: the lock is not taken, the call rejects (any error;
   * the pool reports POOL_CLOSED).
   */
  exclusiveLock?(name: string, timeoutMs: number, signal?: AbortSignal): Promise<HeldLock>
  /** The `BEGIN ...` text for these settings; throws CONFIGURATION for settings the backend refuses. */
  beginStatement(settings: TransactionSettings): string
  /** Maps a native error to a DatabaseError. */
  mapError(err: unknown): DatabaseError
  /** The lane a single auto-commit statement runs on. Default: `write`. */
  route?(query: CompiledQuery): Lane
  /**
   * A `pool.query` statement (no lease of the caller's) about to wait for a lease of its own because
   * no connection was idle, or a `pool.stream()` about to take one: throws to refuse it before it
   * waits or runs (SQLite: a PRAGMA that sets a connection setting, which the release would undo at
   * once). `@dbpool/kysely` asks it for a statement Kysely ran alone on a connection it acquired for
   * it. Optional.
   */
  checkLeaseFree?(query: CompiledQuery): void
  /**
   * Whether a statement is known not to write (conservative: `false` when in doubt). With read targets
   * and `readYourWrites`, a statement that is not records the write position before its lease ends.
   * Default: nothing is known read-only.
   */
  isReadOnly?(query: CompiledQuery): boolean
  /** With read targets: how far a target's connection has replayed and how far behind it is, bounded by `timeoutMs`. */
  replicaStatus?(conn: C, timeoutMs: number): Promise<ReplicaStatus>
  /**
   * With `readYourWrites`: the write position of the server of a write-lane connection, asked right
   * after a write committed there (Postgres: `pg_current_wal_insert_lsn()`), bounded by `timeoutMs`.
   */
  writePosition?(conn: C, timeoutMs: number): Promise<bigint>
  /** With read targets: whether the pool records write positions and waits for replicas to reach them. Default: `false`. */
  readonly readYourWrites?: boolean
  /** With read targets: the lag beyond which a replica is taken out, in ms. Default: `10000`. */
  readonly maxReplicaLagMs?: number
  /** Backend-specific health checks (SQLite integrity, WAL size, ...), run on a leased connection. */
  healthChecks?(conn: C, options: { readonly deep: boolean; readonly timeoutMs: number }): Promise<HealthCheckDetail[]>
  /** Called once after the pool destroyed every connection. */
  end?(): Promise<void>
}
