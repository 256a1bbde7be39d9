import { DatabaseConfig, DatabaseError, DatabasePool, PoolFactory } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'

function thrown(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  throw new Error('did not throw')
}

/** `fn()` with `vars` set in process.env (undefined: unset), restored after. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]))
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
  try {
    return await fn()
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
}

// libpq fills in every connection string from its variables: a URL without a port, user, database or
// password takes PGPORT, PGUSER, PGDATABASE, PGPASSWORD (psql 'postgres://db/ledger' with PGPORT=6433
// reaches port 6433). dbpool read DATABASE_URL alone (port 5432, user postgres: maybe another server or
// role), and a URL given to PoolFactory.create or createPostgresPool read no environment at all.
describe('a URL is a connection string as libpq reads one: the environment fills in what it leaves out', () => {
  const env = { PGHOST: 'envhost', PGPORT: '6433', PGUSER: 'envuser', PGDATABASE: 'envdb', PGPASSWORD: 'Env-S3cret' }

  it('PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD fill in DATABASE_URL; what the URL sets wins', () => {
    const filled = DatabaseConfig.fromEnv({ ...env, DATABASE_URL: 'postgres:///' })
    expect(filled).toMatchObject({ host: 'envhost', port: 6433, username: 'envuser', database: 'envdb', hasPassword: true })
    expect(DatabaseConfig.fromEnv({ ...env, DATABASE_URL: 'postgres://db/ledger' })).toMatchObject({
      host: 'db',
      port: 6433,
      username: 'envuser',
      database: 'ledger',
    })
    const own = DatabaseConfig.fromEnv({ ...env, DATABASE_URL: 'postgres://app:pw@db:5432/ledger' })
    expect(own).toMatchObject({ host: 'db', port: 5432, username: 'app', database: 'ledger' })
    // the password is the config's own: hidden everywhere, in every message
    expect(`${filled} ${JSON.stringify(filled)}`).not.toContain('Env-S3cret')
    expect(filled.redactPassword('password=Env-S3cret')).not.toContain('Env-S3cret')
  })

  it("host names and ports are libpq's two lists: PGPORT's one port goes to every URL host, one per host must match", () => {
    expect(DatabaseConfig.fromEnv({ PGPORT: '6433', DATABASE_URL: 'postgres://db1,db2/x' }).hosts).toEqual([
      { host: 'db1', port: 6433 },
      { host: 'db2', port: 6433 },
    ])
    expect(DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '1,2', DATABASE_URL: 'postgres://db1,db2/x' }).hosts).toEqual([
      { host: 'db1', port: 1 },
      { host: 'db2', port: 2 },
    ])
    expect(DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '1,2' }).hosts).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ])
    expect(DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '6433' }).hosts).toEqual([
      { host: 'a', port: 6433 },
      { host: 'b', port: 6433 },
    ])
    expect(DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '6433', DATABASE_URL: 'postgres://db/x' }).hosts).toEqual([
      { host: 'db', port: 6433 },
    ])
    // libpq: "could not match 2 port numbers to 1 hosts"
    expect(thrown(() => DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '1,2', DATABASE_URL: 'postgres://db/x' }))).toMatchObject({
      code: 'CONFIGURATION',
    })
  })

  it('PoolFactory.create fills a postgres:// URL from process.env as libpq; create.database first', async () => {
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 })
    let seen: DatabaseConfig | undefined
    const importer = async () => ({
      createPostgresPool: (config: DatabaseConfig) => {
        seen = config
        return pool
      },
    })
    await withEnv(
      { PGPORT: '6433', PGUSER: 'envuser', PGAPPNAME: 'from-env', PGOPTIONS: '-c search_path=app', PGSSLMODE: 'require' },
      async () => {
        await PoolFactory.create('postgres://db/ledger', {}, { importer })
        expect(seen).toMatchObject({
          port: 6433,
          username: 'envuser',
          applicationName: 'from-env',
          options: '-c search_path=app',
          sslMode: 'require',
        })
        await PoolFactory.create('postgres://db:5432/ledger?sslmode=disable', {}, { importer, database: { username: 'mine' } })
        expect(seen).toMatchObject({ port: 5432, username: 'mine', sslMode: 'disable' })
      },
    )
    await withEnv({ PGSSLCERT: '/home/me/.postgresql/postgresql.crt' }, async () => {
      const err = await PoolFactory.create('postgres://db/ledger', {}, { importer }).catch((e: DatabaseError) => e)
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'PGSSLCERT' } })
    })
    await pool.close()
  })
})
