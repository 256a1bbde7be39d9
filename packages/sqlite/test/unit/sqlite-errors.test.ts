import { DatabaseError, ERROR_CODES } from '@dbpool/core'
import { isFatalSqliteCode, isFatalSqliteError, lookupSqliteCode, mapSqliteError, SQLITE_ERROR_CODES } from '@dbpool/sqlite'

class FakeSqliteError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message)
    this.name = 'SqliteError'
  }
}

describe('SQLite error table', () => {
  it.each([
    ['SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE_VIOLATION', false],
    ['SQLITE_CONSTRAINT_PRIMARYKEY', 'UNIQUE_VIOLATION', false],
    ['SQLITE_CONSTRAINT_FOREIGNKEY', 'FOREIGN_KEY_VIOLATION', false],
    ['SQLITE_CONSTRAINT_NOTNULL', 'NOT_NULL_VIOLATION', false],
    ['SQLITE_CONSTRAINT_CHECK', 'CHECK_VIOLATION', false],
    ['SQLITE_BUSY', 'BUSY', true],
    ['SQLITE_BUSY_SNAPSHOT', 'BUSY', true],
    ['SQLITE_LOCKED', 'BUSY', true],
    ['SQLITE_READONLY', 'READ_ONLY', false],
    ['SQLITE_READONLY_DIRECTORY', 'READ_ONLY', false],
    ['SQLITE_CANTOPEN', 'CONNECTION_FAILED', false],
    ['SQLITE_CORRUPT', 'CORRUPT', false],
    ['SQLITE_NOTADB', 'CORRUPT', false],
    ['SQLITE_ERROR', 'SYNTAX_ERROR', false],
    ['SQLITE_INTERRUPT', 'QUERY_CANCELLED', false],
    ['SQLITE_FULL', 'QUERY_FAILED', false],
  ] as const)('%s -> %s (retryable %s)', (native, code, retryable) => {
    const err = mapSqliteError(new FakeSqliteError('boom', native), { path: '/data/app.db' })
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe(code)
    expect(err.retryable).toBe(retryable)
    expect(err.sqliteCode).toBe(native)
    expect(err.backend).toBe('sqlite')
    expect((err.cause as Error).message).toBe('boom')
  })

  it('names the path for CONNECTION_FAILED and CORRUPT', () => {
    expect(mapSqliteError(new FakeSqliteError('unable to open database file', 'SQLITE_CANTOPEN'), { path: '/x/y.db' }).message).toContain(
      '/x/y.db',
    )
    expect(mapSqliteError(new FakeSqliteError('file is not a database', 'SQLITE_NOTADB'), { path: '/x/y.db' }).detail).toEqual({
      path: '/x/y.db',
    })
  })

  it('falls back from an extended code to its primary code, then to QUERY_FAILED', () => {
    expect(lookupSqliteCode('SQLITE_IOERR_SHORT_READ')).toBe(SQLITE_ERROR_CODES.SQLITE_IOERR)
    expect(lookupSqliteCode('SQLITE_CANTOPEN_ISDIR')?.code).toBe('CONNECTION_FAILED')
    expect(mapSqliteError(new FakeSqliteError('?', 'SQLITE_WHATEVER_NEW')).code).toBe('QUERY_FAILED')
  })

  it('marks corruption, I/O errors and a closed file as fatal, constraint errors not', () => {
    expect(isFatalSqliteCode('SQLITE_CORRUPT')).toBe(true)
    expect(isFatalSqliteCode('SQLITE_IOERR_WRITE')).toBe(true)
    expect(isFatalSqliteCode('SQLITE_CONSTRAINT_UNIQUE')).toBe(false)
    expect(isFatalSqliteCode(undefined)).toBe(false)
  })

  // review r2 items 1 and 10: ATTACH / VACUUM INTO of a path that cannot be opened is the statement's failure
  it("maps SQLITE_CANTOPEN naming another file (ATTACH, VACUUM INTO) to QUERY_FAILED, not fatal, not the pool's path", () => {
    const other = mapSqliteError(new FakeSqliteError('unable to open database: /no/dir/copy.db', 'SQLITE_CANTOPEN'), { path: '/x/y.db' })
    expect(other.code).toBe('QUERY_FAILED')
    expect(other.retryable).toBe(false)
    expect(other.detail).toEqual({ file: '/no/dir/copy.db' })
    expect(other.message).not.toContain('/x/y.db')
    expect(isFatalSqliteError(other)).toBe(false)
    const own = mapSqliteError(new FakeSqliteError('unable to open database file', 'SQLITE_CANTOPEN'), { path: '/x/y.db' })
    expect(own.code).toBe('CONNECTION_FAILED')
    expect(isFatalSqliteError(own)).toBe(true)
  })

  it('maps every table entry to a known DatabaseError code', () => {
    for (const mapping of Object.values(SQLITE_ERROR_CODES)) expect(ERROR_CODES).toContain(mapping.code)
  })

  it('maps non-SQLite errors to QUERY_FAILED and passes DatabaseErrors through', () => {
    const bind = mapSqliteError(new TypeError('SQLite3 can only bind numbers, strings, bigints, buffers, and null'))
    expect(bind.code).toBe('QUERY_FAILED')
    expect(bind.retryable).toBe(false)
    const own = new DatabaseError('BUSY', 'x')
    expect(mapSqliteError(own)).toBe(own)
    expect(mapSqliteError('a string').code).toBe('QUERY_FAILED')
  })

  it("maps better-sqlite3's check of values against placeholders to INVALID_PARAMETER", () => {
    for (const err of [
      new RangeError('Too many parameter values were provided'),
      new RangeError('Too few parameter values were provided'),
      new RangeError('Missing named parameter "a"'),
      new TypeError('Missing named parameters'),
    ]) {
      const mapped = mapSqliteError(err)
      expect(mapped.code).toBe('INVALID_PARAMETER')
      expect(mapped.retryable).toBe(false)
      expect(mapped.message).toContain(err.message)
    }
  })

  it("maps better-sqlite3's refusal of several statements with parameters to SYNTAX_ERROR (Postgres 42601)", () => {
    const mapped = mapSqliteError(new RangeError('The supplied SQL string contains more than one statement'))
    expect(mapped.code).toBe('SYNTAX_ERROR')
    expect(mapped.retryable).toBe(false)
  })
})
