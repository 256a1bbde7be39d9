import { configError } from '@dbpool/core'
import { checkEnum, checkInteger, checkString, rejectUnknownKeys, requireObject } from '@dbpool/core/internal'
import type { PrepareMode } from './postgres-statement-cache'
import { INT8_MODES, TIMESTAMPTZ_MODES, type Int8Mode, type TimestamptzMode } from './postgres-types'
import { checkSessionOptions, resolvePgBouncerMode, type PgBouncerMode } from './postgres-pgbouncer'
import { sessionInitFormatProblem } from './postgres-read-formats'
import { REPLICA_OPTION_KEYS, type PostgresReplicaOptions } from './postgres-replicas'

/** Options of the {@link PostgresConnectionManager} beyond the {@link DatabaseConfig}. */
export interface PostgresManagerOptions extends PostgresReplicaOptions {
  /**
   * SQL run on every new connection after connecting (e.g. `SET search_path TO app`). A statement of
   * the form `SET [SESSION] name TO|= value` / `SET TIME ZONE value` (simple values, see
   * startupParameterOf; not `role`) is also sent as a startup parameter on a direct connection, so
   * any reset returns to it (checked per connection against `pg_settings.reset_val`). The others, and
   * all behind PgBouncer, are run again on release when a statement may have reset settings
   * (`DISCARD ALL`, `RESET ALL`, `RESET search_path`, `SET TIME ZONE LOCAL`, `set_config(...)`,
   * `SET SESSION AUTHORIZATION`...: see resetsSession; a function's body is not seen) or after the
   * lease took `conn.native`, which would drop what they SET for every later borrower; and after
   * `sessionReset: 'clean'`. A DateStyle input order or IntervalStyle it sets (`SET datestyle = 'ISO,
   * DMY'`) is kept on every lease (see sessionReadFormats); an output style the row parsers cannot
   * read (DateStyle SQL / Postgres / German, IntervalStyle postgres_verbose / iso_8601) throws
   * CONFIGURATION when the pool is made if the text shows it, else at connect. Default is none.
   */
  readonly sessionInit?: string | readonly string[]
  /**
   * Deadline of one connect (TCP, TLS, auth, session init). Default is the pool's `createTimeoutMs`, else `10000`.
   * Given, it beats PGCONNECT_TIMEOUT for a URL string (the variable is then not read); the URL's own
   * `connect_timeout` still sets each host's deadline.
   */
  readonly connectTimeoutMs?: number
  /** Idle time before the first TCP keepalive probe (when the config's `keepAlive` is on). Default is `10000`. */
  readonly keepAliveInitialDelayMs?: number
  /** Deadline of a cancel request and of the ROLLBACK on release. Default is `5000`. */
  readonly cancelTimeoutMs?: number
  /** How `int8` columns come back: `'bigint'`, `'string'` or `'number'`. Default is `'bigint'`. */
  readonly int8?: Int8Mode
  /**
   * How `timestamptz` columns (and their arrays) come back: `'date'` a JS Date, to the millisecond
   * (pg's default; microseconds are truncated), or `'string'` the server's ISO text, exact
   * (`'2024-03-01 00:30:00.123456+00'`, in the session's TimeZone). Default is `'date'`.
   */
  readonly timestamptz?: TimestamptzMode
  /**
   * Lone auto-commit statements (`pool.query`) in flight at once on one connection, pipelined as
   * postgres.js does; `1` turns pipelining off. Transactions, `withConnection`, statements with a
   * deadline or a signal, and session or transaction control never share. A statement joins a
   * connection only behind reads (known read-only: a write may wait on a row lock the joining
   * caller holds) and, while a transaction or `withConnection` is open, not behind a read that has
   * run longer than 25 ms (core's `STALLED_HEAD_MS`: an ACCESS EXCLUSIVE lock wait): it waits for a
   * connection of its own, at most `acquireTimeoutMs` (ACQUIRE_TIMEOUT). Default is `8`.
   */
  readonly pipelineDepth?: number
  /**
   * What a released connection's session is put back to, besides rolling back an open transaction.
   * `'none'`: nothing (pg-pool's behaviour: `SET`, temp tables, `LISTEN` and session advisory locks
   * stay for the next borrower; but after a statement that reset settings, such as `RESET ALL` or
   * `DISCARD ALL`, the connection's setup is run again, see `sessionInit`). `'clean'`: when the lease ran a statement, one round trip of
   * {@link CLEAN_SESSION_SQL} (everything `DISCARD ALL` does except dropping prepared statements),
   * then the connection's setup again (the timeouts sent with SET behind PgBouncer in session mode,
   * `sessionInit`); a connection that carried shared (`pipelineDepth`) statements is
   * cleaned the same way once its burst ends, before its next lease. Default is `'none'`.
   */
  readonly sessionReset?: SessionReset
  /**
   * Named prepared statements, per connection, for parameterised statements and for one plain query
   * or DML statement without parameters: the server parses and plans the text once, later runs send
   * only Bind and Execute (no Parse, no Describe). `'always'`: named from the first run (postgres.js's
   * `prepare: true`, pgx's default statement cache). `'second-use'`: run unnamed once, named from the
   * second run, so one-off texts never take a cache slot. `true`: the default mode. `false`: every
   * statement unnamed (pg's behaviour). Several statements in one text, DDL and transaction or
   * session control always use pg's simple protocol.
   * A 0A000 "cached plan must not change result type" (after `ALTER TABLE`), a 26000 "prepared
   * statement does not exist" (after `DEALLOCATE ALL`, `DISCARD ALL`), or an error of stale cached
   * parameter types (42883, 42804... at Bind; 22003, 22P02... converting a Bind value, after a
   * column changed type elsewhere) is answered by preparing again and running once more outside a
   * transaction; inside one it is thrown with `retryable: true` (a class 22 error: as is, not
   * retryable; the next run is prepared again). DDL run through the pool (`CREATE`, `ALTER`, `DROP`,
   * `DO` command tags; `CREATE TABLE ... AS`, `SELECT ... INTO`, `CREATE MATERIALIZED VIEW` read from
   * the text) re-prepares the connection's statements, and after `ALTER`/`DROP`/`CREATE`
   * (not a lone `CREATE TEMP`), `DO` and `CALL` every connection's once it is committed. A text with
   * a literal `'now'`, `'today'`, `'tomorrow'` or `'yesterday'` is never named (Parse would fix the
   * instant), and a changed `TimeZone`, `DateStyle` or `IntervalStyle` (ParameterStatus) re-prepares
   * the connection's statements. Nothing is named on a replica (it replays DDL at its own pace):
   * this applies to the primary's connections, its read-only ones included.
   * Off, and refused when asked for, with `pgbouncer: true` (PgBouncer in transaction mode cannot
   * route named statements before 1.21). Default is `'second-use'`: as fast as `'always'` in
   * `npm run bench`-style runs, and a text built once (an `IN` list of a new length) evicts nothing.
   */
  readonly prepare?: boolean | PrepareMode
  /**
   * Named prepared statements kept per connection (a least-recently-used cache; pgx keeps 512); an
   * evicted one is closed on the server with the protocol's Close message, sent with the next
   * statement. Default is `100`. Checked (CONFIGURATION outside 1 to 10,000) but without effect when
   * nothing is named: `prepare: false`, or PgBouncer in transaction mode (`?pgbouncer=true`), where no
   * cache exists. Not refused there, so that one set of options serves an environment behind
   * PgBouncer and one without it.
   */
  readonly statementCacheSize?: number
  /**
   * The target is PgBouncer, in this pooling mode (its `pool_mode`). `'transaction'` (what the
   * config's `pgbouncer: true` / `?pgbouncer=true` means): no named prepared statements, and what
   * needs a session is refused with CONFIGURATION saying why: `sessionInit`, `sessionReset: 'clean'`,
   * the config's statement/lock/idle-in-transaction timeouts and `options`, and statements that
   * leave session state behind (LISTEN, a session-level SET or RESET, PREPARE, a cursor WITH HOLD,
   * `pg_advisory_lock()` and the other session-level advisory locks). `'session'`: like a direct
   * connection, except that the startup parameters PgBouncer refuses are not sent (the timeouts
   * are applied with SET after connecting; `options` is refused). `false`: a direct connection, even
   * if the config says `pgbouncer: true`. Default is the config's flag. The primary's target only:
   * each replica's own config says whether it is behind PgBouncer (see `replicaPgBouncerMode`).
   */
  readonly pgbouncer?: PgBouncerMode | false
}

