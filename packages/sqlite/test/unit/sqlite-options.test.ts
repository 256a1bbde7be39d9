import { DatabaseError } from '@dbpool/core'
import { resolveSqliteOptions, SqliteConnectionManager, toSqliteOptions, type SqliteOptions } from '@dbpool/sqlite'

function configErrorOf(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    return err as DatabaseError
  }
  throw new Error('expected a CONFIGURATION error')
}

describe('resolveSqliteOptions', () => {
  it('applies the defaults for a file', () => {
    const o = resolveSqliteOptions({ path: './x.db' })
    expect(o).toMatchObject({
      path: './x.db',
      memory: false,
      readonly: false,
      createIfMissing: true,
      journalMode: 'WAL',
      synchronous: 'FULL',
      busyTimeoutMs: 5_000,
      foreignKeys: true,
      readers: 2,
      statementCacheSize: 100,
      safeIntegers: false,
      walCheckpointThresholdBytes: 64 * 1024 * 1024,
    })
    expect(o.cacheSizeKiB).toBeUndefined()
    expect(o.mmapSizeBytes).toBeUndefined()
    expect(o.tempStore).toBeUndefined()
  })

  it('uses one connection and MEMORY journal for :memory:', () => {
    expect(resolveSqliteOptions({ path: ':memory:' })).toMatchObject({ memory: true, readers: 0, journalMode: 'MEMORY' })
  })

  it('accepts enums in any case and stores them upper-case', () => {
    expect(
      resolveSqliteOptions({ path: 'a.db', journalMode: 'wal' as never, synchronous: 'normal' as never, tempStore: 'memory' as never }),
    ).toMatchObject({
      journalMode: 'WAL',
      synchronous: 'NORMAL',
      tempStore: 'MEMORY',
    })
  })

  it('defaults readers to 0 without WAL', () => {
    expect(resolveSqliteOptions({ path: 'a.db', journalMode: 'DELETE' }).readers).toBe(0)
  })

  const invalid: [string, SqliteOptions | Record<string, unknown>, string][] = [
    ['path', { path: '' }, 'sqlite.path'],
    ['path type', { path: 42 }, 'sqlite.path'],
    ['file: URI', { path: 'file:x.db?mode=ro' }, 'sqlite.path'],
    ['journalMode', { path: 'a.db', journalMode: 'WOL' }, 'sqlite.journalMode'],
    ['memory journal', { path: ':memory:', journalMode: 'WAL' }, 'sqlite.journalMode'],
    ['synchronous', { path: 'a.db', synchronous: 'SOMETIMES' }, 'sqlite.synchronous'],
    ['busyTimeoutMs', { path: 'a.db', busyTimeoutMs: -1 }, 'sqlite.busyTimeoutMs'],
    ['busyTimeoutMs float', { path: 'a.db', busyTimeoutMs: 1.5 }, 'sqlite.busyTimeoutMs'],
    ['foreignKeys', { path: 'a.db', foreignKeys: 'yes' }, 'sqlite.foreignKeys'],
    ['cacheSizeKiB', { path: 'a.db', cacheSizeKiB: -5 }, 'sqlite.cacheSizeKiB'],
    ['mmapSizeBytes', { path: 'a.db', mmapSizeBytes: 2 ** 40 }, 'sqlite.mmapSizeBytes'],
    ['tempStore', { path: 'a.db', tempStore: 'DISK' }, 'sqlite.tempStore'],
    ['readers', { path: 'a.db', readers: 1000 }, 'sqlite.readers'],
    ['readers on memory', { path: ':memory:', readers: 2 }, 'sqlite.readers'],
    ['readers without WAL', { path: 'a.db', journalMode: 'DELETE', readers: 2 }, 'sqlite.readers'],
    ['statementCacheSize', { path: 'a.db', statementCacheSize: -1 }, 'sqlite.statementCacheSize'],
    ['safeIntegers', { path: 'a.db', safeIntegers: 1 }, 'sqlite.safeIntegers'],
    ['walCheckpointThresholdBytes', { path: 'a.db', walCheckpointThresholdBytes: 'big' }, 'sqlite.walCheckpointThresholdBytes'],
    ['readonly', { path: 'a.db', readonly: 'no' }, 'sqlite.readonly'],
    ['createIfMissing', { path: 'a.db', createIfMissing: null }, 'sqlite.createIfMissing'],
    ['unknown key', { path: 'a.db', jurnalMode: 'WAL' }, 'sqlite.jurnalMode'],
  ]

  it.each(invalid)('rejects an invalid %s naming the option and value', (_label, input, option) => {
    const err = configErrorOf(() => resolveSqliteOptions(input as SqliteOptions))
    expect(err.message).toContain(option)
    expect(err.detail).toMatchObject({ option })
    const value = (input as Record<string, unknown>)[option.replace('sqlite.', '')]
    if (typeof value === 'string' && value.length > 0) expect(err.message).toContain(JSON.stringify(value))
    if (typeof value === 'number') expect(err.message).toContain(String(value))
  })

  it.each([
    ['a file', 'a.db', 'OFF'],
    ['a file, lower case', 'a.db', 'off'],
    ['an in-memory database', ':memory:', 'OFF'],
  ])('refuses journalMode OFF for %s, saying why (no atomic rollback)', (_label, path, journalMode) => {
    const err = configErrorOf(() => resolveSqliteOptions({ path, journalMode } as SqliteOptions))
    expect(err.detail).toMatchObject({ option: 'sqlite.journalMode' })
    expect(err.message).toMatch(/cannot roll back/)
  })

  it('rejects a non-object', () => {
    expect(configErrorOf(() => resolveSqliteOptions('x.db' as never)).message).toContain('sqlite')
  })

  it('round-trips through toSqliteOptions', () => {
    const first = resolveSqliteOptions({ path: 'a.db', readers: 3, cacheSizeKiB: 4096, tempStore: 'MEMORY', synchronous: 'NORMAL' })
    expect(resolveSqliteOptions(toSqliteOptions(first))).toEqual({ ...first, journalModeExplicit: true })
  })
})

describe('SqliteConnectionManager (no database)', () => {
  it('validates in the constructor and lays out one writer plus readers', () => {
    const m = new SqliteConnectionManager({ path: '/nonexistent/dir/app.db', readers: 3 })
    expect(m.lanes).toEqual({ writeMax: 1, readers: 3 })
    expect(m.target).toBe('sqlite:/nonexistent/dir/app.db')
    expect(m.backend).toBe('sqlite')
    expect(m.dialect).toBe('sqlite')
    expect(() => new SqliteConnectionManager({ path: 'a.db', synchronous: 'LATER' as never })).toThrow(/sqlite\.synchronous/)
  })

  it('begins read-write transactions IMMEDIATE and read-only ones DEFERRED, for every isolation level', () => {
    const m = new SqliteConnectionManager({ path: 'a.db' })
    for (const isolation of ['read committed', 'repeatable read', 'serializable'] as const) {
      expect(m.beginStatement({ isolation })).toBe('BEGIN IMMEDIATE')
      expect(m.beginStatement({ isolation, readOnly: true })).toMatch(/^BEGIN DEFERRED\b/)
    }
    expect(new SqliteConnectionManager({ path: 'a.db', readonly: true }).beginStatement({})).toMatch(/^BEGIN DEFERRED\b/)
  })

  it('routes everything to the writer without readers or connections', () => {
    expect(new SqliteConnectionManager({ path: ':memory:' }).route({ text: 'select 1', params: [] })).toBe('write')
    expect(new SqliteConnectionManager({ path: 'a.db' }).route({ text: 'select 1', params: [] })).toBe('write')
  })
})
