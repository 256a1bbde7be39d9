import { StatementCache, statementName, type PrepareMode } from '@dbpool/postgres'
import { schemaChangeOf } from '../../src/postgres-statement'
import { statementTraits } from '../../src/postgres-statement-traits'

/** A cache with pg's records of parsed names beside it, as on a real pg connection. */
function cache(size: number, mode: PrepareMode = 'always', shared = { value: 0 }) {
  const pg = {
    parsedStatements: {} as Record<string, string | undefined>,
    submittedNamedStatements: {} as Record<string, string | undefined>,
  }
  const statements = new StatementCache(size, mode, shared, pg)
  /** One run: acquire, pg parses it (as ParseComplete would record), answered. */
  const run = (text: string): string | undefined => {
    const entry = statements.acquire(text)
    if (entry === undefined) return undefined
    pg.parsedStatements[entry.name] = text
    statements.done(entry)
    return entry.name
  }
  return { statements, pg, run, shared }
}

describe('StatementCache', () => {
  it('names a text by its hash: one name per text, the same on every connection', () => {
    expect(statementName('select $1')).toMatch(/^dbpool_[0-9a-f]{24}$/)
    expect(statementName('select $1')).toBe(statementName('select $1'))
    expect(statementName('select $1')).not.toBe(statementName('select $1 '))
    expect(cache(10).run('select $1')).toBe(cache(10).run('select $1'))
  })

  it("'always' names a text on its first run and keeps the name", () => {
    const { statements, run } = cache(10)
    const first = run('select $1')
    expect(first).toBe(statementName('select $1'))
    expect(run('select $1')).toBe(first)
    expect(run('select $1::int')).not.toBe(first)
    expect(statements.count).toBe(2)
    expect(statements.takeClosing()).toBeUndefined()
  })

  it("'second-use' runs a text unnamed once, then names it", () => {
    const { statements, run } = cache(10, 'second-use')
    expect(run('select $1')).toBeUndefined()
    const named = run('select $1')
    expect(named).toMatch(/^dbpool_/)
    expect(run('select $1')).toBe(named)
    expect(statements.count).toBe(1)
  })

  it("'second-use' forgets the oldest one-off texts beyond its size, without closing anything", () => {
    const { statements, run } = cache(2, 'second-use')
    run('a $1')
    run('b $1')
    run('c $1') // 'a' is forgotten
    expect(run('a $1')).toBeUndefined()
    expect(run('c $1')).toMatch(/^dbpool_/)
    expect(statements.takeClosing()).toBeUndefined()
  })

  it('evicts the least recently used statement, closes its name and makes pg forget it', () => {
    const { statements, pg, run } = cache(2)
    const a = run('a $1')!
    const b = run('b $1')!
    expect(run('a $1')).toBe(a) // a is now the most recent
    const c = run('c $1')!
    expect(statements.count).toBe(2)
    expect(statements.takeClosing()).toEqual([b])
    expect(pg.parsedStatements[b]).toBeUndefined()
    expect(pg.parsedStatements[a]).toBe('a $1')
    expect(run('b $1')).toBe(b) // parsed again (behind a Close of its name, see PgStatement)
    expect(pg.parsedStatements[b]).toBe('b $1')
    expect(statements.takeClosing()).toEqual([a])
    expect(statements.takeClosing()).toBeUndefined()
    expect(c).toMatch(/^dbpool_/)
  })

  it('never evicts a statement in flight; with every one in flight the new text runs unnamed', () => {
    const { statements } = cache(1)
    const held = statements.acquire('a $1')!
    expect(statements.acquire('b $1')).toBeUndefined()
    statements.done(held)
    expect(statements.acquire('b $1')).toBeDefined()
    expect(statements.takeClosing()).toEqual([held.name])
  })

  it('invalidateAll: each statement is parsed again under its name on its next run, once', () => {
    const { statements, pg, run } = cache(10)
    const a = run('a $1')!
    const entry = statements.acquire('a $1')!
    entry.description = { fields: [] }
    statements.done(entry)
    statements.invalidateAll()
    const again = statements.acquire('a $1')!
    expect(again.name).toBe(a)
    // pg forgets it, so the run sends Parse (and a Close of the name in front of it) instead of Bind alone
    expect(pg.parsedStatements[a]).toBeUndefined()
    expect(again.description).toBeUndefined()
    pg.parsedStatements[a] = 'a $1'
    statements.done(again)
    expect(run('a $1')).toBe(a)
    expect(pg.parsedStatements[a]).toBe('a $1')
    expect(statements.takeClosing()).toBeUndefined()
  })

  it('a stale statement in flight runs unnamed until it is free', () => {
    const { statements, run } = cache(10)
    run('a $1')
    const busy = statements.acquire('a $1')!
    statements.invalidateAll()
    expect(statements.acquire('a $1')).toBeUndefined()
    statements.done(busy)
    expect(statements.acquire('a $1')?.name).toBe(busy.name)
  })

  it('invalidateEverywhere reaches every cache sharing the generation', () => {
    const shared = { value: 0 }
    const one = cache(10, 'always', shared)
    const two = cache(10, 'always', shared)
    const a = one.run('a $1')!
    two.run('a $1')
    one.statements.invalidateEverywhere()
    expect(one.statements.acquire('a $1')).toBeDefined()
    expect(two.statements.acquire('a $1')).toBeDefined()
    expect(one.pg.parsedStatements[a]).toBeUndefined()
    expect(two.pg.parsedStatements[a]).toBeUndefined()
  })
  it('schemaChanged: this connection re-prepares at once; with everywhere, the others once the transaction has ended', () => {
    const shared = { value: 0 }
    const one = cache(10, 'always', shared)
    const two = cache(10, 'always', shared)
    const a = one.run('a $1')!
    two.run('a $1')
    one.statements.readyForQuery('T')
    one.statements.schemaChanged(true)
    // inside the transaction that ran the DDL: this connection parses again, the others not yet
    expect(one.statements.acquire('a $1')).toBeDefined()
    expect(one.pg.parsedStatements[a]).toBeUndefined()
    expect(two.pg.parsedStatements[a]).toBe('a $1')
    one.statements.readyForQuery('T')
    two.statements.done(two.statements.acquire('a $1')!)
    expect(two.pg.parsedStatements[a]).toBe('a $1')
    // the transaction ended: every connection parses again, once
    one.statements.readyForQuery('I')
    two.statements.acquire('a $1')
    expect(two.pg.parsedStatements[a]).toBeUndefined()
    // a local change (CREATE, DO) stays local
    const three = cache(10, 'always', shared)
    const b = three.run('b $1')!
    one.statements.schemaChanged(false)
    one.statements.readyForQuery('I')
    three.statements.acquire('b $1')
    expect(three.pg.parsedStatements[b]).toBe('b $1')
  })

  it('invalidate(entry): that statement alone is parsed again on its next run', () => {
    const { statements, pg, run } = cache(10)
    const a = run('a $1')!
    const b = run('b $1')!
    const entry = statements.acquire('a $1')!
    statements.done(entry)
    statements.invalidate(entry)
    statements.acquire('a $1')
    statements.acquire('b $1')
    expect(pg.parsedStatements[a]).toBeUndefined()
    expect(pg.parsedStatements[b]).toBe('b $1')
  })

  it('parsedInOpenTransaction: parsed inside the transaction still open, not outside one nor in an earlier one', () => {
    const { statements } = cache(10)
    const entry = statements.acquire('a $1')!
    statements.parsed(entry, false)
    expect(statements.parsedInOpenTransaction(entry)).toBe(false)
    statements.parsed(entry, true)
    expect(statements.parsedInOpenTransaction(entry)).toBe(true)
    statements.readyForQuery('T')
    statements.readyForQuery('E')
    expect(statements.parsedInOpenTransaction(entry)).toBe(true)
    statements.readyForQuery('I')
    expect(statements.parsedInOpenTransaction(entry)).toBe(false)
  })

  it('refreshStale: a run acquired before an invalidation parses again as it is written, once; a current one is untouched', () => {
    const { statements, pg, run } = cache(10)
    const name = run('a $1')!
    const queued = statements.acquire('a $1')!
    queued.description = { fields: [] }
    statements.refreshStale(queued)
    expect(pg.parsedStatements[name]).toBe('a $1')
    expect(queued.description).toEqual({ fields: [] })
    const behind = statements.acquire('a $1')!
    statements.invalidateAll() // DEALLOCATE ALL answered while both waited in pg's queue
    statements.refreshStale(queued)
    expect(pg.parsedStatements[name]).toBeUndefined()
    expect(queued.description).toBeUndefined()
    pg.parsedStatements[name] = 'a $1' // its Parse completed
    statements.refreshStale(behind) // the same entry, current again: not parsed a second time
    expect(pg.parsedStatements[name]).toBe('a $1')
    statements.done(queued)
    statements.done(behind)
  })
})

