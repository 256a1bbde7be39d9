import { inspect } from 'node:util'
import { DatabaseConfig, PoolFactory } from '@dbpool/core'
import { createPostgresPool, PostgresConnectionManager, resolveReplicaOptions } from '@dbpool/postgres'

// Review r6 items 1 and 2: a connection URL given where options are expected (a string or a WHATWG URL,
// whose toJSON() is its href), a URL with a mistyped scheme (postgres:/, postgres//, none), or one whose
// "@host" is missing (the password read as the port) was echoed with its password in the CONFIGURATION
// error, which is what gets logged at startup. Every entry point, every way an error is looked at.
const PASSWORD = 'Hunter2Secret'
const URL_TEXT = `postgres://app:${PASSWORD}@db.example.com/ledger`
const TYPOS = [
  `postgres:/app:${PASSWORD}@db/ledger`,
  `postgres//app:${PASSWORD}@db/ledger`,
  `postgres:app:${PASSWORD}@db/ledger`,
  `app:${PASSWORD}@db:5432/ledger`,
  `postgress://app:${PASSWORD}@db/ledger`,
  `postgres:\\\\app:${PASSWORD}@db/ledger`,
  // "@host" missing: the password reads as a port
  `postgres://app:${PASSWORD}/ledger`,
  `postgres://app:${PASSWORD}/ledger?sslmode=nope`,
  `postgres://app:Hunter2:${PASSWORD}/ledger`,
  `postgres://app:${PASSWORD}`,
]
const CFG = DatabaseConfig.fromUrl('postgres://h/d')

function expectHidden(err: unknown): void {
  expect(err).toMatchObject({ code: 'CONFIGURATION' })
  const e = err as Error
  for (const text of [e.message, e.stack ?? '', JSON.stringify(e), inspect(e, { depth: 9, showHidden: true }), String(e)])
    expect(text).not.toContain(PASSWORD)
}

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('accepted')
}

async function rejected(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  throw new Error('accepted')
}

const saved = { ...process.env }
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
  Object.assign(process.env, saved)
})

const importer = async (): Promise<never> => ({ createPostgresPool: () => ({}) }) as never

describe('a URL given where options are expected: its password is never shown', () => {
  const asObject = new URL(URL_TEXT)
  const sync: Record<string, () => unknown> = {
    'new DatabaseConfig(URL)': () => new DatabaseConfig(asObject as never),
    'new DatabaseConfig(string)': () => new DatabaseConfig(URL_TEXT as never),
    'new DatabaseConfig({ hosts: [url] })': () => new DatabaseConfig({ hosts: [URL_TEXT as never] }),
    'new DatabaseConfig({ host: [url] })': () => new DatabaseConfig({ host: [URL_TEXT] as never }),
    'new DatabaseConfig({ host: URL })': () => new DatabaseConfig({ host: asObject as never }),
    'new DatabaseConfig({ database: { url } })': () => new DatabaseConfig({ database: { url: URL_TEXT } as never }),
    'new DatabaseConfig({ options: [url, URL] })': () => new DatabaseConfig({ options: [URL_TEXT, asObject] as never }),
    'new DatabaseConfig({ sslMode: url })': () => new DatabaseConfig({ sslMode: URL_TEXT as never }),
    'DatabaseConfig.fromUrl(URL)': () => DatabaseConfig.fromUrl(asObject as never),
    'fromUrl(u, string overrides)': () => DatabaseConfig.fromUrl('postgres://h/d', URL_TEXT as never),
    'fromUrl(u, {}, URL defaults)': () => DatabaseConfig.fromUrl('postgres://h/d', {}, asObject as never),
    'config.with(string)': () => CFG.with(URL_TEXT as never),
    'createPostgresPool(URL)': () => createPostgresPool(asObject as never),
    'createPostgresPool(cfg, string)': () => createPostgresPool(CFG, URL_TEXT as never),
    'createPostgresPool(cfg, {}, string)': () => createPostgresPool(CFG, {}, URL_TEXT as never),
    'createPostgresPool(cfg, { name: URL })': () => createPostgresPool(CFG, { name: asObject as never }),
    'new PostgresConnectionManager(URL)': () => new PostgresConnectionManager(asObject as never),
    'replicas: string': () => createPostgresPool(CFG, {}, { replicas: URL_TEXT as never }),
    'replicas: [URL]': () => createPostgresPool(CFG, {}, { replicas: [asObject as never] }),
    'replicas: [[url]]': () => createPostgresPool(CFG, {}, { replicas: [[URL_TEXT] as never] }),
    'replicas: [{ host: URL }]': () => createPostgresPool(CFG, {}, { replicas: [{ host: asObject as never }] }),
    'resolveReplicaOptions: [{ database: { url } }]': () => resolveReplicaOptions({ replicas: [{ database: { url: URL_TEXT } }] }, {}),
  }
  for (const [name, fn] of Object.entries(sync)) it(name, () => expectHidden(thrown(fn)))

  const factory: Record<string, () => Promise<unknown>> = {
    'PoolFactory.create(URL)': () => PoolFactory.create(asObject as never, {}, { importer }),
    'PoolFactory.create(url, string)': () => PoolFactory.create(URL_TEXT, URL_TEXT as never),
    'PoolFactory.create(url, {}, { database: string })': () => PoolFactory.create(URL_TEXT, {}, { database: URL_TEXT as never, importer }),
    'PoolFactory.create(url, {}, { backend: string })': () => PoolFactory.create(URL_TEXT, {}, { backend: URL_TEXT as never }),
    'PoolFactory.create(url, {}, { database: { host: URL } })': () =>
      PoolFactory.create(URL_TEXT, {}, { database: { host: asObject as never }, importer }),
  }
  for (const [name, fn] of Object.entries(factory)) it(name, async () => expectHidden(await rejected(fn)))
})

describe('a URL with a mistyped scheme or no "@host": its password is never shown', () => {
  for (const url of TYPOS) {
    it(url.replace(PASSWORD, '***'), async () => {
      expectHidden(thrown(() => DatabaseConfig.fromUrl(url)))
      expectHidden(thrown(() => createPostgresPool(url)))
      expectHidden(thrown(() => new PostgresConnectionManager(url)))
      expectHidden(thrown(() => createPostgresPool(CFG, {}, { replicas: [url] })))
      expectHidden(thrown(() => resolveReplicaOptions({}, { DATABASE_REPLICA_URLS: url })))
      expectHidden(thrown(() => DatabaseConfig.fromEnv({ DATABASE_URL: url })))
      expectHidden(await rejected(() => PoolFactory.create(url, {}, { importer })))
    })
  }

  it('the message still says what is wrong (the scheme, or the port)', () => {
    expect(() => DatabaseConfig.fromUrl(`postgres:/app:${PASSWORD}@db/ledger`)).toThrow(
      'invalid database.url "postgres:...": must start with postgres:// or postgresql://',
    )
    expect(() => DatabaseConfig.fromUrl(`postgres://app:${PASSWORD}/ledger`)).toThrow(/invalid database\.url port "\[hidden\]"/)
    expect(() => new DatabaseConfig(URL_TEXT as never)).toThrow('invalid database "postgres://app:[REDACTED]@db.example.com/ledger"')
  })
})
