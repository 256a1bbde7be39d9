import { DatabaseConfig } from '@dbpool/core'
import { createPostgresPool, PostgresConnectionManager, resolveReplicaOptions } from '@dbpool/postgres'

const PRIMARY = DatabaseConfig.fromUrl('postgres://app:pw@primary:5432/ledger?sslmode=disable')
const saved = { ...process.env }
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
  Object.assign(process.env, saved)
})

// review r6 item 5: a URL object in `replicas` has no own enumerable properties, so it was read as {}:
// a replica on localhost:5432, user postgres, reads served by whatever listens there
describe('a replica that is not a URL string, a DatabaseConfig or plain options is refused', () => {
  const url = new URL('postgres://app:Hunter2Secret@replica.example.com:6543/ledger')
  for (const [name, target] of [
    ['a URL object', url],
    ['a Map', new Map([['host', 'replica']])],
    ['a Date', new Date()],
  ] as const) {
    it(name, () => {
      let err: unknown
      try {
        createPostgresPool(PRIMARY, {}, { replicas: [target as never] })
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'postgres.replicas[0]' } })
      expect((err as Error).message).toMatch(/must be a postgres:\/\/ URL string, a DatabaseConfig or a plain object/)
      expect((err as Error).message).not.toContain('Hunter2Secret')
    })
  }

  it('a URL string and plain options still work', () => {
    const { replicas } = resolveReplicaOptions({ replicas: [String(url), { host: 'r2', password: 'x' }] }, {}, PRIMARY)
    expect(replicas.map(String)).toEqual(['postgres://app@replica.example.com:6543/ledger', 'postgres://postgres@r2:5432/postgres'])
  })
})

// review r6 item 8: PGHOST/PGPORT were paired with each other before the URL replaced them, so
// PGHOST=a,b,c PGPORT=1,2 refused a URL giving its own hosts and ports (libpq pairs the final lists)
describe('PGHOST / PGPORT are paired after the URL replaced its lists (libpq)', () => {
  const env = { PGHOST: 'a,b,c', PGPORT: '1,2' }
  const fromUrl = (url: string, e: NodeJS.ProcessEnv): DatabaseConfig =>
    DatabaseConfig.fromUrl(url, {}, DatabaseConfig.envDefaults(e, { url }))

  it('a URL with its own hosts and ports reads neither variable', async () => {
    expect(String(fromUrl('postgres://u@h:7/db', env))).toBe('postgres://u@h:7/db')
    expect(String(fromUrl('postgres://u@h1:7,h2:8/db', env))).toBe('postgres://u@h1:7,h2:8/db')
    Object.assign(process.env, env)
    expect(String(new PostgresConnectionManager('postgres://u@127.0.0.1:55432/db').config)).toBe('postgres://u@127.0.0.1:55432/db')
    const pool = createPostgresPool('postgres://u@127.0.0.1:55432,127.0.0.1:55433/db', { min: 0 })
    expect(String(pool.target)).toContain('127.0.0.1:55432,127.0.0.1:55433')
    await pool.close()
    const { replicas } = resolveReplicaOptions({ replicas: ['postgres://u@r:7/db'] }, env, PRIMARY)
    expect(String(replicas[0])).toBe('postgres://u@r:7/db')
  })

  it("the URL's hosts take PGPORT's ports, its ports PGHOST's names", () => {
    expect(String(fromUrl('postgres://u@h1,h2/db', env))).toBe('postgres://u@h1:1,h2:2/db')
    expect(String(fromUrl('postgres://u@h1,h2/db', { PGPORT: '9' }))).toBe('postgres://u@h1:9,h2:9/db')
    expect(String(fromUrl('postgres://u@:7/db', { PGHOST: 'a,b' }))).toBe('postgres://u@a:7,b:7/db')
  })

  it('lists that do not match after the overlay are still refused, as libpq refuses them', () => {
    expect(() => fromUrl('postgres://u@h/db', env)).toThrow(/invalid PGPORT "1,2": 2 ports for the 1 host of the URL/)
    expect(() => fromUrl('postgres://u@/db', env)).toThrow(/invalid PGPORT "1,2": 2 ports for 3 hosts in PGHOST/)
    expect(() => DatabaseConfig.fromEnv(env)).toThrow(/invalid PGPORT "1,2": 2 ports for 3 hosts in PGHOST/)
  })
})

