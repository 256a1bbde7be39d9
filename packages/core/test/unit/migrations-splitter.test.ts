import { splitSqlStatements } from '@dbpool/core'

const texts = (script: string, dialect: 'postgres' | 'sqlite' = 'postgres'): string[] =>
  splitSqlStatements(script, dialect).map((s) => s.text)

describe('splitSqlStatements', () => {
  it('splits at top-level semicolons and drops empty statements', () => {
    expect(texts('create table a (id int);\n\n;insert into a values (1);  select 1')).toEqual([
      'create table a (id int)',
      'insert into a values (1)',
      'select 1',
    ])
  })

  it('keeps semicolons inside single-quoted strings, including doubled quotes', () => {
    expect(texts("insert into t values ('a;b', 'it''s; fine'); select 2")).toEqual([
      "insert into t values ('a;b', 'it''s; fine')",
      'select 2',
    ])
  })

  it('honours backslash escapes in Postgres E-strings only', () => {
    expect(texts("select E'it\\'s; ok'; select 3")).toEqual(["select E'it\\'s; ok'", 'select 3'])
    // in a plain string a backslash is an ordinary character
    expect(texts("select 'c:\\'; select 4")).toEqual(["select 'c:\\'", 'select 4'])
  })

  it("reads names by Postgres's rule: a non-ASCII letter is part of a name", () => {
    // åe'...' is a name then a plain literal, in which a backslash is an ordinary character
    expect(texts("select åe'c:\\'; select 4")).toEqual(["select åe'c:\\'", 'select 4'])
    // one word, not BEGIN; and only ASCII letters are upper-cased (JavaScript's 'ı'.toUpperCase() is 'I')
    expect(splitSqlStatements('åbegin; begın; commit').map((s) => s.head[0])).toEqual(['åBEGIN', 'BEGıN', 'COMMIT'])
  })

  it('keeps semicolons inside double-quoted and backquoted identifiers', () => {
    expect(texts('create table "we;ird" ("a""b;" int); select `x;y` from t', 'sqlite')).toEqual([
      'create table "we;ird" ("a""b;" int)',
      'select `x;y` from t',
    ])
  })

  it('keeps dollar-quoted bodies whole, with and without a tag', () => {
    const fn = `create function f() returns int language plpgsql as $$ begin perform 1; return 2; end; $$;
create function g() returns text language plpgsql as $body$ begin return '$$;'; end; $body$;
select $1::int`
    const out = texts(fn)
    expect(out).toHaveLength(3)
    expect(out[0]).toContain('return 2; end; $$')
    expect(out[1]).toContain("return '$$;'; end; $body$")
    expect(out[2]).toBe('select $1::int')
  })

  it('does not treat $ inside identifiers or parameters as a dollar quote', () => {
    expect(texts('select a$b$ from t; select $1, $2')).toEqual(['select a$b$ from t', 'select $1, $2'])
  })

  it('ignores semicolons in line and block comments, nesting block comments on Postgres', () => {
    expect(texts('-- one; two\nselect 1; /* a; /* nested; */ still; */ select 2;')).toEqual([
      '-- one; two\nselect 1',
      '/* a; /* nested; */ still; */ select 2',
    ])
    // SQLite block comments do not nest: the first */ ends the comment
    expect(texts('/* a /* b */ select 1; select 2', 'sqlite')).toEqual(['/* a /* b */ select 1', 'select 2'])
  })

  it('drops statements made only of comments', () => {
    expect(texts('select 1; -- trailing comment\n/* and a block */')).toEqual(['select 1'])
  })

  it('keeps a SQLite trigger body (BEGIN ... END with inner semicolons and CASE) as one statement', () => {
    const script = `create trigger t_audit after insert on t
begin
  insert into audit values (new.id, case when new.x > 0 then 'pos' else 'neg' end);
  update counts set n = n + 1;
end;
create temp trigger t2 after delete on t begin delete from audit where id = old.id; end;
select 1`
    const out = splitSqlStatements(script, 'sqlite')
    expect(out.map((s) => s.head.slice(0, 3).join(' '))).toEqual(['CREATE TRIGGER T_AUDIT', 'CREATE TEMP TRIGGER', 'SELECT'])
    expect(out[0]?.text.endsWith('end')).toBe(true)
    expect(out[1]?.line).toBe(6)
  })

  it('keeps a Postgres BEGIN ATOMIC function body as one statement', () => {
    const out = texts('create or replace function f() returns int language sql begin atomic select 1; select 2; end; select 3')
    expect(out).toEqual(['create or replace function f() returns int language sql begin atomic select 1; select 2; end', 'select 3'])
  })

  it('only BEGIN ATOMIC opens a Postgres body: a parameter or column named begin does not glue the rest onto it', () => {
    const hidden = `create function my_in_range(begin int, finish int, x int) returns boolean language sql as 'select x between begin and finish';
create table z1 (x int);
commit;
create table z2 (x int)`
    expect(splitSqlStatements(hidden).map((s) => s.head[0])).toEqual(['CREATE', 'CREATE', 'COMMIT', 'CREATE'])
    const procedure = 'create procedure p(begin int) language sql as $$ select 1 $$; commit'
    expect(texts(procedure)).toEqual(['create procedure p(begin int) language sql as $$ select 1 $$', 'commit'])
    // a body whose statements name begin, t.end and hold CASE ... END ends at its own END
    const atomic = `create function f(begin int) returns int language sql begin atomic
  select case when begin > 0 then 1 else 0 end;
  select t.end from t;
end;
commit`
    expect(splitSqlStatements(atomic).map((s) => s.head[0])).toEqual(['CREATE', 'COMMIT'])
    expect(texts(atomic)[0]).toMatch(/^create function f\(begin int\)[\s\S]*select t\.end from t;\nend$/)
    // a Postgres trigger has no body: a column named begin opens nothing
    expect(texts('create trigger t after update of begin on x for each row execute function f(); commit')).toEqual([
      'create trigger t after update of begin on x for each row execute function f()',
      'commit',
    ])
    // a case expression outside a body is no block either
    expect(texts('create function g(x int) returns int language sql return case when x > 0 then 1 end; commit')).toEqual([
      'create function g(x int) returns int language sql return case when x > 0 then 1 end',
      'commit',
    ])
  })

  it('reports the line of each statement, offset by firstLine', () => {
    const out = splitSqlStatements("-- header\n\nselect 1;\nselect\n'multi\nline';\n\n  select 3", 'postgres', 10)
    expect(out.map((s) => s.line)).toEqual([12, 13, 17])
  })

  it('exposes the first words upper-cased', () => {
    expect(splitSqlStatements('/* c */ begin transaction;')[0]?.head).toEqual(['BEGIN', 'TRANSACTION'])
  })

  it('tolerates unterminated quotes and comments (the database reports the error)', () => {
    expect(texts("select 'oops; select 2")).toEqual(["select 'oops; select 2"])
    expect(texts('select 1; /* never closed')).toEqual(['select 1'])
    expect(texts('select $$ never closed')).toEqual(['select $$ never closed'])
  })
})

