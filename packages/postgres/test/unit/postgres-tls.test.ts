import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkServerIdentity, type ConnectionOptions } from 'node:tls'
import { DatabaseConfig } from '@dbpool/core'
import { fallsBackToPlain, isTlsRefusal, tlsOptions } from '@dbpool/postgres'

const CA = readFileSync(join(__dirname, '../fixtures/tls/ca.crt'), 'utf8')

function tls(options: ConstructorParameters<typeof DatabaseConfig>[0]): ConnectionOptions | false {
  return tlsOptions(new DatabaseConfig(options))
}

describe('sslMode → pg ssl options (libpq meaning)', () => {
  it('disable: plain TCP', () => {
    expect(tls({ sslMode: 'disable' })).toBe(false)
  })

  it('prefer: TLS without verification first, plain TCP allowed when the server refuses', () => {
    expect(tls({ sslMode: 'prefer' })).toEqual({ rejectUnauthorized: false })
    expect(fallsBackToPlain('prefer')).toBe(true)
    expect(tls({})).toEqual({ rejectUnauthorized: false }) // prefer is the default, as in libpq
  })

  it('allow: the options of its second (TLS) attempt, without verification; it never falls back from TLS first', () => {
    expect(tls({ sslMode: 'allow' })).toEqual({ rejectUnauthorized: false })
    expect(fallsBackToPlain('allow')).toBe(false)
  })

  it('require: TLS without verification; with a root certificate it verifies the chain like verify-ca', () => {
    expect(tls({ sslMode: 'require' })).toEqual({ rejectUnauthorized: false })
    expect(fallsBackToPlain('require')).toBe(false)
    const withCa = tls({ sslMode: 'require', sslRootCert: CA }) as ConnectionOptions
    expect(withCa.rejectUnauthorized).toBe(true)
    expect(withCa.ca).toBe(CA)
    expect(withCa.checkServerIdentity?.('other.host', {} as never)).toBeUndefined()
  })

  it('verify-ca: chain verified, host name not', () => {
    const options = tls({ sslMode: 'verify-ca', sslRootCert: CA, host: 'db.internal' }) as ConnectionOptions
    expect(options.rejectUnauthorized).toBe(true)
    expect(options.ca).toBe(CA)
    expect(options.servername).toBeUndefined()
    expect(options.checkServerIdentity?.('db.internal', { subject: { CN: 'someone-else' } } as never)).toBeUndefined()
    expect(fallsBackToPlain('verify-ca')).toBe(false)
  })

  it("verify-full: chain and host name verified with Node's default check; SNI for names, not IPs", () => {
    const named = tls({ sslMode: 'verify-full', sslRootCert: CA, host: 'db.internal' }) as ConnectionOptions
    expect(named).toEqual({ ca: CA, rejectUnauthorized: true, servername: 'db.internal' })
    expect(named.checkServerIdentity ?? checkServerIdentity).toBe(checkServerIdentity)
    expect(tls({ sslMode: 'verify-full', host: '10.0.0.5' })).toEqual({ rejectUnauthorized: true })
    expect(fallsBackToPlain('verify-full')).toBe(false)
  })

  it("without sslRootCert the chain is checked against Node's CA store (no ca option)", () => {
    expect('ca' in (tls({ sslMode: 'verify-full', host: 'db.example.com' }) as ConnectionOptions)).toBe(false)
  })

  it('Unix-socket hosts never use TLS, whatever the mode (libpq ignores sslmode there)', () => {
    for (const sslMode of ['prefer', 'require', 'verify-ca', 'verify-full'] as const)
      expect(tls({ sslMode, host: '/var/run/postgresql' })).toBe(false)
  })

  it("recognises only pg's refusal error as a TLS refusal", () => {
    expect(isTlsRefusal(new Error('The server does not support SSL connections'))).toBe(true)
    expect(isTlsRefusal(new Error('self-signed certificate'))).toBe(false)
    expect(isTlsRefusal('The server does not support SSL connections')).toBe(false)
  })
})
