import { resetsSession } from '../../src/postgres-session-restore'
import { startupParameterOf } from '../../src/postgres-session-startup'

describe('resetsSession: statements that put settings back to their defaults (the pool setup runs again on release)', () => {
  it.each([
    'DISCARD ALL',
    'discard   all;',
    'RESET ALL',
    'reset search_path',
    'RESET ROLE',
    'reset session authorization',
    'SET search_path TO DEFAULT',
    'set statement_timeout = default',
    'SET SESSION lock_timeout TO DEFAULT',
    'SET ROLE NONE',
    'set session role none',
    'SET SESSION AUTHORIZATION DEFAULT',
    'select 1; reset all',
    'do $$ begin reset all; end $$',
    "do $$ begin execute 'discard all'; end $$",
    // missed before (review r12b restore-miss): a NULL set_config resets, TIME ZONE / NAMES forms,
    // a comment inside, SESSION AUTHORIZATION to a user (drops a SET ROLE)
    "select set_config('search_path', NULL, false)",
    'select set_config($1, $2, false)',
    'SET TIME ZONE DEFAULT',
    'set session time zone local',
    'SET NAMES DEFAULT',
    'SET search_path /*x*/ TO DEFAULT',
    'SET search_path -- why\n TO DEFAULT',
    'SET SESSION AUTHORIZATION app',
    'set session session authorization postgres',
  ])('%s: yes', (text) => {
    expect(resetsSession(text)).toBe(true)
  })

  it.each([
    'select 1',
    'insert into items values ($1)',
    'SET search_path TO public',
    'SET ROLE app',
    "SET TIME ZONE 'UTC'",
    'DISCARD PLANS',
    'DISCARD TEMP',
    'DISCARD SEQUENCES',
    'SET LOCAL statement_timeout TO DEFAULT',
    'alter table t alter column c set default 0',
    'select presets from t',
  ])('%s: no', (text) => {
    expect(resetsSession(text)).toBe(false)
  })
})

describe('startupParameterOf: sessionInit statements given as startup parameters (a reset returns to them)', () => {
  it.each([
    ['SET search_path TO ledger, public', { name: 'search_path', value: 'ledger, public' }],
    ["SET TIME ZONE 'Pacific/Auckland'", { name: 'TimeZone', value: 'Pacific/Auckland' }],
    ["set session statement_timeout = '5s';", { name: 'statement_timeout', value: '5s' }],
    ['SET lock_timeout=5000', { name: 'lock_timeout', value: '5000' }],
    ['SET search_path TO Ledger', { name: 'search_path', value: 'ledger' }],
    ["SET app.tenant TO 'it''s, a b'", { name: 'app.tenant', value: "it's, a b" }],
    // review r14d: each element of a GUC_LIST_QUOTE setting as the SET writes it (quote_identifier),
    // not the raw text a startup value reads unquoted and lower-cased ('Tenant_A' became tenant_a)
    ["SET search_path TO 'Tenant_A', public", { name: 'search_path', value: '"Tenant_A", public' }],
    ["SET search_path = 'a,b'", { name: 'search_path', value: '"a,b"' }],
    ["SET search_path = '$user', 'x\"y', Public", { name: 'search_path', value: '"$user", "x""y", public' }],
    ["SET search_path = ''", { name: 'search_path', value: '""' }],
    ["SET temp_tablespaces = 'Fast'", { name: 'temp_tablespaces', value: '"Fast"' }],
    ["SET app.list = 'Tenant_A', 'a,b'", { name: 'app.list', value: 'Tenant_A, a,b' }],
    ['SET TIME ZONE -5', { name: 'TimeZone', value: '-5' }],
  ])('%s: %j', (text, expected) => {
    expect(startupParameterOf(text)).toEqual(expected)
  })

  it.each([
    'SET search_path TO DEFAULT',
    'SET TIME ZONE LOCAL',
    'SET ROLE app',
    'SET role TO app',
    'SET SESSION AUTHORIZATION app',
    'SET search_path /*x*/ TO a',
    "SET x.y TO 'a\\b'",
    "SET x.y TO E'a'",
    'SET LOCAL lock_timeout TO 1',
    'SET search_path TO "Ledger"',
    'SET lock_timeout TO 1; SET statement_timeout TO 2',
    "select set_config('search_path', 'ledger', false)",
    'SET DateStyle TO ISO',
    'SET client_encoding TO LATIN1',
    'SET default_transaction_read_only = on',
  ])('%s: stays a statement', (text) => {
    expect(startupParameterOf(text)).toBeUndefined()
  })
})