describe('splitSqlStatements: where a -- comment ends', () => {
  it('ends at \\r too on Postgres (scan.l), only at \\n on SQLite (tokenize.c)', () => {
    const text = 'select 1 -- note\r; insert into t values (1)'
    expect(splitSqlStatements(text, 'postgres').map((s) => s.text)).toEqual(['select 1 -- note', 'insert into t values (1)'])
    expect(splitSqlStatements(text, 'sqlite').map((s) => s.text)).toEqual([text])
  })
})

describe('splitSqlStatements: parentheses on Postgres', () => {
  it('keeps a multi-action rule DO ALSO (a; b) whole, as psql does', () => {
    const script = `create table rt (id int);
create rule r as on insert to rt do also (insert into ru values (1); insert into ru values (2));
select ';' as "(", ')' as x;
insert into ru values (3)`
    expect(texts(script)).toEqual([
      'create table rt (id int)',
      'create rule r as on insert to rt do also (insert into ru values (1); insert into ru values (2))',
      `select ';' as "(", ')' as x`,
      'insert into ru values (3)',
    ])
  })

  it('an unbalanced ) does not swallow the next statement', () => {
    expect(texts('select 1); select 2')).toEqual(['select 1)', 'select 2'])
  })
})

describe('splitSqlStatements: dollar quotes', () => {
  it('are Postgres only: on SQLite `$$` is a parameter name, and a COMMIT between two of them is a statement', () => {
    const text = 'select $$; commit; select $$'
    expect(splitSqlStatements(text, 'sqlite').map((s) => s.text)).toEqual(['select $$', 'commit', 'select $$'])
    expect(splitSqlStatements(text, 'postgres').map((s) => s.text)).toEqual([text])
  })

  it('a `$` after a non-ASCII identifier character does not open one on Postgres (`é$$` is an identifier)', () => {
    const text = 'select 1 as é$$; commit; select $$x$$'
    expect(splitSqlStatements(text, 'postgres').map((s) => s.text)).toEqual(['select 1 as é$$', 'commit', 'select $$x$$'])
  })

  it('a tag longer than 62 characters is still a tag', () => {
    const tag = `$${'t'.repeat(80)}$`
    const text = `do ${tag} begin perform 1; end ${tag}; select 2`
    expect(splitSqlStatements(text, 'postgres').map((s) => s.text)).toEqual([`do ${tag} begin perform 1; end ${tag}`, 'select 2'])
  })
})

describe('splitSqlStatements: SQLite names that looked like block words or quotes', () => {
  it('a trigger body naming a column begin or end, or a trigger of a column begin, ends at its own END', () => {
    const script = `create trigger t after update of begin on t begin update t set begin = 1, end = 2 where id = new.id; end;
PRAGMA foreign_keys = OFF;
select 1`
    expect(splitSqlStatements(script, 'sqlite').map((s) => s.head[0])).toEqual(['CREATE', 'PRAGMA', 'SELECT'])
  })

  it('a [bracketed] name is a name: a quote or ; inside it starts nothing', () => {
    const script = "alter table book add column [it's;x] text; PRAGMA foreign_keys = OFF; select 1"
    expect(texts(script, 'sqlite')).toEqual(["alter table book add column [it's;x] text", 'PRAGMA foreign_keys = OFF', 'select 1'])
    // Postgres has no bracketed names ([ is an array subscript)
    expect(texts("select a[1], 'x;y'; select 2")).toEqual(["select a[1], 'x;y'", 'select 2'])
  })
})
