import { configError, type DatabaseConfig, type SessionFeatures } from '@dbpool/core'
import { skipCommentsAndLiterals } from './postgres-sql-text'

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
 * `idle_in_transaction_session_timeout`, `options`. pg also sends `options` from `PGOPTIONS`, which
 * the manager clears for PgBouncer.
 *
 * Session mode: the timeouts are applied with SET after connecting (the session is the client's
 * until it disconnects); transaction mode: CONFIGURATION, since a SET would reach one server
 * connection only. `options` (free-form command-line switches) is CONFIGURATION in both.
 */
export function sessionSettingsThroughPgBouncer(mode: PgBouncerMode, config: DatabaseConfig): readonly string[] {
  if (config.options !== undefined)
    throw configError(
      'database.options',
      config.options,
      `PgBouncer refuses the startup parameter options ("unsupported startup parameter"); set what it holds on the server (ALTER ROLE ... SET) instead`,
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
 * server connection the release lands on) are CONFIGURATION naming why.
 */
export function checkSessionOptions(mode: PgBouncerMode | false, sessionInit: readonly string[], sessionReset: string): void {
  if (mode !== 'transaction') return
  if (sessionInit.length > 0)
    throw configError(
      'postgres.sessionInit',
      sessionInit.length === 1 ? sessionInit[0] : sessionInit,
      `runs once per client connection, but ${TRANSACTION_MODE_REASON}; set it on the server (ALTER ROLE ... SET) or with SET LOCAL in each transaction`,
    )
  if (sessionReset === 'clean')
    throw configError(
      'postgres.sessionReset',
      sessionReset,
      `has no session to clean: ${TRANSACTION_MODE_REASON}; PgBouncer's server_reset_query does it`,
    )
}

// statements whose effect outlives their transaction on the server connection
const SESSION_STATEMENT =
  /(?:^|;)\s*(listen|prepare|load|set(?!\s+(local|transaction|constraints)\b)|reset|declare\s+\S+\s+(binary\s+)?(insensitive\s+)?(no\s+)?(scroll\s+)?cursor\s+with\s+hold)\b/i
const SESSION_LOCK = /\bpg_(try_)?advisory_lock(_shared)?\s*\(/i
const SET_CONFIG = /\bset_config\s*\(/gi
// a temporary table, view or sequence lives until the session ends: CREATE TEMP anywhere in the text
// (EXPLAIN ANALYZE, a DO block), SELECT ... INTO TEMP (not INSERT INTO a table named temp), and any
// object in the session's own schema (pg_temp.x, created or used)
const TEMP_OBJECT =
  /\bcreate\s+(?:or\s+replace\s+)?(?:(?:global|local)\s+)?(?:temp|temporary)\s+(?:unlogged\s+)?(?:recursive\s+)?(table|view|sequence)\b|(?<!\b(?:insert|merge)\s+)\binto\s+(?:temp|temporary)\b|\bpg_temp(?:_\d+)?\s*\./gi
const ON_COMMIT_DROP = /\bon\s+commit\s+drop\b/i
// a double-quoted identifier: its words are names, not keywords
const QUOTED_NAME = /"(?:[^"]|"")*"/g

/**
 * Why `text` needs a session (a LISTEN, a session-level SET or RESET, an SQL PREPARE, a cursor
 * WITH HOLD, a session-level advisory lock, `set_config()` whose `is_local` is not the literal
 * `true`), a temporary table, view or sequence that outlives its transaction (only `CREATE TEMP TABLE
 * ... ON COMMIT DROP` does not), or `undefined`. Checked before sending when the target is PgBouncer
 * in transaction mode.
 * Comments and string literals are skipped first (their words are data, and a leading comment does
 * not hide a statement); a text they cannot be skipped in safely (dollar quoting, `E'...'` strings)
 * is judged as written, which may refuse what is fine but lets no session statement through.
 */
export function sessionStatement(text: string): string | undefined {
  // quoted names cannot be keywords ("on commit drop" as a column, `as "into temp"`); "pg_temp" is the schema
  const judged = (skipCommentsAndLiterals(text) ?? text).replace(QUOTED_NAME, (name) =>
    name.slice(1, -1).toLowerCase() === 'pg_temp' ? 'pg_temp' : '"_"',
  )
  const statement = SESSION_STATEMENT.exec(judged)
  if (statement) return `${statement[1]!.split(/\s+/)[0]!.toUpperCase()} keeps session state`
  const lock = SESSION_LOCK.exec(judged)
  if (lock)
    return `pg_${(lock[1] ?? '').toLowerCase()}advisory_lock${(lock[2] ?? '').toLowerCase()}() takes a session-level lock (use pg_advisory_xact_lock in a transaction)`
  if (sessionSetConfig(judged))
    return 'set_config() without is_local true keeps session state (use set_config(name, value, true) in a transaction)'
  const temp = sessionTempObject(judged)
  if (temp) return temp
  return undefined
}

/** Why a temporary object created in `text` outlives its transaction, or undefined. */
function sessionTempObject(text: string): string | undefined {
  for (const match of text.matchAll(TEMP_OBJECT)) {
    if (match[0].toLowerCase().startsWith('pg_temp')) return 'an object in pg_temp lives as long as the server session'
    const kind = (match[1] ?? 'table').toLowerCase()
    const start = match.index ?? 0
    const end = text.indexOf(';', start + 1)
    const statement = text.slice(start, end === -1 ? text.length : end)
    if (kind === 'table' && match[1] !== undefined && ON_COMMIT_DROP.test(statement)) continue
    return kind === 'table'
      ? 'a temporary table lives as long as the server session (use CREATE TEMP TABLE ... ON COMMIT DROP in a transaction)'
      : `a temporary ${kind} lives as long as the server session`
  }
  return undefined
}

/** Whether a `set_config(name, value, is_local)` call in `text` (comments and literals skipped) has an `is_local` other than `true`. */
function sessionSetConfig(text: string): boolean {
  for (const match of text.matchAll(SET_CONFIG)) {
    let depth = 0
    let last = ''
    let i = (match.index ?? 0) + match[0].length
    for (; i < text.length; i++) {
      const c = text[i] as string
      if (c === '(') depth++
      else if (c === ')') {
        if (depth === 0) break
        depth--
      } else if (c === ',' && depth === 0) {
        last = ''
        continue
      }
      last += c
    }
    if (last.trim().toLowerCase() !== 'true') return true
  }
  return false
}
