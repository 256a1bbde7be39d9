import { PostgresConnectionManager, sessionStatement } from '@dbpool/postgres'

// found by review (review-pg/08, 03): texts that kept session state and passed the check
describe('sessionStatement: quoted names, DO blocks, dynamic SQL', () => {
  it.each([
    // a quoted function or schema name is the same function
    [`select "set_config"('search_path', 'tenant_b', false)`, 'set_config()'],
    [`select pg_catalog."set_config"('search_path', 'tenant_b', false)`, 'set_config()'],
    [`select "pg_catalog"."set_config" ('role', 'x', false)`, 'set_config()'],
    [`select pg_catalog . set_config('role', 'x', false)`, 'set_config()'],
    [`select pg_catalog./* c */set_config('role', 'x', false)`, 'set_config()'],
    ['select "pg_advisory_lock"($1)', 'pg_advisory_lock()'],
    ['select pg_catalog."pg_try_advisory_lock_shared"(1, 2)', 'pg_try_advisory_lock_shared()'],
    ['select "pg_catalog".pg_advisory_lock(7)', 'pg_advisory_lock()'],
    ['create table "pg_temp"."x" (id int)', 'pg_temp'],
    // named notation: is_local must be true
    [`select set_config(setting_name => 'a.b', new_value => 'c', is_local => false)`, 'set_config()'],
    [`select set_config('a.b', 'c', 'true')`, 'set_config()'],
    // a SET inside a DO block, wherever a PL/pgSQL statement starts
    ['do $$ begin set search_path = tenant_b; end $$', 'SET'],
    ['DO $body$ BEGIN SET ROLE tenant; END $body$', 'SET'],
    ['do $$ declare n int; begin n := 1; if n = 1 then set search_path = b; end if; end $$', 'SET'],
    ['do $$ begin if false then null; else reset role; end if; end $$', 'RESET'],
    ['do $$ begin for i in 1..2 loop set work_mem = 1000; end loop; end $$', 'SET'],
    ['do $$ <<blk>> begin listen jobs; end $$', 'LISTEN'],
    ['do language plpgsql $$ begin set search_path = b; end $$', 'SET'],
    ['do $$ begin set search_path = b; end $$ language plpgsql', 'SET'],
    ["do 'begin set search_path = b; end'", 'SET'],
    ["do E'begin set search_path = b; end'", 'SET'],
    ['select 1; do $$ begin set search_path = b; end $$', 'SET'],
    // a -- comment ends at \r too (scan.l): what follows runs
    ['-- tenant switch\rset search_path = tenant_b', 'SET'],
    ['select 1 -- x\r; select pg_advisory_lock(1)', 'pg_advisory_lock()'],
    // functions and temporary objects in a DO block
    ["do $$ begin perform set_config('search_path', 'b', false); end $$", 'set_config()'],
    ["do $$ begin perform \"set_config\"('search_path', 'b', false); end $$", 'set_config()'],
    ['do $$ begin perform pg_advisory_lock(1); end $$', 'pg_advisory_lock()'],
    ['do $$ begin create temp table x (id int); end $$', 'temporary table'],
    // dynamic SQL: EXECUTE of a literal, a format() template, an assignment, nested quoting
    ["do $$ begin execute 'set search_path = tenant_b'; end $$", 'SET'],
    ["do $$ begin execute format('set search_path = %I', 'b'); end $$", 'SET'],
    ["do $$ begin execute 'set search_path = ' || quote_ident('b'); end $$", 'SET'],
    ["do $$ declare q text := 'set role x'; begin execute q; end $$", 'SET'],
    // names by Postgres's rule: a non-ASCII letter is part of a variable's or a setting's name
    ["do $$ declare åq text; begin åq := 'set role x'; execute åq; end $$", 'SET'],
    ["do $$ declare q text; begin q := 'set app.åx = 1'; execute q; end $$", 'SET'],
    ['do $$ begin execute $q$ set search_path = b $q$; end $$', 'SET'],
    ["do $$ begin execute E'set\\nsearch_path = b'; end $$", 'SET'],
    ["do 'begin execute ''set search_path = b''; end'", 'SET'],
    ["do $$ begin execute 'select set_config(''role'', ''x'', false)'; end $$", 'set_config()'],
    ["do $$ begin execute 'select pg_advisory_lock(1)'; end $$", 'pg_advisory_lock()'],
    ["do $$ begin execute 'create temp table t (id int)'; end $$", 'temporary table'],
    ["do $$ begin execute 'listen jobs'; end $$", 'LISTEN'],
    ["do $$ begin execute 'prepare p as select 1'; end $$", 'PREPARE'],
    ['do $a$ begin execute $b$ do $c$ begin set search_path = b; end $c$ $b$; end $a$', 'SET'],
    // unterminated text: judged as written, a statement may start after a quote
    ["do $$ begin execute 'set search_path = b", 'SET'],
  ])('is recognised: %s', (text, what) => {
    expect(sessionStatement(text)).toContain(what)
  })

  it.each([
    // UPDATE ... SET is not SET, in a DO block or in dynamic SQL
    'do $$ begin update t set x = 1; end $$',
    'do $$ begin update t\n  set x = 1 where id = 2; end $$',
    "do $$ begin execute 'update t ' || 'set x = 1'; end $$",
    'do $$ begin insert into t values (1) on conflict (id) do update set x = 2; end $$',
    'do $$ begin merge into t using s on t.id = s.id when matched then update set x = s.x; end $$',
    // transaction-scoped forms in a DO block
    'do $$ begin set local search_path = b; end $$',
    "do $$ begin perform set_config('search_path', 'b', true); end $$",
    'do $$ begin perform pg_advisory_xact_lock(1); end $$',
    'do $$ begin create temp table x (id int) on commit drop; end $$',
    "do $$ begin execute 'set local role x'; end $$",
    // messages are not dynamic SQL
    "do $$ begin raise notice 'set search_path next'; end $$",
    "do $$ begin assert true, 'reset role failed'; end $$",
    // literals outside a DO block are data, whatever their quoting
    'select $$set search_path = b$$ as note',
    'insert into notes values ($1, $tag$listen jobs; select pg_advisory_lock(1)$tag$)',
    "select E'\\'; set search_path = b' as note",
    "select 'it''s; set role x' as note",
    // a function body is not run by CREATE FUNCTION
    "create function f() returns void language sql as $$ select set_config('search_path', 'b', false) $$",
    // quoted names that read like keywords or functions but are neither
    'select "set", "reset" from "listen"',
    'select 1 as "set_config"',
    'select x as "into temp" from t',
    'create temp table x ("on commit drop" int) on commit drop',
    'select "pg_advisory_xact_lock"(1)',
    'select "ident$with$dollars" from t',
    'select a$b from t where c = $1',
  ])('is not: %s', (text) => {
    expect(sessionStatement(text)).toBeUndefined()
  })

  it('a body nested beyond the limit is refused rather than guessed', () => {
    let text = 'select 1'
    for (let i = 0; i < 10; i++) text = `do $l${i}$ begin execute $e${i}$ ${text} $e${i}$; end $l${i}$`
    expect(sessionStatement(text)).toMatch(/nested more than 8 levels/)
  })
})

