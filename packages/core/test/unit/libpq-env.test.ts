import { DatabaseConfig, DatabaseError } from '@dbpool/core'

const URL = 'postgres://app:pw@db/ledger'

function configErrorOf(env: NodeJS.ProcessEnv): DatabaseError | undefined {
  try {
    DatabaseConfig.fromEnv(env)
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  return undefined
}

// libpq's security variables were silently ignored (PGCHANNELBINDING=require, PGREQUIRESSL=1...): dbpool
// connected in plaintext where psql refuses. Each is honoured, or CONFIGURATION naming it when it asks for
// more than dbpool gives; a harmless value is accepted.
describe("libpq's security environment variables (never silently ignored)", () => {
  it('PGREQUIRESSL=1 is sslmode require when the URL and PGSSLMODE leave it out, as libpq', () => {
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: URL, PGREQUIRESSL: '1' }).sslMode).toBe('require')
    expect(DatabaseConfig.fromEnv({ PGHOST: 'db', PGREQUIRESSL: '1' }).sslMode).toBe('require')
    expect(DatabaseConfig.envDefaults({ PGREQUIRESSL: '1' })).toEqual({ sslMode: 'require' })
    // libpq: PGSSLMODE wins over PGREQUIRESSL, the URL over both; a value not starting with 1 is ignored
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: URL, PGREQUIRESSL: '1', PGSSLMODE: 'verify-full' }).sslMode).toBe('verify-full')
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: `${URL}?sslmode=verify-ca`, PGREQUIRESSL: '1' }).sslMode).toBe('verify-ca')
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: URL, PGREQUIRESSL: '0' }).sslMode).toBe('prefer')
  })

  it.each([
    ['PGCHANNELBINDING', 'require'],
    ['PGGSSENCMODE', 'require'],
    ['PGREQUIREAUTH', 'scram-sha-256'],
    ['PGREQUIREAUTH', '!password'],
    ['PGSSLCRL', '/etc/ssl/root.crl'],
    ['PGSSLCRLDIR', '/etc/ssl/crl'],
    ['PGSSLCERT', '/home/me/.postgresql/client.crt'],
    ['PGSSLKEY', '/home/me/.postgresql/client.key'],
    ['PGSSLCERTMODE', 'require'],
    ['PGSSLMINPROTOCOLVERSION', 'TLSv1.3'],
    ['PGSSLNEGOTIATION', 'direct'],
    ['PGSSLSNI', '0'],
    ['PGREQUIREPEER', 'postgres'],
    ['PGSERVICE', 'ledger'],
    ['PGLOADBALANCEHOSTS', 'random'],
  ])('%s=%s asks for more than dbpool gives: CONFIGURATION naming it (library and every URL)', (name, value) => {
    for (const env of [{ DATABASE_URL: URL }, { PGHOST: 'db' }]) {
      const err = configErrorOf({ ...env, [name]: value })
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: name } })
      expect(err!.message).toContain(name)
    }
    expect(() => DatabaseConfig.envDefaults({ [name]: value })).toThrow(new RegExp(name))
  })

  it('a password-like variable is never shown', () => {
    const err = configErrorOf({ DATABASE_URL: URL, PGSSLPASSWORD: 'Key-Passphrase-99' })
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'PGSSLPASSWORD' } })
    expect(err!.message).not.toContain('Key-Passphrase-99')
  })

  it.each([
    ['PGCHANNELBINDING', 'prefer'],
    ['PGCHANNELBINDING', 'disable'],
    ['PGGSSENCMODE', 'prefer'],
    ['PGGSSENCMODE', 'disable'],
    ['PGSSLCERTMODE', 'allow'],
    ['PGSSLCERTMODE', 'disable'],
    ['PGSSLMINPROTOCOLVERSION', 'TLSv1.2'],
    ['PGSSLMINPROTOCOLVERSION', 'tlsv1'],
    ['PGSSLMAXPROTOCOLVERSION', 'TLSv1.2'],
    ['PGSSLNEGOTIATION', 'postgres'],
    ['PGSSLSNI', '1'],
    ['PGSSLCOMPRESSION', '0'],
    ['PGKRBSRVNAME', 'postgres'],
    ['PGGSSLIB', 'gssapi'],
    ['PGSERVICEFILE', '/etc/pg_service.conf'],
    ['PGLOADBALANCEHOSTS', 'disable'],
    ['PGREQUIREAUTH', ''],
  ])('%s=%s is harmless: accepted', (name, value) => {
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: URL, [name]: value }).sslMode).toBe('prefer')
  })

  it.each([
    ['PGCHANNELBINDING', 'always'],
    ['PGGSSENCMODE', 'yes'],
    ['PGSSLMINPROTOCOLVERSION', 'TLSv2'],
    ['PGSSLMAXPROTOCOLVERSION', 'SSLv3'],
  ])('%s=%s is not a value libpq knows: CONFIGURATION naming it', (name, value) => {
    expect(configErrorOf({ DATABASE_URL: URL, [name]: value })).toMatchObject({ code: 'CONFIGURATION', detail: { option: name } })
  })

  it('a minimum TLS version above the maximum is CONFIGURATION, as libpq', () => {
    const env = { DATABASE_URL: URL, PGSSLMINPROTOCOLVERSION: 'TLSv1.2', PGSSLMAXPROTOCOLVERSION: 'TLSv1.1' }
    expect(configErrorOf(env)).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'PGSSLMINPROTOCOLVERSION' } })
  })
})
