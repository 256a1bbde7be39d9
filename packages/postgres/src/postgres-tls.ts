import { isIP } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import type { DatabaseConfig, SslMode } from '@dbpool/core'

/** What a connect attempt uses: TLS options, or `false` for plain TCP. */
export type PgSsl = false | ConnectionOptions

/**
 * The TLS settings for one sslMode, with libpq's meaning (pg's own reading of `sslmode` in URLs is
 * changing between versions, so dbpool never hands it the mode; it builds the options itself):
 *
 * | sslMode     | first attempt                         | chain checked | host name checked |
 * |-------------|---------------------------------------|---------------|-------------------|
 * | disable     | plain TCP                             | -             | -                 |
 * | prefer      | TLS; plain TCP if the server refuses  | no            | no                |
 * | require     | TLS, or fail                          | only with sslRootCert (as libpq) | no |
 * | verify-ca   | TLS, or fail                          | yes           | no                |
 * | verify-full | TLS, or fail                          | yes           | yes (SNI sent)    |
 *
 * The chain is checked against `sslRootCert` when given, else Node's bundled CA store. Unix-socket
 * hosts (a path) never use TLS, whatever the mode: libpq ignores sslmode there too.
 */
export function tlsOptions(config: Pick<DatabaseConfig, 'host' | 'sslMode' | 'sslRootCert'>): PgSsl {
  if (config.sslMode === 'disable' || config.host.startsWith('/')) return false
  const ca = config.sslRootCert === undefined ? {} : { ca: config.sslRootCert }
  switch (config.sslMode) {
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
 * True for pg's error when the server answers the SSLRequest with 'N'. pg gives it no code, so this
 * compares its fixed (client-side, never localised) message.
 */
export function isTlsRefusal(err: unknown): boolean {
  return err instanceof Error && err.message === 'The server does not support SSL connections'
}

/** verify-ca: the chain is verified by `rejectUnauthorized`; the host name is deliberately not. */
function skipHostCheck(): undefined {
  return undefined
}
