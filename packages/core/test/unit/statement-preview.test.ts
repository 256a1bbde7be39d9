import { hideLiterals, previewStatement, statementLiterals } from '../../src/migrations/statement-preview'

describe('statement literals in MIGRATION_FAILED', () => {
  it('reads the values previewStatement hides', () => {
    const text = "insert into t values ('it''s', $$body$$, E'a\\'b', 'S3CRET-PIN') -- 'not a literal'"
    expect(statementLiterals(text)).toEqual(["it's", 'body', "a\\'b", 'S3CRET-PIN'])
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
})
