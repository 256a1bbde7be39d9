import { DatabaseConfig, PoolFactory } from '@dbpool/core'
import { PostgresConnectionManager, resolveReplicaOptions } from '@dbpool/postgres'

// PGCONNECT_TIMEOUT filled in createPostgresPool(url)'s per-host connect deadline, and the per-host
// deadline won over an EXPLICIT connectTimeoutMs option: { connectTimeoutMs: 1000 } with
// PGCONNECT_TIMEOUT=8 failed against a silent server after 8 s, and with several hosts the shared
// deadline budget was off. An option written in code beats the ambient variable.
const URL = 'postgres://u:p@127.0.0.1:1/x?sslmode=disable'
const saved = process.env.PGCONNECT_TIMEOUT

afterEach(() => {
  if (saved === undefined) delete process.env.PGCONNECT_TIMEOUT
  else process.env.PGCONNECT_TIMEOUT = saved
})

describe('an explicit connectTimeoutMs beats PGCONNECT_TIMEOUT', () => {
  it('createPostgresPool(url) / the manager: PGCONNECT_TIMEOUT is read only without the option', () => {
    process.env.PGCONNECT_TIMEOUT = '8'
    expect(new PostgresConnectionManager(URL).config.connectTimeoutMs).toBe(8_000)
    const explicit = new PostgresConnectionManager(URL, { connectTimeoutMs: 1_000 })
    expect(explicit.config.connectTimeoutMs || undefined).toBeUndefined()
    expect(explicit.options.connectTimeoutMs).toBe(1_000)
    // several hosts: no per-host deadline from the environment (the shared budget applies)
    const multi = new PostgresConnectionManager('postgres://u:p@h1:1,h2:2/x?sslmode=disable', { connectTimeoutMs: 1_000 })
    expect(multi.config.connectTimeoutMs || undefined).toBeUndefined()
    // the URL's own connect_timeout is written by the caller too: it stays
    expect(new PostgresConnectionManager(`${URL}&connect_timeout=3`, { connectTimeoutMs: 1_000 }).config.connectTimeoutMs).toBe(3_000)
  })

  it('replica URLs: the same', () => {
    const env = { PGCONNECT_TIMEOUT: '8' }
    expect(resolveReplicaOptions({ replicas: [URL] }, env).replicas[0]!.connectTimeoutMs).toBe(8_000)
    expect(
      resolveReplicaOptions({ replicas: [URL], connectTimeoutMs: 1_000 }, env).replicas[0]!.connectTimeoutMs || undefined,
    ).toBeUndefined()
  })

  it('PoolFactory.create(url, pool, { backend: { connectTimeoutMs } }): the same', async () => {
    process.env.PGCONNECT_TIMEOUT = '8'
    const seen: DatabaseConfig[] = []
    const importer = async () => ({
      createPostgresPool: (config: DatabaseConfig) => {
        seen.push(config)
        return {} as never
      },
    })
    await PoolFactory.create(URL, {}, { importer })
    await PoolFactory.create(URL, {}, { importer, backend: { connectTimeoutMs: 1_000 } })
    expect(seen[0]!.connectTimeoutMs).toBe(8_000)
    expect(seen[1]!.connectTimeoutMs || undefined).toBeUndefined()
  })

  it("PoolFactory.create's database options beat the environment for every field it fills", async () => {
    const env = {
      PGHOST: 'envhost',
      PGPORT: '7777',
      PGUSER: 'envuser',
      PGDATABASE: 'envdb',
      PGAPPNAME: 'envapp',
      PGOPTIONS: '-c search_path=env',
      PGSSLMODE: 'require',
      PGTARGETSESSIONATTRS: 'read-only',
      PGCONNECT_TIMEOUT: '8',
    }
    const saved = { ...process.env }
    Object.assign(process.env, env)
    try {
      const seen: DatabaseConfig[] = []
      const importer = async () => ({
        createPostgresPool: (config: DatabaseConfig) => {
          seen.push(config)
          return {} as never
        },
      })
      const database = {
        host: 'own',
        port: 5433,
        username: 'me',
        database: 'mine',
        applicationName: 'api',
        options: '-c search_path=own',
        sslMode: 'disable' as const,
        targetSessionAttrs: 'any' as const,
        connectTimeoutMs: 3_000,
      }
      await PoolFactory.create('postgres:///', {}, { importer, database })
      expect(seen[0]).toMatchObject({ ...database, connectTimeoutMs: 3_000 })
    } finally {
      for (const key of Object.keys(env)) if (saved[key] === undefined) delete process.env[key]
      Object.assign(process.env, saved)
    }
  })

  it('envDefaults(env, given): PGCONNECT_TIMEOUT is not read under an explicit deadline', () => {
    expect(DatabaseConfig.envDefaults({ PGCONNECT_TIMEOUT: '8' }, { connectTimeoutMs: 1_000 })).toEqual({})
  })
})

// PGSSLCERT, PGSSLKEY, PGSSLCRL... are read only with TLS: a replica URL is checked against its final mode.
describe('replica URLs: the variables read only with TLS', () => {
  const env = { PGSSLCERT: '/home/app/c.crt' }
  it('not read for a replica whose mode ends disable (its own, or the primary it inherits from); refused otherwise', () => {
    expect(resolveReplicaOptions({ replicas: [URL] }, env).replicas[0]!.sslMode).toBe('disable')
    const primary = DatabaseConfig.fromUrl('postgres://u:p@p/x?sslmode=disable')
    expect(resolveReplicaOptions({ replicas: ['postgres://u:p@r/x'] }, env, primary).replicas[0]!.sslMode).toBe('disable')
    expect(() => resolveReplicaOptions({ replicas: ['postgres://u:p@r/x'] }, env)).toThrow(/PGSSLCERT.*DatabaseConfig\.fromUrl/)
    expect(() => resolveReplicaOptions({ replicas: ['postgres://u:p@r/x?sslmode=require'] }, env, primary)).toThrow(/PGSSLCERT/)
  })

  it('createPostgresPool(url) with sslmode=disable starts under PGSSLCERT', () => {
    process.env.PGSSLCERT = '/home/app/c.crt'
    try {
      expect(new PostgresConnectionManager(URL).config.sslMode).toBe('disable')
      expect(() => new PostgresConnectionManager('postgres://u:p@127.0.0.1:1/x')).toThrow(/PGSSLCERT/)
    } finally {
      delete process.env.PGSSLCERT
    }
  })
})
