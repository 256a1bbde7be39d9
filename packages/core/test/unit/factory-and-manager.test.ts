import { inspect } from 'node:util'
import { DatabaseConfig, DatabaseError, DatabasePool, HealthChecker, PoolFactory, PoolManager, sqlitePathFromUrl } from '@dbpool/core'
import { FakeConnectionManager } from '@dbpool/core/testing'
import { makePool } from './helpers'

function notFound(name: string) {
  return Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' })
}

describe('PoolFactory', () => {
  it('chooses the backend from the URL scheme and loads it on demand', async () => {
    const loaded: string[] = []
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 })
    const importer = async (name: string) => {
      loaded.push(name)
      if (name === '@dbpool/postgres')
        return { createPostgresPool: (config: DatabaseConfig) => (expect(config.database).toBe('ledger'), pool) }
      return { default: { createSqlitePool: (path: string) => (expect(path).toBe('./data/app.db'), pool) } }
    }
    expect(await PoolFactory.create('postgres://u:p@h/ledger', {}, { importer })).toBe(pool)
    expect(await PoolFactory.create('postgresql://u@h/ledger', undefined, { importer })).toBe(pool)
    expect(await PoolFactory.create('sqlite:./data/app.db', undefined, { importer })).toBe(pool)
    expect(loaded).toEqual(['@dbpool/postgres', '@dbpool/postgres', '@dbpool/sqlite'])
    await pool.close()
  })

  it('an override given as undefined (an unset variable) keeps the URL value: sslmode, pool options', async () => {
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 })
    const seen: { config?: DatabaseConfig; options?: Record<string, unknown> } = {}
    const importer = async () => ({
      createPostgresPool: (config: DatabaseConfig, _pool: unknown, options: Record<string, unknown>) => {
        Object.assign(seen, { config, options })
        return pool
      },
    })
    const url = 'postgres://app:pw@db1,db2/ledger?sslmode=verify-full&target_session_attrs=read-write&application_name=api'
    const unset = process.env.DBPOOL_TEST_SURELY_UNSET
    await PoolFactory.create(url, { min: 0 }, { importer, database: { sslMode: unset as never, applicationName: unset } })
    expect(seen.config).toMatchObject({ sslMode: 'verify-full', targetSessionAttrs: 'read-write', applicationName: 'api' })
    await PoolFactory.create(url, { min: 0 }, { importer, backend: { int8: 'string' }, pool: { int8: unset } as never })
    expect(seen.options).toEqual({ int8: 'string' })
    await pool.close()
  })

  it('Postgres target options with a sqlite: URL are CONFIGURATION, not silently ignored', async () => {
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 })
    const importer = async () => ({ default: { createSqlitePool: () => pool } })
    const err = await PoolFactory.create('sqlite:./data/app.db', {}, { importer, database: { sslMode: 'verify-full', host: 'db' } }).then(
      () => {
        throw new Error('expected a rejection')
      },
      (e: DatabaseError) => e,
    )
    expect(err.code).toBe('CONFIGURATION')
    expect(err.detail).toMatchObject({ option: 'create.database' })
    expect(err.message).toMatch(/sslMode, host.*do not apply to a sqlite: URL/)
    // every value undefined (unset variables): nothing is given, nothing ignored
    expect(await PoolFactory.create('sqlite:./data/app.db', {}, { importer, database: { sslMode: undefined } })).toBe(pool)
    await pool.close()
  })

  it('names the package to install when the backend is missing', async () => {
    const importer = async (name: string) => {
      throw notFound(name)
    }
    const err = await PoolFactory.create('sqlite::memory:', {}, { importer }).then(
      () => {
        throw new Error('expected a rejection')
      },
      (e: DatabaseError) => e,
    )
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(/npm install @dbpool\/sqlite/)
    const pg = await PoolFactory.createPostgresPool(new DatabaseConfig(), {}, { importer }).then(
      () => {
        throw new Error('expected a rejection')
      },
      (e: DatabaseError) => e,
    )
    expect(pg.message).toMatch(/@dbpool\/postgres/)
  })

  it('rethrows other load failures and rejects a module without the export', async () => {
    await expect(
      PoolFactory.create(
        'sqlite:x.db',
        {},
        {
          importer: async () => {
            throw new Error('syntax error in module')
          },
        },
      ),
    ).rejects.toThrow('syntax error in module')
    await expect(PoolFactory.create('sqlite:x.db', {}, { importer: async () => ({}) })).rejects.toThrow(/does not export createSqlitePool/)
  })

  it('rejects unknown schemes and empty URLs without echoing credentials', async () => {
    const err = await PoolFactory.create('mysql://root:hunter2@h/db').then(
      () => {
        throw new Error('expected a rejection')
      },
      (e: DatabaseError) => e,
    )
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).not.toContain('hunter2')
    await expect(PoolFactory.create('')).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(PoolFactory.create('nonsense')).rejects.toMatchObject({ code: 'CONFIGURATION' })
  })

  it('rejects an unknown key among its options (a typo would silently drop the backend options)', async () => {
    const importer = async () => ({ createSqlitePool: () => ({}), createPostgresPool: () => ({}) })
    await expect(PoolFactory.create('sqlite:x.db', {}, { backnd: { readers: 0 }, importer } as never)).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringMatching(
        /^invalid create\.backnd .*unknown option; known options are backend, pool, database, importer/,
      ) as unknown,
    })
  })

  it('parses sqlite URLs', () => {
    expect(sqlitePathFromUrl('sqlite::memory:')).toBe(':memory:')
    expect(sqlitePathFromUrl('sqlite:./a.db')).toBe('./a.db')
    expect(sqlitePathFromUrl('sqlite:///var/db/a%20b.db')).toBe('/var/db/a b.db')
    expect(() => sqlitePathFromUrl('sqlite:')).toThrow(/needs a path/)
    expect(sqlitePathFromUrl('sqlite:./100%25.db')).toBe('./100%.db')
    expect(sqlitePathFromUrl('sqlite:./what%3F.db')).toBe('./what?.db')
    // RFC 8089 (file: URLs): an empty authority or localhost is this machine, the path after it absolute
    expect(sqlitePathFromUrl('sqlite://localhost/var/db/a.db')).toBe('/var/db/a.db')
    expect(sqlitePathFromUrl('sqlite://LOCALHOST/var/db/a.db')).toBe('/var/db/a.db')
    // no other reading: kept as relative paths
    expect(sqlitePathFromUrl('sqlite://./a.db')).toBe('./a.db')
    expect(sqlitePathFromUrl('sqlite://../a.db')).toBe('../a.db')
    expect(sqlitePathFromUrl('sqlite://a.db')).toBe('a.db')
  })

  // read as a relative path, sqlite://localhost/tmp/a.db opened (and created) ./localhost/tmp/a.db: a new empty database
  it('refuses a sqlite URL that names a host or a user, never showing a password', async () => {
    for (const url of [
      'sqlite://db.internal/var/a.db',
      'sqlite://u:hunter2Secret@/tmp/a.db',
      'sqlite://u:hunter2Secret@a.db',
      'sqlite://127.0.0.1/a.db',
    ]) {
      const err = await PoolFactory.create(url, { name: 'u' }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'url' } })
      expect((err as DatabaseError).message).toMatch(/names a file on this machine, not a host or a user/)
      expect(`${(err as DatabaseError).message}${inspect(err)}${JSON.stringify(err)}`).not.toContain('hunter2')
    }
  })

  it('refuses a sqlite URL with a query string (it was dropped: ?mode=ro opened read-write) or a malformed escape', async () => {
    for (const [url, option, names] of [
      ['sqlite:./app.db?mode=ro', 'url?mode', 'mode'],
      ['sqlite:./a.db?readonly=true&journal_mode=delete', 'url?readonly', 'readonly, journal_mode'],
      ['sqlite:///abs/a.db?', 'url?', 'an empty query'],
    ] as const) {
      const err = (() => {
        try {
          sqlitePathFromUrl(url)
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
      expect((err as DatabaseError).detail).toMatchObject({ option })
      expect((err as DatabaseError).message).toContain(`(${names} would be ignored)`)
      // PoolFactory.create refuses it before loading the backend
      await expect(PoolFactory.create(url, { name: 'u' })).rejects.toMatchObject({ code: 'CONFIGURATION', detail: { option } })
    }
    expect(() => sqlitePathFromUrl('sqlite:./100%.db')).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }) as unknown as Error)
    await expect(PoolFactory.create('sqlite:./100%.db', { name: 'u' })).rejects.toMatchObject({
      code: 'CONFIGURATION',
      detail: { option: 'url' },
    })
  })

  it('names the query parameters of a sqlite URL, never their values (a key, a password)', async () => {
    for (const [url, option, names] of [
      ['sqlite:./a.db?key=hunter2Secret', 'url?key', 'key'],
      ['sqlite:./a.db?password=hunter2Secret&mode=ro', 'url?password', 'password, mode'],
      ['sqlite://u:hunter2Secret@a.db?mode=ro', 'url?mode', 'mode'],
      ['sqlite:./a.db?k%3Dhunter2Secret', 'url?(a parameter)', '(a parameter)'],
    ] as const) {
      const err = await PoolFactory.create(url, { name: 'u' }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
      expect((err as DatabaseError).detail).toMatchObject({ option })
      expect((err as DatabaseError).message).toContain(`(${names} would be ignored)`)
      expect((err as DatabaseError).message).toContain('?...')
      expect(`${(err as DatabaseError).message}${inspect(err)}${JSON.stringify(err)}`).not.toContain('hunter2')
    }
    // a malformed escape: the URL shown without its user-info password
    const bad = await PoolFactory.create('sqlite://u:hunter2Secret@a%zz.db', { name: 'u' }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(bad).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'url' } })
    expect(`${(bad as DatabaseError).message}${inspect(bad)}`).not.toContain('hunter2')
  })
})

