import { isIP } from 'node:net'
import { TLSSocket, type ConnectionOptions } from 'node:tls'
import type { DatabaseConfig, SslMode } from '@dbpool/core'
import { isErrorLike } from '@dbpool/core/internal'

/** What a connect attempt uses: TLS options, or `false` for plain TCP. */
export type PgSsl = false | ConnectionOptions

/**
 * The TLS settings for one sslMode, with libpq's meaning (pg's own reading of `sslmode` in URLs is
 * changing between versions, so dbpool never hands it the mode; it builds the options itself):
 *
 * | sslMode     | first attempt                         | chain checked | host name checked |
 * |-------------|---------------------------------------|---------------|-------------------|
 * | disable     | plain TCP                             | -             | -                 |
 * | allow       | plain TCP; TLS if the server refuses the plain session (see {@link retriesWithTls}) | no | no |
 * | prefer      | TLS; plain TCP if the server refuses TLS or the session over TLS (see {@link retriesWithoutTls}) | no | no |
 * | require     | TLS, or fail                          | only with sslRootCert (as libpq) | no |
 * | verify-ca   | TLS, or fail                          | yes           | no                |
 * | verify-full | TLS, or fail                          | yes           | yes (SNI sent)    |
 *
 * The chain is checked against `sslRootCert` when given, else Node's bundled CA store. Unix-socket
 * hosts (a path) never use TLS, whatever the mode: libpq ignores sslmode there too. For `allow` these
 * are the options of its second (TLS) attempt.
 */
export function tlsOptions(config: Pick<DatabaseConfig, 'host' | 'sslMode' | 'sslRootCert'>): PgSsl {
  if (config.sslMode === 'disable' || config.host.startsWith('/')) return false
  const ca = config.sslRootCert === undefined ? {} : { ca: config.sslRootCert }
  switch (config.sslMode) {
    case 'allow':
    case 'prefer':
      return { rejectUnauthorized: false }
    case 'require':
      // libpq: "if a root CA file exists, the behavior of sslmode=require is the same as verify-ca"
      return config.sslRootCert === undefined
        ? { rejectUnauthorized: false }
        : { ...ca, rejectUnauthorized: true, checkServerIdentity: skipHostCheck }
    case 'verify-ca':
      return { ...ca, rejectUnauthorized: true, checkServerIdentity: skipHostCheck }
    case 'verify-full':
      return { ...ca, rejectUnauthorized: true, ...(isIP(config.host) ? {} : { servername: config.host }) }
  }
}

/** True when TLS is attempted first but plain TCP is allowed when the server refuses it. */
export function fallsBackToPlain(mode: SslMode): boolean {
  return mode === 'prefer'
}

/**
 * sslmode=prefer's second attempt, as libpq's (fe-connect.c, "if sslmode is prefer and we're in an SSL
 * connection, then do a non-SSL retry"): the server accepted TLS (`secured`: it answered the SSLRequest
 * with 'S') and then the TLS handshake or the startup failed (an ErrorResponse such as 28000 from a
 * `hostnossl`-only pg_hba.conf, or the server closing the session). Not after the per-host connect
 * timeout (the host does not answer: another attempt would only wait again). Once per connect; never
 * for `require` and `verify-*`, which must not downgrade.
 */
export function retriesWithoutTls(mode: SslMode, secured: boolean, err: unknown): boolean {
  return mode === 'prefer' && secured && !isConnectTimeout(err)
}

/**
 * sslmode=allow's second attempt, as libpq's ("if sslmode is allow and we haven't tried an SSL
 * connection already, then retry with an SSL connection"): the plain attempt reached the server and
 * was refused with an ErrorResponse at startup (`sqlState`, e.g. 28000 from a `hostssl`-only
 * pg_hba.conf). A socket error or a timeout (no SQLSTATE) is not retried.
 */
export function retriesWithTls(mode: SslMode, sqlState: string | undefined): boolean {
  return mode === 'allow' && sqlState !== undefined
}

/** True when pg's socket is a TLS socket: the server answered the SSLRequest with 'S'. */
export function isSecured(stream: unknown): boolean {
  return stream instanceof TLSSocket
}

/** pg's error when `connectionTimeoutMillis` expired (a fixed, client-side message). */
export function isConnectTimeout(err: unknown): boolean {
  return isErrorLike(err) && err.message === 'timeout expired'
}

/**
 * True for pg's error when the server answers the SSLRequest with 'N'. pg gives it no code, so this
 * compares its fixed (client-side, never localised) message.
 */
export function isTlsRefusal(err: unknown): boolean {
  return isErrorLike(err) && err.message === 'The server does not support SSL connections'
}

/**
 * Node's error codes for a server certificate that failed verification: OpenSSL's `X509_V_ERR_*`
 * names as Node reports them (`tls.TLSSocket` `authorizationError`), plus `ERR_TLS_CERT_ALTNAME_INVALID`
 * from `tls.checkServerIdentity` (host name mismatch). A retry cannot fix any of them.
 */
export const CERTIFICATE_ERROR_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

/** The Node code of `err` when it is a server-certificate verification failure (see {@link CERTIFICATE_ERROR_CODES}), else undefined. */
export function certificateErrorCode(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  return typeof code === 'string' && CERTIFICATE_ERROR_CODES.has(code) ? code : undefined
}

/** verify-ca: the chain is verified by `rejectUnauthorized`; the host name is deliberately not. */
function skipHostCheck(): undefined {
  return undefined
}