// found by review (review-fixes/guard*.js): data literals in a DO block were judged as SQL (common
// migrations refused), and some session changes were missed
describe('sessionStatement: only the literals a DO block runs are SQL', () => {
  it.each([
    // data: enum labels, values, comparisons, defaults that are words, sentences
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'job_state') THEN CREATE TYPE job_state AS ENUM ('prepare', 'load', 'run'); END IF; END $$",
    "DO $$ BEGIN INSERT INTO audit(action) VALUES ('reset password requested'); END $$",
    "DO $$ BEGIN INSERT INTO log(msg) VALUES ('set up done'); END $$",
    "DO $$ BEGIN IF (SELECT state FROM jobs LIMIT 1) = 'reset' THEN UPDATE jobs SET state = 'idle'; END IF; END $$",
    "DO $$ DECLARE v text := 'listen'; BEGIN PERFORM 1; END $$",
    "DO $$ BEGIN UPDATE t SET note = 'prepare the report' WHERE id = 1; END $$",
    "DO $$ BEGIN UPDATE settings SET value = 'x' WHERE key = 'load_factor'; END $$",
    "DO $$ BEGIN INSERT INTO t VALUES (DEFAULT, 'reset password requested'); END $$",
    "DO $$ DECLARE c CURSOR FOR SELECT * FROM t WHERE a = 'set role x'; BEGIN NULL; END $$",
    "DO $$ DECLARE v text := 'the listen queue'; BEGIN v := 'we set it'; END $$",
    "DO $$ BEGIN PERFORM format('set role %I', 'x'); END $$",
    // what EXECUTE runs, but its parameters and the rest of a concatenation are data
    "DO $$ BEGIN EXECUTE 'insert into audit(action) values ($1)' USING 'reset role'; END $$",
    "DO $$ DECLARE n int; BEGIN EXECUTE 'select count(*) from t' INTO n; END $$",
    "DO $$ DECLARE tbl text := 't'; BEGIN EXECUTE 'update ' || tbl || ' set x = 1'; END $$",
    "DO $$ BEGIN EXECUTE format('update %I set note = %L', 't', 'prepare the report'); END $$",
    // a stored value that is a sentence, not a command
    "DO $$ DECLARE v text; BEGIN v := 'reset password requested'; v := 'set up done'; v := 'listen to me'; END $$",
  ])('is not: %s', (text) => {
    expect(sessionStatement(text)).toBeUndefined()
  })

  it.each([
    ["DO $$ BEGIN FOR r IN EXECUTE 'set role x' LOOP NULL; END LOOP; END $$", 'SET'],
    ["DO $$ DECLARE q text; BEGIN q := 'set search_path = x'; EXECUTE q; END $$", 'SET'],
    ["DO $$ DECLARE q text DEFAULT ' listen jobs'; BEGIN EXECUTE q; END $$", 'LISTEN'],
    ["DO $$ DECLARE q text; BEGIN SELECT 'reset role' INTO q; EXECUTE q; END $$", 'RESET'],
    ['DO $$ BEGIN DO $i$ BEGIN SET ROLE x; END $i$; END $$', 'SET'],
    ["DO $$ BEGIN EXECUTE format('%s', 'set role x'); END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE format('%s', 'prepare p as select 1'); END $$", 'PREPARE'],
  ])('is recognised: %s', (text, what) => {
    expect(sessionStatement(text)).toContain(what)
  })
})

