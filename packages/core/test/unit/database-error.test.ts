import { inspect } from 'node:util'
import { DatabaseError, ERROR_CODES, RETRYABLE_CODES, redactSecrets, redactUrlPasswords } from '@dbpool/core'

describe('DatabaseError', () => {
  it('carries code, retryable default, backend, native codes and cause', () => {
    const cause = new Error('native')
    const e = new DatabaseError('SERIALIZATION_FAILURE', 'could not serialize', { cause, backend: 'postgres', sqlState: '40001' })
    expect(e).toBeInstanceOf(Error)
    expect(e.name).toBe('DatabaseError')
    expect(e.retryable).toBe(true)
    expect(e.cause).toBe(cause)
    expect(e.sqlState).toBe('40001')
    expect(new DatabaseError('SYNTAX_ERROR', 'x').retryable).toBe(false)
    expect(new DatabaseError('SYNTAX_ERROR', 'x', { retryable: true }).retryable).toBe(true)
    expect(new DatabaseError('QUERY_FAILED', 'x').backend).toBe('pool')
  })

  it('is() checks the class and optionally the code', () => {
    const e = new DatabaseError('BUSY', 'busy')
    expect(DatabaseError.is(e)).toBe(true)
    expect(DatabaseError.is(e, 'BUSY')).toBe(true)
    expect(DatabaseError.is(e, 'DEADLOCK')).toBe(false)
    expect(DatabaseError.is(new Error('x'))).toBe(false)
  })

  it('serialises to JSON and inspect without the cause object itself', () => {
    const e = new DatabaseError('UNIQUE_VIOLATION', 'dup', {
      cause: new Error('inner'),
      sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE',
      detail: { constraint: 'x' },
    })
    const json = JSON.parse(JSON.stringify(e))
    expect(json).toMatchObject({
      code: 'UNIQUE_VIOLATION',
      message: 'dup',
      sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE',
      cause: { name: 'Error', message: 'inner' },
      detail: { constraint: 'x' },
    })
    const text = inspect(e)
    expect(text).toMatch(/DatabaseError \[UNIQUE_VIOLATION SQLITE_CONSTRAINT_UNIQUE\]: dup/)
    expect(text).toMatch(/cause: Error: inner/)
    expect(inspect(new DatabaseError('BUSY', 'b', { cause: 'str' }))).toMatch(/cause: string: str/)
  })

  it('lists codes and retryable codes consistently', () => {
    for (const code of RETRYABLE_CODES) expect(ERROR_CODES).toContain(code)
  })
})

