import { Client, type QueryResult as PgQueryResult, type TransactionStatus } from 'pg'
import {
  DatabaseConfig,
  DatabaseError,
  isOutcomeUnknown,
  redactSecrets,
  configError,
  type CompiledQuery,
  type ConnectedServer,
  type ConnectionHooks,
  type ConnectionManager,
  type CursorOptions,
  type DatabaseOptions,
  type ExecuteOptions,
  type HealthCheckDetail,
  type Lane,
  type LaneLayout,
  type ResolvedHost,
  type SessionFeatures,
  type QueryResult,
  type ReplicaStatus,
  type RowCursor,
  type TransactionSettings,
  type TelemetryTarget,
  type TransactionState,
} from '@dbpool/core'
import { abortedTransactionError, checkExecuteOptions, isErrorLike } from '@dbpool/core/internal'
import { isIP } from 'node:net'
import { addressesOf, connectingSocket } from './postgres-addresses'
import { sendCancelRequest } from './postgres-cancel'
import { PostgresConnection } from './postgres-connection'
import { PostgresCursor } from './postgres-cursor'
import { isFatalSqlState, isParameterCountMismatch, mapPostgresError, pgBouncerError, setupFailure, sqlStateOf } from './postgres-errors'
import {
  CLEAN_SESSION_SQL,
  resolveManagerOptions,
  type PostgresManagerOptions,
  type ResolvedPostgresManagerOptions,
} from './postgres-options'
import { pgQuery, type PgQuery } from './postgres-params'
import { RerunRefused, runStatement, runText, runTextFirst, trackBindComplete, withdrawQueued, type PgAnswer } from './postgres-statement'
import { isCachedPlanChange, statementInvalidation } from './postgres-statement-invalidation'
import { resultColumnsError } from './postgres-columns'
import { StatementCache, type CachedStatement, type SharedGeneration } from './postgres-statement-cache'
import {
  fallsBackToPlain,
  isConnectTimeout,
  isSecured,
  isTlsRefusal,
  retriesWithoutTls,
  retriesWithTls,
  tlsOptions,
  type PgSsl,
} from './postgres-tls'
import { createTypeParsers } from './postgres-types'
import { findUnreadable, ReadGuard, unreadableError } from './postgres-read-guard'
import { ArrayParameterCheck, checkState, withdrawCheck } from './postgres-array-params'
import {
  refusesReadFormatStartup,
  readFormatProblem,
  readFormatsChanged,
  readFormatSetup,
  readFormatStartup,
  readFormatsOf,
  sessionReadFormats,
  holdsReadFormats,
  restoreReadFormatsSql,
  type ReadFormats,
  RESTORE_FLOAT_DIGITS_SQL,
  mayChangeFloatDigits,
  executesPrepared,
  floatDigitsChangeInTransactionMode,
  SHOW_READ_FORMATS_SQL,
} from './postgres-read-formats'
import { startDeadline, type Deadline } from './postgres-deadline'
import { ConnectBudget } from './postgres-connect-budget'
import { hostLabel, mismatchOf, passesOf, reportsReadOnly, roleKindOf } from './postgres-session-attrs'
import { sessionFeaturesOf, sessionSettingsThroughPgBouncer, TRANSACTION_MODE_REASON } from './postgres-pgbouncer'
import { sessionStatement } from './postgres-session-statement'
import { plainStatement } from './postgres-plain-statement'
import { isReadOnlyStatement } from './postgres-read-only'
import { startupOptionsReadOnly } from './postgres-startup-read-only'
import { resetsSession } from './postgres-session-restore'
import { refusesStartupSetting, startupOptionError, startupParameterOf, startupSettingsCheckSql } from './postgres-session-startup'
import {
  checkCancelledError,
  endsSession,
  innerCommitPoint,
  mayCommitInBody,
  mayHavePartlyCommitted,
  outcomeUnknown,
  partlyCommittedError,
  StatementProgress,
  unknownOutcomeError,
} from './postgres-outcome'
import {
  parseLsn,
  READ_ONLY_SESSION_SQL,
  readOnlyViaOf,
  replicaPgBouncerMode,
  REPLICA_OPTION_KEYS,
  REPLICA_SESSION_OPTIONS,
  REPLICA_STATUS_SQL,
  replicaStatusOf,
  resolveReplicaOptions,
  WRITE_POSITION_SQL,
  type ReadOnlyVia,
  type ResolvedReplicaOptions,
} from './postgres-replicas'

/** Why a guarded statement stopped waiting for the server. */
type Stop = 'deadline' | 'abandoned' | 'withdrawn'

const MAX_REMEMBERED_SECRETS = 4
/** Statement texts whose canPipeline verdict is kept (forgotten all at once beyond this). */
const MAX_REMEMBERED_TEXTS = 512
/** The longest text whose sessionStatement verdict is kept (a longer one is judged each time). */
const MAX_REMEMBERED_TEXT_LENGTH = 8192

// statements that change transaction or session state, hold a portal, or can commit: never pipelined
// `execute`: an SQL-level prepared statement runs a text this one does not show (review r14d: one
// setting extra_float_digits, shared, reached the statements pipelined after it before any release);
// also inside a statement (`EXPLAIN ANALYZE EXECUTE p`, `CREATE TABLE t AS EXECUTE p`: see executesPrepared)
const UNSHAREABLE =
  /^(--|\/\*|(begin|start|commit|end|rollback|abort|savepoint|release|prepare|execute|deallocate|set|reset|discard|lock|listen|unlisten|notify|declare|fetch|move|close|copy|do|call|vacuum|load|create\s+(temp|temporary|local\s+temp))\b)/i

// what a statement without parameters must start with to be named: a query or DML, no DDL
const QUERY_OR_DML = /^\s*(select|with|values|table|insert|update|delete|merge)\b/i

/**
 * The Postgres {@link ConnectionManager}: one `pg.Client` per pooled connection (no pg.Pool), with
 * libpq-style TLS, a password function called per connection, session timeouts, statement deadlines
 * that cancel on the server and close the connection, release hygiene from the transaction status,
 * and a flat SQLSTATE table. Usually built by {@link createPostgresPool}.
 */
export class PostgresConnectionManager implements ConnectionManager<PostgresConnection> {
  readonly backend = 'postgres' as const
  readonly dialect = 'postgres' as const
  /** One lane; with `replicas`, a read lane whose targets are the replicas. */
  readonly lanes: LaneLayout
  /** The validated read-replica options (`replicas`, `readRouting`, `readYourWrites`, `maxReplicaLagMs`). */
  readonly replicaOptions: ResolvedReplicaOptions
  /** With replicas and `readYourWrites`: the pool records write positions. */
  readonly readYourWrites: boolean
  /** With replicas: the lag beyond which one is taken out. */
  readonly maxReplicaLagMs: number
  /** With `readRouting: 'auto'`: lone statements known read-only go to the read lane. */
  readonly route?: (query: CompiledQuery) => Lane
  /** A manager per replica: connects the read lane's connections (same options, the replica's own config). */
  readonly #replicaManagers: readonly PostgresConnectionManager[]
  /** The redacted target, e.g. `postgres://app@db:5432/ledger`. */
  readonly target: string
  /** The validated target settings. */
  readonly config: DatabaseConfig
  /** The validated manager options. */
  readonly options: ResolvedPostgresManagerOptions
  /** Statements `pool.query` may pipeline on one connection (1: no sharing). */
  readonly pipelineDepth: number
  /** `db.namespace` (the database), `server.address` and `server.port` of every span and operation metric. */
  readonly telemetryTarget: TelemetryTarget
  /**
   * With several hosts or with replicas: the host and port a connection reached, which the pool puts in
   * a statement's `server.address` / `server.port` instead of the first host of the target.
   */
  readonly serverOf?: (conn: PostgresConnection) => ConnectedServer
  /**
   * What a session can be relied on for: `sessions: false` behind PgBouncer in transaction mode
   * (`pgbouncer` names the mode), read by features that need a session (LISTEN, session locks).
   */
  readonly sessionFeatures: SessionFeatures
  /**
   * What every new connection runs after connecting: behind PgBouncer the settings sent with SET
   * instead of as startup parameters (see sessionSettingsThroughPgBouncer), then `sessionInit`. Run
   * again on release after a statement that reset settings (see resetsSession) and after
   * `sessionReset: 'clean'`: both drop what a SET established. Each connection keeps it (`setup`).
   */
  #sessionSetup: readonly string[]
  /**
   * The `sessionInit` statements of the simple form `SET [SESSION] name TO value` (see
   * startupParameterOf), also sent as startup parameters on a direct connection (not behind
   * PgBouncer, which refuses them): the session's default is then the pool's value, so any reset
   * returns to it. Statement text to its parameter.
   */
  readonly #startupSettings = new Map<string, { readonly name: string; readonly value: string }>()
  /**
   * The output formats every connection is given (see ReadFormats), learnt from the server's defaults
   * by the first connection (see readFormatsOf): `undefined` until then.
   */
  #formats: ReadFormats | undefined
  readonly #ssl: PgSsl
  /** Passwords handed to pg recently, scrubbed from every native message. */
  readonly #secrets: string[] = []
  /** #lone's verdict per statement text. */
  readonly #lonely = new Map<string, boolean | 'read'>()
  /** What the array-parameter check learnt (see ArrayParameterCheck). */
  readonly #arrayCheck = new ArrayParameterCheck()
  /**
   * Connections whose array check is in flight (a Parse/Describe probe the first time a text carries
   * an array): the statements issued on them meanwhile, sent in order once the checked statement is
   * queued in pg (see #sendInTurn). Without it a statement issued after an array statement ran first.
   */
  readonly #held = new WeakMap<PostgresConnection, (() => void)[]>()
  /** settledTransactionState's waits per connection, told when its {@link #held} queue has been sent (see #release). */
  readonly #heldWaits = new WeakMap<PostgresConnection, Set<() => void>>()
  /** sessionStatement's verdict per statement text (PgBouncer in transaction mode checks every statement). */
  readonly #sessionNeeds = new Map<string, string | false>()
  /**
   * Bumped when the server reports a changed result type, or DDL run through the pool is committed:
   * every connection's statements are re-prepared. The primary's read-only manager shares the write
   * lane's (the same server: DDL run through the write lane reaches its statements too).
   */
  #statementGeneration: SharedGeneration = { value: 0 }
  /** The startup `options` (PGOPTIONS included) turn `default_transaction_read_only` on (see startupOptionsReadOnly). */
  readonly #readOnlyOptions: boolean
  /** Write-lane connections not destroyed yet: evicted when new ones reach another server. */
  readonly #live = new Set<PostgresConnection>()
  /** The server (`host:port`) the latest write-lane connection reached. */
  #current: string | undefined
  /**
   * A manager of read-lane connections (a replica's, the primary's read-only one): how its sessions
   * are made read-only (see ReadOnlyVia); `undefined` on the write lane's manager.
   */
  #readOnlyVia: ReadOnlyVia | undefined
  /**
   * With replicas (not behind PgBouncer in transaction mode, where no setting lasts beyond a
   * transaction): read-only connections to the primary, read target `replicas.length`
   * (`lanes.readOnlyFallback`), for read-lane work no replica may serve.
   */
  readonly #primaryReader: PostgresConnectionManager | undefined

