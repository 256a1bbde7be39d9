import { inspect } from 'node:util'
import { runInNewContext } from 'node:vm'
import { DatabaseError } from '@dbpool/core'
import {
  authenticationFailure,
  CERTIFICATE_ERROR_CODES,
  FATAL_SQLSTATES,
  SQLSTATE_CODES,
  isFatalSqlState,
  isParameterCountMismatch,
  mapPostgresError,
  mapSqlState,
  scrubError,
  sqlStateOf,
} from '@dbpool/postgres'

function pgError(code: string, message = 'native message', fields: Record<string, string> = {}): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR', ...fields })
}

describe('SQLSTATE table', () => {
  it.each([
    ['40001', 'SERIALIZATION_FAILURE', true],
    ['40P01', 'DEADLOCK', true],
    ['23505', 'UNIQUE_VIOLATION', false],
    ['23503', 'FOREIGN_KEY_VIOLATION', false],
    ['23502', 'NOT_NULL_VIOLATION', false],
    ['23514', 'CHECK_VIOLATION', false],
    ['57014', 'QUERY_CANCELLED', false],
    ['28P01', 'AUTHENTICATION_FAILED', false],
    ['28000', 'AUTHENTICATION_FAILED', false],
    ['42601', 'SYNTAX_ERROR', false],
    ['42P02', 'INVALID_PARAMETER', false],
    ['25006', 'READ_ONLY', false],
    ['57P01', 'CONNECTION_LOST', true],
    ['57P02', 'CONNECTION_LOST', true],
    ['57P03', 'CONNECTION_FAILED', true],
    ['08006', 'CONNECTION_LOST', true],
    ['08001', 'CONNECTION_FAILED', true],
    ['08P01', 'CONNECTION_LOST', false],
    ['55P03', 'BUSY', true],
    ['53300', 'CONNECTION_FAILED', true],
    ['3D000', 'CONNECTION_FAILED', false],
    ['0A000', 'QUERY_FAILED', false],
    ['42P01', 'SYNTAX_ERROR', false],
    ['42703', 'SYNTAX_ERROR', false],
    ['42883', 'SYNTAX_ERROR', false],
    ['42704', 'SYNTAX_ERROR', false],
    ['42702', 'SYNTAX_ERROR', false],
    ['42P07', 'SYNTAX_ERROR', false],
    ['42701', 'SYNTAX_ERROR', false],
    ['42501', 'QUERY_FAILED', false],
    ['42P05', 'QUERY_FAILED', false],
    ['22012', 'QUERY_FAILED', false],
  ])('%s → %s (retryable %s)', (sqlState, code, retryable) => {
    const err = mapPostgresError(pgError(sqlState))
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe(code)
    expect(err.retryable).toBe(retryable)
    expect(err.sqlState).toBe(sqlState)
    expect(err.backend).toBe('postgres')
  })

  it('falls back to the class for unlisted states of classes 08, 23, 28', () => {
    expect(mapSqlState('08999').code).toBe('CONNECTION_LOST')
    expect(mapSqlState('23P99').code).toBe('QUERY_FAILED')
    expect(mapSqlState('28P99')).toEqual({ code: 'AUTHENTICATION_FAILED', retryable: false })
    expect(mapSqlState('XX000').code).toBe('QUERY_FAILED')
  })

  it('is a flat, frozen table of valid SQLSTATEs', () => {
    expect(Object.isFrozen(SQLSTATE_CODES)).toBe(true)
    for (const key of Object.keys(SQLSTATE_CODES)) expect(key).toMatch(/^[0-9A-Z]{5}$/)
  })

  it('evicts on class 08, 57P01, 57P02, 57P03 and 0A000 only', () => {
    for (const s of ['08000', '08003', '08006', '08P01', '57P01', '57P02', '57P03', '0A000']) expect(isFatalSqlState(s)).toBe(true)
    for (const s of ['57014', '40001', '23505', '25006', '42601', undefined]) expect(isFatalSqlState(s)).toBe(false)
    expect([...FATAL_SQLSTATES].sort()).toEqual(['0A000', '57P01', '57P02', '57P03'])
  })

  it('a Bind with the wrong value count (08P01 from exec_bind_message) is INVALID_PARAMETER; other 08P01 stay CONNECTION_LOST', () => {
    const mismatch = pgError('08P01', 'bind message supplies 0 parameters, but prepared statement "" requires 1', {
      routine: 'exec_bind_message',
    })
    expect(isParameterCountMismatch(mismatch)).toBe(true)
    const err = mapPostgresError(mismatch)
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.retryable).toBe(false)
    expect(err.sqlState).toBe('08P01')
    expect(err.message).toBe(`the statement's parameters do not fit its placeholders: ${mismatch.message}`)
    const violation = pgError('08P01', 'invalid frontend message type 0', { routine: 'SocketBackend', severity: 'FATAL' })
    expect(isParameterCountMismatch(violation)).toBe(false)
    expect(mapPostgresError(violation).code).toBe('CONNECTION_LOST')
  })

  describe("PgBouncer's own errors (FATAL 08P01, told apart by their message)", () => {
    const bouncer = (message: string): Error => pgError('08P01', message, { severity: 'FATAL' })

    it.each([
      ['query_wait_timeout', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
      ['query_timeout', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
      ['server login has been failing, try again later (server_login_retry)', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
      ['server login has been failing, cached error: connect failed (server_login_retry)', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
      ['client_login_timeout (server down)', 'CONNECTION_FAILED', 'CONNECTION_FAILED'],
      ['no more connections allowed (max_client_conn)', 'CONNECTION_FAILED', 'CONNECTION_FAILED'],
      ['client connections exceeded (max_db_client_connections)', 'CONNECTION_FAILED', 'CONNECTION_FAILED'],
      ['pooler is shutting down', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
      ['database "app" is disabled', 'CONNECTION_FAILED', 'CONNECTION_FAILED'],
      ['client_idle_timeout', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
      ['idle transaction timeout', 'CONNECTION_LOST', 'CONNECTION_FAILED'],
    ])('%s: nothing reached PostgreSQL (or nothing was in flight): retryable', (message, during, connecting) => {
      const err = mapPostgresError(bouncer(message))
      expect(err).toMatchObject({ code: during, sqlState: '08P01', retryable: true, detail: { pgbouncer: message } })
      expect(err.detail?.outcome).toBeUndefined()
      expect(err.message).toContain(message)
      expect(mapPostgresError(bouncer(message), { connecting: true })).toMatchObject({ code: connecting, retryable: true })
    })

    it.each([
      ['no such database: app', 'CONNECTION_FAILED'],
      ['password authentication failed', 'AUTHENTICATION_FAILED'],
      ['SASL authentication failed', 'AUTHENTICATION_FAILED'],
      ['no such user', 'AUTHENTICATION_FAILED'],
    ])('%s: refused for good', (message, code) => {
      expect(mapPostgresError(bouncer(message), { connecting: true })).toMatchObject({ code, retryable: false })
    })

    it('a statement PgBouncer cut off on the server (query timeout), and an unknown 08P01, keep the SQLSTATE mapping', () => {
      for (const message of ['query timeout', 'server conn crashed?', 'invalid frontend message type 0'])
        expect(mapPostgresError(bouncer(message))).toMatchObject({ code: 'CONNECTION_LOST', retryable: false })
      // the same words from another SQLSTATE are not PgBouncer's
      expect(mapPostgresError(pgError('57P01', 'query_wait_timeout'))).toMatchObject({ code: 'CONNECTION_LOST', retryable: true })
      expect(mapPostgresError(pgError('XX000', 'query_wait_timeout')).code).toBe('QUERY_FAILED')
    })
  })

  it('while connecting, connection-class failures are CONNECTION_FAILED', () => {
    expect(mapPostgresError(pgError('08006'), { connecting: true }).code).toBe('CONNECTION_FAILED')
    expect(mapPostgresError(pgError('57P01'), { connecting: true }).code).toBe('CONNECTION_FAILED')
    expect(mapPostgresError(pgError('28P01'), { connecting: true }).code).toBe('AUTHENTICATION_FAILED')
  })
})

describe('errors without a SQLSTATE', () => {
  it('maps socket errors by their code', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
    expect(mapPostgresError(refused, { connecting: true }).code).toBe('CONNECTION_FAILED')
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    expect(mapPostgresError(reset).code).toBe('CONNECTION_LOST')
    expect(sqlStateOf(reset)).toBeUndefined()
  })

  it('never takes a five-capital socket code for a SQLSTATE: a write EPIPE while the server goes away is CONNECTION_LOST', () => {
    // seen when the server stopped under load: EPIPE has the shape of a SQLSTATE and came out QUERY_FAILED
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' })
    expect(sqlStateOf(epipe)).toBeUndefined()
    expect(mapPostgresError(epipe)).toMatchObject({ code: 'CONNECTION_LOST', retryable: true, sqlState: undefined })
    const eperm = Object.assign(new Error('connect EPERM'), { code: 'EPERM', errno: -1, syscall: 'connect' })
    expect(sqlStateOf(eperm)).toBeUndefined()
    expect(mapPostgresError(eperm, { connecting: true }).code).toBe('CONNECTION_FAILED')
    // a server error keeps its SQLSTATE
    expect(sqlStateOf(Object.assign(new Error('deadlock detected'), { code: '40P01', severity: 'ERROR' }))).toBe('40P01')
  })

  it('uses what the manager knows: a broken connection means CONNECTION_LOST, else QUERY_FAILED', () => {
    const err = new Error('Connection terminated unexpectedly')
    expect(mapPostgresError(err, { connectionBroken: true }).code).toBe('CONNECTION_LOST')
    expect(mapPostgresError(err).code).toBe('QUERY_FAILED')
    expect(mapPostgresError('a string').code).toBe('QUERY_FAILED')
  })

  it('passes DatabaseErrors through', () => {
    const original = new DatabaseError('QUERY_TIMEOUT', 'late')
    expect(mapPostgresError(original)).toBe(original)
  })
})

describe('secrets', () => {
  it('keeps secret-free detail fields', () => {
    const err = mapPostgresError(pgError('23505', 'duplicate key', { constraint: 'users_email_key', table: 'users', schema: 'public' }))
    expect(err.detail).toEqual({ severity: 'ERROR', constraint: 'users_email_key', table: 'users', schema: 'public' })
    expect(err.cause).toBeInstanceOf(Error)
  })

  it('scrubs passwords and URL credentials from the message, the stack and the cause', () => {
    const native = pgError('28P01', 'failed for postgres://app:hunter2@db/x with password hunter2')
    const err = mapPostgresError(native, { secrets: ['hunter2'], prefix: 'connecting to postgres://app@db:5432/x failed' })
    for (const text of [
      err.message,
      String(err.stack),
      JSON.stringify(err),
      inspect(err, { showHidden: true, depth: 5 }),
      inspect(err.cause, { showHidden: true }),
      String((err.cause as Error).stack),
    ]) {
      expect(text).not.toContain('hunter2')
    }
    expect(err.message).toContain('[REDACTED]')
    expect((err.cause as { code?: string }).code).toBe('28P01')
  })

  it('returns the original error when there is nothing to scrub', () => {
    const native = pgError('23505')
    expect(scrubError(native, ['hunter2'])).toBe(native)
  })
})

describe('server certificate verification failures', () => {
  it.each([
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'CERT_HAS_EXPIRED',
    'ERR_TLS_CERT_ALTNAME_INVALID',
  ])('%s → CONNECTION_FAILED, not retryable, naming the code and the reason', (tlsCode) => {
    const err = mapPostgresError(Object.assign(new Error('native reason'), { code: tlsCode }), {
      connecting: true,
      prefix: 'connecting to postgres://app@db:5432/ledger failed',
    })
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.retryable).toBe(false)
    expect(err.message).toBe(
      `connecting to postgres://app@db:5432/ledger failed: the server certificate failed verification (${tlsCode}: native reason); check sslMode, sslRootCert and the host name`,
    )
    expect(err.detail).toEqual({ tlsCode })
    expect(CERTIFICATE_ERROR_CODES.has(tlsCode)).toBe(true)
  })

  it('other connect failures stay retryable', () => {
    const refused = mapPostgresError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', syscall: 'connect' }), {
      connecting: true,
    })
    expect(refused.code).toBe('CONNECTION_FAILED')
    expect(refused.retryable).toBe(true)
  })
})

describe("pg's client-side authentication errors", () => {
  it.each([
    'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string',
    'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a non-empty string',
    'SASL: Only mechanism(s) SCRAM-SHA-256 are supported',
    'SASL: SCRAM-SERVER-FINAL-MESSAGE: server signature does not match',
    'Password must be a string',
  ])('%j is AUTHENTICATION_FAILED, not retryable, while connecting or not', (message) => {
    for (const connecting of [true, false]) {
      const err = mapPostgresError(new Error(message), { connecting, prefix: 'connecting to postgres://app@db/x failed' })
      expect(err.code).toBe('AUTHENTICATION_FAILED')
      expect(err.retryable).toBe(false)
      expect(err.message).toContain(message)
    }
  })

  it('says what to do when no password was given; other errors are unchanged', () => {
    expect(authenticationFailure('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string')).toMatch(/none was given/)
    expect(authenticationFailure('connect ECONNREFUSED 127.0.0.1:5432')).toBeUndefined()
    expect(mapPostgresError(new Error('timeout expired'), { connecting: true }).code).toBe('CONNECTION_FAILED')
  })
})

describe('an error of another realm (a vm context; under jest, Node core and native errors)', () => {
  const otherRealm = (message: string): Error =>
    runInNewContext('Object.assign(new Error(message), { code: "28P01" })', { message }) as Error

  it('mapPostgresError and scrubError scrub a secret from its message and stack', () => {
    const native = otherRealm('auth for hunter2-Secret!x failed')
    expect(native instanceof Error).toBe(false)
    const mapped = mapPostgresError(native, { secrets: ['hunter2-Secret!x'] })
    expect(mapped.message).not.toContain('hunter2')
    expect(mapped.code).toBe('AUTHENTICATION_FAILED')
    const cause = mapped.cause as Error
    expect(cause.message).not.toContain('hunter2')
    expect(cause.stack).not.toContain('hunter2')
    expect(inspect(mapped)).not.toContain('hunter2')
    const scrubbed = scrubError(native, ['hunter2-Secret!x']) as Error
    expect(scrubbed.message).not.toContain('hunter2')
    expect((scrubbed as Error & { code?: string }).code).toBe('28P01')
  })
})