describe('StatementCache: what Parse reads besides the schema', () => {
  it("never names a text with a literal read from the clock ('now', 'today', 'tomorrow', 'yesterday')", () => {
    const { run } = cache(10)
    expect(run("insert into t (at) values ('now')")).toBeUndefined()
    expect(run("select * from t where d < 'Today' and id = $1")).toBeUndefined()
    expect(run('insert into t (at) values (now())')).toBeDefined()
  })

  it('re-prepares when TimeZone, DateStyle or IntervalStyle change, not at their first report nor for other settings', () => {
    const { statements, run } = cache(10)
    statements.settingReported('TimeZone', 'UTC') // at startup
    statements.settingReported('DateStyle', 'ISO, MDY')
    run('select $1')
    const generation = statements.generation
    statements.settingReported('TimeZone', 'UTC') // the same value again
    statements.settingReported('application_name', 'x')
    expect(statements.generation).toBe(generation)
    statements.settingReported('TimeZone', 'Asia/Tokyo')
    expect(statements.generation).toBe(generation + 1)
    statements.settingReported('DateStyle', 'ISO, DMY')
    statements.settingReported('IntervalStyle', 'postgres') // first report: recorded only
    statements.settingReported('IntervalStyle', 'sql_standard')
    expect(statements.generation).toBe(generation + 3)
  })
})