  constructor(
    config: DatabaseConfig | DatabaseOptions | string,
    options?: PostgresManagerOptions,
    defaults: { readonly connectTimeoutMs?: number } = {},
  ) {
    this.config = withEnvStartupOptions(toDatabaseConfig(config, options?.connectTimeoutMs), process.env)
    this.#readOnlyOptions = startupOptionsReadOnly(this.config.options) === true
    this.options = resolveManagerOptions(options, defaults, { pgbouncer: this.config.pgbouncer })
    this.target = this.config.toString()
    this.#ssl = tlsOptions(this.config)
    this.pipelineDepth = this.options.pipelineDepth
    this.telemetryTarget = { namespace: this.config.database, serverAddress: this.config.host, serverPort: this.config.port }
    this.sessionFeatures = sessionFeaturesOf(this.options.pgbouncer)
    const startupSettings = this.options.pgbouncer ? sessionSettingsThroughPgBouncer(this.options.pgbouncer, this.config) : []
    this.#sessionSetup = Object.freeze([...startupSettings, ...this.options.sessionInit])
    if (!this.options.pgbouncer)
      for (const text of this.options.sessionInit) {
        const parameter = startupParameterOf(text)
        if (parameter !== undefined) this.#startupSettings.set(text, parameter)
      }
    this.replicaOptions = resolveReplicaOptions((options ?? {}) as Record<string, unknown>, process.env, this.config)
    // `pgbouncer` describes the primary's target: a replica's comes from its own config (see replicaPgBouncerMode)
    const perReplica = Object.fromEntries(
      Object.entries(options ?? {}).filter(([key]) => key !== 'pgbouncer' && !(REPLICA_OPTION_KEYS as readonly string[]).includes(key)),
    ) as PostgresManagerOptions
    this.#replicaManagers = this.replicaOptions.replicas.map((replica) => {
      const pgbouncer = replicaPgBouncerMode(replica, this.options.pgbouncer)
      // a standby replays DDL at its own pace, unseen: a statement parsed there before it replays a
      // CREATE or ALTER run through the pool would keep the old table or parameter types for good.
      // Nothing is named on a replica: each statement is parsed at its run, against what it replayed
      const manager = new PostgresConnectionManager(replica, { ...perReplica, pgbouncer, replicas: [], prepare: false }, defaults)
      manager.#makeReadOnly(readOnlyViaOf(pgbouncer, false))
      return manager
    })
    const readTargets = this.#replicaManagers.map((m) => hostLabel(m.config.host, m.config.port))
    if (readTargets.length > 0 && this.options.pgbouncer !== 'transaction') {
      this.#primaryReader = new PostgresConnectionManager(
        this.config,
        { ...perReplica, pgbouncer: this.options.pgbouncer, replicas: [] },
        defaults,
      )
      this.#primaryReader.#makeReadOnly(readOnlyViaOf(this.options.pgbouncer, true))
      // the same server as the write lane: its DDL (committed, published) re-prepares these statements too
      this.#primaryReader.#statementGeneration = this.#statementGeneration
    }
    this.lanes = readTargets.length > 0 ? { readers: 0, readTargets, readOnlyFallback: this.#primaryReader !== undefined } : { readers: 0 }
    this.readYourWrites = readTargets.length > 0 && this.replicaOptions.readYourWrites
    this.maxReplicaLagMs = this.replicaOptions.maxReplicaLagMs
    if (readTargets.length > 0 && this.replicaOptions.readRouting === 'auto')
      this.route = (query) => (isReadOnlyStatement(query.text) ? 'read' : 'write')
    if (readTargets.length > 0 || this.config.hosts.length > 1) this.serverOf = (conn) => ({ address: conn.host, port: conn.port })
  }

  /**
   * A replica connect that PgBouncer refused for the read-only startup option ("unsupported startup
   * parameter: options"): the replica's own URL does not say it is behind PgBouncer (the primary's
   * `pgbouncer` option does not apply to replicas). Same code, with the fix in the message.
   */
  #behindPgBouncerHint(err: unknown): unknown {
    if (this.#readOnlyVia !== 'startup' || !DatabaseError.is(err) || !/unsupported startup parameter: options/i.test(err.message))
      return err
    return new DatabaseError(
      err.code,
      `${err.message} (the replica ${hostLabel(this.config.host, this.config.port)} is behind PgBouncer: add ?pgbouncer=true to its URL, or pgbouncer: true to its config; the pgbouncer option describes the primary only)`,
      { backend: 'postgres', sqlState: err.sqlState, cause: err.cause ?? err, retryable: err.retryable, detail: err.detail },
    )
  }

  /** Makes this (read-lane) manager's sessions read-only `via` the startup option, a SET after connecting, or not at all. */
  #makeReadOnly(via: ReadOnlyVia): void {
    this.#readOnlyVia = via
    // after sessionInit, so that it wins
    if (via === 'set') this.#sessionSetup = Object.freeze([...this.#sessionSetup, READ_ONLY_SESSION_SQL])
  }

  /** Whether a statement is known not to write (see {@link isReadOnlyStatement}). */
  isReadOnly(query: CompiledQuery): boolean {
    return isReadOnlyStatement(query.text)
  }

  /** A replica's standby state, replayed position and lag, in one round trip (see REPLICA_STATUS_SQL). */
  async replicaStatus(conn: PostgresConnection, timeoutMs: number): Promise<ReplicaStatus> {
    const { rows } = await this.execute(conn, { text: REPLICA_STATUS_SQL, params: [] }, { timeoutMs })
    return replicaStatusOf(rows[0])
  }

  /** The primary's WAL insert position after a commit (see WRITE_POSITION_SQL), one round trip. */
  async writePosition(conn: PostgresConnection, timeoutMs: number): Promise<bigint> {
    const { rows } = await this.execute<{ lsn: string }>(conn, { text: WRITE_POSITION_SQL, params: [] }, { timeoutMs })
    return parseLsn(rows[0]?.lsn)
  }

  /**
   * Hides the configured password and the passwords handed to pg recently (a password function's
   * results) in a text bound for a log line or a span (the pool hides URL passwords itself).
   */
  redact(text: string): string {
    let out = redactSecrets(this.config.redactPassword(text), this.#secrets)
    for (const replica of this.#replicaManagers) out = replica.redact(out)
    return out
  }

  /**
   * Whether a lone statement may share a pipelined connection: one statement (no `;` inside), not
   * transaction or session control, not a cursor or COPY, not a procedure (which may commit), and
   * not hidden behind a leading comment. Anything doubtful runs on a connection of its own. `'read'`
   * when it is also known read-only ({@link isReadOnlyStatement}: no locking clause, built-in calls
   * only): it waits on no row lock, so statements may be pipelined behind it. Kept per text.
   */
  canPipeline(query: CompiledQuery): boolean | 'read' {
    return this.pipelineDepth > 1 && this.#lone(query.text)
  }

  /**
   * One plain statement (see {@link canPipeline}): safe to share a connection, and safe to run as a
   * named prepared statement even without parameters (it cannot hold several statements, which only
   * the simple protocol runs, nor control the transaction or the session). A statement that may leave
   * session state behind ({@link sessionStatement}: `select set_config(..., false)`,
   * `pg_advisory_lock()`, `SELECT ... INTO TEMP`) is not one: it runs on a lease of its own in classic
   * mode, so the statements of other callers never run in the session it changed, and
   * `sessionReset: 'clean'` cleans the connection on release (a shared connection is cleaned too, once
   * its burst of shared statements ends: see {@link reset}).
   */
  #lone(sqlText: string): boolean | 'read' {
    const known = this.#lonely.get(sqlText)
    if (known !== undefined) return known
    const text = sqlText.trim().replace(/;\s*$/, '')
    const shareable = !text.includes(';') && !UNSHAREABLE.test(text) && !executesPrepared(text) && this.#sessionNeed(sqlText) === undefined
    // 'read': known read-only (no locking clause, built-in calls only), so it waits on no row lock and
    // statements may be pipelined behind it (see StatementSharing); a write may not be joined
    const lone = shareable && isReadOnlyStatement(sqlText) ? 'read' : shareable
    // the same texts come back (sql`` caches its text per call site): remember the verdict, bounded
    if (this.#lonely.size >= MAX_REMEMBERED_TEXTS) this.#lonely.clear()
    this.#lonely.set(sqlText, lone)
    return lone
  }

  /**
   * Opens a connection on the first host of the config's `hosts` that accepts it and is of the
   * `targetSessionAttrs` kind (libpq's walk: a host that refuses, times out after the per-host
   * `connectTimeoutMs`, fails to authenticate or is the wrong kind is skipped; `prefer-standby`
   * makes a second pass accepting any server), then runs `sessionInit`. When no host fits:
   * CONNECTION_FAILED naming every host tried and why (the code of the hosts' own error when they all
   * failed the same way, e.g. AUTHENTICATION_FAILED). A write-lane connection that reaches another
   * server than the one before reports `onFailover`, and the connections to the old one are evicted.
   * A replica's sessions, read-only from their startup option, are judged by the server's role:
   * `read-write` as `primary`, `read-only` as `standby` (see roleKindOf). The primary's read-only
   * pool walks exactly as the write lane does (`read-write`: the server reports neither
   * `in_hot_standby` nor `default_transaction_read_only` on, as libpq decides, so a fenced primary
   * is skipped), then makes its session read-only with SET (READ_ONLY_SESSION_SQL); its connections
   * are evicted with the write lane's when that moves to another server.
   */
  async connect(lane: Lane, hooks: ConnectionHooks, target?: number): Promise<PostgresConnection> {
    if (lane === 'read' && target !== undefined) {
      if (target === this.#replicaManagers.length && this.#primaryReader) {
        // read-lane work on the primary: read-only, so a write fails there as on a replica
        const conn = await this.#primaryReader.connect('read', hooks)
        conn.onReplica = true
        conn.readOnlySession = true
        // evicted when the write lane moves to another server (see #landed), as the write lane's own are
        this.#primaryReader.#live.add(conn)
        return conn
      }
      const replica = this.#replicaManagers[target]
      if (!replica) throw new DatabaseError('CONFIGURATION', `there is no replica ${target} (${this.#replicaManagers.length} configured)`)
      let conn: PostgresConnection
      try {
        conn = await replica.connect('read', hooks)
      } catch (err) {
        throw replica.#behindPgBouncerHint(err)
      }
      conn.onReplica = true
      conn.readOnlySession = replica.#readOnlyVia !== 'none'
      await replica.#checkStandby(conn)
      // PostgreSQL 14+ reports in_hot_standby = off at the first ReadyForQuery after a promotion: never reused from then on
      conn.client.connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) => {
        if (msg.parameterName === 'in_hot_standby' && msg.parameterValue === 'off') conn.evict(promoted(conn))
      })
      return conn
    }
    const password = await this.#password()
    const conn = await this.#walk(password, hooks)
    // the setup statement running: the server's error may repeat its literals (a token set with set_config())
    let running: string | undefined
    try {
      if (this.options.pgbouncer === 'transaction') await this.#checkReadFormats(conn)
      // behind PgBouncer in session mode (declared or not), the output formats it refuses at startup are SET
      const setup =
        conn.formatsBySet && conn.readFormats !== undefined
          ? [...readFormatSetup(conn.readFormats), ...this.#sessionSetup]
          : this.#sessionSetup
      for (const text of setup) {
        running = text
        await this.#execute(conn, { text, params: [] }, { timeoutMs: this.options.connectTimeoutMs }, false)
      }
      // what sessionInit made of DateStyle / IntervalStyle is the session's own: the release keeps it
      // (review r17i), and refuses an output the parsers cannot read (see sessionReadFormats)
      if (conn.readFormats !== undefined) conn.readFormats = sessionReadFormats(conn, conn.readFormats)
      // a sessionInit statement that resets something (`RESET ROLE; SET ...`) is part of the setup
      conn.setupLost = false
      // the manager that connected it knows its setup (a replica's config has its own timeouts)
      conn.setup = setup
      running = undefined
      conn.setupResettable = await this.#setupResettable(conn, setup)
    } catch (err) {
      conn.kill()
      const mapped = setupFailure(this.mapError(err), running)
      throw new DatabaseError(
        mapped.code === 'QUERY_TIMEOUT' ? 'CONNECTION_FAILED' : mapped.code,
        `session init on ${this.target} failed: ${mapped.message}`,
        {
          backend: 'postgres',
          sqlState: mapped.sqlState,
          cause: mapped,
          detail: mapped.detail,
          // every new connection runs sessionInit again, whatever it did on this one: an unknown outcome changes nothing here
          retryable: mapped.code === 'QUERY_TIMEOUT' || mapped.retryable || isOutcomeUnknown(mapped),
        },
      )
    }
    conn.markReady()
    if (lane === 'write') this.#landed(conn, hooks)
    return conn
  }

  /**
   * Whether a reset can drop part of `setup` on `conn` (see PostgresConnection.setupResettable): every
   * statement given as a startup parameter whose server default (`reset_val`) is what its SET gave is
   * safe (one round trip, only when there are such statements); any other statement is not.
   */
  async #setupResettable(conn: PostgresConnection, setup: readonly string[]): Promise<boolean> {
    const given = setup.filter((text) => this.#startupSettings.has(text) && conn.startupSettings.length > 0)
    if (given.length < setup.length) return setup.length > 0
    const names = given.map((text) => this.#startupSettings.get(text)!.name.toLowerCase())
    const check = startupSettingsCheckSql(names)
    // nothing to lose, or names the check cannot write in (the text classifier covers those)
    if (check === undefined) return names.length > 0
    const { rows } = await this.#execute<{ name: string; same: boolean }>(
      conn,
      { text: check, params: [] },
      { timeoutMs: this.options.connectTimeoutMs },
      false,
    )
    const same = new Set(rows.filter((row) => row.same).map((row) => row.name))
    return !names.every((name) => same.has(name))
  }

  /**
   * A replica connection must reach a standby (libpq's `target_session_attrs=standby` check: the
   * `in_hot_standby` the server reported at startup, else `pg_is_in_recovery()`): a promoted server,
   * or a primary listed as a replica, is refused with CONNECTION_FAILED (`detail.standby: false`,
   * retryable), which takes the replica out of the read lane (reason `not-standby`).
   */
  async #checkStandby(conn: PostgresConnection): Promise<void> {
    let mismatch: string | undefined
    try {
      mismatch = await mismatchOf(conn, 'standby', (c, text) => this.#probe(c, text))
    } catch (err) {
      conn.kill()
      throw this.mapError(err)
    }
    if (mismatch === undefined) return
    void conn.close(this.options.cancelTimeoutMs)
    throw new DatabaseError('CONNECTION_FAILED', `the replica ${hostLabel(conn.host, conn.port)} ${mismatch}`, {
      backend: 'postgres',
      retryable: true,
      detail: { standby: false },
    })
  }

  /** The host walk of {@link connect}. */
  async #walk(password: string | undefined, hooks: ConnectionHooks): Promise<PostgresConnection> {
    const { hosts, targetSessionAttrs } = this.config
    if (hosts.length === 1 && targetSessionAttrs === 'any') return this.#openHost(hosts[0]!, password, hooks)
    const tried: string[] = []
    const failures: DatabaseError[] = []
    // each host's addresses, looked up when the walk reaches it, once per walk (prefer-standby's second pass
    // reuses them): a first host is tried as soon as ITS name is resolved, never waiting on a later host's
    // slow resolver (review of 35a3c14); no lookup is started for a host the walk may never need, and walks
    // share the lookup in flight of a name (addressesOf): a slow one per connect would fill libuv's threadpool,
    // where every dns.lookup and file read waits (review r19c). A walk waits on it no longer than the host's
    // share of its deadline, nor past its abort (the pool closing)
    const addresses: (readonly string[] | undefined)[] = hosts.map(() => undefined)
    // the walk's deadline is shared among the attempts of each pass (see ConnectBudget): the addresses
    // known so far, plus one per host not yet resolved. With connect_timeout each attempt has it whole
    // (libpq) while the deadline (#walkDeadlineMs: connect_timeout for each host, which the pool waits
    // for) allows, and less only to leave every later address a try (review r6 item 4)
    const budget = new ConnectBudget(this.#walkDeadlineMs, hosts.length)
    const perHost = this.config.connectTimeoutMs
    const capped = (share: number | undefined): number | undefined =>
      share === undefined || perHost <= 0 ? share : Math.min(share, perHost)
    let unreached: string | undefined
    walk: for (const [pass, want] of passesOf(targetSessionAttrs).entries()) {
      // every host was resolved by the first pass (a walk that stopped early never makes a second)
      if (pass > 0) budget.add(addresses.reduce((n, list) => n + (list?.length ?? 1), 0))
      for (const [i, host] of hosts.entries()) {
        let list = addresses[i]
        // the time the host's name lookup took, out of its first attempt's share
        let lookupMs = 0
        if (list === undefined) {
          if (hooks.signal?.aborted === true) break walk
          const label = hostLabel(host.host, host.port)
          // awaited no longer than the host's first attempt could take (its share of the walk's deadline)
          const waitMs = capped(budget.share())
          if (waitMs === undefined) {
            unreached = label
            break walk
          }
          const started = performance.now()
          const found = await addressesOf(host.host, waitMs, hooks.signal)
          lookupMs = Math.floor(performance.now() - started)
          if (found === 'aborted') break walk
          if (found === 'timed-out' || 'error' in found) {
            // this host fails without a connect attempt (net.connect would look the name up again);
            // its one counted attempt is spent, and a second pass (prefer-standby) skips it
            addresses[i] = []
            budget.next()
            const error =
              found === 'timed-out'
                ? new DatabaseError(
                    'CONNECTION_FAILED',
                    `connecting to ${label} timed out after ${waitMs} ms: the name lookup of ${host.host} did not answer`,
                    { backend: 'postgres', retryable: true, detail: { lookup: 'timed-out' } },
                  )
                : this.#connectError(found.error, host, waitMs)
            failures.push(error)
            const outcome = `${error.code}: ${error.message.replace(`connecting to ${label} `, '')}`
            hooks.onAttempt?.(label)
            tried.push(`${label} ${outcome}`)
            hooks.onAttempt?.(label, outcome)
            continue
          }
          addresses[i] = list = found.addresses
          // the host was counted as one attempt: its other addresses share the deadline too
          budget.add(list.length - 1)
        }
        for (const [n, address] of list.entries()) {
          if (hooks.signal?.aborted === true) break walk
          // with several addresses, each is named: "db:5432 (10.0.0.2)"
          const label = hostLabel(host.host, host.port)
          const named = list.length > 1 ? `${label} (${address})` : label
          const share = capped(budget.next())
          // the lookup was part of the first attempt's time
          const timeoutMs = share === undefined || n > 0 ? share : Math.max(1, share - lookupMs)
          if (timeoutMs === undefined) {
            unreached = named
            break walk
          }
          let conn: PostgresConnection
          hooks.onAttempt?.(named)
          try {
            conn = await this.#openHost(host, password, hooks, address, timeoutMs)
          } catch (err) {
            const error = this.mapError(err)
            failures.push(error)
            // "failed: <native reason>" or "timed out after N ms", without the "connecting to <host>" prefix
            const outcome = `${error.code}: ${error.message.replace(`connecting to ${label} `, '')}`
            tried.push(`${named} ${outcome}`)
            hooks.onAttempt?.(named, outcome)
            continue
          }
          let mismatch: string | undefined
          try {
            // a session read-only from its startup option reports itself read-only on every server: judged by
            // the server's role (roleKindOf); one made read-only by SET after the walk is judged as the write lane's
            mismatch = await mismatchOf(conn, this.#readOnlyVia === 'startup' ? roleKindOf(want) : want, (c, text) =>
              this.#probe(c, text, timeoutMs),
            )
          } catch (err) {
            conn.kill()
            const error = this.mapError(err)
            failures.push(error)
            const outcome = `${error.code}: checking target_session_attrs failed: ${error.message}`
            tried.push(`${named} ${outcome}`)
            hooks.onAttempt?.(named, outcome)
            continue
          }
          if (mismatch === undefined) return conn
          void conn.close(this.options.cancelTimeoutMs)
          const outcome = `${mismatch}${want === targetSessionAttrs ? '' : ` (prefer-standby pass ${want})`}`
          tried.push(`${named} ${outcome}`)
          hooks.onAttempt?.(named, outcome)
        }
      }
    }
    // the deadline ran out before every attempt was made: the first one left is named (never the same code as the failures)
    if (unreached !== undefined) tried.push(`${unreached} not tried: the connect deadline (${this.#walkDeadlineMs} ms) was used up`)
    // every host failed the same way (a wrong password everywhere): that code, else CONNECTION_FAILED
    const same = failures.length === tried.length && failures.every((f) => f.code === failures[0]!.code) ? failures[0] : undefined
    throw new DatabaseError(
      same?.code ?? 'CONNECTION_FAILED',
      `no host of ${this.target} accepted a connection with target_session_attrs=${targetSessionAttrs}; tried ${tried.join('; ')}`,
      {
        backend: 'postgres',
        sqlState: same?.sqlState,
        cause: failures[failures.length - 1],
        retryable: same ? same.retryable : true,
        detail: { targetSessionAttrs, tried },
      },
    )
  }

  /**
   * One host, with libpq's second attempts: sslmode=prefer connects without TLS when the server
   * refuses TLS or the session over TLS (see {@link retriesWithoutTls}); sslmode=allow connects
   * without TLS first and with TLS when the server refuses the plain session (see
   * {@link retriesWithTls}). At most two attempts, with the same password; `require` and `verify-*`
   * never go without TLS. When both fail, the error is the second's, naming the first's reason.
   */
  async #openHost(
    host: ResolvedHost,
    password: string | undefined,
    hooks: ConnectionHooks,
    address = host.host,
    timeoutMs = this.#hostTimeoutMs,
  ): Promise<PostgresConnection> {
    // per host: a socket directory in the list never uses TLS (pg names the host it reached for SNI and the identity check)
    const { sslMode, sslRootCert } = this.config
    const ssl = this.config.hosts.length === 1 ? this.#ssl : tlsOptions({ host: host.host, sslMode, sslRootCert })
    const first = sslMode === 'allow' ? false : ssl
    const attempt = { secured: false }
    let firstErr: unknown
    try {
      return await this.#open(host, address, timeoutMs, first, password, hooks, attempt)
    } catch (err) {
      firstErr = err
    }
    let second: PgSsl
    if (ssl === false) throw this.#connectError(firstErr, host, timeoutMs)
    else if (first === false && retriesWithTls(sslMode, sqlStateOf(firstErr))) second = ssl
    else if (
      first !== false &&
      fallsBackToPlain(sslMode) &&
      (isTlsRefusal(firstErr) || retriesWithoutTls(sslMode, attempt.secured, firstErr))
    )
      second = false
    else throw this.#connectError(firstErr, host, timeoutMs)
    try {
      return await this.#open(host, address, timeoutMs, second, password, hooks)
    } catch (err) {
      const error = this.#connectError(err, host, timeoutMs)
      // the server said it has no TLS: nothing more to say about the first attempt
      if (isTlsRefusal(firstErr)) throw error
      const before = this.#connectError(firstErr, host, timeoutMs).message.replace(/^connecting to \S+ (failed: )?/, '')
      throw new DatabaseError(
        error.code,
        `${error.message} (sslmode=${sslMode}: ${second === false ? 'without TLS after' : 'with TLS after'} ${first === false ? 'plain TCP' : 'TLS'} failed: ${before})`,
        {
          backend: 'postgres',
          sqlState: error.sqlState,
          cause: error.cause,
          retryable: error.retryable,
          detail: error.detail,
        },
      )
    }
  }

  /** PgBouncer in transaction mode: CONFIGURATION for a statement that leaves session state behind (see sessionStatement). */
  #needsSession(text: string): DatabaseError | undefined {
    const why = this.#sessionNeed(text)
    if (why === undefined) return undefined
    return new DatabaseError('CONFIGURATION', `refused before sending: ${why}, and ${TRANSACTION_MODE_REASON}`, {
      backend: 'postgres',
      retryable: false,
      detail: { option: 'postgres.pgbouncer', pgbouncer: 'transaction' },
    })
  }

  /**
   * {@link sessionStatement}, remembered per text up to MAX_REMEMBERED_TEXT_LENGTH characters (the
   * same texts come back; forgotten all at once beyond MAX_REMEMBERED_TEXTS).
   */
  #sessionNeed(text: string): string | undefined {
    const known = this.#sessionNeeds.get(text)
    if (known !== undefined) return known === false ? undefined : known
    const why = sessionStatement(text) ?? floatDigitsChangeInTransactionMode(text)
    if (text.length <= MAX_REMEMBERED_TEXT_LENGTH) {
      if (this.#sessionNeeds.size >= MAX_REMEMBERED_TEXTS) this.#sessionNeeds.clear()
      this.#sessionNeeds.set(text, why ?? false)
    }
    return why
  }

  /** A statement of the target_session_attrs check, bounded by the attempt's connect deadline. */
  async #probe(conn: PostgresConnection, text: string, timeoutMs = this.#hostTimeoutMs): Promise<Record<string, unknown> | undefined> {
    const { rows } = await this.execute(conn, { text, params: [] }, { timeoutMs })
    return rows[0]
  }

  /**
   * The deadline of the attempt on one host: libpq's connect_timeout (the config's `connectTimeoutMs`)
   * when given, else the manager's `connectTimeoutMs` (by default the pool's `createTimeoutMs`). A
   * host walk without connect_timeout shares that among its attempts instead (see {@link ConnectBudget}).
   */
  get #hostTimeoutMs(): number {
    return this.config.connectTimeoutMs || this.options.connectTimeoutMs
  }

  /**
   * The deadline of a whole connect's host walk (a multi-host or `target_session_attrs` target): with
   * libpq's `connect_timeout`, that for each host of each pass (prefer-standby makes two), as libpq
   * allows, at least the manager's `connectTimeoutMs`; without it, the manager's `connectTimeoutMs`.
   * A single host: its attempt's deadline.
   */
  get #walkDeadlineMs(): number {
    const { hosts, targetSessionAttrs, connectTimeoutMs: perHost } = this.config
    if (hosts.length === 1 && targetSessionAttrs === 'any') return this.#hostTimeoutMs
    if (perHost <= 0) return this.options.connectTimeoutMs
    return Math.max(this.options.connectTimeoutMs, perHost * hosts.length * passesOf(targetSessionAttrs).length)
  }

  /**
   * How long a connect may take by this manager's deadlines (see `ConnectionManager.connectDeadlineMs`):
   * the host walk's ({@link #walkDeadlineMs}: `connect_timeout` for each host, or an explicit
   * `connectTimeoutMs` beyond the pool's `createTimeoutMs`), so the pool's deadline never cuts the walk
   * before its later hosts (review r6 item 4). A read target: its replica's, or the primary read-only pool's.
   */
  connectDeadlineMs(lane: Lane, target?: number): number {
    if (lane === 'read' && target !== undefined) {
      const manager = target === this.#replicaManagers.length ? this.#primaryReader : this.#replicaManagers[target]
      return manager === undefined ? 0 : manager.#walkDeadlineMs
    }
    return this.#walkDeadlineMs
  }

  /** A new write-lane connection is up: if it reached another server, the old server's connections go. */
  #landed(conn: PostgresConnection, hooks: ConnectionHooks): void {
    this.#live.add(conn)
    const at = hostLabel(conn.host, conn.port)
    const previous = this.#current
    this.#current = at
    if (previous === undefined || previous === at) return
    const moved = new DatabaseError(
      'CONNECTION_LOST',
      `new connections reach ${at} now (failover from ${previous}); closed instead of reused`,
      {
        backend: 'postgres',
      },
    )
    for (const other of this.#live) if (hostLabel(other.host, other.port) !== at) other.evict(moved)
    // the primary's read-only pool follows: read-lane work must not go on reading the old server
    if (this.#primaryReader) for (const other of this.#primaryReader.#live) if (hostLabel(other.host, other.port) !== at) other.evict(moved)
    hooks.onFailover?.({ from: previous, to: at, lane: 'write' })
  }

  /**
   * Every write-lane connection to `at` is evicted: the server became read-only for every session,
   * and a replay must not be handed another of its idle connections (each would fail the same way
   * and use up an attempt). So is every connection of the primary's read-only pool to it: a fenced
   * or demoted primary is not the primary any more, and its reads may be stale.
   */
  #evictServer(at: string, reason: DatabaseError): void {
    for (const conn of this.#live) if (hostLabel(conn.host, conn.port) === at) conn.evict(reason)
    if (this.#primaryReader) for (const conn of this.#primaryReader.#live) if (hostLabel(conn.host, conn.port) === at) conn.evict(reason)
  }

  /**
   * Destroys the socket at once (no Terminate, no cancel request: the server is not answering): the
   * statement in flight fails with CONNECTION_LOST (its outcome judged as for any lost connection:
   * a statement known not to write is retryable), and the connection is never reused.
   */
  interrupt(conn: PostgresConnection, reason: DatabaseError): void {
    conn.markBroken(reason)
    conn.kill()
  }

  isUsable(conn: PostgresConnection): boolean {
    return conn.usable
  }

  async ping(conn: PostgresConnection, timeoutMs: number): Promise<void> {
    await this.execute(conn, { text: 'SELECT 1', params: [] }, { timeoutMs })
  }

  /**
   * Idle (`I`): nothing to do, synchronously. In a transaction (`T`) or failed one (`E`): ROLLBACK.
   * Not known yet (see {@link awaitsReadyForQuery}): ROLLBACK too, which pg sends once the server
   * has answered. Otherwise: throw, so the pool destroys it. With `sessionReset: 'clean'`, an idle
   * (or rolled back) session is then cleaned, after a lease and after a burst of shared statements
   * alike (statement sharing releases its connection once nothing is in flight on it). With
   * `'none'`, a session where a statement reset settings (`RESET ALL`, `DISCARD ALL`: see
   * resetsSession) gets its setup run again (see {@link #restore}); one without: nothing.
   */
  reset(conn: PostgresConnection): void | Promise<void> {
    // pipeline mode is only for statements sharing the connection (executeShared); every lease starts
    // in classic mode, whatever sessionReset is (pg refuses cursors and `rows` queries in pipeline
    // mode). A shared statement may change the session in a way its text cannot show (a function
    // calling set_config(..., false) or SET), so a connection that carried shared statements is
    // cleaned too: once per burst, here, when statement sharing gives it back with nothing in flight.
    setPipeline(conn, false)
    conn.readOnlyByApp = false
    conn.abortedBy = undefined
    // markers of results nobody read (an earlier result of a multi-statement text): no scans from now on
    if (conn.reads !== undefined) conn.reads.guard.count = 0
    const clean = this.options.sessionReset === 'clean'
    // statements issued and not awaited still running (the lease's holder threw without awaiting them):
    // answered first, at most cancelTimeoutMs; never a ROLLBACK queued behind them, which would wait
    // for the whole statement. Not answered by then: closed (settledTransactionState marked it broken)
    if (this.#unanswered(conn)) return this.#resetAfterUnanswered(conn, clean)
    const status = conn.client.getTransactionStatus()
    if (status === 'I') return this.#tidy(conn, clean)
    return this.#rollback(conn, status, clean)
  }

  /** {@link reset} of a connection with statements still unanswered: settled first (see {@link settledTransactionState}). */
  async #resetAfterUnanswered(conn: PostgresConnection, clean: boolean): Promise<void> {
    await this.settledTransactionState(conn)
    if (!conn.usable) throw this.mapError(conn.brokenBy ?? new Error('the connection ended while its statements were answered'))
    if (awaitsReadyForQuery(conn)) return this.#rollback(conn, 'unknown', clean)
    const status = conn.client.getTransactionStatus()
    if (status === 'I') return this.#tidy(conn, clean)
    return this.#rollback(conn, status, clean)
  }

  /**
   * An idle session on release: cleaned (`sessionReset: 'clean'`), its setup restored, or nothing;
   * then a read-lane session the pool made read-only is made sure to still be (see {@link #keepReadOnly}).
   */
  #tidy(conn: PostgresConnection, clean: boolean): void | Promise<void> {
    const tidied = clean ? this.#clean(conn) : conn.setupLost ? this.#restore(conn) : undefined
    // a lease that changed DateStyle / IntervalStyle: set back (see #restoreReadFormats)
    const formats = tidied === undefined ? this.#restoreReadFormats(conn) : tidied.then(() => this.#restoreReadFormats(conn))
    if (!conn.readOnlySession) return formats
    // RESET ALL: a read-only setting made with SET is gone (one from the startup option is back)
    if (clean) conn.readOnlyMayBeLost = true
    return formats ? formats.then(() => this.#keepReadOnly(conn)) : this.#keepReadOnly(conn)
  }

  /**
   * A read-lane session the pool made read-only (a replica's, the primary's read-only pool's) is
   * read-only again before anyone else borrows it: when the server reports
   * `default_transaction_read_only` (PostgreSQL 14 and later) not `on`, or, where it is not
   * reported, a statement of the lease may have turned it off (`SET default_transaction_read_only =
   * off`, `SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`, `RESET ALL`, `DISCARD ALL`,
   * `set_config(...)`), {@link READ_ONLY_SESSION_SQL} is run (bounded by `cancelTimeoutMs`); if that
   * fails, the connection is destroyed. Synchronous, with no round trip, when nothing changed.
   */
  #keepReadOnly(conn: PostgresConnection): void | Promise<void> {
    const reported = conn.serverParameter('default_transaction_read_only')
    if (reported !== undefined ? reported === 'on' : !conn.readOnlyMayBeLost) return
    return this.#setReadOnlyAgain(conn)
  }

  async #setReadOnlyAgain(conn: PostgresConnection): Promise<void> {
    try {
      await this.#execute(conn, { text: READ_ONLY_SESSION_SQL, params: [] }, { timeoutMs: this.options.cancelTimeoutMs }, false)
      conn.readOnlyMayBeLost = false
      const now = conn.serverParameter('default_transaction_read_only')
      if (now !== undefined && now !== 'on') throw new Error(`default_transaction_read_only is still ${now}`)
    } catch (err) {
      const reason = new DatabaseError(
        'QUERY_FAILED',
        `a read-lane session whose read-only setting was turned off could not be made read-only again: ${this.mapError(err).message}; it is closed instead of reused`,
        { backend: 'postgres', cause: err },
      )
      conn.markBroken(reason)
      throw reason
    }
  }

  /**
   * A statement of the lease changed DateStyle or IntervalStyle (see readFormatsChanged: one property
   * read per release otherwise): both are set back to what the row parsers read
   * (DateStyle's output and input order: see restoreReadFormatsSql); one that may have changed `extra_float_digits` (not reported:
   * see mayChangeFloatDigits, `conn.native`): it is set back ({@link RESTORE_FLOAT_DIGITS_SQL}). One
   * round trip for both, bounded by `cancelTimeoutMs`; a failure destroys the connection.
   * Not in PgBouncer transaction mode, where such a statement is refused (see #sessionNeed).
   */
  #restoreReadFormats(conn: PostgresConnection): void | Promise<void> {
    if (this.options.pgbouncer === 'transaction' || conn.readFormats === undefined) return undefined
    const formats = readFormatsChanged(conn, conn.readFormats)
    const floats = conn.floatDigitsMayHaveChanged
    if (!formats && !floats) return undefined
    const text =
      formats && floats
        ? `${restoreReadFormatsSql(conn.readFormats)}; ${RESTORE_FLOAT_DIGITS_SQL}`
        : formats
          ? restoreReadFormatsSql(conn.readFormats)
          : RESTORE_FLOAT_DIGITS_SQL
    return this.#execute(conn, { text, params: [] }, { timeoutMs: this.options.cancelTimeoutMs }, false).then(
      () => {
        conn.floatDigitsMayHaveChanged = false
      },
      (err: unknown) => {
        const reason = new DatabaseError(
          'QUERY_FAILED',
          `the DateStyle / IntervalStyle / extra_float_digits a statement may have changed could not be set back on release: ${this.mapError(err).message}; the connection is closed instead of reused`,
          { backend: 'postgres', cause: err },
        )
        conn.markBroken(reason)
        throw reason
      },
    )
  }

  /** PgBouncer in transaction mode: the server's IntervalStyle and extra_float_digits must fit (see readFormatProblem). */
  async #checkReadFormats(conn: PostgresConnection): Promise<void> {
    const { rows } = await this.#execute<{ interval_style: string; extra_float_digits: number; version: number }>(
      conn,
      { text: SHOW_READ_FORMATS_SQL, params: [] },
      { timeoutMs: this.options.connectTimeoutMs },
      false,
    )
    const problem = rows[0] === undefined ? undefined : readFormatProblem(rows[0])
    if (problem !== undefined) throw problem
  }

  async #rollback(conn: PostgresConnection, status: TransactionStatus | 'unknown', clean: boolean): Promise<void> {
    // ROLLBACK outside a transaction is only a WARNING, so it is safe when the status is unknown
    if (status === 'T' || status === 'E' || status === 'unknown') {
      await this.execute(conn, { text: 'ROLLBACK', params: [] }, { timeoutMs: this.options.cancelTimeoutMs })
      if (conn.client.getTransactionStatus() === 'I') return this.#tidy(conn, clean)
    }
    const reason = new DatabaseError(
      'QUERY_FAILED',
      `connection released in transaction state ${JSON.stringify(status)} could not be rolled back; it is closed instead of reused`,
      {
        backend: 'postgres',
      },
    )
    conn.markBroken(reason)
    throw reason
  }

  /**
   * `sessionReset: 'clean'`: back to a fresh session (see CLEAN_SESSION_SQL), then the setup every new
   * connection runs (the timeouts sent with SET behind PgBouncer, which RESET ALL dropped, and
   * `sessionInit`); a failure destroys it.
   */
  async #clean(conn: PostgresConnection): Promise<void> {
    const deadline = { timeoutMs: this.options.cancelTimeoutMs }
    let running: string | undefined
    try {
      await this.execute(conn, { text: CLEAN_SESSION_SQL, params: [] }, deadline)
      // RESET ALL undid a session-level read-only setting (sessionInit may set it again)
      conn.sessionReadOnlyByApp = false
      for (const text of conn.setup) {
        running = text
        await this.#execute(conn, { text, params: [] }, deadline, false)
      }
      conn.setupLost = false
    } catch (err) {
      const cause = setupFailure(this.mapError(err), running)
      const reason = new DatabaseError(
        'QUERY_FAILED',
        `the session of a released connection could not be reset (sessionReset: 'clean'): ${cause.message}; it is closed instead of reused`,
        { backend: 'postgres', cause },
      )
      conn.markBroken(reason)
      throw reason
    }
  }
  /**
   * `sessionReset: 'none'` after a statement that reset settings (see resetsSession: `RESET ALL`,
   * `DISCARD ALL`, `RESET search_path`...): the setup every new connection runs is run again (the
   * timeouts sent with SET behind PgBouncer, `sessionInit`), each statement bounded by
   * `cancelTimeoutMs`, so the next borrower finds the session the pool promises. A failure destroys it.
   */
  async #restore(conn: PostgresConnection): Promise<void> {
    const deadline = { timeoutMs: this.options.cancelTimeoutMs }
    let running: string | undefined
    try {
      for (const text of conn.setup) {
        running = text
        await this.#execute(conn, { text, params: [] }, deadline, false)
      }
      conn.setupLost = false
    } catch (err) {
      const cause = setupFailure(this.mapError(err), running)
      const reason = new DatabaseError(
        'QUERY_FAILED',
        `the setup of a released connection (sessionInit, or the timeouts set behind PgBouncer) could not be run again after a statement reset its settings: ${cause.message}; it is closed instead of reused`,
        { backend: 'postgres', cause },
      )
      conn.markBroken(reason)
      throw reason
    }
  }

  /**
   * The transaction status of the server's last ReadyForQuery (pg's `getTransactionStatus()`): `I`
   * idle, `T` open, `E` failed (aborted: every statement refused until ROLLBACK, and COMMIT answered
   * with ROLLBACK). `unknown` while ReadyForQuery has not arrived (see {@link awaitsReadyForQuery}: pg
   * settles a failed statement before it), while statements wait behind an array check (see
   * {@link #held}), or on a connection that never reached it.
   */
  /**
   * Whether the text that just succeeded, and left a transaction open, committed part of its work
   * before (its own COMMIT ran before its BEGIN, `insert ...; commit; begin; insert ...`; or a CALL or
   * DO outside a transaction block, whose body may commit): see `innerCommitPoint`. Read by core only
   * when it rolls that transaction back for `pool.query()`.
   */
  committedBeforeLeftOpen(conn: PostgresConnection): boolean {
    return conn.committedBeforeLeftOpen
  }

  /**
   * After a text that succeeded: whether it opened a transaction (none was open when it was sent, one
   * is now) after it committed part of its work ({@link committedBeforeLeftOpen}). The text is split
   * only in that case (a lone statement's is never).
   */
  #noteCommitBeforeOpen(conn: PostgresConnection, text: string, progress: StatementProgress): void {
    conn.committedBeforeLeftOpen =
      !progress.inTransaction && conn.client.getTransactionStatus() === 'T' && innerCommitPoint(text, false) !== undefined
  }

  transactionState(conn: PostgresConnection): TransactionState {
    const status = conn.client.getTransactionStatus()
    // a session that is gone (lost, or closed at a statement's deadline) took its open transaction with
    // it: the server rolled it back, so COMMIT cannot commit (transaction() reports the first error);
    // unless a COMMIT was in flight when it went (its own error says the outcome is unknown)
    if (!conn.usable && (status === 'T' || status === 'E')) return conn.endedInDoubt ? 'unknown' : 'failed'
    // statements held behind an array check (see #held) are not even sent: the status says nothing of them
    if (awaitsReadyForQuery(conn) || this.#held.has(conn)) return 'unknown'
    switch (status) {
      case 'I':
        return 'idle'
      case 'T':
        return 'open'
      case 'E':
        return 'failed'
      default:
        return 'unknown'
    }
  }

  /**
   * {@link transactionState} once the server has answered every statement issued on the connection so
   * far: while a statement's ReadyForQuery is on its way (a failed statement settles before it) or
   * statements wait behind it, in turn (PostgresConnection.submit) or behind an array check (see
   * {@link #held}; issued and not awaited: `conn.query('BEGIN')` then a check; pg sends the next one
   * as each ReadyForQuery arrives, so one ReadyForQuery alone still leaves the status stale), waits for
   * both queues to drain (or the connection's end), at most `cancelTimeoutMs` in all, then answers what
   * is known: `unknown` while anything is still unanswered, and then the connection is marked broken
   * (closed at its release, never rolled back and reused: a transaction may be open on it, and a
   * ROLLBACK would wait behind the statements); callers report the outcome of those statements as
   * unknown, never as rolled back. Never rejects.
   *
   * `predict` (conn.transaction(), which queues its BEGIN or SAVEPOINT behind them): when every
   * statement still unanswered is sent already (none held) and is one lone statement that cannot open
   * or end a transaction (see {@link plainStatement}), the state they leave is known without waiting:
   * `idle` from an idle session, `open` from an open transaction (or `failed`, if one of them fails:
   * the SAVEPOINT queued behind it then fails as after any error in the transaction), `failed` from a
   * failed one. Nothing bounds that answer's wait: the statement queued behind them runs when they
   * are answered, as a statement issued after them does.
   */
  settledTransactionState(conn: PostgresConnection, options?: { readonly predict?: boolean }): Promise<TransactionState> {
    if (!conn.usable || !this.#unanswered(conn)) return Promise.resolve(this.transactionState(conn))
    if (options?.predict === true && !this.#held.has(conn) && unansweredArePlain(conn)) {
      const predicted = PREDICTED.get(conn.client.getTransactionStatus() ?? '')
      if (predicted !== undefined) return Promise.resolve(predicted)
    }
    const connection = conn.client.connection
    return new Promise<TransactionState>((resolve) => {
      let waits = this.#heldWaits.get(conn)
      if (waits === undefined) this.#heldWaits.set(conn, (waits = new Set()))
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        timer.clear()
        connection.off('readyForQuery', onReady)
        connection.off('end', finish)
        conn.client.off('drain', onReady)
        waits.delete(onReady)
        if (!conn.usable || !this.#unanswered(conn)) return resolve(this.transactionState(conn))
        conn.markBroken(
          new DatabaseError(
            'QUERY_FAILED',
            `statements issued on the connection were still unanswered after ${this.options.cancelTimeoutMs} ms (cancelTimeoutMs): whether a transaction is open on it is not known, so it is closed instead of reused`,
            { backend: 'postgres', retryable: false, detail: { reason: 'transaction-state-unknown', outcome: 'unknown' } },
          ),
        )
        resolve('unknown')
      }
      // pg's own readyForQuery listener was attached first: when this one runs the status is recorded
      // and pg has already sent its next queued statement (awaitsReadyForQuery again then); statements
      // held behind an array check are sent later (a ReadyForQuery may leave nothing in pg's queue
      // while they wait): #release tells when they are sent
      const onReady = (): void => {
        if (!this.#unanswered(conn)) finish()
      }
      // a ReadyForQuery already received is read before the deadline judges (startDeadline)
      const timer = startDeadline(this.options.cancelTimeoutMs, finish)
      connection.on('readyForQuery', onReady)
      connection.on('end', finish)
      // pg idle without a ReadyForQuery: the last statement it had was refused before it was written
      // (failed on the next tick, no message from the server follows)
      conn.client.on('drain', onReady)
      waits.add(onReady)
    })
  }

  /**
   * Whether a statement issued on the connection is not answered yet: its ReadyForQuery, one queued
   * behind it in pg, or one held behind an array check (see {@link #held}), not sent yet.
   */
  #unanswered(conn: PostgresConnection): boolean {
    return awaitsReadyForQuery(conn) || issuedAfter(conn) || this.#held.has(conn)
  }

  async destroy(conn: PostgresConnection): Promise<void> {
    this.#live.delete(conn)
    if (this.#primaryReader) this.#primaryReader.#live.delete(conn)
    try {
      await conn.close(this.options.cancelTimeoutMs)
    } catch {
      // destroy never throws: the socket is gone either way
    }
  }

  /**
   * Runs one statement on `conn`. `options.timeoutMs` (1 to 2^31 - 1) and `options.signal` bound it
   * (see {@link ExecuteOptions}); invalid values are refused with CONFIGURATION before anything runs.
   */
  execute<R = Record<string, unknown>>(conn: PostgresConnection, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    return this.#execute<R>(conn, query, options, true)
  }

  /**
   * `execute`; `columns`: refuse a result with two columns of one name (SYNTAX_ERROR, see
   * resultColumnsError). False for statements whose rows nobody reads (the startup settings,
   * `sessionInit`: `SELECT set_config('a', ...), set_config('b', ...)` names two columns alike).
   */
  #execute<R>(conn: PostgresConnection, query: CompiledQuery, options: ExecuteOptions, columns: boolean): Promise<QueryResult<R>> {
    if (this.options.pgbouncer === 'transaction') {
      const refused = this.#needsSession(query.text)
      if (refused) return Promise.reject(refused)
    }
    if (!conn.sessionReadOnlyByApp && READ_ONLY_TEXT.test(query.text)) {
      conn.readOnlyByApp = true
      if (SESSION_READ_ONLY_TEXT.test(query.text)) conn.sessionReadOnlyByApp = true
    }
    this.#noteReset(conn, query.text)
    if (conn.readOnlySession && !conn.readOnlyMayBeLost && MAY_UNSET_READ_ONLY.test(query.text)) conn.readOnlyMayBeLost = true
    if (options.timeoutMs === undefined && options.signal === undefined) return this.#run<R>(conn, query, false, columns)
    try {
      checkExecuteOptions(options)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#runGuarded<R>(conn, query, options, columns)
  }

  /**
   * Marks `conn` for its setup to be run again on release when `text` may reset settings (see
   * resetsSession). Only when there is a setup to lose: without `sessionInit` (and the timeouts
   * behind PgBouncer) nothing is read.
   */
  #noteReset(conn: PostgresConnection, text: string): void {
    if (conn.setupResettable && !conn.setupLost && resetsSession(text)) conn.setupLost = true
    // extra_float_digits is not reported: a text that may change it has it set back on release
    if (!conn.floatDigitsMayHaveChanged && mayChangeFloatDigits(text)) conn.floatDigitsMayHaveChanged = true
  }

  /**
   * The application took `conn.native`: what it runs there is never seen (`client.query('RESET ALL')`),
   * so a connection whose setup a reset can drop (see PostgresConnection.setupResettable) gets it run
   * again on release. One whose setup is all startup parameters needs nothing but
   * `extra_float_digits` set back (see #restoreReadFormats).
   */
  nativeLent(conn: PostgresConnection): void {
    if (conn.setupResettable) conn.setupLost = true
    conn.floatDigitsMayHaveChanged = true
  }

  /**
   * A lone auto-commit statement sharing the connection: sent at once, without waiting for the ones
   * before it. Its text was judged shareable (see {@link canPipeline}): no SET, RESET or DISCARD,
   * so it cannot reset the session's setup (see {@link #noteReset}).
   */
  executeShared<R = Record<string, unknown>>(conn: PostgresConnection, query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.options.pgbouncer === 'transaction') {
      const refused = this.#needsSession(query.text)
      if (refused) return Promise.reject(refused)
    }
    // a function's body can reset settings the text does not show; what the text shows is read here too
    this.#noteReset(conn, query.text)
    setPipeline(conn, true)
    // behind statements still in flight, writing at once gains nothing (the server answers in order):
    // the statements shared in this tick leave together. Alone, it leaves at once.
    if (awaitsReadyForQuery(conn)) conn.holdWritesForTick()
    return this.#run<R>(conn, query, true)
  }

  /**
   * A server-side cursor over `query`'s rows for `pool.stream()` ({@link PostgresCursor}, on
   * pg-cursor), with `execute`'s type parsers. The text and parameters are checked and converted as
   * in `execute` (SYNTAX_ERROR, INVALID_PARAMETER: thrown before anything is sent). The connection is
   * the stream's own lease, in classic mode (statement sharing never joins it). A read abandoned at
   * the stream's deadline or abort sends a cancel request and closes the connection, as a statement's
   * deadline does (a cursor still waiting its turn is taken out unsent instead: PostgresCursor.abandon);
   * the cursor is submitted in its turn, behind statements held by an array check and after its own
   * (see {@link #openInTurn});
   * when the cursor had sent its Sync (the implicit transaction's commit in flight) and the text may
   * write, the stream reports the reason as outcome unknown (`unknownOutcomeError`).
   */
  openCursor<R = Record<string, unknown>>(conn: PostgresConnection, query: CompiledQuery, options: CursorOptions): RowCursor<R> {
    const prepared = pgQuery(query)
    this.#noteReset(conn, query.text)
    if (conn.readOnlySession && !conn.readOnlyMayBeLost && MAY_UNSET_READ_ONLY.test(query.text)) conn.readOnlyMayBeLost = true
    // a lease starts in classic mode (reset switches pipeline mode off); pg refuses cursors otherwise
    setPipeline(conn, false)
    return new PostgresCursor<R>(conn, prepared, options.batchSize, {
      types: conn.reads!.types,
      open: (submit, progress) => this.#openInTurn(conn, prepared, submit, progress),
      closeTimeoutMs: this.options.cancelTimeoutMs,
      fail: (err, progress) => this.#queryError(conn, err, query.text, progress),
      refused: (error) => this.#refusedAfterRun(conn, error),
      abandon: (reason, progress) => {
        conn.markBroken(reason)
        void this.#cancel(conn)
        conn.kill()
        // the cursor's Sync was sent (its commit in flight) for a text that may write: it may have committed
        if (progress === undefined || !outcomeUnknown(progress, query.text, true, false)) return reason
        conn.endedInDoubt = true
        return unknownOutcomeError(reason, query.text)
      },
    })
  }

  beginStatement(settings: TransactionSettings): string {
    let text = 'BEGIN'
    if (settings.isolation) text += ` ISOLATION LEVEL ${settings.isolation.toUpperCase()}`
    if (settings.readOnly) text += ' READ ONLY'
    if (settings.deferrable) {
      if (settings.isolation !== 'serializable' || !settings.readOnly) {
        throw configError(
          'transaction.deferrable',
          true,
          'only applies to isolation serializable with readOnly true (Postgres ignores it otherwise)',
        )
      }
      text += ' DEFERRABLE'
    }
    return text
  }

  mapError(err: unknown): DatabaseError {
    return mapPostgresError(err, { secrets: this.#secrets })
  }

  /**
   * Server version, recovery state and connection headroom: the client sessions (`pg_stat_activity`
   * rows of backend type `client backend`; the server's own background processes take no
   * `max_connections` slot: review r13 D12) against `max_connections`.
   */
  async healthChecks(
    conn: PostgresConnection,
    options: { readonly deep: boolean; readonly timeoutMs: number },
  ): Promise<HealthCheckDetail[]> {
    const started = performance.now()
    const { rows } = await this.execute<{ version: string; recovery: boolean; used: string; max: string }>(
      conn,
      {
        text: "SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS recovery, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::text AS used, current_setting('max_connections') AS max",
        params: [],
      },
      { timeoutMs: options.timeoutMs },
    )
    const row = rows[0]
    if (!row) return []
    const used = Number(row.used)
    const max = Number(row.max)
    const ratio = max > 0 ? used / max : 0
    // a write pool on a standby fails every write (READ_ONLY): unhealthy, unless it is meant to be there
    const wrongServer = row.recovery && !this.#standbyIntended(conn)
    return [
      {
        name: 'postgres.server',
        status: wrongServer ? 'unhealthy' : 'healthy',
        latencyMs: performance.now() - started,
        message: wrongServer
          ? `PostgreSQL ${row.version} (standby, read-only): every write fails with READ_ONLY; the pool's target_session_attrs ${this.config.targetSessionAttrs} does not ask for a standby (point it at the primary, list the cluster's hosts with targetSessionAttrs 'read-write', or use 'read-only' / 'standby' / 'prefer-standby' for a read pool)`
          : `PostgreSQL ${row.version}${row.recovery ? ' (standby, read-only)' : ''}`,
        data: { version: row.version, inRecovery: row.recovery, ...(row.recovery ? { standbyIntended: !wrongServer } : {}) },
      },
      {
        name: 'postgres.connections',
        status: ratio >= 0.9 ? 'degraded' : 'healthy',
        message: `${used} of max_connections ${max} in use on the server`,
        data: { used, max },
      },
    ]
  }

  // ---- internals ----

  /**
   * A standby is where this connection is meant to be: a read-lane connection (replica), a pool whose
   * `targetSessionAttrs` accepts one (`read-only`, `standby`, `prefer-standby`), or a session made
   * read-only by its own setup (`sessionInit` or the startup `options` setting
   * `default_transaction_read_only`): a read pool.
   */
  #standbyIntended(conn: PostgresConnection): boolean {
    return conn.onReplica || conn.sessionReadOnlyByApp || this.#readOnlyByTarget() !== undefined
  }

  /**
   * Why every write-lane session of this pool is meant to be read-only, or `undefined`: its
   * `targetSessionAttrs` asks for standbys (`read-only`, `standby`, `prefer-standby`: no new
   * connection looks for a read-write server while a standby is up), or its startup `options`
   * (PGOPTIONS) set `default_transaction_read_only` on, read as the server reads them (see
   * startupOptionsReadOnly: `-c default-transaction-read-only=t`, `--default_transaction_read_only=yes`,
   * the last setting winning). A 25006 there is the application's write on a read pool, never a
   * failover (see {@link #readOnlyError}).
   */
  #readOnlyByTarget(): string | undefined {
    const { targetSessionAttrs } = this.config
    if (STANDBY_TARGETS.has(targetSessionAttrs))
      return `the pool targets standbys (target_session_attrs=${targetSessionAttrs}): its connections go to read-only servers and none looks for a read-write one; run writes on a pool of the primary (target_session_attrs=read-write or primary)`
    if (this.#readOnlyOptions)
      return "the pool's startup options (options, PGOPTIONS) set default_transaction_read_only: every session of it is read-only; run writes on a pool without it"
    return undefined
  }

  async #password(): Promise<string | undefined> {
    let password: string | undefined
    try {
      password = await this.config.resolvePassword()
    } catch (err) {
      if (DatabaseError.is(err)) throw err
      throw new DatabaseError(
        'CONNECTION_FAILED',
        `the password function for ${this.target} failed: ${isErrorLike(err) ? err.message : String(err)}`,
        {
          backend: 'postgres',
          cause: err,
        },
      )
    }
    // a password that is also the user, database, host or application name is shown as that name
    // anyway: hiding it in free text would tell it (redactSecrets' `shown`; URLs still hide it)
    if (password && !this.#secrets.includes(password) && !this.#shownValue(password)) {
      this.#secrets.push(password)
      if (this.#secrets.length > MAX_REMEMBERED_SECRETS) this.#secrets.shift()
    }
    return password
  }

  /** Whether `value` is a name every message shows as itself: the user, database, a host, the application name. */
  #shownValue(value: string): boolean {
    return this.config.shownNames.includes(value)
  }

  /**
   * One connect attempt to `address` (the host itself, or one of the addresses its name resolved to:
   * the name is kept for TLS, as SNI and for verify-full's identity check), within `timeoutMs` (pg's
   * `connectionTimeoutMillis`); on failure `attempt.secured` tells whether the server had accepted TLS
   * (see {@link isSecured}).
   */
  async #open(
    host: ResolvedHost,
    address: string,
    timeoutMs: number,
    ssl: PgSsl,
    password: string | undefined,
    hooks: ConnectionHooks,
    attempt?: { secured: boolean },
    bouncer = Boolean(this.options.pgbouncer),
    withSettings = true,
  ): Promise<PostgresConnection> {
    const { config, options } = this
    const startupOptions =
      this.#readOnlyVia === 'startup' ? [config.options, REPLICA_SESSION_OPTIONS].filter(Boolean).join(' ') : config.options
    const guard = new ReadGuard()
    const types = createTypeParsers(options.int8, guard, options.timestamptz)
    const client = new Client({
      host: address,
      port: host.port,
      database: config.database,
      user: config.username,
      password,
      // pg names the host it connects to (an address now) for SNI: name the host of the config instead
      ssl: ssl !== false && address !== host.host && isIP(host.host) === 0 ? { servername: host.host, ...ssl } : ssl,
      application_name: config.applicationName,
      // behind PgBouncer these go with SET after connecting (see sessionSettingsThroughPgBouncer)
      statement_timeout: (!options.pgbouncer && config.statementTimeoutMs) || undefined,
      idle_in_transaction_session_timeout: (!options.pgbouncer && config.idleInTransactionTimeoutMs) || undefined,
      lock_timeout: (!options.pgbouncer && config.lockTimeoutMs) || undefined,
      connectionTimeoutMillis: timeoutMs,
      options: startupOptions,
      keepAlive: config.keepAlive,
      keepAliveInitialDelayMillis: options.keepAliveInitialDelayMs,
      types,
      // a name given to Node (the single-host connect) is looked up once for all connects racing on it
      stream: connectingSocket,
    })
    // pg would fall back to process.env.PGOPTIONS for empty `options` by itself, behind the config's back (and
    // past PgBouncer's refusal of it): the config's, PGOPTIONS included (see withEnvStartupOptions), or nothing
    ;(client as unknown as { connectionParameters: { options?: string } }).connectionParameters.options = options.pgbouncer
      ? undefined
      : startupOptions || undefined
    const statements =
      options.prepare === false
        ? undefined
        : new StatementCache(options.statementCacheSize, options.prepare, this.#statementGeneration, pgStatementRecord(client))
    // the transaction status of every ReadyForQuery: tells one transaction from the next, publishes schema changes (DDL tags)
    if (statements !== undefined) {
      client.connection.on('readyForQuery', (msg: { status?: string }) => statements.readyForQuery(msg.status))
      // a changed TimeZone, DateStyle...: literals Parse converted with the old one (see settingReported)
      client.connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) =>
        statements.settingReported(msg.parameterName, msg.parameterValue),
      )
      // which failed named statement was refused at Bind, before anything of it executed
      trackBindComplete(client)
    }
    // the error listener exists before the first byte is sent (see PostgresConnection)
    const conn = new PostgresConnection(
      client,
      (err) => hooks.onLost(mapPostgresError(err, { connectionBroken: true, secrets: this.#secrets })),
      statements,
      { host: host.host, port: host.port, address },
    )
    conn.reads = { types, guard }
    // the output formats the parsers read, as startup parameters (see ReadFormats); pg sends a fixed set.
    // The first connection goes without DateStyle and IntervalStyle, to learn the server's defaults
    const formats = this.#formats
    const startup = readFormatStartup(bouncer, formats)
    const pgClient = client as unknown as { getStartupConf(): Record<string, string> }
    const startupConf = pgClient.getStartupConf.bind(client)
    // sessionInit's plain SETs as startup parameters, the session's defaults (see #startupSettings);
    // not to a PgBouncer the config does not declare (reopened as behind one: see refusesReadFormatStartup)
    const settings = bouncer || !withSettings ? [] : [...this.#startupSettings.values()]
    const given = Object.fromEntries(settings.map(({ name, value }) => [name, value]))
    pgClient.getStartupConf = () => ({ ...startupConf(), ...given, ...startup })
    // close() gave up on this connect: the socket in flight is destroyed (it kept the process alive)
    const abort = (): void => conn.kill()
    hooks.signal?.addEventListener('abort', abort, { once: true })
    try {
      if (hooks.signal?.aborted === true) throw new Error('the pool is closing: connect abandoned')
      await client.connect()
    } catch (err) {
      if (attempt) attempt.secured = isSecured(client.connection.stream)
      conn.kill()
      // a PgBouncer the config does not declare: DateStyle alone at startup, the rest SET after connecting
      if (refusesReadFormatStartup(err, bouncer)) return this.#open(host, address, timeoutMs, ssl, password, hooks, attempt, true)
      // a setting the server refuses at startup (unknown name, bad value, not permitted): opened again
      // without them, so that its SET fails as 'session init on ... failed', as without startup settings
      if (settings.length > 0 && refusesStartupSetting(err))
        return this.#open(host, address, timeoutMs, ssl, password, hooks, attempt, bouncer, false)
      throw err
    } finally {
      hooks.signal?.removeEventListener('abort', abort)
    }
    // pg needs the password only for the authentication exchange, over now: not kept on the client,
    // where util.inspect(conn.native, { showHidden: true }) showed it (review r13 D10)
    forgetPassword(client)
    if (formats === undefined) {
      // the server's defaults (database and role settings included), as it reported them: the pool
      // keeps their input semantics (see readFormatsOf); a connection that does not hold the pool's
      // formats yet is opened again with them as startup parameters (once per manager at most)
      this.#formats ??= readFormatsOf(conn.serverParameter('DateStyle'), conn.serverParameter('IntervalStyle'))
      if (!holdsReadFormats(conn, this.#formats, bouncer)) {
        void conn.close(this.options.cancelTimeoutMs)
        return this.#open(host, address, timeoutMs, ssl, password, hooks, attempt, bouncer, withSettings)
      }
    }
    conn.readFormats = this.#formats
    conn.formatsBySet = bouncer && this.options.pgbouncer !== 'transaction'
    conn.startupSettings = settings.map(({ name }) => name.toLowerCase())
    return conn
  }

  #connectError(err: unknown, host: ResolvedHost, timeoutMs: number): DatabaseError {
    if (DatabaseError.is(err)) return err
    const timedOut = isConnectTimeout(err)
    const target = this.config.hosts.length === 1 ? this.target : hostLabel(host.host, host.port)
    const prefix = timedOut ? `connecting to ${target} timed out after ${timeoutMs} ms` : `connecting to ${target} failed`
    const error = mapPostgresError(err, { connecting: true, secrets: this.#secrets, prefix })
    // a setting of the config's `options` the server refused at startup: every connect would fail so
    return startupOptionError(error, this.config.options) ?? error
  }

  async #run<R>(conn: PostgresConnection, query: CompiledQuery, shared: boolean, columns = true): Promise<QueryResult<R>> {
    // refused before anything is sent: the connection stays usable
    const prepared = pgQuery(query)
    const progress = new StatementProgress()
    let answer: PgAnswer
    try {
      answer = await this.#send(conn, prepared, shared, false, progress)
    } catch (err) {
      throw this.#queryError(conn, err, query.text, progress)
    }
    try {
      // a statement that succeeded left no aborted transaction behind (ROLLBACK TO, ROLLBACK, BEGIN...)
      conn.abortedBy = undefined
      this.#noteCommitBeforeOpen(conn, query.text, progress)
      return normalize<R>(answer, columns ? query.text : undefined, progress, conn)
    } catch (refused) {
      throw await this.#refusedAfterRun(conn, refused, progress)
    } finally {
      progress.hold?.()
    }
  }

  /**
   * A result refused in the client after the server ran its statement (two columns of one name, see
   * resultColumnsError): inside a transaction the server saw no error, so a caller catching the
   * refusal could go on and COMMIT the statement's work. The transaction is aborted in the server
   * instead, as a statement the server refused aborts it: one statement that fails there
   * ({@link ABORT_TRANSACTION_SQL}), so that every later statement is refused (25P02, `cause`: the
   * refusal), COMMIT is answered ROLLBACK, `transaction()` rejects with TRANSACTION_ROLLED_BACK and
   * ROLLBACK TO SAVEPOINT recovers, exactly as after a server error. One round trip, on this rare path
   * only. The abort is the next statement the server sees: the statements issued after the refused
   * one were kept from pg since its answer (`progress.hold`, see runStatement) and follow it, refused
   * (25P02). When the transaction cannot be aborted so (a statement is in pg already, or the abort
   * did not leave it failed), the connection is closed (the server rolls the transaction back with
   * the session). Resolves with the error to report (the refusal).
   */
  async #refusedAfterRun(conn: PostgresConnection, refused: unknown, progress?: StatementProgress): Promise<unknown> {
    try {
      if (!conn.usable || conn.client.getTransactionStatus() !== 'T') return refused
      const error = DatabaseError.is(refused) ? refused : this.mapError(refused)
      // the statements behind it fail 25P02 naming the refusal as the cause
      conn.abortedBy = error
      const aborting = awaitsReadyForQuery(conn) ? undefined : runTextFirst(conn, ABORT_TRANSACTION_SQL)
      if (aborting !== undefined) {
        // the abort is in pg: the statements kept behind it follow it
        progress?.hold?.()
        if ((await aborting) === 'E') return refused
      }
      conn.markBroken(error)
      conn.kill()
      return refused
    } finally {
      progress?.hold?.()
    }
  }

  /**
   * Sends one converted statement: a parameterised one, or a lone plain one without parameters, as a
   * named prepared statement when the cache gives it one; anything else unnamed. A named statement
   * the server no longer accepts as cached (see {@link statementInvalidation}) is prepared again and
   * run once more when that is safe.
   */
  #send(conn: PostgresConnection, query: PgQuery, shared: boolean, retried: boolean, progress: StatementProgress): Promise<PgAnswer> {
    // a run again follows a statement prepared again (the schema changed): its arrays are checked afresh
    if (retried && query.arrays !== undefined) this.#arrayCheck.forget(conn.client, query.text)
    // an array check in flight holds the connection: later statements are sent after it, in the order
    // issued (a run again is sent only when nothing was issued after it, or shared: behind them)
    const held = this.#held.get(conn)
    if (held !== undefined)
      return new Promise<PgAnswer>((resolve) => held.push(() => resolve(this.#sendInTurn(conn, query, shared, retried, progress))))
    return this.#sendInTurn(conn, query, shared, retried, progress)
  }

  /**
   * Sends `query` now (in turn, behind what was issued before it: see PostgresConnection.submit), after its array check (see
   * ArrayParameterCheck): synchronous when the server's parameter types of its text are known; else
   * the Parse/Describe probe (and a pg_type lookup) are queued now, and the connection is held (see
   * {@link #held}) until the statement itself is queued or refused.
   */
  #sendInTurn(conn: PostgresConnection, query: PgQuery, shared: boolean, retried: boolean, progress: StatementProgress): Promise<PgAnswer> {
    // given up on while it was held behind an array check (see #runGuarded): nothing is sent
    if (progress.withdrawn !== undefined) return Promise.reject(progress.withdrawn)
    if (query.arrays === undefined) return this.#sendChecked(conn, query, shared, retried, progress)
    let checking: Promise<void> | undefined
    try {
      checking = this.#checkArrays(conn, query, progress)
    } catch (refused) {
      return Promise.reject(refused as Error)
    }
    if (checking === undefined) return this.#sendChecked(conn, query, shared, retried, progress)
    // its later statements (cursors too: see #openInTurn) wait until the statement itself is queued
    this.#held.set(conn, [])
    return checking.then(
      () => {
        try {
          // withdrawn (its signal, its deadline) while its own check ran: not handed to pg, which would
          // refuse it before writing and never answer a ReadyForQuery that the release then awaits
          if (progress.withdrawn !== undefined) return Promise.reject(progress.withdrawn)
          return this.#sendChecked(conn, query, shared, retried, progress)
        } finally {
          this.#release(conn)
        }
      },
      (err: unknown) => {
        this.#release(conn)
        throw err
      },
    )
  }

  /**
   * Submits a stream's cursor (`submit`: PostgresConnection.submit of it) in its turn, as {@link #send} does a statement: behind an array
   * check in flight (see {@link #held}), and after its own array check (the connection held meanwhile),
   * so pg is handed it after every statement issued before it, its probe too. `undefined` when it was
   * submitted at once; else a promise that settles when it is (rejecting with the check's failure, or
   * with `progress.withdrawn` for a cursor given up on before: then it is never submitted).
   */
  #openInTurn(conn: PostgresConnection, query: PgQuery, submit: () => void, progress: StatementProgress): Promise<void> | undefined {
    const held = this.#held.get(conn)
    if (held === undefined) return this.#openChecked(conn, query, submit, progress)
    return new Promise<void>((resolve, reject) =>
      held.push(() => {
        try {
          const opening = this.#openChecked(conn, query, submit, progress)
          if (opening === undefined) resolve()
          else opening.then(resolve, reject)
        } catch (err) {
          reject(err as Error)
        }
      }),
    )
  }

  #openChecked(conn: PostgresConnection, query: PgQuery, submit: () => void, progress: StatementProgress): Promise<void> | undefined {
    if (progress.withdrawn !== undefined) throw progress.withdrawn
    const checking = query.arrays === undefined ? undefined : this.#checkArrays(conn, query, progress)
    if (checking === undefined) {
      submit()
      return undefined
    }
    this.#held.set(conn, [])
    return checking.then(
      () => {
        try {
          if (progress.withdrawn !== undefined) throw progress.withdrawn
          submit()
        } finally {
          this.#release(conn)
        }
      },
      (err: unknown) => {
        this.#release(conn)
        throw err
      },
    )
  }

  /**
   * The array check of `conn` settled: the statements held behind it are sent, in order, until one
   * holds the connection again; when none does, settledTransactionState's waits are told.
   */
  #release(conn: PostgresConnection): void {
    const waiting = this.#held.get(conn)
    this.#held.delete(conn)
    if (waiting !== undefined) {
      for (let i = 0; i < waiting.length; i++) {
        waiting[i]!()
        const again = this.#held.get(conn)
        if (again !== undefined) {
          again.push(...waiting.slice(i + 1))
          return
        }
      }
    }
    const waits = this.#heldWaits.get(conn)
    if (waits !== undefined) for (const wait of [...waits]) wait()
  }

  /**
   * See ArrayParameterCheck.check: the server's parameter types of `query`'s text, kept per
   * connection; `undefined` when known (checked synchronously). The catalog lookup is queued on the
   * client directly (the connection is held by this check).
   */
  #checkArrays(conn: PostgresConnection, query: PgQuery, progress: StatementProgress): Promise<void> | undefined {
    return this.#arrayCheck.check(
      conn,
      query.text,
      query.arrays!,
      conn.statements?.generation,
      async (text, checking) => {
        const { rows } = await runText<{ oid: unknown; a: unknown }>(conn, text, checking)
        return rows.map((row) => ({ oid: Number(row.oid), a: row.a === true || row.a === 't' }))
      },
      progress,
    )
  }

  #sendChecked(
    conn: PostgresConnection,
    query: PgQuery,
    shared: boolean,
    retried: boolean,
    progress: StatementProgress,
  ): Promise<PgAnswer> {
    const cache = conn.statements
    // without parameters only one plain query or DML statement is named: the simple protocol runs the
    // rest (several statements, DDL, control). An unnamed statement still carries the cache: its
    // command tag may say statements were dropped. A run again (retried) is sent only outside a transaction.
    if (cache === undefined || (query.values.length === 0 && !(QUERY_OR_DML.test(query.text) && this.#lone(query.text))))
      return runStatement(conn, query.text, query.values, undefined, cache, undefined, progress, retried)
    const entry = cache.acquire(query.text)
    if (entry === undefined) return runStatement(conn, query.text, query.values, undefined, cache, undefined, progress, retried)
    return runStatement(
      conn,
      query.text,
      query.values,
      entry,
      cache,
      (err, wasParsed, bound) => this.#recover(conn, query, shared, retried, wasParsed, bound, entry, err, progress),
      progress,
      retried,
    )
  }

  /**
   * A failed named statement. When the server dropped or invalidated it, or its cached parameter
   * types may be stale (see {@link statementInvalidation}), the statements it concerns are prepared
   * again on their next run (`'changed'`: every connection's; `'dropped'`: this connection's;
   * `'types'`, `'parameter'`: this one), and this one is run again at once when that changes
   * nothing else: it failed outside a transaction (so it left nothing behind), it was not run again
   * already, it is not a `CALL` or `DO` (whose body may commit: see {@link innerCommitPoint}),
   * and nothing was issued on the connection after it (pg's queue behind it is empty), so the run
   * again is the next statement the server sees, in the order issued, and it is sent only if the
   * connection is still outside a transaction then. A statement sharing a pipelined connection
   * (lone and auto-commit, behind or beside other callers' statements, whose order nothing
   * promises) is run again behind them.
   *
   * Otherwise the error says why it was not run again, with `retryable: true` (it did not run), except:
   * - `'parameter'` (a Bind value the cached parameter type refused): thrown as mapped (not
   *   retryable), since a value wrong for the column is as likely, and a replay would repeat it;
   * - a statement parsed inside the transaction still open, and dropped or invalidated there: the
   *   transaction did it itself (a function running DDL or `DEALLOCATE`), so a replay would fail the
   *   same way: `retryable: false`.
   */
  #recover(
    conn: PostgresConnection,
    query: PgQuery,
    shared: boolean,
    retried: boolean,
    wasParsed: boolean,
    bound: boolean,
    entry: CachedStatement,
    err: unknown,
    progress: StatementProgress,
  ): Promise<PgAnswer> {
    const kind = statementInvalidation(err, wasParsed, bound)
    const cache = conn.statements
    if (kind === undefined || cache === undefined) throw err
    // the transaction status it was sent in (pg sends a statement once the one before it is answered)
    const outside = shared || !progress.inTransaction
    const ownDoing = !outside && kind !== 'parameter' && cache.parsedInOpenTransaction(entry)
    // the server reports a changed type for every connection's copy: all of them prepare again;
    // a dropped statement concerns this connection's session only; stale parameter types, this statement
    if (kind === 'changed') cache.invalidateEverywhere()
    else if (kind === 'dropped') cache.invalidateAll()
    else cache.invalidate(entry)
    // the server's parameter types the array check kept for this text may be as stale
    this.#arrayCheck.forget(conn.client, query.text)
    let why: string
    if (ownDoing) why = PARSED_IN_THIS_TRANSACTION
    else if (!outside) why = kind === 'parameter' ? 'it failed inside a transaction, which the server aborted' : IN_TRANSACTION
    else if (retried) why = 'it failed again after being prepared again'
    else if (!conn.usable) why = 'it did not run, and the connection closed before it could run again'
    else if (!shared && (issuedAfter(conn) || this.#held.has(conn))) why = LATER_STATEMENTS_QUEUED
    else if (innerCommitPoint(query.text, false) !== undefined) why = 'it is a CALL or DO, never run again by dbpool'
    else
      return this.#send(conn, query, shared, true, progress).catch((again: unknown) => {
        throw again instanceof RerunRefused ? this.#notRunAgain(err, entry, REFUSED_IN_TRANSACTION, kind !== 'parameter') : again
      })
    throw this.#notRunAgain(err, entry, kind === 'parameter' ? `${why}; ${STALE_PARAMETER_NOTE}` : why, kind !== 'parameter' && !ownDoing)
  }

  /**
   * The error of an invalidated named statement not run again: its own, saying why; `retryable` as
   * given; `detail.failedAtBind: true` (the server refused its Bind: nothing of it executed, see
   * {@link statementInvalidation}), which core's default `retryOn` requires of 42804/42883/42846/42725.
   */
  #notRunAgain(err: unknown, entry: CachedStatement, why: string, retryable: boolean): DatabaseError {
    const mapped = this.mapError(err)
    return new DatabaseError(mapped.code, `${mapped.message} (named prepared statement ${entry.name}: ${why})`, {
      backend: 'postgres',
      sqlState: mapped.sqlState,
      cause: mapped.cause,
      retryable: retryable || mapped.retryable,
      detail: { ...mapped.detail, statement: entry.name, failedAtBind: true },
    })
  }

  /** A statement with a deadline and/or an AbortSignal. */
  async #runGuarded<R>(conn: PostgresConnection, query: CompiledQuery, options: ExecuteOptions, columns: boolean): Promise<QueryResult<R>> {
    const { timeoutMs, signal } = options
    if (signal?.aborted) {
      throw new DatabaseError('QUERY_CANCELLED', 'the statement was cancelled before it started (AbortSignal already aborted)', {
        backend: 'postgres',
        cause: signal.reason,
      })
    }
    const progress = new StatementProgress()
    const running = this.#send(conn, pgQuery(query), false, false, progress)
    // if we stop waiting (deadline), the pg promise still settles later: never unhandled
    running.catch(() => undefined)
    let stop!: (why: Stop) => void
    const stopped = new Promise<Stop>((resolve) => (stop = resolve))
    // still waiting its turn behind statements issued before it on the connection (kept by PostgresConnection.submit, or
    // behind an array check): taken out and failed, never sent (its own array check's probe or lookup
    // too, when still kept); the statement running there is not this one's to cancel, and the
    // connection stays as it is
    let withdrawn: DatabaseError | undefined
    // its own array check ran on the server when the deadline or abort came: cancelled as a running statement
    let checkRan: DatabaseError | undefined
    const withdraw = (why: 'deadline' | 'abort'): boolean => {
      if (progress.sent) return false
      if (checkState(conn, progress) === 'running') {
        checkRan = checkCancelledError(
          why === 'deadline'
            ? new DatabaseError('QUERY_TIMEOUT', `statement exceeded its ${timeoutMs} ms deadline`, {
                backend: 'postgres',
                detail: { timeoutMs },
              })
            : new DatabaseError('QUERY_CANCELLED', 'the statement was cancelled (its AbortSignal)', {
                backend: 'postgres',
                cause: signal?.reason,
              }),
          why === 'deadline',
          conn.client.getTransactionStatus() === 'T',
        )
        // never sent after the check, whatever the check's answer
        progress.withdrawn = checkRan
        if (why === 'abort') withdrawn = checkRan
        return false
      }
      withdrawn = notStartedError(why, timeoutMs, signal)
      progress.withdrawn = withdrawn
      stop('withdrawn')
      if (!withdrawCheck(conn, progress, withdrawn)) withdrawQueued(conn, progress, withdrawn)
      return true
    }
    // at the deadline, an answer already received is read first (startDeadline): only one not received times out
    const deadline =
      timeoutMs === undefined
        ? undefined
        : startDeadline(timeoutMs, () => {
            if (!withdraw('deadline')) stop('deadline')
          })
    let grace: Deadline | undefined
    let cancel: Promise<boolean> | undefined
    const onAbort = (): void => {
      if (withdraw('abort')) return
      if (cancel === undefined) {
        cancel = this.#cancel(conn)
        // the statements issued after it wait for the server's confirmation: the statement may
        // complete while the cancel is on its way, which must never land on the next one
        conn.holdForCancel(cancel)
      }
      // a cancel the server never answers must not hang the caller
      grace ??= startDeadline(this.options.cancelTimeoutMs, () => stop('abandoned'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    let answer: PgAnswer
    try {
      const first = await Promise.race([running, stopped])
      if (first === 'withdrawn') throw withdrawn!
      if (first === 'deadline' || first === 'abandoned') throw this.#abandon(conn, first, timeoutMs, checkRan)
      conn.abortedBy = undefined
      this.#noteCommitBeforeOpen(conn, query.text, progress)
      answer = first
    } catch (err) {
      progress.hold?.()
      if (withdrawn !== undefined && err === withdrawn) throw err
      const mapped = this.#queryError(conn, err, query.text, progress)
      // its array check, cancelled on the server (57014): the statement itself was never sent
      if (checkRan !== undefined && !progress.sent && mapped.code === 'QUERY_CANCELLED') throw checkRan
      throw mapped
    } finally {
      deadline?.clear()
      grace?.clear()
      signal?.removeEventListener('abort', onAbort)
      // a cancel still in flight could hit the next statement on this connection: wait for the
      // server to confirm it, or never reuse the connection (the statements kept on it wait as long:
      // see PostgresConnection.holdForCancel)
      if (cancel && conn.usable && !(await cancel)) conn.markBroken(new Error('a cancel request was not confirmed by the server'))
    }
    try {
      return normalize<R>(answer, columns ? query.text : undefined, progress, conn)
    } catch (refused) {
      throw await this.#refusedAfterRun(conn, refused, progress)
    } finally {
      progress.hold?.()
    }
  }

  /** Gives up on a running statement: the connection is closed (never reused mid-statement) and the server asked to cancel. */
  #abandon(conn: PostgresConnection, why: Stop, timeoutMs: number | undefined, checkRan?: DatabaseError): DatabaseError {
    const error =
      checkRan !== undefined && why === 'deadline'
        ? checkRan
        : why === 'deadline'
          ? new DatabaseError(
              'QUERY_TIMEOUT',
              `statement exceeded its ${timeoutMs} ms deadline; a cancel request was sent and the connection closed`,
              { backend: 'postgres' },
            )
          : new DatabaseError(
              'QUERY_CANCELLED',
              `statement was aborted and the server did not confirm the cancel within ${this.options.cancelTimeoutMs} ms; the connection was closed`,
              {
                backend: 'postgres',
              },
            )
    conn.markBroken(error)
    // sent before the socket goes, on a socket of its own; its outcome does not matter any more
    void this.#cancel(conn)
    conn.kill()
    return error
  }

  #cancel(conn: PostgresConnection): Promise<boolean> {
    const processId = conn.processId
    const secretKey = conn.secretKey
    if (processId === null || secretKey === null) return Promise.resolve(false)
    // the server this connection reached, not the config's first host
    return sendCancelRequest({ host: conn.address, port: conn.port, processId, secretKey }, this.options.cancelTimeoutMs).then(
      () => true,
      () => false,
    )
  }

  /**
   * 25006 (read_only_sql_transaction): a write on a read-only server or transaction. When nothing
   * sent in this lease asked for read-only mode (`BEGIN READ ONLY`, `transaction({ readOnly: true })`,
   * `SET ... read_only`), the server is the wrong one (a standby, a primary fenced or demoted by a
   * failover: it reports `in_hot_standby` or `default_transaction_read_only` on, though possibly
   * only after this error): every connection to that server is evicted and the error is READ_ONLY with
   * `retryable: true`, so `transaction(fn, { retry })` replays on a new connection, which the host
   * walk sends to a read-write server. A read-only transaction the application opened keeps its
   * connection and is not retryable; so does a write on a connection whose session the application
   * made read-only in an earlier lease (`SET default_transaction_read_only = on` left behind with
   * `sessionReset: 'none'`, or in `sessionInit`: see SESSION_READ_ONLY_TEXT), and so does any write of
   * a pool meant to be read-only ({@link #readOnlyByTarget}: `targetSessionAttrs` `read-only`,
   * `standby` or `prefer-standby`, or startup options setting `default_transaction_read_only`),
   * whose message says so. A function that sets it is not seen: its 25006 is taken for a fenced server.
   */
  #readOnlyError(conn: PostgresConnection, mapped: DatabaseError): DatabaseError {
    const server = reportsReadOnly(conn)
    // the application asked for read-only mode in this lease: the write is its own mistake
    if (conn.readOnlyByApp || conn.onReplica) return mapped
    if (conn.sessionReadOnlyByApp)
      return new DatabaseError(
        'READ_ONLY',
        `${mapped.message} (a statement of an earlier lease or sessionInit made this connection's session read-only: default_transaction_read_only; sessionReset: 'clean' resets it on release)`,
        { backend: 'postgres', sqlState: mapped.sqlState, cause: mapped.cause, retryable: false, detail: mapped.detail },
      )
    const at = hostLabel(conn.host, conn.port)
    // a read pool (review r6 item 6): the server is what the pool asked for; a new connection would be the same kind
    const meant = this.#readOnlyByTarget()
    if (meant !== undefined)
      return new DatabaseError('READ_ONLY', `${mapped.message} (${meant})`, {
        backend: 'postgres',
        sqlState: mapped.sqlState,
        cause: mapped.cause,
        retryable: false,
        detail: { ...mapped.detail, host: at, targetSessionAttrs: this.config.targetSessionAttrs },
      })
    const error = new DatabaseError(
      'READ_ONLY',
      `${mapped.message} (the server ${at} is read-only: a standby, or a primary fenced by a failover; the connection is closed and a new one looks for a read-write server)`,
      {
        backend: 'postgres',
        sqlState: mapped.sqlState,
        cause: mapped.cause,
        retryable: true,
        detail: { ...mapped.detail, host: at, serverReportsReadOnly: server },
      },
    )
    conn.markBroken(error)
    this.#evictServer(at, error)
    return error
  }

  /**
   * The DatabaseError for a statement's failure. With `progress` (what the statement reached on the
   * wire): when its session ended after it was sent and it may have committed (see
   * {@link outcomeUnknown}: a write outside a transaction, a COMMIT), the error is restated as
   * not retryable with `detail.outcome: 'unknown'`; a statement the server refused before completing
   * it, or one inside a transaction (rolled back with the session), keeps its mapping. A retryable
   * error of the server (BUSY, DEADLOCK...) for a text that may have committed part of its work
   * before it (a `CALL` or `DO` outside a transaction block, `...; COMMIT; ...`: see
   * {@link mayHavePartlyCommitted}) is restated the same way (`partlyCommittedError`).
   */
  #queryError(conn: PostgresConnection, err: unknown, text?: string, progress?: StatementProgress): DatabaseError {
    const sqlState = sqlStateOf(err)
    // a cached plan's changed result type (0A000) says nothing about the connection, unlike the rest of 0A;
    // nor does a Bind with the wrong number of values (08P01 from exec_bind_message: the session goes on)
    if (isFatalSqlState(sqlState) && !isCachedPlanChange(err) && !isParameterCountMismatch(err)) conn.markBroken(err as Error)
    const mapped = mapPostgresError(err, { connectionBroken: !conn.usable, secrets: this.#secrets })
    if (mapped.sqlState === '25006') return this.#readOnlyError(conn, mapped)
    // refused by an aborted transaction: the error that aborted it is what the caller needs (the
    // statement was not run), with SQLite's code for the same refusal
    if (mapped.sqlState === IN_FAILED_SQL_TRANSACTION) return abortedTransactionError('postgres', conn.abortedBy, IN_FAILED_SQL_TRANSACTION)
    // the first error of a transaction aborts it: a later 25P02 names it as its cause
    if (sqlState !== undefined) conn.abortedBy = mapped
    // a socket error (EPIPE, ECONNRESET) can reach the statement before pg reports it on the client
    if (mapped.code === 'CONNECTION_LOST' && conn.usable) conn.markBroken(mapped)
    if (progress === undefined || text === undefined) return mapped
    // PgBouncer's own errors: one for a statement that never reached PostgreSQL, or sent while nothing
    // was in flight, keeps its mapping; one that cut the statement off on the server is no server's
    // answer: judged as a lost connection
    const bouncer = sqlState === '08P01' ? pgBouncerError(err) : undefined
    if (bouncer !== undefined && bouncer.reason !== 'in-doubt') return mapped
    // the session is gone: lost, closed at a deadline (QUERY_TIMEOUT), or ended by the server (FATAL)
    const serverError = sqlState !== undefined && bouncer === undefined
    const sessionEnded = mapped.code === 'CONNECTION_LOST' || (serverError ? endsSession(err) : !conn.usable)
    if (outcomeUnknown(progress, text, sessionEnded, serverError)) {
      conn.endedInDoubt = true
      return unknownOutcomeError(mapped, text)
    }
    // a COMMIT of the text that completed before the error left that part committed, whatever the
    // error (`insert ...; commit; insert <duplicate>`: review r2 item 5); a CALL's or DO's body may have
    // committed: said for a retryable error (which a caller would otherwise run again)
    if (serverError) {
      const point = mayHavePartlyCommitted(progress, text)
      if (point !== undefined && (mapped.retryable || !mayCommitInBody(point))) return partlyCommittedError(mapped, point)
    }
    return mapped
  }
}

