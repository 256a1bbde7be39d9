import { plainStatement } from '../../src/postgres-plain-statement'

// conn.transaction()'s prediction (review r1 item 5): a statement taken for plain is not waited for,
// so a BEGIN must never be taken for one. Comments nest in PostgreSQL; a text the lexer cannot read is
// not plain.
describe('plainStatement: one statement that cannot begin or end a transaction', () => {
  it.each([
    'select 1',
    'update t set a = 1 where id = 2',
    ' insert into t values (1);',
    '/* c */ select 1',
    '/* a /* nested */ b */ select 1',
    '-- begin\nselect 1',
    '(select 1)',
    "select 'begin; commit'",
    'select $$;$$',
    'with x as (select 1) select * from x',
    'select 1 -- ; begin',
    "update t set note = 'slow' from pg_sleep(1) where id = 1",
  ])('%j is plain', (text) => {
    expect(plainStatement(text)).toBe(true)
  })

  it.each([
    'BEGIN',
    'begin;',
    'Begin Transaction',
    'BEGIN/* x */',
    'start transaction',
    'commit',
    'COMMIT PREPARED $$x$$',
    'end',
    'rollback',
    'abort',
    'savepoint a',
    'release a',
    "prepare transaction 'x'",
    'call p()',
    'do $$ begin commit; end $$',
    "do'begin null; end'",
    'set search_path = x',
    'reset all',
    'discard all',
    '/* outer /* inner */ still comment */ BEGIN',
    '/* a */ /* b /* c */ d */\n-- line\nBEGIN',
    '/* unterminated BEGIN',
    '/* a /* b */ BEGIN',
    "select 'unterminated",
    'select 1; begin',
    'select 1; select 2',
    '',
    '   ',
    '/* only a comment */',
    '"begin"',
    '1',
  ])('%j is not plain', (text) => {
    expect(plainStatement(text)).toBe(false)
  })
})
