import { configError, DatabaseConfig, SSL_MODES, type DatabaseOptions, type ReplicaStatus, type SslMode } from '@dbpool/core'
import { checkBoolean, checkEnum, checkInteger, checkLibpqRootCertEnv, checkLibpqTlsEnv, parsePostgresUrl } from '@dbpool/core/internal'
import type { PgBouncerMode } from './postgres-pgbouncer'

/** A read replica: a URL, or a config (its own host, user, password, database). */
export type ReplicaTarget = string | DatabaseConfig | DatabaseOptions

/** How lone statements are routed between the primary and the replicas. */
export const READ_ROUTING_MODES = ['manual', 'auto'] as const

/** See {@link PostgresReplicaOptions.readRouting}. */
export type ReadRouting = (typeof READ_ROUTING_MODES)[number]

/** The read-replica options of the Postgres manager (part of `PostgresManagerOptions`). */
export interface PostgresReplicaOptions {
  /**
   * Read replicas (streaming standbys): the pool's read lane, a connection pool per replica (each up
   * to the pool's `max`). Work asked for on the read lane runs there: `pool.query(q, params, { lane:
   * 'read' })`, `withConnection(fn, { lane: 'read' })`, `transaction(fn, { readOnly: true })`, and with
   * `readRouting: 'auto'` lone read-only statements. Default is `DATABASE_REPLICA_URLS` (URLs separated
   * by commas; a comma not followed by `postgres://` or `postgresql://` belongs to the URL before it,
   * e.g. a multi-host list), else none (everything on the primary). A replica URL or options object
   * leaving out `sslmode` / `sslrootcert` gets them from the environment and the primary (see
   * {@link resolveReplicaOptions}: never weaker than either).
   */
  readonly replicas?: readonly ReplicaTarget[]
  /**
   * `'manual'`: only what asks for the read lane goes to a replica. `'auto'`: a lone `pool.query()`
   * statement known to be read-only (see `isReadOnlyStatement`: a plain `SELECT` / `WITH` / `VALUES`
   * / `TABLE` calling only side-effect-free built-ins) goes there too. Default is `'manual'`.
   */
  readonly readRouting?: ReadRouting
  /**
   * After a write commits on the primary, later read-lane work in this process never sees the database
   * as it was before it: the pool records the primary's WAL position (`pg_current_wal_insert_lsn()`,
   * one round trip per lease that may have written) and runs a read on a replica connection only once
   * that connection's `pg_last_wal_replay_lsn()` reached it (asked on the connection itself: a replica
   * URL may reach several standbys), else on another replica or the primary. Process-wide. Default is `false`.
   * A read-lane connection is checked when it is handed out: one held since before the write
   * (`withConnection(fn, { lane: 'read' })`, a read-only `transaction()`) is not checked again, and
   * its later statements may not see that write; read it with a new read-lane acquire
   * (`pool.query(..., { lane: 'read' })`) or on the write lane.
   */
  readonly readYourWrites?: boolean
  /**
   * Replay lag (measured in each keepalive pass) beyond which a replica is taken out of the read lane
   * until a later pass finds it caught up, in ms. Default is `10000`.
   */
  readonly maxReplicaLagMs?: number
}

/** {@link PostgresReplicaOptions} validated. */
export interface ResolvedReplicaOptions {
  readonly replicas: readonly DatabaseConfig[]
  readonly readRouting: ReadRouting
  readonly readYourWrites: boolean
  readonly maxReplicaLagMs: number
}

/** Option names of {@link PostgresReplicaOptions}. */
export const REPLICA_OPTION_KEYS = ['replicas', 'readRouting', 'readYourWrites', 'maxReplicaLagMs'] as const

