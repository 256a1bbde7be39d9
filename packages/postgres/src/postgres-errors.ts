import { DatabaseError, redactSecrets, type ErrorCode } from '@dbpool/core'
import { hideErrorLiterals, statementLiterals, isErrorLike } from '@dbpool/core/internal'
import { certificateErrorCode } from './postgres-tls'

/** How one SQLSTATE maps: the code, and `retryable` when it differs from the code's default. */
export interface SqlStateMapping {
  readonly code: ErrorCode
  readonly retryable?: boolean
}

/**
 * SQLSTATE → DatabaseError code, exact states first; {@link SQLSTATE_CLASSES} covers the rest of a
 * class. Anything else is QUERY_FAILED. A flat table on purpose: no message parsing.
 *
 * Class 42: a syntax error and a name in the text that is missing (42P01 table, 42703 column, 42883
 * function, 42704 object), ambiguous (42702, 42725, 42P09) or already taken (42701, 42P07, 42710,
 * 42723, 42P06, 42712) are SYNTAX_ERROR, the code SQLite gives the same statements (`SQLITE_ERROR`).
 * Not 42501 insufficient_privilege (QUERY_FAILED: a grant fixes it, not the text), not 42P02
 * (INVALID_PARAMETER), not 42P05 duplicate_prepared_statement (the driver's statement names, not the text).
 */
export const SQLSTATE_CODES: Readonly<Record<string, SqlStateMapping>> = Object.freeze({
  // class 08: connection exception (during a statement; connect() reports CONNECTION_FAILED)
  '08000': { code: 'CONNECTION_LOST' },
  '08003': { code: 'CONNECTION_LOST' },
  '08006': { code: 'CONNECTION_LOST' },
  '08001': { code: 'CONNECTION_FAILED' },
  '08004': { code: 'CONNECTION_FAILED' },
  '08P01': { code: 'CONNECTION_LOST', retryable: false },
  // class 0A: feature not supported (HikariCP evicts on it too)
  '0A000': { code: 'QUERY_FAILED' },
  // class 23: integrity constraint violation
  '23502': { code: 'NOT_NULL_VIOLATION' },
  '23503': { code: 'FOREIGN_KEY_VIOLATION' },
  '23505': { code: 'UNIQUE_VIOLATION' },
  '23514': { code: 'CHECK_VIOLATION' },
  // class 25: invalid transaction state
  '25006': { code: 'READ_ONLY' },
  '25P03': { code: 'CONNECTION_LOST' }, // idle_in_transaction_session_timeout: the server closed the session
  // class 28: invalid authorization specification
  '28000': { code: 'AUTHENTICATION_FAILED', retryable: false },
  '28P01': { code: 'AUTHENTICATION_FAILED', retryable: false },
  // class 3D: the database does not exist
  '3D000': { code: 'CONNECTION_FAILED', retryable: false },
  // class 40: transaction rollback
  '40001': { code: 'SERIALIZATION_FAILURE' },
  '40P01': { code: 'DEADLOCK' },
  // class 42: syntax error or access rule violation
  '42000': { code: 'SYNTAX_ERROR' },
  '42601': { code: 'SYNTAX_ERROR' },
  // a name in the text that is missing, ambiguous or already taken: SQLite reports all of these as
  // SQLITE_ERROR (SYNTAX_ERROR), so both backends give one code for the same bad statement
  '42P01': { code: 'SYNTAX_ERROR' }, // undefined_table
  '42703': { code: 'SYNTAX_ERROR' }, // undefined_column
  '42883': { code: 'SYNTAX_ERROR' }, // undefined_function
  '42704': { code: 'SYNTAX_ERROR' }, // undefined_object (type, index, setting...)
  '42702': { code: 'SYNTAX_ERROR' }, // ambiguous_column
  '42725': { code: 'SYNTAX_ERROR' }, // ambiguous_function
  '42P09': { code: 'SYNTAX_ERROR' }, // ambiguous_alias
  '42701': { code: 'SYNTAX_ERROR' }, // duplicate_column
  '42P07': { code: 'SYNTAX_ERROR' }, // duplicate_table (also an index or view of that name)
  '42710': { code: 'SYNTAX_ERROR' }, // duplicate_object
  '42723': { code: 'SYNTAX_ERROR' }, // duplicate_function
  '42P06': { code: 'SYNTAX_ERROR' }, // duplicate_schema
  '42712': { code: 'SYNTAX_ERROR' }, // duplicate_alias
  '42P02': { code: 'INVALID_PARAMETER', retryable: false }, // undefined_parameter: `$1` in a statement sent without values
  // class 53: insufficient resources
  '53300': { code: 'CONNECTION_FAILED' }, // too_many_connections
  // class 55: object not in prerequisite state
  '55P03': { code: 'BUSY' }, // lock_not_available (lock_timeout, NOWAIT)
  // class 57: operator intervention
  '57014': { code: 'QUERY_CANCELLED' }, // a cancel request or statement_timeout (the server says which only in prose)
  '57P01': { code: 'CONNECTION_LOST' }, // admin_shutdown: pg_terminate_backend, fast shutdown
  '57P02': { code: 'CONNECTION_LOST' }, // crash_shutdown
  '57P03': { code: 'CONNECTION_FAILED' }, // cannot_connect_now: starting up or shutting down
  '57P04': { code: 'CONNECTION_LOST', retryable: false }, // database_dropped
  '57P05': { code: 'CONNECTION_LOST' }, // idle_session_timeout
})