/** The values of {@link PostgresManagerOptions.prepare} besides booleans. */
export const PREPARE_MODES = ['always', 'second-use'] as const

/** The mode `prepare: true` (and no `prepare`) means. */
export const DEFAULT_PREPARE_MODE: PrepareMode = 'second-use'

/** The values of {@link PostgresManagerOptions.sessionReset}. */
export const SESSION_RESET_MODES = ['none', 'clean'] as const

/** How a released connection's session is reset: see {@link PostgresManagerOptions.sessionReset}. */
export type SessionReset = (typeof SESSION_RESET_MODES)[number]

/**
 * The statements `sessionReset: 'clean'` runs in one round trip: `DISCARD ALL` without
 * `DEALLOCATE ALL`, which would invalidate pg's record of the named prepared statements it created
 * (as deadpool-postgres' `RecyclingMethod::Clean` does). `RESET ALL` returns settings to the
 * session's defaults, which include the connect-time `application_name` and timeouts sent as
 * startup parameters; what was SET after connecting (`sessionInit`, and behind PgBouncer in session
 * mode the timeouts) is run again after it.
 */
export const CLEAN_SESSION_SQL =
  'CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES'

/** {@link PostgresManagerOptions} validated, with defaults. */
export interface ResolvedPostgresManagerOptions {
  readonly sessionInit: readonly string[]
  readonly connectTimeoutMs: number
  readonly keepAliveInitialDelayMs: number
  readonly cancelTimeoutMs: number
  readonly int8: Int8Mode
  readonly timestamptz: TimestamptzMode
  readonly pipelineDepth: number
  readonly sessionReset: SessionReset
  /** The prepare mode, or `false` when statements are never named (`prepare: false`, or `pgbouncer: true`). */
  readonly prepare: PrepareMode | false
  readonly statementCacheSize: number
  /** The PgBouncer pooling mode in front of the server, or `false`. */
  readonly pgbouncer: PgBouncerMode | false
}

