import { configError, type DatabaseConfig, type SessionFeatures } from '@dbpool/core'
import { previewStatement } from '@dbpool/core/internal'

/**
 * How the PgBouncer in front of the server pools connections (its `pool_mode`). `'transaction'`:
 * each transaction (each auto-commit statement) may run on another server connection, so nothing
 * that lives in a server session can be relied on. `'session'`: the client keeps one server
 * connection until it disconnects, as with a direct connection; only startup parameters differ.
 */
export const PGBOUNCER_MODES = ['transaction', 'session'] as const
/** One of {@link PGBOUNCER_MODES}. */
export type PgBouncerMode = (typeof PGBOUNCER_MODES)[number]

/** Why every session feature is refused in transaction mode (the end of each CONFIGURATION message). */
export const TRANSACTION_MODE_REASON =
  "PgBouncer in transaction mode (pgbouncer: 'transaction', or ?pgbouncer=true) gives each transaction whichever server connection is free, so session state (LISTEN, SET, session advisory locks, named prepared statements) stays behind on a server connection other clients then use, and is missing from this client's next transaction; connect to the server directly or through PgBouncer in session mode (pgbouncer: 'session')"

/** The session features of a pooling mode. */
export function sessionFeaturesOf(mode: PgBouncerMode | false): SessionFeatures {
  if (mode === 'transaction') return Object.freeze({ pgbouncer: mode, sessions: false, reason: TRANSACTION_MODE_REASON })
  return Object.freeze({ pgbouncer: mode, sessions: true })
}

/** The `pgbouncer` manager option validated: it wins over the config's `pgbouncer` flag (true means `'transaction'`). */
export function resolvePgBouncerMode(value: unknown, configFlag: boolean): PgBouncerMode | false {
  if (value === undefined) return configFlag ? 'transaction' : false
  if (value === false) return false
  if (typeof value !== 'string' || !(PGBOUNCER_MODES as readonly string[]).includes(value))
    throw configError('postgres.pgbouncer', value, `must be 'transaction', 'session' or false`)
  return value as PgBouncerMode
}

/**
 * The settings pg would send as startup parameters that PgBouncer refuses (1.18 accepts only
 * `user`, `database`, `application_name`, `client_encoding`, `DateStyle`, `TimeZone`,
 * `standard_conforming_strings` and what `ignore_startup_parameters` lists; it closes the connection
 * with "unsupported startup parameter" otherwise): `statement_timeout`, `lock_timeout`,
 * `idle_in_transaction_session_timeout`, `options` (the config's, the URL's `options=`, or PGOPTIONS
 * for a target without them: see the manager's withEnvStartupOptions).
 *
 * Session mode: the timeouts are applied with SET after connecting (the session is the client's
 * until it disconnects), and again on release after a statement or a `sessionReset: 'clean'` that
 * reset them (RESET ALL returns a SET setting to the server's default); transaction mode: CONFIGURATION, since a SET would reach one server
 * connection only. `options` (free-form command-line switches) is CONFIGURATION in both.
 */
export function sessionSettingsThroughPgBouncer(mode: PgBouncerMode, config: DatabaseConfig): readonly string[] {
  if (config.options !== undefined)
    throw configError(
      'database.options',
      config.options,
      `PgBouncer refuses the startup parameter options ("unsupported startup parameter"; the config's options, the URL's options= or PGOPTIONS); set what it holds on the server (ALTER ROLE ... SET) instead`,
    )
  const timeouts: [string, string, number][] = [
    ['statementTimeoutMs', 'statement_timeout', config.statementTimeoutMs],
    ['lockTimeoutMs', 'lock_timeout', config.lockTimeoutMs],
    ['idleInTransactionTimeoutMs', 'idle_in_transaction_session_timeout', config.idleInTransactionTimeoutMs],
  ]
  const set = timeouts.filter(([, , ms]) => ms > 0)
  if (mode === 'transaction' && set.length > 0) {
    const [option, setting, ms] = set[0]!
    throw configError(
      `database.${option}`,
      ms,
      `PgBouncer refuses the startup parameter ${setting} ("unsupported startup parameter"), and a SET would reach one server connection only (${TRANSACTION_MODE_REASON}); set it on the server (ALTER ROLE ... SET ${setting}) or with SET LOCAL in each transaction`,
    )
  }
  return set.map(([, setting, ms]) => `SET ${setting} = ${ms}`)
}

/**
 * Checks the manager options that need a session: with PgBouncer in transaction mode, `sessionInit`
 * (its SETs would reach one server connection) and `sessionReset: 'clean'` (it would clean whichever
 * server connection the release lands on) are CONFIGURATION naming why. The message shows `sessionInit`
 * with every literal hidden (`previewStatement`: `set_config('app.token', '[REDACTED]', false)`).
 */
export function checkSessionOptions(mode: PgBouncerMode | false, sessionInit: readonly string[], sessionReset: string): void {
  if (mode !== 'transaction') return
  if (sessionInit.length > 0)
    throw configError(
      'postgres.sessionInit',
      // shown with its literals hidden (a token set with set_config() must not reach a log)
      sessionInit.length === 1 ? previewStatement(sessionInit[0]!) : sessionInit.map(previewStatement),
      `runs once per client connection, but ${TRANSACTION_MODE_REASON}; set it on the server (ALTER ROLE ... SET) or with SET LOCAL in each transaction`,
    )
  if (sessionReset === 'clean')
    throw configError(
      'postgres.sessionReset',
      sessionReset,
      `has no session to clean: ${TRANSACTION_MODE_REASON}; PgBouncer's server_reset_query does it`,
    )
}