// review r6 item 9: a DatabaseConfig of a second copy of @dbpool/core was read as options (its
// public host and hosts both): "give host or hosts, not both"
describe('a DatabaseConfig of another copy of @dbpool/core', () => {
  let Foreign: typeof DatabaseConfig
  beforeAll(() => {
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      Foreign = (require('../../../core/src/index') as { DatabaseConfig: typeof DatabaseConfig }).DatabaseConfig
    })
  })

  it('is a copy indeed', () => {
    expect(Foreign).not.toBe(DatabaseConfig)
  })

  it('is used as it is, its password included (primary and replica)', async () => {
    const foreign = Foreign.fromUrl('postgres://app:Secr3t-pw@db:6432/ledger?sslmode=disable')
    expect(foreign instanceof DatabaseConfig).toBe(true)
    const manager = new PostgresConnectionManager(foreign)
    expect(String(manager.config)).toBe('postgres://app@db:6432/ledger')
    await expect(manager.config.resolvePassword()).resolves.toBe('Secr3t-pw')
    const { replicas } = resolveReplicaOptions({ replicas: [foreign] }, {}, PRIMARY)
    expect(replicas[0]).toBe(foreign)
  })

  it('one without the mark (an older copy) is refused naming the cause', () => {
    class DatabaseConfigLike {
      readonly host = 'db'
      readonly port = 5432
      readonly hosts = [{ host: 'db', port: 5432 }]
    }
    Object.defineProperty(DatabaseConfigLike, 'name', { value: 'DatabaseConfig' })
    const old = new DatabaseConfigLike()
    expect(() => new PostgresConnectionManager(old as never)).toThrow(/is already a DatabaseConfig \(of another copy of @dbpool\/core/)
    expect(() => resolveReplicaOptions({ replicas: [old] }, {}, PRIMARY)).toThrow(
      /invalid postgres\.replicas\[0\] "\[DatabaseConfig\]": is a DatabaseConfig of another \(older\) copy/,
    )
    expect(() => new DatabaseConfig(PRIMARY as never)).toThrow(/is already a DatabaseConfig/)
  })
})

// review r6 item 10: an out-of-range PGPORT or URL port / timeout was reported as the code option database.port
describe('a value out of range is named where it came from', () => {
  const cases: [NodeJS.ProcessEnv, string, string][] = [
    [{ PGPORT: '70000' }, 'postgres://u@h/db', 'PGPORT'],
    [{ PGPORT: '0' }, 'postgres://u@h/db', 'PGPORT'],
    [{ PGPORT: '5432,0' }, 'postgres://u@h1,h2/db', 'PGPORT'],
    [{}, 'postgres://u@h:70000/db', 'database.url port'],
    [{}, 'postgres://u@h1:1,h2:0/db', 'database.url port'],
    [{}, 'postgres://u@h/db?statement_timeout=-1', 'database.url statement_timeout'],
    [{}, 'postgres://u@h/db?lock_timeout=2147483648', 'database.url lock_timeout'],
    [{}, 'postgres://u@h/db?idle_in_transaction_session_timeout=-5', 'database.url idle_in_transaction_session_timeout'],
  ]
  for (const [env, url, option] of cases) {
    it(`${JSON.stringify(env)} ${url}: ${option}`, () => {
      let err: unknown
      try {
        DatabaseConfig.fromUrl(url, {}, DatabaseConfig.envDefaults(env, { url }))
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option } })
      expect((err as Error).message).toMatch(new RegExp(`^invalid ${option} -?\\d+: must be an integer between`))
    })
  }
})
