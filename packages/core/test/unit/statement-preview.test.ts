import { hideLiterals, previewStatement, previewStatementIn, statementLiterals } from '../../src/migrations/statement-preview'

describe('statement literals in MIGRATION_FAILED', () => {
  // review r13 D1: read by Postgres's rules, each SQLite text showed a literal SQLite runs, or missed one
  it.each([
    ["insert into t ([owner's n], id) values ('S3CRET-Card', 1)", "insert into t ([owner's n], id) values ('[REDACTED]', 1)"],
    ["insert into t (`owner's n`, id) values ('S3CRET-Card', 1)", "insert into t (`owner's n`, id) values ('[REDACTED]', 1)"],
    ["select e'x\\', 'S3CRET-Card' from t", "select e'[REDACTED]', '[REDACTED]' from t"],
    ["insert into t values (/* a /* b */ 'S3CRET-Card')", "insert into t values ( '[REDACTED]')"],
    ["insert into t values (1) -- a\r it's\n, ('S3CRET-Card')", "insert into t values (1) , ('[REDACTED]')"],
    ["select $a$, '$a$ ' || 'S3CRET-Card'", "select $a$, '[REDACTED]' || '[REDACTED]'"],
    ["select :a(it's), 'S3CRET-Card'", "select :a(it's), '[REDACTED]'"],
  ])('SQLite: %j -> %j, its literal read', (text, preview) => {
    expect(previewStatementIn(text, 'sqlite')).toBe(preview)
    expect(statementLiterals(text, 'sqlite')).toContain('S3CRET-Card')
    // a dialect not known: whatever either dialect hides is hidden
    expect(previewStatement(text)).not.toMatch(/S3CRET/)
    expect(statementLiterals(text)).toContain('S3CRET-Card')
  })

  it('Postgres keeps its rules (nested comments, E strings, dollar quoting); unknown: the union', () => {
    const text = "insert into t values (/* a /* b */ 'x' */ 'S3CRET-Pg', E'a\\'b', $q$ it's $q$)"
    expect(previewStatementIn(text, 'postgres')).toBe("insert into t values ( '[REDACTED]', E'[REDACTED]', $q$[REDACTED]$q$)")
    expect(statementLiterals(text, 'postgres')).toEqual(expect.arrayContaining(['S3CRET-Pg', "a\\'b", " it's "]))
    expect(previewStatement(text)).not.toMatch(/S3CRET|it's|'x'/)
  })

  it('reads the values previewStatement hides', () => {
    const text = "insert into t values ('it''s', $$body$$, E'a\\'b', 'S3CRET-PIN') -- 'not a literal'"
    expect(statementLiterals(text)).toEqual(expect.arrayContaining(["it's", "it''s", 'body', "a\\'b", 'S3CRET-PIN']))
    expect(previewStatement(text)).not.toMatch(/S3CRET/)
  })

  it('hides them where the database message repeats them, and every quoted value of a data exception', () => {
    const literals = statementLiterals("insert into creds values (2, 'S3CRET-PIN', 'ab')")
    expect(hideLiterals('invalid input syntax for type integer: "S3CRET-PIN"', literals, '22P02')).toBe(
      'invalid input syntax for type integer: "[REDACTED]"',
    )
    // a bound parameter's value (not in the text): the quoted value of a class 22 message
    expect(hideLiterals('invalid input value for enum mood: "PARAM"', [], '22P02')).toBe('invalid input value for enum mood: "[REDACTED]"')
    // short literals only where quoted; identifiers of other errors are kept
    expect(hideLiterals(`value 'ab' and a tab`, literals, '23505')).toBe(`value '[REDACTED]' and a tab`)
    expect(hideLiterals('duplicate key value violates unique constraint "creds_pkey"', literals, '23505')).toBe(
      'duplicate key value violates unique constraint "creds_pkey"',
    )
    expect(hideLiterals('near S3CRET-PIN: syntax error', literals, undefined)).toBe('near [REDACTED]: syntax error')
  })

  it('reads the raw spelling of a literal and the literals inside quoted bodies (DO blocks, function bodies)', () => {
    expect(statementLiterals("values ('Pa''ss')")).toEqual(expect.arrayContaining(["Pa'ss", "Pa''ss"]))
    expect(statementLiterals("do $$ begin perform 'DO-S3CRET'; end $$")).toContain('DO-S3CRET')
    expect(statementLiterals('create function f() returns void as $b$ begin perform $q$Q-S3CRET$q$; end $b$')).toContain('Q-S3CRET')
    expect(statementLiterals("create function f() returns void as 'begin perform ''SQ-S3CRET''; end'")).toContain('SQ-S3CRET')
  })

  it('hides a string or dollar token a syntax error echoes, whatever it holds', () => {
    expect(hideLiterals(`syntax error at or near "'sk_live_Pa''ss'"`, [], '42601')).toBe(`syntax error at or near "'[REDACTED]'"`)
    expect(hideLiterals(`near "E'a\\'b'": syntax error`, [], undefined)).toBe(`near "E'[REDACTED]'": syntax error`)
    expect(hideLiterals('syntax error at or near "$x$S3CRET$x$"', [], '42601')).toBe('syntax error at or near "$x$[REDACTED]$x$"')
    expect(hideLiterals(`unterminated quoted string at or near "'S3CRET"`, [], '42601')).toBe(
      `unterminated quoted string at or near "'[REDACTED]"`,
    )
    expect(hideLiterals('unrecognized token: "\'S3CRET', [], undefined)).toBe(`unrecognized token: "'[REDACTED]`)
    expect(hideLiterals('column "$1" does not exist', [], '42703')).toBe('column "$1" does not exist')
  })

  it('hides a literal only as a quoted value or a whole token, never inside another word', () => {
    expect(hideLiterals('relation "users" does not exist', ['user'], '42P01')).toBe('relation "users" does not exist')
    expect(hideLiterals('no such table: users', ['user'], undefined)).toBe('no such table: users')
    expect(hideLiterals('no such column: user', ['user'], undefined)).toBe(`no such column: [REDACTED]`)
    expect(hideLiterals('key (k)=(user) already exists', ['user'], '23505')).toBe('key (k)=([REDACTED]) already exists')
    expect(hideLiterals('near "-x-y": syntax', ['-x-y'], undefined)).toBe('near "[REDACTED]": syntax')
    // in any letter case (Postgres folds an identifier it repeats), regular-expression characters literal
    expect(hideLiterals('relation "pw_s3cret" does not exist', ['pw_S3CRET'], '42P01')).toBe('relation "[REDACTED]" does not exist')
    expect(hideLiterals('near a.b*(c): x', ['a.b*(c)'], undefined)).toBe('near [REDACTED]: x')
    expect(hideLiterals('near aXb*(c): x', ['a.b*(c)'], undefined)).toBe('near aXb*(c): x')
  })

  it('hides a data exception value whole, a double quote inside it too, and keeps the parameter name', () => {
    expect(hideLiterals('invalid input syntax for type integer: "pw"S3CRET_tail"', [], '22P02')).toBe(
      'invalid input syntax for type integer: "[REDACTED]"',
    )
    expect(hideLiterals('invalid value for parameter "TimeZone": "Europe/x"', [], '22023')).toBe(
      'invalid value for parameter "TimeZone": "[REDACTED]"',
    )
    expect(hideLiterals('value "99999999999" is out of range for type integer', [], '22003')).toBe(
      'value "[REDACTED]" is out of range for type integer',
    )
    // a bound value matched by value where a message of another class repeats it
    expect(hideLiterals('duplicate key: (pw"S3CRET)', ['pw"S3CRET'], '23505')).toBe('duplicate key: ([REDACTED])')
  })
})