describe('sessionStatement: cursor options in any order, escaped strings, concatenated pieces', () => {
  it.each([
    ['DECLARE c SCROLL BINARY CURSOR WITH HOLD FOR SELECT 1', 'DECLARE'],
    ['DECLARE c ASENSITIVE CURSOR WITH HOLD FOR SELECT 1', 'DECLARE'],
    ['DECLARE c NO SCROLL BINARY CURSOR WITH HOLD FOR SELECT 1', 'DECLARE'],
    ['declare c sensitive no scroll cursor with hold for select 1', 'DECLARE'],
    ['declare c insensitive binary scroll cursor with hold for select 1', 'DECLARE'],
    ["DO $$ BEGIN EXECUTE E'\\x73et search_path = x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE E'\\163et search_path = x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE E'\\u0073et search_path = x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE E'\\U00000073et search_path = x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE U&'\\0073et search_path = x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE u&'\\+000073et search_path = x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE U&'!0073et search_path = x' UESCAPE '!'; END $$", 'SET'],
    ["DO E'BEGIN \\x73et search_path = x; END'", 'SET'],
    ["DO U&'BEGIN \\0073et search_path = x; END'", 'SET'],
    ["DO $$ BEGIN EXECUTE 'select 1' || '; set role x'; END $$", 'SET'],
    ["DO $$ BEGIN EXECUTE 'select 1; ' || 'reset role'; END $$", 'RESET'],
    ["DO $$ DECLARE v text := 't'; BEGIN EXECUTE 'select * from ' || v || '; listen jobs'; END $$", 'LISTEN'],
    ["DO $$ BEGIN EXECUTE 'se' || 't search_path = x'; END $$", 'SET'],
  ])('is recognised: %s', (text, what) => {
    expect(sessionStatement(text)).toContain(what)
  })

  it.each([
    'DECLARE c SCROLL BINARY CURSOR FOR SELECT 1',
    'DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1',
    "select E'\\x73et search_path = x' as note",
    "select U&'\\0073et role x' as note",
    "DO $$ BEGIN EXECUTE E'\\x73elect 1'; END $$",
    "DO $$ BEGIN EXECUTE 'select 1' || ' where true'; END $$",
  ])('is not: %s', (text) => {
    expect(sessionStatement(text)).toBeUndefined()
  })
})