/**
 * Validates the replica options (CONFIGURATION naming the option and value); `env` gives
 * `DATABASE_REPLICA_URLS` and the libpq variables. The TLS settings of a replica, for every source:
 *
 * - a `DatabaseConfig`: taken as it is;
 * - a URL (`replicas` strings, `DATABASE_REPLICA_URLS`, the CLI's `backend.replicas`): its own
 *   `sslmode` / `sslrootcert` first; what it leaves out, the environment fills in as libpq does for
 *   every connection string (PGSSLMODE, PGREQUIRESSL, PGSSLROOTCERT: see `DatabaseConfig.envDefaults`,
 *   whose CONFIGURATION errors name the variable), then the primary's: the root certificate is the
 *   environment's, else the primary's; the mode is the stricter of the environment's and the
 *   primary's (`disable` < `allow` < `prefer` < `require` < `verify-ca` < `verify-full`), so neither a
 *   primary's `sslmode=disable` nor a weaker PGSSLMODE sends a replica's password in plaintext where
 *   the other asks for TLS. With `sslrootcert=system` (the URL's or PGSSLROOTCERT) the mode is the
 *   URL's, else PGSSLMODE, else `verify-full`, as libpq;
 * - options: their own `sslMode` / `sslRootCert`, else the primary's (an options object reads no
 *   environment, as `new DatabaseConfig(options)` does not).
 *
 * What else the environment fills in for a connection string (PGUSER, PGPASSWORD, PGPORT, PGOPTIONS,
 * PGAPPNAME, PGCONNECT_TIMEOUT...: see `DatabaseConfig.envDefaults`) fills in what a replica URL leaves
 * out too, as libpq (PGCONNECT_TIMEOUT not with an explicit `connectTimeoutMs` option in `raw`); a replica without `options` takes PGOPTIONS whatever its source (the manager's
 * withEnvStartupOptions, as for the primary). PGTARGETSESSIONATTRS is not applied to replicas (each
 * replica's role is checked: it must be a standby).
 */
export function resolveReplicaOptions(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  primary?: DatabaseConfig,
): ResolvedReplicaOptions {
  const inherit: DatabaseOptions =
    primary === undefined
      ? {}
      : { sslMode: primary.sslMode, ...(primary.sslRootCert === undefined ? {} : { sslRootCert: primary.sslRootCert }) }
  let targets: readonly { readonly option: string; readonly target: unknown }[] = []
  if (raw.replicas !== undefined) {
    if (!Array.isArray(raw.replicas))
      throw configError('postgres.replicas', shownTarget(raw.replicas), 'must be an array of URLs or DatabaseConfigs')
    targets = raw.replicas.map((target: unknown, i) => ({ option: `postgres.replicas[${i}]`, target }))
  } else if (env.DATABASE_REPLICA_URLS) {
    // split only before a scheme: a comma inside a URL (a multi-host list, a password) stays in it
    targets = env.DATABASE_REPLICA_URLS.split(/,(?=\s*postgres(?:ql)?:\/\/)/i)
      .map((url) => url.trim())
      .filter(Boolean)
      .map((url, i) => ({ option: `DATABASE_REPLICA_URLS[${i}]`, target: url }))
  }
  // the libpq environment, read only when a URL needs it (its errors name the variable)
  // an explicit connectTimeoutMs (the manager's, every replica's) beats PGCONNECT_TIMEOUT
  // PGSSLCERT, PGSSLKEY...: checked per replica URL against its final mode (the primary's counts too)
  const given = { connectTimeoutMs: raw.connectTimeoutMs, deferTlsCheck: true }
  // per URL: its own host and port lists replace PGHOST's and PGPORT's before they are paired (libpq)
  const replicas = targets.map(({ option, target }) => {
    const fromEnv = typeof target === 'string' ? DatabaseConfig.envDefaults(env, { ...given, url: target }) : {}
    const config = targetConfig(option, target, inherit, fromEnv)
    if (typeof target === 'string') {
      checkLibpqTlsEnv(env, config.sslMode)
      checkLibpqRootCertEnv(env, config.sslMode, config.sslRootCert)
    }
    return config
  })
  return {
    replicas,
    readRouting: raw.readRouting === undefined ? 'manual' : checkEnum('postgres.readRouting', raw.readRouting, READ_ROUTING_MODES),
    readYourWrites: raw.readYourWrites === undefined ? false : checkBoolean('postgres.readYourWrites', raw.readYourWrites),
    maxReplicaLagMs:
      raw.maxReplicaLagMs === undefined ? 10_000 : checkInteger('postgres.maxReplicaLagMs', raw.maxReplicaLagMs, 0, 2_147_483_647),
  }
}

