import { transactionControlStatement } from '../../src/transaction/transaction-control'

describe('transactionControlStatement: statements that would end or begin the transaction transaction() owns', () => {
  it.each<[string, 'postgres' | 'sqlite', string | undefined]>([
    ['COMMIT', 'postgres', 'COMMIT'],
    ['commit and chain', 'postgres', 'COMMIT'],
    ['  -- why\n  /* note */ rollback', 'postgres', 'ROLLBACK'],
    ['END TRANSACTION', 'sqlite', 'END'],
    ['abort', 'postgres', 'ABORT'],
    ['BEGIN IMMEDIATE', 'sqlite', 'BEGIN'],
    ['start transaction isolation level serializable', 'postgres', 'START TRANSACTION'],
    ["prepare transaction 'tx1'", 'postgres', 'PREPARE TRANSACTION'],
    ['insert into t values (1); commit; insert into t values (2)', 'sqlite', 'COMMIT'],
    ['select 1;\n-- then\nbegin', 'postgres', 'BEGIN'],
    // allowed: savepoints, and the words anywhere but at the start of a statement
    ['ROLLBACK TO SAVEPOINT a', 'sqlite', undefined],
    ['rollback transaction to a', 'sqlite', undefined],
    ['ROLLBACK WORK TO SAVEPOINT a', 'postgres', undefined],
    ['savepoint a; release savepoint a', 'postgres', undefined],
    ['select case when x > 1 then 1 else 0 end from t', 'postgres', undefined],
    ['insert into t (end_date, start) values (1, 2)', 'sqlite', undefined],
    ["select ';commit'", 'postgres', undefined],
    ['select $$;commit$$', 'postgres', undefined],
    ['prepare q as select 1', 'postgres', undefined],
    ['create trigger tr after insert on t begin insert into u values (1); end', 'sqlite', undefined],
    // a parameter or column named begin opens no body: the COMMIT after it is seen
    ["create function f(begin int) returns int language sql as 'select begin'; commit", 'postgres', 'COMMIT'],
    ['create trigger tr after update of begin on t for each row execute function f(); commit', 'postgres', 'COMMIT'],
    [
      'create function f(begin int) returns int language sql begin atomic select case when begin > 0 then 1 end; end',
      'postgres',
      undefined,
    ],
    ['do $$ begin perform 1; end $$', 'postgres', undefined],
    // block comments nest on Postgres, not on SQLite
    ['/* a /* b */ c */ commit', 'postgres', 'COMMIT'],
    ['/* a /* b */ commit', 'sqlite', 'COMMIT'],
    ['/* a /* b */ commit', 'postgres', undefined],
    ['/**/'.repeat(8) + 'rollback', 'sqlite', 'ROLLBACK'],
    // a `--` comment ends at \r too on Postgres (scan.l), only at \n on SQLite (tokenize.c)
    ['-- step 2\rCOMMIT', 'postgres', 'COMMIT'],
    ['/* x */ -- y\rrollback', 'postgres', 'ROLLBACK'],
    ['select 1; -- a\rbegin', 'postgres', 'BEGIN'],
    ['-- step 2\rCOMMIT', 'sqlite', undefined],
    ['select 1; -- a\rbegin', 'sqlite', undefined],
    // a non-ASCII letter or $ goes on with the word: a name, not the statement
    ['commitå', 'postgres', undefined],
    ['begin$x', 'postgres', undefined],
    ['select 1; begın', 'postgres', undefined],
  ])('%j (%s) -> %s', (text, backend, expected) => {
    expect(transactionControlStatement(text, backend)).toBe(expected)
  })

  it('reads 1 MB adversarial texts (linear: the old comment expression backtracked exponentially on a run of comments)', () => {
    // 40 comments before a word that is no control word: the old pre-check tried 2^40 ways to split them
    for (const backend of ['postgres', 'sqlite'] as const) {
      expect(transactionControlStatement(`${'/**/'.repeat(40)}select 1`, backend)).toBeUndefined()
      expect(transactionControlStatement(`${'/**/'.repeat(250_000)}select 1`, backend)).toBeUndefined()
      expect(transactionControlStatement(`select 1;${'/**/'.repeat(250_000)}commit`, backend)).toBe('COMMIT')
      expect(transactionControlStatement(`select 1${';/*'.repeat(300_000)}`, backend)).toBeUndefined()
    }
  })
})