describe('PoolManager', () => {
  it('holds named pools with a primary, checks and closes them all', async () => {
    const a = makePool({ name: 'a' }).pool
    const b = makePool({ name: 'b' }).pool
    const manager = new PoolManager().add('a', a).add('b', b, { primary: true })
    expect(manager.primary).toBe(b)
    expect(manager.get('a')).toBe(a)
    expect(manager.has('c')).toBe(false)
    expect(manager.names).toEqual(['a', 'b'])
    expect(() => manager.get('c')).toThrow(/known pools: a, b/)
    expect(() => manager.add('a', a)).toThrow(/already registered/)
    expect(() => manager.add('', a)).toThrow(DatabaseError)
    const health = await manager.healthCheckAll()
    expect(health.status).toBe('healthy')
    expect(Object.keys(health.pools)).toEqual(['a', 'b'])
    await a.close()
    expect((await manager.healthCheckAll()).status).toBe('unhealthy')
    const reports = await manager.closeAll({ timeoutMs: 100 })
    expect(Object.keys(reports)).toEqual(['a', 'b'])
    expect(b.isOpen).toBe(false)
  })

  // review r13 D5: one pool whose close() rejected made closeAll() reject with that error alone, the
  // other pools' reports lost
  it('closeAll(): a pool whose close() rejects does not stop the others; the error names it and carries their reports', async () => {
    const good = makePool({ name: 'good' }).pool
    const bad = makePool({ name: 'bad' }).pool
    const closeBad = bad.close.bind(bad)
    let broke = false
    bad.close = async (options) => {
      const report = await closeBad(options)
      if (broke) return report
      broke = true
      throw new Error('close broke')
    }
    const manager = new PoolManager().add('bad', bad).add('good', good)
    const err = await manager.closeAll({ timeoutMs: 100 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err).toMatchObject({
      message: expect.stringMatching(/closing pool "bad" failed: close broke/),
      detail: { failed: ['bad'], reports: { good: expect.objectContaining({ timedOut: false }) } },
    })
    expect((err as DatabaseError).cause).toMatchObject({ message: 'close broke' })
    expect(good.isOpen).toBe(false)
  })

  it('has no primary when empty', () => {
    expect(() => new PoolManager().primary).toThrow(/no pool is registered/)
    expect(new HealthChecker()).toBeDefined()
  })

  it('reports an empty manager healthy with no entries (nothing is failing)', async () => {
    expect(await new PoolManager().healthCheckAll()).toEqual({ status: 'healthy', pools: {} })
  })

  it('refuses the same pool under a second name (CONFIGURATION) and keeps the first', async () => {
    const a = makePool({ name: 'a' }).pool
    const manager = new PoolManager().add('a', a)
    const err = catchSync(() => manager.add('dup', a))
    expect(err).toMatchObject({ code: 'CONFIGURATION', message: expect.stringMatching(/already registered as "a"/) })
    expect(manager.names).toEqual(['a'])
    await manager.closeAll()
  })

  it('is closed after closeAll(): add() is POOL_CLOSED and the pool is not adopted (it stays open)', async () => {
    const a = makePool({ name: 'a' }).pool
    const late = makePool({ name: 'late' }).pool
    const manager = new PoolManager().add('a', a)
    expect(manager.isClosed).toBe(false)
    const closing = manager.closeAll({ timeoutMs: 100 })
    // closed from the call on, not only once every pool finished closing
    expect(catchSync(() => manager.add('during', late))).toMatchObject({ code: 'POOL_CLOSED' })
    await closing
    expect(manager.isClosed).toBe(true)
    const err = catchSync(() => manager.add('late', late))
    expect(err).toMatchObject({ code: 'POOL_CLOSED', message: expect.stringMatching(/closeAll\(\) was called/) })
    expect(manager.names).toEqual(['a'])
    expect(late.isOpen).toBe(true)
    expect(Object.keys(await manager.closeAll())).toEqual(['a'])
    expect(late.isOpen).toBe(true)
    await late.close()
  })

  it('refuses a pool that is closed or closing (CONFIGURATION naming it): /ready would be unhealthy for good', async () => {
    const closed = makePool({ name: 'closed' }).pool
    await closed.close()
    expect(catchSync(() => new PoolManager().add('main', closed))).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'pool' } })
    const closing = makePool({ name: 'closing' }).pool
    const done = closing.close()
    const manager = new PoolManager()
    expect(catchSync(() => manager.add('main', closing))).toMatchObject({ code: 'CONFIGURATION' })
    expect(manager.names).toEqual([])
    await done
  })
})