/** Codes for a whole SQLSTATE class (the first two characters), used when the exact state is not listed. */
export const SQLSTATE_CLASSES: Readonly<Record<string, SqlStateMapping>> = Object.freeze({
  '08': { code: 'CONNECTION_LOST' },
  '23': { code: 'QUERY_FAILED' },
  '28': { code: 'AUTHENTICATION_FAILED', retryable: false },
})

/** SQLSTATEs after which a connection is never reused (HikariCP's list). */
export const FATAL_SQLSTATES: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03', '0A000'])

/** True when a connection that saw this SQLSTATE must be evicted: class 08, 57P01, 57P02, 57P03, 0A000. */
export function isFatalSqlState(sqlState: string | undefined): boolean {
  return sqlState !== undefined && (sqlState.startsWith('08') || FATAL_SQLSTATES.has(sqlState))
}

/**
 * True for the server's answer to a Bind whose value count differs from the statement's placeholders
 * (`bind message supplies 2 parameters, but prepared statement "..." requires 1`): SQLSTATE 08P01
 * raised at ERROR level by `exec_bind_message`. Unlike other protocol violations the session stays
 * usable (the server skips to the next Sync), so it is the caller's INVALID_PARAMETER, not a lost
 * connection: the same code SQLite gives for values that do not fit the placeholders.
 */
export function isParameterCountMismatch(err: unknown): boolean {
  return sqlStateOf(err) === '08P01' && (err as PgErrorFields).routine === 'exec_bind_message'
}

/**
 * How one of PgBouncer's own errors maps. `'not-sent'`: the statement never reached PostgreSQL (the
 * client was still waiting for a server connection, or logging in): retryable whatever it was.
 * `'idle'`: nothing was in flight (the client's connection or transaction sat idle; an open transaction
 * was rolled back). `'in-doubt'`: PgBouncer closed the server connection while the statement ran
 * there: not the server's answer, so its outcome is judged as for a lost connection.
 */
export interface PgBouncerError {
  readonly reason: 'not-sent' | 'idle' | 'in-doubt' | 'refused'
  readonly code?: ErrorCode
  readonly retryable?: boolean
}

/**
 * PgBouncer's own errors, by their message: PgBouncer sends them as a FATAL ErrorResponse with SQLSTATE
 * 08P01 (protocol_violation, whatever the cause: `send_pooler_error` in its src/proto.c) and closes the
 * client connection, so the SQLSTATE alone (CONNECTION_LOST, `retryable: false`) cannot tell a query
 * that never left PgBouncer from one it cut off. Messages from PgBouncer 1.x's src/janitor.c,
 * client.c and objects.c (`disconnect_client`); anything else keeps the SQLSTATE's mapping.
 */