describe('statement sharing never takes a statement that may change the session', () => {
  const manager = new PostgresConnectionManager('postgres://u@h/d', { pipelineDepth: 8 })
  const shared = (text: string): boolean => Boolean(manager.canPipeline({ text, values: [] } as never))

  it.each([
    "select set_config('search_path', 'tenant_b', false)",
    `select "set_config"('role', 'x', false)`,
    'select pg_advisory_lock($1)',
    'select 1 as x into temp table leftover',
    'select * from pg_temp.leftover',
    // review r17i: a prepared statement run from inside another statement shows nothing of its text
    "EXPLAIN ANALYZE EXECUTE setcfg('extra_' || 'float_digits', '0')",
    'create table t2 as execute p(1)',
  ])('not shared: %s', (text) => {
    expect(shared(text)).toBe(false)
    expect(shared(text)).toBe(false) // the remembered verdict too
  })

  it.each([
    'select 1',
    "select set_config('search_path', 'b', true)",
    'select pg_advisory_xact_lock(1)',
    'update t set x = 1',
    'select executed_at from jobs',
    "select 'execute p' as note",
  ])('shared: %s', (text) => {
    expect(shared(text)).toBe(true)
  })

  // r12b sharing-hang: only reads (no row lock waits) may have statements pipelined behind them
  it.each([
    ['select 1', 'read'],
    ['select * from acct where id = $1', 'read'],
    ['select * from acct where id = $1 for update', true],
    ['update acct set v = v + 10 where id = 1', true],
    ['select pg_advisory_xact_lock(1)', true],
    ['select my_function()', true],
  ] as const)('verdict of %s: %s', (text, verdict) => {
    expect(manager.canPipeline({ text, values: [] } as never)).toBe(verdict)
    expect(manager.canPipeline({ text, values: [] } as never)).toBe(verdict)
  })
})