describe('schemaChangeOf', () => {
  it.each([
    ['ALTER TABLE', 'alter table t add column c int', 'everywhere'],
    ['DROP TABLE', 'drop table t', 'everywhere'],
    ['CREATE TABLE', 'create table app.items (v int)', 'everywhere'],
    ['CREATE FUNCTION', 'create function f() returns int language sql as $$ select 1 $$', 'everywhere'],
    ['CREATE TABLE', 'create temp table items (v int)', 'here'],
    ['CREATE TABLE', '  CREATE GLOBAL TEMPORARY TABLE items (v int);  ', 'here'],
    // a temp table and something else in one text: everywhere
    ['CREATE TABLE', 'create temp table a (v int); create table b (v int)', 'everywhere'],
    ['DO', 'do $$ begin execute $q$alter table t add c int$q$; end $$', 'everywhere'],
    ['IMPORT FOREIGN SCHEMA', 'import foreign schema s from server x into app', 'everywhere'],
    ['SELECT 1', 'select 1', undefined],
    ['DELETE 3', 'delete from t', undefined],
    ['COPY 2', 'copy t from stdin', undefined],
    ['CALL', 'call p()', 'everywhere'],
  ] as const)('%s from %s: %s', (tag, text, change) => {
    expect(schemaChangeOf(tag, text)).toBe(change)
  })
})

describe('statementTraits', () => {
  it.each([
    ['create table app.t as select 1', 'everywhere'],
    ['  CREATE TEMP TABLE t AS SELECT * FROM public.t', 'here'],
    ['create local temporary table t as execute p', 'here'],
    ['create materialized view v as select 1', 'everywhere'],
    ['create unlogged table t as table s', 'everywhere'],
    ['select * into temp t from s', 'here'],
    ['select * into table t from s', 'everywhere'],
    ['SELECT a INTO t FROM s WHERE b = $1', 'everywhere'],
    ['with x as (select 1) select * into t from x', 'everywhere'],
    ['explain (analyze) create table t as select 1', 'everywhere'],
    ['explain analyze select * into temp t from s', 'here'],
    // a temp table and another statement: everywhere
    ['create temp table t as select 1; select 2', 'everywhere'],
    // not a new table
    ['select 1', undefined],
    ['select * from t where id = $1', undefined],
    ['with x as (select 1) insert into t select * from x', undefined],
    ['with m as (insert into t values (1) returning *) select * from m', undefined],
    ["select 'create table t as select 1', 'into t'", undefined],
    ['select "into" from t -- into t', undefined],
    ['select (select 1 into t)', undefined],
  ] as const)('%s: queryDdl %s', (text, queryDdl) => {
    expect(statementTraits(text).queryDdl).toBe(queryDdl)
  })

  it.each([
    ["insert into evlog (at) values ('now')", true],
    ["select * from t where d = 'TODAY'", true],
    ["select * from t where at > 'tomorrow 12:00' and id = $1", true],
    ['select $$yesterday$$::date', true],
    ["select E'now'::timestamptz", true],
    ['select now(), current_date', false],
    ["select * from t where at = '2024-01-01 12:00'", false],
    ["select 'epoch'::timestamptz, 'infinity'::date", false],
    ['select 1 -- now', false],
    // Postgres reads the special values as whole tokens only (ParseDateTime splits on what is not a letter)
    ["select * from t where status <> 'unknown'", false],
    ["select 'known', 'snowfall', 'nowhere', 'todays', 'yesterdays'", false],
    ["select ' NOW '::timestamptz", true],
    ["select 'today 12:00'::timestamp", true],
    ["select 'now+02'::timestamptz, 1", true],
    ["select 'yesterday,'::date", true],
    ["select '2024-01-01'::date, 'x_now'", true],
    ["select 'allballs'::time, 'epoch'::date", false],
    // not readable lexically (an unterminated literal): the raw text, by whole words too
    ["select 'unknown", false],
    ["select 'now", true],
  ] as const)('%s: clockLiteral %s', (text, clockLiteral) => {
    expect(statementTraits(text).clockLiteral).toBe(clockLiteral)
  })
})
