import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseError, sqlitePathFromUrl } from '@dbpool/core'
import {
  MAX_CONFIG_BYTES,
  loadConfigFile,
  openPool,
  parseConfigFile,
  resolveConfig,
  selectPool,
  selectPools,
  urlSecrets,
} from '@dbpool/cli'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dbpool-cli-config-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

async function failure(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

const TOML = `
# pools of the app
[pools.ledger]
url = "postgres://app:s3cret@db:5432/ledger"
primary = true
max = 20
acquire_timeout_ms = 5000

[pools.ledger.backend]
sessionInit = "SET search_path TO ledger"

[pools.cache]
url = "sqlite:./data/cache.db"
backend = { readers = 4 }
`

describe('parseConfigFile', () => {
  it('reads named pools from TOML: url, primary, snake_case or camelCase settings, backend options', async () => {
    const file = await parseConfigFile(join(dir, 'dbpool.toml'), TOML)
    expect(file.path).toBe(join(dir, 'dbpool.toml'))
    expect(file.pools).toEqual([
      {
        name: 'ledger',
        url: 'postgres://app:s3cret@db:5432/ledger',
        primary: true,
        pool: { name: 'ledger', max: 20, acquireTimeoutMs: 5000 },
        backend: { sessionInit: 'SET search_path TO ledger' },
      },
      { name: 'cache', url: `sqlite:${join(dir, 'data', 'cache.db')}`, primary: false, pool: { name: 'cache' }, backend: { readers: 4 } },
    ])
  })

  it('reads the same structure from JSON', async () => {
    const file = await parseConfigFile('dbpool.json', JSON.stringify({ pools: { main: { url: 'sqlite::memory:', maxLifetimeMs: 1000 } } }))
    expect(file.pools).toEqual([
      { name: 'main', url: 'sqlite::memory:', primary: false, pool: { name: 'main', maxLifetimeMs: 1000 }, backend: {} },
    ])
  })

  it('takes the URL from the variable named by urlEnv', async () => {
    const file = await parseConfigFile('dbpool.toml', '[pools.main]\nurl_env = "MAIN_DB"\n', { MAIN_DB: 'sqlite:./x.db' })
    expect(file.pools[0]?.url).toBe('sqlite:./x.db')
    expect((await failure(parseConfigFile('dbpool.toml', '[pools.main]\nurlEnv = "NOPE"\n', {}))).message).toBe(
      'invalid dbpool.toml pools.main.urlEnv: the variable NOPE is not set',
    )
  })

  it.each([
    ['[pools.main]\nurl = "sqlite:a.db"\nmax = 0\n', /^invalid dbpool.toml pools.main.max: must be an integer between 1 and 10000$/],
    [
      '[pools.main]\nurl = "sqlite:a.db"\nmaxx = 3\n',
      /^invalid dbpool.toml pools.main.maxx: unknown option; known options are url, urlEnv, primary, backend, min, max/,
    ],
    ['[pools.main]\nmax = 3\n', /^invalid dbpool.toml pools.main.url: must be a postgres/],
    ['[pools.main]\nurl = "sqlite:a.db"\nurlEnv = "X"\n', /give url or urlEnv, not both/],
    ['[pools.main]\nurl = "sqlite:a.db"\nprimary = "yes"\n', /pools.main.primary: must be true or false/],
    ['[pools.main]\nurl = "sqlite:a.db"\nbackend = 3\n', /pools.main.backend: must be a table/],
    [
      '[pools.a]\nurl = "sqlite:a.db"\nprimary = true\n[pools.b]\nurl = "sqlite:b.db"\nprimary = true\n',
      /dbpool.toml primary: only one pool may be primary \(a, b are\)/,
    ],
    ['[pool.main]\nurl = "sqlite:a.db"\n', /dbpool.toml pool: unknown section/],
    ['[pools.main]\nurl = "sqlite:a.db"\nmax_connections = 3\nmaxConnections = 4\n', /unknown option/],
    ['[pools.main]\nurl = "sqlite:a.db"\nacquire_timeout_ms = 1\nacquireTimeoutMs = 2\n', /acquireTimeoutMs: is given twice/],
    ['[pools]\nmain = 3\n', /dbpool.toml pools.main: must be a table/],
  ])('rejects %j naming the file, the pool and the option, never the value', async (text, pattern) => {
    const err = await failure(parseConfigFile('dbpool.toml', text))
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(pattern)
    expect(err.message).not.toMatch(/"yes"|\b[023]\b/)
  })

  it('reports a TOML syntax error with its line', async () => {
    const err = await failure(parseConfigFile('/etc/dbpool.toml', '[pools.main]\nurl = "sqlite:a.db\n'))
    expect(err.message).toMatch(/^dbpool.toml: cannot be parsed at line 2, column \d+: /)
    expect((await failure(parseConfigFile('dbpool.json', '{ "pools": '))).message).toBe(
      'dbpool.json: cannot be parsed at line 1, column 12: Unexpected end of JSON input',
    )
  })

  it('reports a syntax error by line, column and reason only: no text of the file, no cause', async () => {
    const toml = await failure(parseConfigFile('dbpool.toml', '[pools.main]\nurl = "sqlite:a.db"\npassword = "Hidden-T1" oops\n'))
    expect(toml.message).toBe(
      'dbpool.toml: cannot be parsed at line 3, column 24: Invalid TOML document: each key-value declaration must be followed by an end-of-line',
    )
    expect(toml.cause).toBeUndefined()
    expect(toml.detail).toEqual({ file: 'dbpool.toml', line: 3, column: 24 })
    const json = await failure(parseConfigFile('dbpool.json', '{"pools": {"main": {\n"password": Hidden-J1}}}'))
    expect(json.message).toBe('dbpool.json: cannot be parsed at line 2, column 13: Unexpected token')
    expect(json.cause).toBeUndefined()
    const value = await failure(parseConfigFile('dbpool.json', '{"pools": {"main": {"url": "sqlite:a.db", "max": "Hidden-V1"}}}'))
    expect(value.message).toBe('invalid dbpool.json pools.main.max: must be an integer between 1 and 10000')
    expect(value.cause).toBeUndefined()
    for (const err of [toml, json, value]) expect(JSON.stringify({ ...err, stack: err.stack })).not.toContain('Hidden-')
  })
})

describe('loadConfigFile', () => {
  it('finds dbpool.toml, then dbpool.json, in the directory; undefined when there is none', async () => {
    expect(await loadConfigFile(undefined, dir)).toBeUndefined()
    writeFileSync(join(dir, 'dbpool.json'), JSON.stringify({ pools: { j: { url: 'sqlite:j.db' } } }))
    expect((await loadConfigFile(undefined, dir))?.pools[0]?.name).toBe('j')
    writeFileSync(join(dir, 'dbpool.toml'), '[pools.t]\nurl = "sqlite:t.db"\n')
    expect((await loadConfigFile(undefined, dir))?.pools[0]?.name).toBe('t')
  })

  it('reads an explicit path relative to the working directory, and names a missing one', async () => {
    writeFileSync(join(dir, 'other.toml'), '[pools.o]\nurl = "sqlite:o.db"\n')
    expect((await loadConfigFile('other.toml', dir))?.pools[0]?.name).toBe('o')
    const err = await failure(loadConfigFile('missing.toml', dir))
    expect(err.message).toBe(`cannot read the config file ${join(dir, 'missing.toml')}: ENOENT`)
  })

  // --config /dev/zero used 620 MB before failing, /dev/urandom 1.1 GB and 13 s
  it('reads at most MAX_CONFIG_BYTES: a device or a huge file given by mistake is CONFIGURATION at once', async () => {
    for (const path of ['/dev/zero', '/dev/urandom']) {
      const err = await failure(loadConfigFile(path, dir))
      expect(err).toMatchObject({
        code: 'CONFIGURATION',
        message: `the config file ${path} is larger than ${MAX_CONFIG_BYTES} bytes: is it the right file?`,
      })
    }
    writeFileSync(join(dir, 'big.toml'), `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n[pools.b]\nurl = "sqlite:b.db"\n`)
    expect((await failure(loadConfigFile('big.toml', dir))).code).toBe('CONFIGURATION')
    writeFileSync(join(dir, 'fits.toml'), `# ${'x'.repeat(MAX_CONFIG_BYTES - 100)}\n[pools.f]\nurl = "sqlite:f.db"\n`)
    expect((await loadConfigFile('fits.toml', dir))?.pools[0]?.name).toBe('f')
  })

  // resolved against the working directory, `--config /srv/app/dbpool.toml migrate up` run elsewhere
  // created and migrated a stray database there
  it("resolves a relative sqlite: path in the file against the file's directory, not the working directory", async () => {
    const app = join(dir, 'srv app')
    mkdirSync(app)
    writeFileSync(
      join(app, 'dbpool.toml'),
      [
        '[pools.a]\nurl = "sqlite:./data/app.db"',
        '[pools.b]\nurl = "sqlite:b%3Fc.db"',
        '[pools.c]\nurl = "sqlite:/abs/c.db"',
        // RFC 8089: localhost is this machine, the path after it absolute (it was resolved as ./localhost/abs/l.db)
        '[pools.l]\nurl = "sqlite://localhost/abs/l.db"',
        '[pools.h]\nurl = "sqlite://db.internal/abs/h.db"',
        '[pools.m]\nurl = "sqlite::memory:"',
        '[pools.e]\nurl_env = "REL_URL"',
        '[pools.p]\nurl = "postgres://app@db/x"',
      ].join('\n'),
    )
    const file = await loadConfigFile(join('srv app', 'dbpool.toml'), dir, { REL_URL: 'sqlite:./env.db' })
    const urls = Object.fromEntries((file?.pools ?? []).map((p) => [p.name, p.url]))
    expect(urls).toEqual({
      a: `sqlite:${join(app, 'data', 'app.db')}`,
      b: `sqlite:${join(app, 'b%3Fc.db')}`,
      c: 'sqlite:/abs/c.db',
      l: 'sqlite://localhost/abs/l.db',
      // left as written: the pool factory refuses it (a host)
      h: 'sqlite://db.internal/abs/h.db',
      m: 'sqlite::memory:',
      // from the environment: relative to the working directory, as every environment variable
      e: 'sqlite:./env.db',
      p: 'postgres://app@db/x',
    })
    expect(sqlitePathFromUrl(urls.b as string)).toBe(join(app, 'b?c.db'))
    expect(sqlitePathFromUrl(urls.l as string)).toBe('/abs/l.db')
  })

  // /etc/app/dbpool.toml -> /srv/app/dbpool.toml: the link's directory is not where the file's paths point
  it("resolves a relative sqlite: path against a symlinked config file's real directory", async () => {
    const real = join(dir, 'srv-real')
    const etc = join(dir, 'etc-link')
    mkdirSync(real)
    mkdirSync(etc)
    writeFileSync(join(real, 'dbpool.toml'), '[pools.a]\nurl = "sqlite:./data/app.db"\n')
    symlinkSync(join(real, 'dbpool.toml'), join(etc, 'dbpool.toml'))
    const file = await loadConfigFile(join(etc, 'dbpool.toml'), dir)
    expect(file?.pools[0]?.url).toBe(`sqlite:${join(realpathSync(real), 'data', 'app.db')}`)
  })
})

describe('resolveConfig', () => {
  const file = (): void => writeFileSync(join(dir, 'dbpool.toml'), TOML)

  it('uses --url alone, with DBPOOL_POOL_* settings, ignoring the file', async () => {
    file()
    const config = await resolveConfig({ url: 'sqlite:./one.db' }, { DBPOOL_POOL_MAX: '3', DATABASE_URL: 'sqlite:./env.db' }, dir)
    expect(config.source).toBe('--url')
    expect(config.pools).toHaveLength(1)
    expect(config.pools[0]).toMatchObject({ name: 'default', url: 'sqlite:./one.db', primary: true, pool: { name: 'default', max: 3 } })
  })

  it('gives Postgres pools the libpq environment (DATABASE_URL and --url), read when the pool is opened: PGSSLCERT is refused then', async () => {
    const env = { DATABASE_URL: 'postgres://u:p@db/app', PGSSLMODE: 'verify-full' }
    const config = await resolveConfig({}, env, dir)
    expect(config.pools[0]).toMatchObject({ url: env.DATABASE_URL, libpqEnv: env })
    const viaFlag = await resolveConfig({ url: 'postgres://u:p@db/app' }, { PGSSLMODE: 'require' }, dir)
    expect(viaFlag.pools[0]!.libpqEnv).toEqual({ PGSSLMODE: 'require' })
    expect((await resolveConfig({ url: 'sqlite:./one.db' }, { PGSSLMODE: 'require' }, dir)).pools[0]!.libpqEnv).toBeUndefined()
    // resolving does not read it (a SQLite pool of the same file stays usable); opening the Postgres pool does
    const withCert = await resolveConfig({}, { ...env, PGSSLCERT: '/etc/client.crt' }, dir)
    await expect(openPool(withCert.pools[0]!)).rejects.toThrow(
      expect.objectContaining({ code: 'CONFIGURATION', message: expect.stringMatching(/PGSSLCERT/) }),
    )
  })

  it('lets the environment override the file', async () => {
    file()
    const config = await resolveConfig(
      {},
      {
        DATABASE_URL: 'postgres://app:env-pw@db2/ledger',
        DBPOOL_POOL_MIN: '2',
        DBPOOL_CACHE_MAX: '7',
        DBPOOL_CACHE_URL: 'sqlite:./other.db',
        DBPOOL_LEDGER_NAME: 'renamed',
      },
      dir,
    )
    expect(config.source).toBe(join(dir, 'dbpool.toml'))
    const [ledger, cache] = config.pools
    expect(ledger).toMatchObject({ name: 'ledger', url: 'postgres://app:env-pw@db2/ledger', primary: true })
    expect(ledger?.pool).toMatchObject({ min: 2, max: 20, acquireTimeoutMs: 5000, name: 'renamed' })
    expect(cache).toMatchObject({ url: 'sqlite:./other.db', primary: false, backend: { readers: 4 } })
    expect(cache?.pool).toMatchObject({ min: 2, max: 7 })
    expect(config.secrets).toEqual(expect.arrayContaining(['env-pw']))
  })

  it('takes the first pool as primary when none is marked, and reads DBPOOL_CONFIG', async () => {
    writeFileSync(join(dir, 'custom.json'), JSON.stringify({ pools: { a: { url: 'sqlite:a.db' }, b: { url: 'sqlite:b.db' } } }))
    const config = await resolveConfig({}, { DBPOOL_CONFIG: 'custom.json', DATABASE_URL: 'sqlite:env.db' }, dir)
    expect(config.pools.map((p) => [p.name, p.primary, p.url])).toEqual([
      ['a', true, 'sqlite:env.db'],
      ['b', false, `sqlite:${join(dir, 'b.db')}`],
    ])
  })

  it('falls back to DATABASE_URL, and explains what to do when nothing is configured', async () => {
    expect((await resolveConfig({}, { DATABASE_URL: 'sqlite:x.db' }, dir)).pools[0]).toMatchObject({ name: 'default', url: 'sqlite:x.db' })
    const err = await failure(resolveConfig({}, {}, dir))
    expect(err.message).toBe(
      'no database configured (no dbpool.toml or dbpool.json here): pass --url, set DATABASE_URL, or write a dbpool.toml with a [pools.<name>] table',
    )
    writeFileSync(join(dir, 'dbpool.toml'), '# nothing yet\n')
    expect((await failure(resolveConfig({}, {}, dir))).message).toMatch(/dbpool.toml has no \[pools.<name>\] table/)
    expect((await failure(resolveConfig({ url: '' }, {}, dir))).message).toMatch(/--url ""/)
  })

  it('names a malformed environment variable', async () => {
    const err = await failure(resolveConfig({ url: 'sqlite:x.db' }, { DBPOOL_POOL_MAX: 'lots' }, dir))
    expect(err.message).toBe('invalid DBPOOL_POOL_MAX "lots": must be an integer')
  })

  it('collects URL passwords and PGPASSWORD as secrets', async () => {
    const config = await resolveConfig({ url: 'postgres://u:p%40ss@h/d' }, { PGPASSWORD: 'pg-pw' }, dir)
    expect([...config.secrets].sort()).toEqual(['p%40ss', 'p@ss', 'pg-pw'])
  })

  it('selects one pool or all of them', async () => {
    file()
    const config = await resolveConfig({}, {}, dir)
    expect(selectPool(config, undefined).name).toBe('ledger')
    expect(selectPool(config, 'cache').name).toBe('cache')
    expect(selectPools(config, undefined).map((p) => p.name)).toEqual(['ledger', 'cache'])
    expect(selectPools(config, 'cache').map((p) => p.name)).toEqual(['cache'])
    expect(() => selectPool(config, 'nope')).toThrow('invalid --pool "nope": is not configured; pools: ledger, cache')
  })
})

describe('pool names and environment variables', () => {
  // both read DBPOOL_LEDGER_RO_URL: setting it for one pointed both at that database
  it('refuses two pools with one environment name, naming both, and a pool named like the shared prefix', async () => {
    writeFileSync(join(dir, 'dbpool.toml'), '[pools.ledger-ro]\nurl = "sqlite:a.db"\n[pools.ledger_ro]\nurl = "sqlite:b.db"\n')
    const err = await failure(resolveConfig({}, { DBPOOL_LEDGER_RO_URL: 'sqlite:c.db' }, dir))
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toContain('pools "ledger-ro" and "ledger_ro" both read DBPOOL_LEDGER_RO_URL')
    writeFileSync(join(dir, 'dbpool.toml'), '[pools.pool]\nurl = "sqlite:a.db"\n')
    expect((await failure(resolveConfig({}, {}, dir))).message).toContain('pool "pool" would read DBPOOL_POOL_URL')
  })
})

describe('urlSecrets', () => {
  it('finds the password part of a URL', () => {
    expect(urlSecrets('postgres://u:pw@h/d')).toEqual(['pw'])
    expect(urlSecrets('postgres://u@h/d')).toEqual([])
    expect(urlSecrets('sqlite:./a.db')).toEqual([])
    expect(urlSecrets('postgres://u:%E0%A4%A@h/d')).toEqual(['%E0%A4%A'])
  })
})