// each text is 1 MB; the old expressions and scans were quadratic (or worse) on them: hours, now linear
describe('sessionStatement reads 1 MB adversarial texts in linear time', () => {
  const MB = 1 << 20
  const fill = (unit: string): string => unit.repeat(Math.ceil(MB / unit.length))
  it.each<[string, string, RegExp | undefined]>([
    // lex(): a character read back from the code built so far flattened it at every quote
    ['many string literals', `select ${fill("'' ")}`, undefined],
    ['many U&-strings', `select ${fill("U&'' ")}`, undefined],
    // a stored value "prepare ((((...": \S+ and \s*\( split the parentheses every way
    ['a stored prepare with unclosed parentheses', `do $$ begin v := 'prepare ${fill('(')}'; end $$`, undefined],
    // a stored value "declare x    ...": \s+ and [\w\s]*? split the blanks every way
    ['a stored declare with a long run of blanks', `do $$ begin v := 'declare x ${fill(' ')}'; end $$`, undefined],
    // LAST_DECLARE looked ahead to the end for each DECLARE, once per literal
    ['many DECLARE sections with stored values', `do $$${fill(" declare v text := 'set role x';")}$$`, /^SET/],
    // each literal's lead after EXECUTE was searched from the EXECUTE; ranges searched per literal
    ['many format() arguments after EXECUTE', `do $$ execute f(${fill("'', ")})$$`, undefined],
    // each EXECUTE searched to the end for INTO, USING, LOOP or ";"
    ['many EXECUTEs without an end', `do $$${fill(' execute x')} ''$$`, undefined],
    // stored(): INTO and CURSOR searched in the whole statement per literal
    ['a SELECT (no INTO) with many command-shaped literals', `do $$ begin select ${fill("'set role x', ")} 1; end $$`, undefined],
    ['a DECLARE default with many command-shaped literals', `do $$ declare v text := ${fill("'set role x' x ")}; begin end $$`, /^SET/],
    // set_config(): each call scanned to its closing parenthesis, nested calls again
    ['nested set_config() calls', `select ${'set_config(a,b,'.repeat(60_000)}true${'),true'.repeat(59_999)})`, undefined],
    ['a set_config() left open inside many', `select ${fill('set_config(')}`, /^set_config\(\)/],
  ])('%s', (_what, text, verdict) => {
    expect(text.length).toBeGreaterThanOrEqual(MB - 20)
    const why = sessionStatement(text)
    if (verdict === undefined) expect(why).toBeUndefined()
    else expect(why).toMatch(verdict)
  })

  it('the linear forms read what the old ones read', () => {
    expect(sessionStatement(`do $$ declare v text := 'prepare p(numeric(10,2)) as select 1'; begin execute v; end $$`)).toMatch(/^PREPARE/)
    expect(sessionStatement(`do $$ declare v text := 'prepare p (int) as select $1'; begin end $$`)).toMatch(/^PREPARE/)
    expect(sessionStatement(`do $$ begin v := 'declare c no scroll cursor with hold for select 1'; end $$`)).toMatch(/^DECLARE/)
    expect(sessionStatement(`do $$ begin v := 'declare c cursor with hold for select 1'; end $$`)).toMatch(/^DECLARE/)
    expect(sessionStatement(`do $$ begin select 'set role x' into v; end $$`)).toMatch(/^SET/)
    expect(sessionStatement(`do $$ begin select 'set role x'; end $$`)).toBeUndefined()
    expect(sessionStatement(`do $$ declare c cursor for select 'set role x'; begin end $$`)).toBeUndefined()
    expect(sessionStatement(`do $$ declare v text := 'set role x'; begin end $$`)).toMatch(/^SET/)
    expect(sessionStatement(`do $$ begin execute 'select 1' || '; set role x'; end $$`)).toMatch(/^SET/)
    expect(sessionStatement(`do $$ begin execute v || 'x; set role x'; end $$`)).toMatch(/^SET/)
    expect(sessionStatement(`do $$ begin execute format('%s', 'set role x'); end $$`)).toMatch(/^SET/)
    expect(sessionStatement(`select U&'d\\0061t\\+000061' || E'\\x73et'`)).toBeUndefined()
    expect(sessionStatement(`do U&'begin set role x; end'`)).toMatch(/^SET/)
    expect(sessionStatement(`select set_config('a', set_config('b', 'c', false), true)`)).toMatch(/^set_config\(\)/)
    expect(sessionStatement(`select set_config('a', (select 'x'), true), set_config('b', 'c', (true))`)).toMatch(/^set_config\(\)/)
    expect(sessionStatement(`select set_config('a', (select 'x'), true), f(set_config('b', 'c', true))`)).toBeUndefined()
  })
})
