import { DatabaseConfig, DatabaseError } from '@dbpool/core'

const URL = 'postgres://app:S3cret-pw@db/ledger'

function thrown(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  throw new Error('did not throw')
}

// PGOPTIONS, PGAPPNAME and PGCONNECT_TIMEOUT were ignored wherever a URL was read (DATABASE_URL, the CLI,
// replica URLs): PGOPTIONS='-c search_path=app' read and wrote another schema's tables. libpq fills them
// in for every connection string, under what the URL sets; PGHOSTADDR, which dbpool cannot honour, is refused.
describe('libpq environment: PGOPTIONS, PGAPPNAME, PGCONNECT_TIMEOUT, PGHOSTADDR', () => {
  it('envDefaults reads PGOPTIONS, PGAPPNAME and PGCONNECT_TIMEOUT', () => {
    expect(DatabaseConfig.envDefaults({ PGOPTIONS: '-c search_path=app', PGAPPNAME: 'billing', PGCONNECT_TIMEOUT: '7' })).toEqual({
      options: '-c search_path=app',
      applicationName: 'billing',
      connectTimeoutMs: 7_000,
    })
    // an empty variable counts as unset
    expect(DatabaseConfig.envDefaults({ PGOPTIONS: '', PGAPPNAME: '', PGCONNECT_TIMEOUT: '', PGHOSTADDR: '' })).toEqual({})
  })

  it('they fill in what DATABASE_URL leaves out; the URL wins where it sets them', () => {
    const env = { PGOPTIONS: '-c search_path=app', PGAPPNAME: 'billing', PGCONNECT_TIMEOUT: '7' }
    expect(DatabaseConfig.fromEnv({ ...env, DATABASE_URL: URL })).toMatchObject({
      options: '-c search_path=app',
      applicationName: 'billing',
      connectTimeoutMs: 7_000,
    })
    const own = DatabaseConfig.fromEnv({
      ...env,
      DATABASE_URL: `${URL}?options=-c%20search_path%3Dother&application_name=api&connect_timeout=3`,
    })
    expect(own).toMatchObject({ options: '-c search_path=other', applicationName: 'api', connectTimeoutMs: 3_000 })
    // without DATABASE_URL too
    expect(DatabaseConfig.fromEnv({ ...env, PGHOST: 'db' })).toMatchObject({
      host: 'db',
      options: '-c search_path=app',
      applicationName: 'billing',
      connectTimeoutMs: 7_000,
    })
    // the CLI's way: fromUrl with the environment as defaults; explicit overrides first
    const cli = DatabaseConfig.fromUrl(URL, { options: '-c search_path=mine' }, DatabaseConfig.envDefaults(env))
    expect(cli).toMatchObject({ options: '-c search_path=mine', applicationName: 'billing' })
  })

  it("application_name, then PGAPPNAME, then the URL's fallback_application_name, then dbpool (libpq's order)", () => {
    const fallback = `${URL}?fallback_application_name=fb`
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: fallback, PGAPPNAME: 'env' }).applicationName).toBe('env')
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: fallback }).applicationName).toBe('fb')
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: `${fallback}&application_name=own`, PGAPPNAME: 'env' }).applicationName).toBe('own')
    expect(DatabaseConfig.fromUrl(fallback).applicationName).toBe('fb')
    expect(DatabaseConfig.fromUrl(URL).applicationName).toBe('dbpool')
    expect(DatabaseConfig.fromUrl(fallback, { applicationName: 'override' }, { applicationName: 'env' }).applicationName).toBe('override')
  })

  it.each([
    ['0', 0],
    ['-5', 0],
    ['1', 2_000],
    ['2', 2_000],
    [' 7 ', 7_000],
    ['+3', 3_000],
    ['2147483647', 2_147_483_647],
  ])('PGCONNECT_TIMEOUT=%j is %d ms (libpq: 0 or less none, at least 2 s)', (raw, ms) => {
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: URL, PGCONNECT_TIMEOUT: raw }).connectTimeoutMs).toBe(ms)
    expect(DatabaseConfig.fromUrl(`${URL}?connect_timeout=${encodeURIComponent(raw)}`).connectTimeoutMs).toBe(ms)
  })

  it.each(['abc', '10s', '1.5', '2147483648', '-2147483649', '99999999999999999999'])(
    'PGCONNECT_TIMEOUT=%j is refused as libpq refuses it: CONFIGURATION naming it, no secret shown',
    (raw) => {
      for (const env of [{ DATABASE_URL: URL }, { PGHOST: 'db', PGPASSWORD: 'S3cret-pw' }]) {
        const err = thrown(() => DatabaseConfig.fromEnv({ ...env, PGCONNECT_TIMEOUT: raw }))
        expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'PGCONNECT_TIMEOUT' } })
        expect(err.message).not.toContain('S3cret-pw')
      }
      const url = thrown(() => DatabaseConfig.fromUrl(`${URL}?connect_timeout=${encodeURIComponent(raw)}`))
      expect(url).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'database.url connect_timeout' } })
      expect(url.message).not.toContain('S3cret-pw')
    },
  )

  it('PGHOSTADDR is CONFIGURATION naming it (dbpool would connect to the host name instead), with or without DATABASE_URL', () => {
    for (const env of [{ DATABASE_URL: URL }, { PGHOST: 'db' }, {}]) {
      const err = thrown(() => DatabaseConfig.fromEnv({ ...env, PGHOSTADDR: '10.0.0.7' }))
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'PGHOSTADDR' } })
      expect(err.message).toMatch(/hostaddr is not supported/)
    }
    expect(() => DatabaseConfig.envDefaults({ PGHOSTADDR: '10.0.0.7' })).toThrow(/PGHOSTADDR/)
  })
})
