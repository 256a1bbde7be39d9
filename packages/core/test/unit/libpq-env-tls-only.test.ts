import { DatabaseConfig, PoolFactory } from '@dbpool/core'

// createPostgresPool(url) / PoolFactory.create(url) failed to start with CONFIGURATION when the
// environment held PGSSLCERT, PGSSLKEY or PGSSLCRL even with ?sslmode=disable: libpq never reads them
// without TLS. They are refused only when the target's mode may use TLS; the refusals that stay
// (PGSERVICE, PGREQUIREAUTH, PGGSSENCMODE=require, PGHOSTADDR) say how to go on.
const URL = 'postgres://u:p@db.example/app'
const TLS_ONLY = { PGSSLCERT: '/home/app/c.crt', PGSSLKEY: '/home/app/c.key', PGSSLCRL: '/x.crl', PGSSLCRLDIR: '/crl', PGSSLSNI: '0' }

function code(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (e) {
    return (e as { code?: string }).code
  }
}

describe('libpq variables read only with TLS', () => {
  it.each(Object.entries(TLS_ONLY))(
    '%s: not read with sslmode=disable (URL, PGSSLMODE or an override); refused where TLS may be used',
    (name, value) => {
      const env = { [name]: value }
      expect(DatabaseConfig.envDefaults(env, { url: `${URL}?sslmode=disable` })).toEqual({})
      expect(DatabaseConfig.fromEnv({ ...env, DATABASE_URL: `${URL}?sslmode=disable` }).sslMode).toBe('disable')
      expect(DatabaseConfig.fromEnv({ ...env, PGSSLMODE: 'disable', DATABASE_URL: URL }).sslMode).toBe('disable')
      expect(DatabaseConfig.envDefaults(env, { url: URL, sslMode: 'disable' })).toEqual({})
      // TLS may be used: the URL's mode, PGSSLMODE's, the default prefer, allow
      for (const given of [{ url: `${URL}?sslmode=require` }, { url: URL }, { url: `${URL}?sslmode=allow` }, {}])
        expect(code(() => DatabaseConfig.envDefaults(env, given))).toBe('CONFIGURATION')
      // the URL's disable is not weakened... nor made stricter by the environment: an explicit mode decides
      expect(code(() => DatabaseConfig.envDefaults({ ...env, PGSSLMODE: 'disable' }, { url: `${URL}?sslmode=require` }))).toBe(
        'CONFIGURATION',
      )
      expect(code(() => DatabaseConfig.fromEnv({ ...env, DATABASE_URL: `${URL}?sslmode=prefer` }))).toBe('CONFIGURATION')
    },
  )

  it('PoolFactory.create(url): a pool with sslmode=disable (the URL or database.sslMode) starts; verify-full is refused', async () => {
    const saved = process.env.PGSSLCERT
    process.env.PGSSLCERT = '/home/app/other.crt'
    try {
      const importer = async () => ({ createPostgresPool: () => ({}) as never })
      await expect(PoolFactory.create(`${URL}?sslmode=disable`, {}, { importer })).resolves.toBeDefined()
      await expect(PoolFactory.create(URL, {}, { importer, database: { sslMode: 'disable' } })).resolves.toBeDefined()
      await expect(PoolFactory.create(`${URL}?sslmode=verify-full`, {}, { importer })).rejects.toMatchObject({ code: 'CONFIGURATION' })
    } finally {
      if (saved === undefined) delete process.env.PGSSLCERT
      else process.env.PGSSLCERT = saved
    }
  })

  it.each([
    ['PGSERVICE', 'x'],
    ['PGREQUIREAUTH', 'scram-sha-256'],
    ['PGGSSENCMODE', 'require'],
    ['PGHOSTADDR', '10.0.0.9'],
    ['PGSSLCERTMODE', 'require'],
  ])('%s=%s is still refused with sslmode=disable, the message saying how to go on', (name, value) => {
    let error: Error | undefined
    try {
      DatabaseConfig.envDefaults({ [name]: value }, { url: `${URL}?sslmode=disable` })
    } catch (e) {
      error = e as Error
    }
    expect(error).toMatchObject({ code: 'CONFIGURATION' })
    expect(error!.message).toContain(name)
    expect(error!.message).toContain('DatabaseConfig.fromUrl(url), which reads no environment')
  })
})
