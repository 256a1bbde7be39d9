import { resetsSession } from '../../src/postgres-session-restore'

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
  ])('%s: yes', (text) => {
    expect(resetsSession(text)).toBe(true)
  })

  it.each([
    'select 1',
    'insert into items values ($1)',
    'SET search_path TO public',
    'SET ROLE app',
    'SET SESSION AUTHORIZATION app',
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