function targetConfig(option: string, target: unknown, inherit: DatabaseOptions, fromEnv: DatabaseOptions): DatabaseConfig {
  // a config of any copy of @dbpool/core (a mark shared by every copy: see DatabaseConfig)
  if (target instanceof DatabaseConfig) return target
  if (typeof target === 'object' && target !== null && !Array.isArray(target)) {
    const kind = (target as { constructor?: { name?: string } }).constructor?.name ?? 'object'
    // a URL object, a Map, a Date...: its options are not its own properties (a URL has none), so it
    // would read as {} (localhost:5432, user postgres); refused, as the primary path refuses it
    if (Object.prototype.toString.call(target) !== '[object Object]')
      throw configError(
        option,
        `[${kind}]`,
        'must be a postgres:// URL string, a DatabaseConfig or a plain object of DatabaseConfig options (a URL object: give String(url))',
      )
    // a DatabaseConfig of an older copy of @dbpool/core, without the mark: its password is private to it
    if (kind === 'DatabaseConfig')
      throw configError(
        option,
        '[DatabaseConfig]',
        'is a DatabaseConfig of another (older) copy of @dbpool/core, whose password this copy cannot read; give a URL or options, or install one version of @dbpool/core',
      )
  }
  try {
    if (typeof target === 'string') return DatabaseConfig.fromUrl(target, {}, urlDefaults(target, inherit, fromEnv))
    if (typeof target === 'object' && target !== null && !Array.isArray(target)) {
      const own = Object.fromEntries(Object.entries(target).filter(([, value]) => value !== undefined))
      // sslRootCert 'system' brings its own default mode (verify-full): the primary's does not replace it
      const base = own.sslRootCert === 'system' && own.sslMode === undefined ? { ...inherit, sslMode: undefined } : inherit
      return new DatabaseConfig({ ...base, ...own } as DatabaseOptions)
    }
  } catch (err) {
    throw configError(option, shownTarget(target), `is not a valid target: ${(err as Error).message}`)
  }
  throw configError(option, shownTarget(target), 'must be a postgres:// URL, a DatabaseConfig or DatabaseConfig options')
}

/**
 * What fills in the settings a replica `url` leaves out (see {@link resolveReplicaOptions}): TLS, the
 * environment's (`fromEnv`, from `DatabaseConfig.envDefaults`) root certificate, else the primary's
 * (`inherit`); the stricter of their modes, or with `sslrootcert=system` the environment's, else
 * verify-full. The rest of what the environment fills in for any URL (PGHOST, PGPORT, PGUSER,
 * PGPASSWORD, PGDATABASE, PGOPTIONS, PGAPPNAME, PGCONNECT_TIMEOUT); not its `targetSessionAttrs`.
 */
function urlDefaults(url: string, inherit: DatabaseOptions, fromEnv: DatabaseOptions): DatabaseOptions {
  const own = parsePostgresUrl(url, '(a URL)').params
  // everything else the environment fills in for any URL (PGUSER, PGPORT, PGOPTIONS...), not the session attributes
  const { targetSessionAttrs: _attrs, sslMode: _mode, sslRootCert: _rootCert, ...rest } = fromEnv
  const out: { -readonly [K in keyof DatabaseOptions]: DatabaseOptions[K] } = { ...rest }
  const rootCert = fromEnv.sslRootCert ?? inherit.sslRootCert
  if (!own.sslrootcert && rootCert !== undefined) out.sslRootCert = rootCert
  if (own.sslmode) return out
  const system = (own.sslrootcert || rootCert) === 'system'
  const mode = system ? (fromEnv.sslMode ?? 'verify-full') : stricter(fromEnv.sslMode, inherit.sslMode)
  if (mode !== undefined) out.sslMode = mode
  return out
}

/** The stricter of two TLS modes (the later in {@link SSL_MODES}), or the one given. */
function stricter(a: SslMode | undefined, b: SslMode | undefined): SslMode | undefined {
  if (a === undefined || b === undefined) return a ?? b
  return SSL_MODES.indexOf(a) >= SSL_MODES.indexOf(b) ? a : b
}

/** A replica target as errors show it: a string (a URL, its password in it) as `(a URL)`, an options object with its password hidden. */
function shownTarget(target: unknown): unknown {
  if (typeof target === 'string') return '(a URL)'
  if (typeof target !== 'object' || target === null || Array.isArray(target)) return target
  return Object.fromEntries(
    Object.entries(target).map(([key, value]) => [key, /pass|secret|url/i.test(key) && value !== undefined ? '[hidden]' : value]),
  )
}