/** Option names of {@link PostgresManagerOptions}. */
export const POSTGRES_MANAGER_OPTION_KEYS = [
  'sessionInit',
  'connectTimeoutMs',
  'keepAliveInitialDelayMs',
  'cancelTimeoutMs',
  'int8',
  'timestamptz',
  'pipelineDepth',
  'sessionReset',
  'prepare',
  'statementCacheSize',
  'pgbouncer',
  ...REPLICA_OPTION_KEYS,
] as const

const MAX_MS = 2_147_483_647

/**
 * Validates eagerly and completely; unknown keys and bad values throw CONFIGURATION naming the option
 * and value. `target.pgbouncer` (the config's `pgbouncer`) turns `prepare` off; asking for it
 * explicitly then is CONFIGURATION.
 */
export function resolveManagerOptions(
  input: PostgresManagerOptions | undefined,
  defaults: { readonly connectTimeoutMs?: number } = {},
  target: { readonly pgbouncer?: boolean } = {},
): ResolvedPostgresManagerOptions {
  const raw = requireObject('postgres', input)
  rejectUnknownKeys('postgres', raw, POSTGRES_MANAGER_OPTION_KEYS)
  const pgbouncer = resolvePgBouncerMode(raw.pgbouncer, target.pgbouncer === true)
  const sessionInit = resolveSessionInit(raw.sessionInit)
  const sessionReset = raw.sessionReset === undefined ? 'none' : checkEnum('postgres.sessionReset', raw.sessionReset, SESSION_RESET_MODES)
  checkSessionOptions(pgbouncer, sessionInit, sessionReset)
  return Object.freeze({
    sessionInit,
    connectTimeoutMs:
      raw.connectTimeoutMs === undefined
        ? (defaults.connectTimeoutMs ?? 10_000)
        : checkInteger('postgres.connectTimeoutMs', raw.connectTimeoutMs, 1, MAX_MS),
    keepAliveInitialDelayMs:
      raw.keepAliveInitialDelayMs === undefined
        ? 10_000
        : checkInteger('postgres.keepAliveInitialDelayMs', raw.keepAliveInitialDelayMs, 0, MAX_MS),
    cancelTimeoutMs: raw.cancelTimeoutMs === undefined ? 5_000 : checkInteger('postgres.cancelTimeoutMs', raw.cancelTimeoutMs, 1, MAX_MS),
    int8: raw.int8 === undefined ? 'bigint' : checkEnum('postgres.int8', raw.int8, INT8_MODES),
    timestamptz: raw.timestamptz === undefined ? 'date' : checkEnum('postgres.timestamptz', raw.timestamptz, TIMESTAMPTZ_MODES),
    pipelineDepth: raw.pipelineDepth === undefined ? 8 : checkInteger('postgres.pipelineDepth', raw.pipelineDepth, 1, 1_000),
    sessionReset,
    prepare: resolvePrepare(raw.prepare, pgbouncer === 'transaction'),
    statementCacheSize:
      raw.statementCacheSize === undefined ? 100 : checkInteger('postgres.statementCacheSize', raw.statementCacheSize, 1, 10_000),
    pgbouncer,
  })
}