const PGBOUNCER_ERRORS: readonly (readonly [RegExp, PgBouncerError])[] = [
  // waiting for a server connection (query_wait_timeout, or query_timeout while still waiting), or
  // refused before one was given: nothing reached PostgreSQL
  [/^query_wait_timeout$|^query_timeout$/, { reason: 'not-sent', retryable: true }],
  [/^client_login_timeout\b/, { reason: 'not-sent', code: 'CONNECTION_FAILED', retryable: true }],
  [/^server login has been failing\b/, { reason: 'not-sent', retryable: true }],
  [
    /^no more connections allowed \(max_client_conn\)$|^client connections exceeded \(max_\w+\)$/,
    { reason: 'not-sent', code: 'CONNECTION_FAILED', retryable: true },
  ],
  [/^pooler is shutting down$|^server shutting down$/, { reason: 'not-sent', retryable: true }],
  [/^database ".*" is disabled$/, { reason: 'not-sent', code: 'CONNECTION_FAILED', retryable: true }],
  [/^no such database: /, { reason: 'refused', code: 'CONNECTION_FAILED', retryable: false }],
  [
    /^(password|SASL|"trust"|PAM|LDAP|certificate) authentication failed$|^no such user$|^login rejected$/,
    { reason: 'refused', code: 'AUTHENTICATION_FAILED', retryable: false },
  ],
  // nothing in flight: the idle client's connection closed, or its idle transaction rolled back
  [/^client_idle_timeout$|^idle transaction timeout$/, { reason: 'idle', retryable: true }],
  // the server connection closed while the statement ran there
  [/^query timeout$|^server conn crashed\?$|^admin forced disconnect$/, { reason: 'in-doubt' }],
]

/**
 * The PgBouncer error `err` is (see {@link PGBOUNCER_ERRORS}), or `undefined`: an ErrorResponse with
 * SQLSTATE 08P01 and one of PgBouncer's messages.
 */
export function pgBouncerError(err: unknown): PgBouncerError | undefined {
  if (sqlStateOf(err) !== '08P01') return undefined
  const message = (err as { message?: unknown }).message
  if (typeof message !== 'string') return undefined
  return PGBOUNCER_ERRORS.find(([pattern]) => pattern.test(message))?.[1]
}

/** The mapping for a SQLSTATE: exact, then class, then QUERY_FAILED. */
export function mapSqlState(sqlState: string): SqlStateMapping {
  return SQLSTATE_CODES[sqlState] ?? SQLSTATE_CLASSES[sqlState.slice(0, 2)] ?? { code: 'QUERY_FAILED' }
}

/** Node socket error codes → DatabaseError codes (before or after a connection was established). */
export const SOCKET_ERROR_CODES: Readonly<Record<string, ErrorCode>> = Object.freeze({
  ECONNREFUSED: 'CONNECTION_FAILED',
  ENOTFOUND: 'CONNECTION_FAILED',
  EAI_AGAIN: 'CONNECTION_FAILED',
  EHOSTUNREACH: 'CONNECTION_FAILED',
  ENETUNREACH: 'CONNECTION_FAILED',
  ETIMEDOUT: 'CONNECTION_LOST',
  ECONNRESET: 'CONNECTION_LOST',
  EPIPE: 'CONNECTION_LOST',
  ECONNABORTED: 'CONNECTION_LOST',
})

/** Fields of a pg DatabaseError we read; all free of secrets. */
interface PgErrorFields {
  readonly code?: unknown
  readonly severity?: unknown
  readonly constraint?: unknown
  readonly table?: unknown
  readonly column?: unknown
  readonly schema?: unknown
  readonly routine?: unknown
}

const DETAIL_FIELDS = ['severity', 'constraint', 'table', 'column', 'schema'] as const

/**
 * The SQLSTATE of an error the server sent: a five-character code of digits and capitals. A Node
 * system error (`syscall` / `errno` set) is never one, though some of its codes have that shape
 * (`EPIPE`, `EPERM`).
 */
export function sqlStateOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const fields = err as PgErrorFields & { readonly syscall?: unknown; readonly errno?: unknown }
  const code = fields.code
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return undefined
  if (fields.syscall !== undefined || fields.errno !== undefined || code in SOCKET_ERROR_CODES) return undefined
  return code
}