/**
 * What a replica reports, in one round trip: whether it is a standby, how far it replayed (0 on a
 * server that is not a standby any more: a promoted server's positions are on a timeline of its own,
 * never compared with the primary's), and its lag: 0 when it replayed everything it received (the
 * receive position at or before the replay position: after a restart a standby resumes streaming
 * from the start of a WAL segment, behind what it already replayed), else the age of the last
 * transaction it replayed (`pg_last_xact_replay_timestamp()`). A standby cut off
 * from its primary looks caught up by this measure, as by every measure taken on the standby alone.
 */
export const REPLICA_STATUS_SQL = `select pg_is_in_recovery() as r,
  coalesce(case when pg_is_in_recovery() then pg_last_wal_replay_lsn() end, '0/0'::pg_lsn)::text as lsn,
  (case when not pg_is_in_recovery() or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0
   else coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000, 0) end)::float8 as lag`

/**
 * The primary's write position after a commit. The insert position, not `pg_current_wal_lsn()` (the
 * write position): with `synchronous_commit = off` a COMMIT returns before its record is written, and
 * the write position can then still be before it; the insert position is past every record inserted,
 * the commit's included.
 */
export const WRITE_POSITION_SQL = 'select pg_current_wal_insert_lsn()::text as lsn'

/** `'16/B374D848'` as a number (the 64-bit WAL position). Throws on anything else. */
export function parseLsn(text: unknown): bigint {
  const match = typeof text === 'string' ? /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(text) : null
  if (!match) throw new Error(`not a WAL position: ${JSON.stringify(text)}`)
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`)
}

/** A status row of {@link REPLICA_STATUS_SQL}. */
export function replicaStatusOf(row: Record<string, unknown> | undefined): ReplicaStatus {
  const inRecovery = row?.r === true
  return { inRecovery, position: inRecovery ? parseLsn(row?.lsn) : 0n, lagMs: Math.max(0, Number(row?.lag ?? 0)) }
}

/**
 * What a replica connection's session is given at startup (libpq `options`) when the replica is
 * reached directly: every transaction on it is read-only, so a write sent to the read lane fails
 * with READ_ONLY (25006) on a standby and on a server promoted since the last status query. `RESET`
 * returns to it (a startup parameter is the session's default). Never sent through PgBouncer, which
 * refuses the startup parameter `options` (see {@link ReadOnlyVia}).
 */
export const REPLICA_SESSION_OPTIONS = '-c default_transaction_read_only=on'

/**
 * The same, run after connecting: on the primary's read-only pool (its host walk must first see
 * the server's own `default_transaction_read_only`, as the write lane's does: a fenced primary
 * reports it on), and on a replica behind PgBouncer in session mode (which refuses the startup
 * option, and keeps the server session for the client's whole connection). `RESET ALL` drops it:
 * the release sets it again or closes the connection (see `PostgresConnectionManager.reset`).
 */
export const READ_ONLY_SESSION_SQL = 'SET default_transaction_read_only = on'

/**
 * How a read-lane manager makes its sessions read-only: `'startup'` ({@link REPLICA_SESSION_OPTIONS},
 * a replica reached directly), `'set'` ({@link READ_ONLY_SESSION_SQL}: the primary's read-only pool,
 * a replica behind PgBouncer in session mode), `'none'` (a replica behind PgBouncer in transaction
 * mode, where a SET reaches one server connection and the startup option is refused: only the
 * standby's own recovery refuses writes there, not a standby promoted since the last status query).
 */
export type ReadOnlyVia = 'startup' | 'set' | 'none'

/** {@link ReadOnlyVia} of a read-lane target behind `pgbouncer`; `primary`: the primary's read-only pool. */
export function readOnlyViaOf(pgbouncer: PgBouncerMode | false, primary: boolean): ReadOnlyVia {
  if (pgbouncer === 'transaction') return 'none'
  return pgbouncer === 'session' || primary ? 'set' : 'startup'
}

/**
 * The PgBouncer mode of a replica: its own config's `pgbouncer` flag (URL `?pgbouncer=true`), never
 * the primary's `pgbouncer` option, which describes the primary's target only (a replica reached
 * directly keeps its read-only startup option and named prepared statements). A replica marked
 * `pgbouncer` takes the mode the option names (`'session'`), else `'transaction'`.
 */
export function replicaPgBouncerMode(replica: DatabaseConfig, primaryMode: PgBouncerMode | false): PgBouncerMode | false {
  if (!replica.pgbouncer) return false
  return primaryMode === 'session' ? 'session' : 'transaction'
}