function resolvePrepare(value: unknown, pgbouncer: boolean): PrepareMode | false {
  if (value === undefined) return pgbouncer ? false : DEFAULT_PREPARE_MODE
  const mode = typeof value === 'boolean' ? (value ? DEFAULT_PREPARE_MODE : false) : checkPrepareMode(value)
  if (mode !== false && pgbouncer)
    throw configError(
      'postgres.prepare',
      value,
      "named prepared statements cannot be used with PgBouncer in transaction mode (pgbouncer=true or pgbouncer: 'transaction'): it sends each transaction to any server connection, where the statement does not exist; leave prepare unset or false",
    )
  return mode
}

function checkPrepareMode(value: unknown): PrepareMode {
  if (typeof value !== 'string' || !(PREPARE_MODES as readonly string[]).includes(value))
    throw configError('postgres.prepare', value, `must be true, false, ${PREPARE_MODES.map((m) => `'${m}'`).join(' or ')}`)
  return value as PrepareMode
}

function resolveSessionInit(value: unknown): readonly string[] {
  if (value === undefined) return []
  if (typeof value === 'string') return [checkSessionInitText('postgres.sessionInit', value)]
  if (!Array.isArray(value)) throw configError('postgres.sessionInit', value, 'must be a SQL string or an array of SQL strings')
  return Object.freeze(value.map((sql, i) => checkSessionInitText(`postgres.sessionInit[${i}]`, sql)))
}

/**
 * A sessionInit statement: a non-empty string without a NUL character (U+0000), refused when the pool
 * is made (its text not shown: it may hold a secret). A plain SET is sent as a startup parameter,
 * where a NUL would end its value and the rest be read as further settings.
 */
function checkSessionInitText(option: string, value: unknown): string {
  const text = checkString(option, value)
  const at = text.indexOf('\u0000')
  if (at >= 0)
    throw configError(
      option,
      '[hidden]',
      `contains a NUL character (U+0000) at position ${at + 1}: a statement text cannot hold one, and as a startup parameter the rest would be read as further settings`,
    )
  // review r17i: a DateStyle / IntervalStyle output the row parsers cannot read is known now
  const format = sessionInitFormatProblem(text)
  if (format !== undefined)
    throw configError(
      option,
      '[hidden]',
      `sets ${format.setting} to ${format.value}: dbpool reads values exactly only with ${format.setting === 'DateStyle' ? "the output style ISO (the input order may be any: SET datestyle = 'ISO, DMY')" : "'postgres' or 'sql_standard'"}`,
    )
  return text
}