/** What the manager knows about where an error happened. */
export interface MapContext {
  /** Connecting: connection-class failures become CONNECTION_FAILED. */
  readonly connecting?: boolean
  /** The connection was already broken (socket closed or errored) when the error surfaced. */
  readonly connectionBroken?: boolean
  /** Secrets to scrub from native messages (passwords in use). */
  readonly secrets?: readonly (string | undefined)[]
  /** Prefix for the message, e.g. `connecting to postgres://app@db:5432/ledger`. */
  readonly prefix?: string
}

/**
 * Maps anything pg or the socket throws to a DatabaseError with a stable code, the SQLSTATE, secret-free
 * detail and a scrubbed cause. DatabaseErrors pass through unchanged. A server certificate that failed
 * verification (`CERTIFICATE_ERROR_CODES`) is CONNECTION_FAILED with `retryable: false`, the
 * message naming Node's code and reason, and `detail.tlsCode`: only a configuration change fixes it.
 * pg's client-side authentication errors (no password where the server asks for one, any SCRAM
 * `SASL:` failure, see {@link authenticationFailure}) are AUTHENTICATION_FAILED, `retryable: false`,
 * like the server's 28P01. PgBouncer's own errors (FATAL 08P01, see {@link pgBouncerError}) sent before
 * the statement reached PostgreSQL or while nothing was in flight are CONNECTION_LOST (CONNECTION_FAILED
 * when connecting) with `retryable: true`; its refused logins AUTHENTICATION_FAILED; all with
 * `detail.pgbouncer` (its message).
 */
export function mapPostgresError(err: unknown, context: MapContext = {}): DatabaseError {
  if (DatabaseError.is(err)) return err
  const secrets = context.secrets ?? []
  const cause = scrubError(err, secrets)
  const native = isErrorLike(cause) ? cause.message : String(cause)
  const message = context.prefix ? `${context.prefix}: ${native}` : native
  const tlsCode = certificateErrorCode(err)
  if (tlsCode) {
    const reason = `the server certificate failed verification (${tlsCode}: ${native}); check sslMode, sslRootCert and the host name`
    return new DatabaseError('CONNECTION_FAILED', context.prefix ? `${context.prefix}: ${reason}` : reason, {
      backend: 'postgres',
      cause,
      retryable: false,
      detail: { tlsCode },
    })
  }
  const sqlState = sqlStateOf(err)
  if (sqlState && isParameterCountMismatch(err)) {
    return new DatabaseError('INVALID_PARAMETER', `the statement's parameters do not fit its placeholders: ${message}`, {
      backend: 'postgres',
      sqlState,
      cause,
      retryable: false,
      detail: detailOf(err),
    })
  }
  const bouncer = sqlState === '08P01' ? pgBouncerError(err) : undefined
  if (bouncer !== undefined && bouncer.reason !== 'in-doubt') {
    const code = bouncer.code ?? (context.connecting ? 'CONNECTION_FAILED' : 'CONNECTION_LOST')
    const why =
      bouncer.reason === 'not-sent'
        ? 'PgBouncer ended the connection before the statement reached PostgreSQL: nothing ran'
        : bouncer.reason === 'idle'
          ? 'PgBouncer closed the idle connection: nothing was in flight (an open transaction was rolled back)'
          : 'PgBouncer refused the connection'
    return new DatabaseError(code, `${message} (${why})`, {
      backend: 'postgres',
      sqlState,
      cause,
      retryable: bouncer.retryable,
      detail: { ...detailOf(err), pgbouncer: (err as { message: string }).message },
    })
  }
  if (sqlState) {
    const mapping = mapSqlState(sqlState)
    const code = context.connecting && mapping.code === 'CONNECTION_LOST' ? 'CONNECTION_FAILED' : mapping.code
    return new DatabaseError(code, message, { backend: 'postgres', sqlState, cause, retryable: mapping.retryable, detail: detailOf(err) })
  }
  const socketCode = typeof (err as { code?: unknown })?.code === 'string' ? SOCKET_ERROR_CODES[(err as { code: string }).code] : undefined
  const auth = authenticationFailure(native)
  if (auth !== undefined)
    return new DatabaseError('AUTHENTICATION_FAILED', `${message}${auth}`, { backend: 'postgres', cause, retryable: false })
  if (context.connecting) return new DatabaseError('CONNECTION_FAILED', message, { backend: 'postgres', cause })
  if (socketCode)
    return new DatabaseError(socketCode === 'CONNECTION_FAILED' ? 'CONNECTION_LOST' : socketCode, message, { backend: 'postgres', cause })
  if (context.connectionBroken) return new DatabaseError('CONNECTION_LOST', message, { backend: 'postgres', cause })
  return new DatabaseError('QUERY_FAILED', message, { backend: 'postgres', cause })
}