describe('PoolFactory pool options', () => {
  it('hands pool options (a metrics collector) to either backend', async () => {
    const metrics = { marker: true } as never
    const seen: unknown[] = []
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0 })
    const importer = async (name: string) =>
      name === '@dbpool/postgres'
        ? { createPostgresPool: (_c: unknown, _p: unknown, o: Record<string, unknown>) => (seen.push(o.metrics), pool) }
        : {
            createSqlitePool: (_p: string, _c: unknown, _o: unknown, poolOptions: { metrics: unknown }) => (
              seen.push(poolOptions.metrics),
              pool
            ),
          }
    await PoolFactory.create('postgres://h/d', {}, { importer, pool: { metrics }, backend: { int8: 'string' } })
    await PoolFactory.create('sqlite::memory:', {}, { importer, pool: { metrics } })
    expect(seen).toEqual([metrics, metrics])
    await pool.close()
  })

  it('an unknown pool option (a misspelt loger) or a non-object is CONFIGURATION naming it, on every backend', async () => {
    const importer = async () => {
      throw new Error('no backend should be loaded')
    }
    const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} }
    for (const url of ['postgres://h/d', 'sqlite::memory:']) {
      await expect(PoolFactory.create(url, {}, { importer, pool: { loger: logger } as never })).rejects.toMatchObject({
        code: 'CONFIGURATION',
        detail: { option: 'pool.loger' },
      })
      await expect(PoolFactory.create(url, {}, { importer, pool: 42 as never })).rejects.toMatchObject({ code: 'CONFIGURATION' })
    }
    const manager = new FakeConnectionManager()
    expect(catchSync(() => new DatabasePool(manager, { min: 0 }, { metrcs: {} } as never))).toMatchObject({
      code: 'CONFIGURATION',
      detail: { option: 'pool.metrcs' },
    })
    expect(catchSync(() => new DatabasePool(manager, { min: 0 }, null as never))).toMatchObject({ code: 'CONFIGURATION' })
  })
})

function catchSync(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}