/**
 * A statement text that puts the session or transaction in read-only mode (`BEGIN READ ONLY`,
 * `SET TRANSACTION READ ONLY`, `SET default_transaction_read_only = on`, ...): after it, a 25006 on
 * that connection may be the application's own doing.
 */
const READ_ONLY_TEXT = /read[\s_]+only/i

/**
 * Of those, a text that sets read-only mode for the session (`SET default_transaction_read_only`,
 * `set_config('default_transaction_read_only', ...)`, `SET SESSION CHARACTERISTICS AS TRANSACTION
 * READ ONLY`): it outlives the lease (with `sessionReset: 'none'`, or from `sessionInit`), so a later
 * 25006 on that connection is the application's setting, not a server fenced by a failover.
 */
const SESSION_READ_ONLY_TEXT =
  /\bset(?:\s+session)?\s+default_transaction_read_only\b|\bset_config\s*\(\s*'default_transaction_read_only'|\bsession\s+characteristics\b/i

/**
 * A text that may turn a read-only session's `default_transaction_read_only` off: it mentions read-only
 * or read-write mode, resets or discards settings, or calls `set_config`. Read on release only where
 * the server does not report the setting (see `#keepReadOnly`); a function that changes it is not seen there.
 */
const MAY_UNSET_READ_ONLY = /read[\s_]+(?:only|write)|\breset\b|\bdiscard\b|set_config|session\s+characteristics/i

/** Why an invalidated named statement inside a transaction was not run again (inside a savepoint only the savepoint's work is undone). */
const IN_TRANSACTION =
  'it is prepared again on its next run; it failed inside a transaction, which the server aborted (inside a savepoint, only the work since the savepoint: roll back to it and run that part again; else run the transaction again)'

/** Why it is not retryable: the transaction itself invalidated a statement it had parsed. */
const PARSED_IN_THIS_TRANSACTION =
  'it was parsed in this transaction and the transaction itself dropped or changed it since (DDL or DEALLOCATE run by a function, a procedure or dynamic SQL, which no command tag shows), so running the transaction again would fail the same way; it is prepared again on its next run'

/** What a Bind value refused by a statement's cached parameter type may mean. */
const STALE_PARAMETER_NOTE =
  "the value may be wrong for the column, or the column's type changed since the statement was parsed: it is prepared again (fresh parameter types) on its next run"

/** Why an invalidated named statement outside a transaction was not run again: statements issued after it wait in pg's queue. */
const LATER_STATEMENTS_QUEUED =
  'it did not run, and was not run again because statements issued after it on this connection were already queued (run again now, it would run after them); it is prepared again on its next run'

/** Why it was not run again: the connection was in a transaction when the run again's turn came. */
const REFUSED_IN_TRANSACTION =
  'it did not run, and was not run again because the connection was inside a transaction when its turn came; it is prepared again on its next run'

/**
 * Aborts the open transaction in the server after a result was refused in the client (see
 * `#refusedAfterRun`): a statement that fails in any session, read-only and standby ones included
 * (22P02, invalid input for integer), whose text says why in the server's log.
 */
const ABORT_TRANSACTION_SQL = "SELECT 'dbpool: a result was refused in the client, so this transaction is aborted'::integer"

/** SQLSTATE 25P02: a statement sent to an aborted transaction, refused until ROLLBACK. */
const IN_FAILED_SQL_TRANSACTION = '25P02'

/**
 * pg returns an array of results for a multi-statement text: the last one is the answer, its rows,
 * row count and command tag (`'INSERT'`, `'COMMIT'`, or `'ROLLBACK'` for a COMMIT of an aborted
 * transaction: core's transaction() checks it).
 *
 * @param text The statement text, to check the answer's columns with; undefined: not checked (rows nobody reads).
 * @throws SYNTAX_ERROR when two of the answer's columns share a name (see resultColumnsError): pg
 * kept only the last one's value in each row.
 */
function normalize<R>(
  result: PgQueryResult | PgQueryResult[],
  text: string | undefined,
  progress: StatementProgress,
  conn: PostgresConnection,
): QueryResult<R> {
  const last = Array.isArray(result) ? result[result.length - 1] : result
  if (!last) return { rows: [], rowCount: 0 }
  const fields = last.fields as readonly unknown[] | undefined
  if (text !== undefined && fields !== undefined && fields.length > 1) {
    const refused = resultColumnsError(fields, text, progress.inTransaction, conn, progress.aborted)
    if (refused !== undefined) throw refused
  }
  const rows = (Array.isArray(last.rows) ? last.rows : []) as R[]
  // a value the type parsers could not read exactly (see UnreadableValue): the result is refused
  const unreadable = findUnreadable(conn.reads?.guard, rows, fields)
  if (unreadable !== undefined) throw unreadableError(unreadable, text ?? '', progress.inTransaction, conn, progress.aborted)
  return { rows, rowCount: last.rowCount ?? rows.length, command: last.command ?? undefined }
}

/** pg's record of the statement names it parsed on a client's connection (pg skips Parse for those). */
function pgStatementRecord(client: Client): {
  readonly parsedStatements: Record<string, string | undefined>
  readonly submittedNamedStatements: Record<string, string | undefined>
} {
  return client.connection as unknown as {
    parsedStatements: Record<string, string | undefined>
    submittedNamedStatements: Record<string, string | undefined>
  }
}

/**
 * `config`, or when it has no `options`, `config` with libpq's PGOPTIONS as its `options` (an empty
 * variable is unset). pg sent PGOPTIONS by itself for a target without options, whatever its source (a
 * `DatabaseConfig`, options, a URL); dbpool makes that its own, so the value is the config's: sent to
 * replicas too (a replica's startup options held only the read-only switch), refused behind PgBouncer
 * (pg's fallback was dropped there, silently), and a setting the server refuses is CONFIGURATION
 * naming `database.options` (see startupOptionError).
 */
function withEnvStartupOptions(config: DatabaseConfig, env: NodeJS.ProcessEnv): DatabaseConfig {
  return config.options !== undefined || !env.PGOPTIONS ? config : config.with({ options: env.PGOPTIONS })
}

/**
 * A URL is a connection string as libpq reads one: the libpq variables of `process.env` fill in what
 * it leaves out (`DatabaseConfig.envDefaults`; PGSSLCERT and the others dbpool cannot honour are
 * CONFIGURATION naming them); an explicit `connectTimeoutMs` option (`explicitConnectTimeoutMs`) means
 * PGCONNECT_TIMEOUT is not read: written in code, it beats the ambient variable. A `DatabaseConfig` or
 * options read no environment (but PGOPTIONS: see withEnvStartupOptions).
 */
function toDatabaseConfig(config: DatabaseConfig | DatabaseOptions | string, explicitConnectTimeoutMs: unknown): DatabaseConfig {
  if (config instanceof DatabaseConfig) return config
  if (typeof config === 'string')
    return DatabaseConfig.fromUrl(
      config,
      {},
      DatabaseConfig.envDefaults(process.env, { url: config, connectTimeoutMs: explicitConnectTimeoutMs }),
    )
  return new DatabaseConfig(config)
}

/**
 * Whether the server has yet to send ReadyForQuery, the message that carries the transaction status.
 * pg settles a failed query at ErrorResponse, before ReadyForQuery; when the two arrive in different
 * socket reads, a caller that catches the error and releases at once would read the status of the
 * previous statement (`I` before a failing `BEGIN; ...` batch, `T` after a failing statement in a
 * transaction). The same holds for a statement released unawaited. pg keeps this flag untyped.
 */
function awaitsReadyForQuery(conn: PostgresConnection): boolean {
  return (conn.client as unknown as { readyForQuery: boolean }).readyForQuery !== true
}

/**
 * Whether every statement issued and not answered yet (pg's active one, its queue, in pipeline mode
 * the ones written behind, and the ones waiting their turn in PostgresConnection.submit) is one lone statement that cannot open or end a transaction (see
 * {@link plainStatement}). A statement without a readable text counts as not plain. pg's fields are
 * untyped internals; missing, nothing is plain. (Statements held behind an array check are not in
 * pg's queues: the caller counts them as not plain.)
 */
function unansweredArePlain(conn: PostgresConnection): boolean {
  const client = conn.client as unknown as {
    _activeQuery?: unknown
    _queryQueue?: readonly unknown[]
    _sentQueryQueue?: readonly unknown[]
  }
  if (client._queryQueue === undefined) return false
  const pending = [
    ...(client._activeQuery != null ? [client._activeQuery] : []),
    ...client._queryQueue,
    ...(client._sentQueryQueue ?? []),
    ...conn.queued,
  ]
  return pending.every((q) => {
    const text = (q as { text?: unknown } | null)?.text
    return typeof text === 'string' && plainStatement(text)
  })
}

/** settledTransactionState's `predict`: the state a last ReadyForQuery status stays in behind plain statements. */
const PREDICTED: ReadonlyMap<string, TransactionState> = new Map([
  ['I', 'idle'],
  ['T', 'open'],
  ['E', 'failed'],
])

/**
 * Whether statements were issued on the connection after the one being answered: the ones waiting
 * their turn (kept by PostgresConnection.submit, or in pg's queue), and in pipeline mode the ones
 * written behind it. pg keeps its queues untyped (`queryQueue`, its public getter, warns that it is
 * deprecated); missing, they count as issued.
 */
function issuedAfter(conn: PostgresConnection): boolean {
  const client = conn.client as unknown as { _queryQueue?: readonly unknown[]; _sentQueryQueue?: readonly unknown[] }
  const queued = client._queryQueue
  return queued === undefined || queued.length > 0 || (client._sentQueryQueue?.length ?? 0) > 0 || conn.queued.length > 0
}

/**
 * pg reads `client.pipeline` each time it sends from its queue, so it can be switched between
 * statements; we only switch while nothing is in flight (before the first shared statement, on release).
 */
function setPipeline(conn: PostgresConnection, on: boolean): void {
  const client = conn.client as unknown as { pipeline: boolean }
  if ((client.pipeline === true) !== on) client.pipeline = on
}

/** A replica connection's server reported that it left recovery (promoted): the connection is evicted. */
function promoted(conn: PostgresConnection): DatabaseError {
  return new DatabaseError(
    'CONNECTION_LOST',
    `the replica ${hostLabel(conn.host, conn.port)} is not a standby any more (promoted): its connection is closed instead of reused`,
    { backend: 'postgres', retryable: true, detail: { standby: false } },
  )
}

/** `targetSessionAttrs` values that accept a standby for the write lane's connections. */
const STANDBY_TARGETS: ReadonlySet<string> = new Set(['read-only', 'standby', 'prefer-standby'])

/**
 * The error of a statement given up on (its deadline, its AbortSignal) while it still waited its turn
 * on its connection, behind statements issued before it: it was never sent, so it is retryable, and
 * nothing was cancelled (the statement running there is another caller's).
 */
function notStartedError(why: 'deadline' | 'abort', timeoutMs: number | undefined, signal: AbortSignal | undefined): DatabaseError {
  const waiting =
    'while it still waited its turn behind the statements issued before it on its connection: it was never sent (nothing was cancelled, the connection is kept)'
  if (why === 'deadline')
    return new DatabaseError('QUERY_TIMEOUT', `statement exceeded its ${timeoutMs} ms deadline ${waiting}`, {
      backend: 'postgres',
      retryable: true,
      detail: { started: false, timeoutMs },
    })
  return new DatabaseError('QUERY_CANCELLED', `the statement was cancelled before it started, ${waiting}`, {
    backend: 'postgres',
    retryable: true,
    cause: signal?.reason,
    detail: { started: false },
  })
}

/**
 * Drops the password pg keeps on a connected client (`client.password`, `connectionParameters.password`,
 * non-enumerable properties that `util.inspect` with `showHidden` prints): it was needed only to
 * authenticate. A cancel request carries the backend's key, not the password.
 */
function forgetPassword(client: Client): void {
  const held = client as unknown as { password?: unknown; connectionParameters?: { password?: unknown } }
  held.password = undefined
  if (held.connectionParameters) held.connectionParameters.password = undefined
}
