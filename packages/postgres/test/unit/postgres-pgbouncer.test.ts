import { DatabaseError } from '@dbpool/core'
import { PostgresConnectionManager, createPostgresPool, sessionStatement, DEFAULT_PREPARE_MODE } from '@dbpool/postgres'

function configError(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err, 'CONFIGURATION')) return err
    throw err
  }
  throw new Error('expected a CONFIGURATION error')
}

describe('pgbouncer modes', () => {
  it('the option wins over the config flag; true in the config means transaction mode', () => {
    expect(new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true').options.pgbouncer).toBe('transaction')
    expect(new PostgresConnectionManager('postgres://u@h/d').options.pgbouncer).toBe(false)
    expect(new PostgresConnectionManager('postgres://u@h/d', { pgbouncer: 'session' }).options.pgbouncer).toBe('session')
    expect(new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { pgbouncer: false }).options.prepare).toBe(
      DEFAULT_PREPARE_MODE,
    )
    const session = new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { pgbouncer: 'session', prepare: 'always' })
    expect(session.options.prepare).toBe('always')
    expect(session.sessionFeatures).toEqual({ pgbouncer: 'session', sessions: true })
    expect(configError(() => new PostgresConnectionManager('postgres://u@h/d', { pgbouncer: 'statement' as never })).detail?.option).toBe(
      'postgres.pgbouncer',
    )
  })

  it('transaction mode refuses what needs a session at construction: sessionInit, sessionReset clean, timeouts and options sent at startup', () => {
    const url = 'postgres://u@h/d?pgbouncer=true'
    expect(configError(() => new PostgresConnectionManager(url, { sessionInit: 'SET search_path TO app' })).message).toMatch(
      /postgres\.sessionInit .*PgBouncer in transaction mode/,
    )
    // shown with its literals hidden: a token set with set_config() must not reach a log
    for (const sessionInit of [
      "select set_config('app.api_token', 'tok_LIVE_S3CRET', false)",
      ['set search_path to app', "select set_config('app.api_token', $$tok_LIVE_S3CRET$$, false)"],
    ]) {
      const refused = configError(() => new PostgresConnectionManager(url, { sessionInit }))
      expect(refused.message).toContain('postgres.sessionInit')
      expect(refused.message).not.toContain('tok_LIVE_S3CRET')
      expect(refused.message).not.toContain('api_token')
      expect(JSON.stringify(refused.detail)).not.toContain('tok_LIVE_S3CRET')
    }
    expect(configError(() => new PostgresConnectionManager(url, { sessionReset: 'clean' })).detail?.option).toBe('postgres.sessionReset')
    for (const [param, option] of [
      ['statement_timeout=5', 'database.statementTimeoutMs'],
      ['lock_timeout=5', 'database.lockTimeoutMs'],
      ['idle_in_transaction_session_timeout=5', 'database.idleInTransactionTimeoutMs'],
    ] as const) {
      const err = configError(() => new PostgresConnectionManager(`${url}&${param}`))
      expect(err.detail?.option).toBe(option)
      expect(err.message).toContain('unsupported startup parameter')
    }
    expect(configError(() => new PostgresConnectionManager(`${url}&options=-c%20x%3D1`)).detail?.option).toBe('database.options')
    // session mode: the timeouts are fine (set after connecting), options is not
    expect(
      () => new PostgresConnectionManager('postgres://u@h/d?statement_timeout=5', { pgbouncer: 'session', sessionReset: 'clean' }),
    ).not.toThrow()
    expect(
      configError(() => new PostgresConnectionManager('postgres://u@h/d?options=-c%20x%3D1', { pgbouncer: 'session' })).detail?.option,
    ).toBe('database.options')
    expect(new PostgresConnectionManager(url).sessionFeatures).toMatchObject({ pgbouncer: 'transaction', sessions: false })
    expect(createPostgresPool(url, { min: 0 }).sessionFeatures.sessions).toBe(false)
    expect(createPostgresPool('postgres://u@h/d', { min: 0 }).sessionFeatures).toEqual({ pgbouncer: false, sessions: true })
  })

  it.each([
    ['LISTEN jobs', 'LISTEN'],
    ['  listen "jobs"', 'LISTEN'],
    ['select 1; listen jobs', 'LISTEN'],
    ['SET search_path TO app', 'SET'],
    ['set session statement_timeout = 5', 'SET'],
    ['RESET ALL', 'RESET'],
    ['PREPARE q AS select 1', 'PREPARE'],
    ['declare c cursor with hold for select 1', 'DECLARE'],
    ['select pg_advisory_lock(1)', 'pg_advisory_lock()'],
    ['select pg_try_advisory_lock($1::bigint) as locked', 'pg_try_advisory_lock()'],
    ['SELECT PG_ADVISORY_LOCK_SHARED (7)', 'pg_advisory_lock_shared()'],
    // a comment before the statement does not hide it
    ['/* app */ set search_path = public', 'SET'],
    ['-- tenant\nSET search_path TO tenant_7', 'SET'],
    ['select 1; /* x */ listen jobs', 'LISTEN'],
    // set_config() with is_local false (or not known to be true) is a session SET
    ["select set_config('search_path', 'tenant_7', false)", 'set_config()'],
    ["SELECT set_config('search_path', $1, $2)", 'set_config()'],
    ["select set_config('a.b', concat('x', 'y'), (1 = 0))", 'set_config()'],
    // a temporary object outlives its transaction unless it is a table dropped at commit
    ['create temp table scratch (id int)', 'temporary table'],
    ['CREATE TEMPORARY TABLE scratch AS SELECT 1 AS id', 'temporary table'],
    ['create local temp unlogged table t (id int)', 'temporary table'],
    ['create temp table t (id int) on commit delete rows', 'temporary table'],
    ['create temp table t (id int) on commit preserve rows', 'temporary table'],
    ['create temp table a (id int) on commit drop; create temp table b (id int)', 'temporary table'],
    ['create or replace temp view v as select 1', 'temporary view'],
    ['create temporary sequence s', 'temporary sequence'],
    ['select 1 as id into temp scratch', 'temporary table'],
    ['SELECT * INTO TEMPORARY TABLE copy FROM accounts', 'temporary table'],
    // found by review: a temporary object named through pg_temp, inside a DO block, after EXPLAIN ANALYZE,
    // in a parenthesised or WITH select, or a quoted column that reads like the clause
    ['create table pg_temp.x (id int)', 'pg_temp'],
    ['create view pg_temp.v as select 1', 'pg_temp'],
    ['create sequence "pg_temp".s', 'pg_temp'],
    ['insert into pg_temp.x values (1)', 'pg_temp'],
    ['do $$ begin create temp table x (id int); end $$', 'temporary table'],
    ['explain analyze create temp table x as select 1', 'temporary table'],
    ['(select 1 as id into temp y)', 'temporary table'],
    ['with s as (select 1 as id) select * into temp y from s', 'temporary table'],
    ['create temp table x ("on commit drop" int)', 'temporary table'],
    ["load 'auto_explain'", 'LOAD'],
  ])('a session statement is recognised: %s', (text, what) => {
    expect(sessionStatement(text)).toContain(what)
  })

  it.each([
    'SET LOCAL search_path TO app',
    'set transaction isolation level serializable',
    'SET CONSTRAINTS ALL DEFERRED',
    'select pg_advisory_xact_lock(1)',
    'select pg_try_advisory_xact_lock(1)',
    'select pg_advisory_unlock_all()',
    "insert into settings (name) values ('set')",
    'declare c cursor for select 1',
    'BEGIN READ ONLY',
    // the words in a literal or a comment are data, not statements
    "insert into notes values (1, 'a; set b')",
    "insert into notes values (2, 'calls pg_advisory_lock(1)')",
    'select 1 -- ; set search_path = x\n',
    'select /* pg_advisory_lock(1) */ 1',
    "select set_config('statement_timeout', '5s', true)",
    "select set_config('a.b', 'c, d', TRUE) as v",
    'create temp table scratch (id int) on commit drop',
    'CREATE TEMPORARY TABLE scratch ON COMMIT DROP AS SELECT 1 AS id',
    'create table temp (id int)',
    'select temp from readings',
    'select x into strict y from t',
    "insert into notes values ('create temp table x (id int)')",
    'select 1 as "into temp"',
    'insert into temp values (1)',
    'insert into temporary (id) select 1',
    'select * from temp_readings',
    'select x into temp_var from t',
  ])('a transaction-scoped statement is not: %s', (text) => {
    expect(sessionStatement(text)).toBeUndefined()
  })
})