/**
 * pg's own authentication failures, raised on the client before the server could answer with a
 * SQLSTATE: every `SASL: ...` error of its SCRAM exchange (no password, an empty one, a mechanism or
 * server signature it refuses) and a password function's non-string result. Retrying cannot fix
 * them. Returns the hint to append, or `undefined` when `message` is not one of them.
 */
export function authenticationFailure(message: string): string | undefined {
  if (/^SASL: .*client password must be a (non-empty )?string/.test(message))
    return ' (the server asks for a password and none was given: put it in the URL, PGPASSWORD or a password function)'
  if (/^SASL: /.test(message) || /^Password must be a string$/.test(message)) return ''
  return undefined
}

function detailOf(err: unknown): Record<string, unknown> | undefined {
  const fields = err as PgErrorFields
  const detail: Record<string, unknown> = {}
  for (const key of DETAIL_FIELDS) if (typeof fields[key] === 'string') detail[key] = fields[key]
  return Object.keys(detail).length > 0 ? detail : undefined
}

/**
 * Returns `err` itself when neither its message nor its stack holds a secret; otherwise a copy with
 * both scrubbed (and the SQLSTATE and detail fields kept), so the secret is not reachable through
 * `cause` either.
 */
export function scrubError(err: unknown, secrets: readonly (string | undefined)[]): unknown {
  if (!isErrorLike(err)) return typeof err === 'string' ? redactSecrets(err, secrets) : err
  const message = redactSecrets(err.message, secrets)
  const stack = err.stack === undefined ? undefined : redactSecrets(err.stack, secrets)
  if (message === err.message && stack === err.stack) return err
  const copy = new Error(message)
  copy.name = err.name
  copy.stack = stack
  const fields = err as PgErrorFields & { code?: unknown }
  Object.assign(copy, { code: fields.code })
  for (const key of DETAIL_FIELDS) if (typeof fields[key] === 'string') Object.assign(copy, { [key]: fields[key] })
  return copy
}

/**
 * The error of a setup statement the pool runs on its own (`sessionInit`, the timeouts sent with SET
 * behind PgBouncer, the read formats), as the pool's errors show it: `sessionInit` is configuration
 * and may hold a secret (`SET app.token = '...'`, `set_config('app.key', '...', false)`), which the
 * server repeats in its message (`invalid input syntax for type integer: "..."`) and node-postgres in
 * its error's fields. With `text` (the statement that was running), a copy of `mapped`: its message
 * with every literal of `text` hidden (core's `hideErrorLiterals`, the Migrator's rules), the same
 * code, SQLSTATE, `detail` and `retryable`, and no `cause` (node-postgres's error, whose message,
 * `detail`, `where` and `internalQuery` repeat them). Without `text` (nothing of the setup was
 * running: a lost connection, the reset statement), `mapped` itself.
 */
export function setupFailure(mapped: DatabaseError, text: string | undefined): DatabaseError {
  if (text === undefined) return mapped
  return new DatabaseError(mapped.code, hideErrorLiterals(mapped, statementLiterals(text)), {
    backend: 'postgres',
    ...(mapped.sqlState === undefined ? {} : { sqlState: mapped.sqlState }),
    ...(mapped.detail === undefined ? {} : { detail: mapped.detail }),
    retryable: mapped.retryable,
  })
}