describe('redaction', () => {
  it('hides URL passwords and listed secrets', () => {
    expect(redactUrlPasswords('connect postgres://app:hunter2@db/x failed')).toBe('connect postgres://app:[REDACTED]@db/x failed')
    expect(redactSecrets('pw hunter2 and hunter2', ['hunter2', undefined, ''])).toBe('pw [REDACTED] and [REDACTED]')
  })

  it('hides a secret where it stands as one, never inside words: the gaps would tell it', () => {
    const auth = 'password authentication failed for user "postgres"'
    // a short or common password: message words stay whole
    for (const pw of ['e', 'ed', 'password', 'failed', 'for', '1', 'user']) expect(redactSecrets(auth, [pw])).toBe(auth)
    // a password equal to a name messages show (the user) is hidden only in URLs and password= values
    expect(redactSecrets(`postgres://postgres:postgres@h/d: ${auth}`, ['postgres'], ['postgres'])).toBe(
      `postgres://postgres:[REDACTED]@h/d: ${auth}`,
    )
    // quoted whole values, whatever their length; the whole text
    expect(redactSecrets('invalid input syntax for type integer: "e"', ['e'])).toBe('invalid input syntax for type integer: "[REDACTED]"')
    expect(redactSecrets(`near 'postgres'`, ['postgres'])).toBe(`near '[REDACTED]'`)
    expect(redactSecrets('e', ['e'])).toBe('[REDACTED]')
    // a whole word when the secret cannot be a word of the message (letters with digits or symbols)
    expect(redactSecrets('token (hunter2), x=hunter2; hunter2.', ['hunter2'])).toBe('token ([REDACTED]), x=[REDACTED]; [REDACTED].')
    expect(redactSecrets('relation "no_table_hunter2_x" does not exist', ['hunter2'])).toBe('relation "no_table_hunter2_x" does not exist')
    expect(redactSecrets('hunter2x or xhunter2', ['hunter2'])).toBe('hunter2x or xhunter2')
    // a strong secret (8+ characters, not only letters or digits) wherever it occurs: no gap tells it
    expect(redactSecrets('...Wr0ng-Pa55word}}} and xWr0ng-Pa55wordx', ['Wr0ng-Pa55word'])).toBe('...[REDACTED]}}} and x[REDACTED]x')
    expect(redactSecrets('relation "no_table_devpassword_x"', ['devpassword'])).toBe('relation "no_table_devpassword_x"')
  })

  it('hides every password= value and JSON "password" whatever it holds', () => {
    expect(redactSecrets('host=db password=e user=app')).toBe('host=db password=[REDACTED] user=app')
    expect(redactSecrets(`PGPASSWORD='a b' sslpassword = "c d" --password=x`)).toBe(
      'PGPASSWORD=[REDACTED] sslpassword = [REDACTED] --password=[REDACTED]',
    )
    expect(redactSecrets('{"user":"app","password":"e"}')).toBe('{"user":"app","password":"[REDACTED]"}')
    expect(redactSecrets('password authentication failed')).toBe('password authentication failed')
  })

  it('hides a password with a raw @ whole (the URL parser takes the last @ before the host)', () => {
    expect(redactUrlPasswords('connect postgres://app:p@ss@db:5432/x failed')).toBe('connect postgres://app:[REDACTED]@db:5432/x failed')
    // to the last "@" of the URL: an "@" in a query value may be hidden with the host (never less)
    expect(redactUrlPasswords('postgres://a:x@y@z@h/d?u=q@r')).toBe('postgres://a:[REDACTED]@r')
    // two URLs on one line: each keeps its own host
    expect(redactUrlPasswords('postgres://a:p1@h1/d,postgres://b:p@2@h2/d')).toBe(
      'postgres://a:[REDACTED]@h1/d,postgres://b:[REDACTED]@h2/d',
    )
    expect(redactUrlPasswords('postgres://a@h/d and https://x.y/z@w')).toBe('postgres://a@h/d and https://x.y/z@w')
  })

  it('hides a password with an unencoded "/", "?" or "#" whole (to the last "@", not to the first delimiter)', () => {
    expect(redactUrlPasswords('connect postgres://app:4711/Secr3t@db/x failed')).toBe('connect postgres://app:[REDACTED]@db/x failed')
    expect(redactUrlPasswords('postgres://app:Xk9?vQ2#pL@db/x')).toBe('postgres://app:[REDACTED]@db/x')
    expect(redactUrlPasswords('"postgres://app:a/b?c#d@e@db:5432/x"')).toBe('"postgres://app:[REDACTED]@db:5432/x"')
    // a password with "://" in it
    expect(redactUrlPasswords('postgres://u:a://b@h/d')).toBe('postgres://u:[REDACTED]@h/d')
    // idempotent
    expect(redactUrlPasswords('postgres://u:[REDACTED]@h/d')).toBe('postgres://u:[REDACTED]@h/d')
  })

  it('is linear: a 1 MB run of scheme characters, of "://" and of ":" completes', () => {
    // the old expression restarted at every letter of a run of [a-z0-9+.-] (quadratic: minutes for 1 MB)
    const hex = `select decode('${'4a'.repeat(500_000)}', 'hex')`
    expect(redactUrlPasswords(hex)).toBe(hex)
    const seps = 'a://b:'.repeat(200_000)
    expect(redactUrlPasswords(seps)).toBe(seps)
    const withAt = `${'a://b:c'.repeat(150_000)}@h`
    expect(redactUrlPasswords(withAt).endsWith('[REDACTED]@h')).toBe(true)
  })
})

describe('DatabaseError in util.inspect', () => {
  it('shows retryable, backend, pool counters and detail', () => {
    const stats = { size: 2, idle: 0, used: 2, pending: 3, max: 2, min: 0, utilization: 1 }
    const text = inspect(new DatabaseError('ACQUIRE_TIMEOUT', 'timed out', { poolStats: stats, detail: { lane: 'write' } }))
    expect(text).toMatch(/retryable: true, backend: pool/)
    expect(text).toContain('"pending":3')
    expect(text).toContain('"lane":"write"')
  })
})
