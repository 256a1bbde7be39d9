import { DatabaseError } from '@dbpool/core'
import { ReadGuard, UnreadableValue } from '../../src/postgres-read-guard'
import {
  checkFloatDigits,
  floatDigitsChangeInTransactionMode,
  mayChangeFloatDigits,
  sessionInitFormatProblem,
  readFormatProblem,
  readFormatsOf,
  readFormatStartup,
  restoreReadFormatsSql,
} from '../../src/postgres-read-formats'
import { createTypeParsers } from '../../src/postgres-types'

const parser = (guard: ReadGuard, oid: number) => createTypeParsers('bigint', guard).getTypeParser(oid) as (text: string) => unknown

describe('type parsers read ISO DateStyle and postgres IntervalStyle only; others are unreadable, never another value', () => {
  it.each<[string, number, string, unknown]>([
    ['timestamptz', 1184, '2024-03-01 00:30:00.123456+00', new Date('2024-03-01T00:30:00.123Z')],
    ['timestamptz with a seconds offset', 1184, '2024-03-01 00:30:00+05:53:28', new Date('2024-02-29T18:36:32Z')],
    ['timestamptz, the last instant of a Date', 1184, '275760-09-13 00:00:00+00', new Date(8.64e15)],
    ['timestamptz infinity (pg: a number)', 1184, 'infinity', Infinity],
    ['date', 1082, '0044-03-15 BC', '0044-03-15 BC'],
    ['timestamp', 1114, '294276-12-31 23:59:59.123456', '294276-12-31 23:59:59.123456'],
    ['interval', 1186, '1 year -2 mons +3 days 04:05:06', { years: 1, months: -2, days: 3, hours: 4, minutes: 5, seconds: 6 }],
    // sql_standard, kept when it is the server's default (it changes how input is read): the same objects
    ['interval in sql_standard', 1186, '1 2:00:00', { days: 1, hours: 2 }],
    ['interval in sql_standard, one sign for all', 1186, '-1 2:00:00', { days: -1, hours: -2 }],
    [
      'interval in sql_standard, mixed',
      1186,
      '+0-10 +3 -4:05:06.5',
      { months: 10, days: 3, hours: -4, minutes: -5, seconds: -6, milliseconds: -500 },
    ],
    ['interval in sql_standard, year-month', 1186, '-1-2', { years: -1, months: -2 }],
    ['interval in sql_standard, zero', 1186, '0', {}],
    ['interval in sql_standard, time', 1186, '-0:00:01.5', { seconds: -1, milliseconds: -500 }],
  ])('%s: %s', (_what, oid, text, expected) => {
    const guard = new ReadGuard()
    expect(parser(guard, oid)(text)).toEqual(expected)
    expect(guard.count).toBe(0)
  })

  it.each<[string, number, string, string]>([
    ['timestamptz after a Date', 1184, '275760-09-13 00:00:01+00', 'out-of-range'],
    ['timestamptz in DateStyle SQL', 1184, '01/03/2024 00:30:00.123 UTC', 'format'],
    ['timestamptz in DateStyle Postgres', 1184, 'Fri Mar 01 00:30:00.123 2024 UTC', 'format'],
    ['timestamptz in DateStyle German', 1184, '01.03.2024 00:30:00.123 UTC', 'format'],
    ['date in DateStyle SQL', 1082, '01/03/2024', 'format'],
    ['timestamp in DateStyle SQL', 1114, '01/03/2024 00:30:00', 'format'],
    ['interval in iso_8601', 1186, 'P1DT2H', 'format'],
    ['interval in postgres_verbose', 1186, '@ 1 day 2 hours', 'format'],
    ['an infinite interval (PostgreSQL 17)', 1186, 'infinity', 'out-of-range'],
  ])('%s is unreadable (%s)', (_what, oid, text, reason) => {
    const guard = new ReadGuard()
    expect(parser(guard, oid)(text)).toEqual(new UnreadableValue(expect.any(String) as never, reason as never))
    expect(guard.count).toBe(1)
  })

  it('arrays of them too', () => {
    const guard = new ReadGuard()
    expect(parser(guard, 1185)('{"2024-03-01 00:30:00+00","275760-09-14 00:00:00+00"}')).toEqual([
      new Date('2024-03-01T00:30:00Z'),
      expect.any(UnreadableValue),
    ])
    expect(guard.count).toBe(1)
  })
})

describe('checkFloatDigits', () => {
  it.each([
    'set extra_float_digits = 0',
    'SET extra_float_digits TO 2',
    'set session extra_float_digits=0',
    "set local extra_float_digits to '0'",
    'reset extra_float_digits',
    "select set_config('extra_float_digits', '0', false)",
    'set extra_float_digits = 3, x',
  ])('refuses %j with CONFIGURATION', (text) => {
    expect(() => checkFloatDigits(text)).toThrow(DatabaseError)
  })

  it.each([
    'set extra_float_digits = 3',
    "SET extra_float_digits TO '3';",
    'show extra_float_digits',
    "select current_setting('extra_float_digits')",
    'alter role app set extra_float_digits = 0',
    'select 1',
  ])('passes %j', (text) => {
    expect(() => checkFloatDigits(text)).not.toThrow()
  })
})

describe('readFormatProblem (PgBouncer transaction mode)', () => {
  it('names the setting that does not fit', () => {
    expect(readFormatProblem({ interval_style: 'postgres', extra_float_digits: 1, version: 150000 })).toBeUndefined()
    expect(readFormatProblem({ interval_style: 'sql_standard', extra_float_digits: 1, version: 150000 })).toBeUndefined()
    expect(readFormatProblem({ interval_style: 'iso_8601', extra_float_digits: 1, version: 150000 })?.detail).toMatchObject({
      setting: 'IntervalStyle',
    })
    expect(readFormatProblem({ interval_style: 'postgres', extra_float_digits: 0, version: 150000 })?.detail).toMatchObject({
      setting: 'extra_float_digits',
      value: 0,
    })
    expect(readFormatProblem({ interval_style: 'postgres', extra_float_digits: 2, version: 110000 })?.code).toBe('CONFIGURATION')
  })
})

describe('extra_float_digits changes the text check misses (review r13a)', () => {
  it('mayChangeFloatDigits: texts naming it, set_config, pg_settings, and SET/RESET/DISCARD/DO statements', () => {
    for (const text of [
      'select set_config($1, $2, false)',
      "update pg_settings set setting = '0' where name = 'extra_float_digits'",
      'set "extra_float_digits" = 0',
      '/* c */ SET U&"extra\\005ffloat_digits" = 0',
      'select 1; -- x\n reset all',
      'discard all',
      "do $$ begin execute 'set ' || 'x' ; end $$",
      // review r14d: a statement PREPAREd earlier runs a text this one does not show
      "EXECUTE setcfg('extra_float_digits', '0')",
      '/* c */ execute p',
      // review r17i: EXECUTE anywhere outside literals, comments and quoted names
      "EXPLAIN ANALYZE EXECUTE p('extra_' || 'float_digits', '0')",
      'explain (analyze) /* x */ execute p',
      'CREATE TABLE t AS EXECUTE p(1)',
      'create temp table t as\n  execute p',
      "select 'a'; explain execute p",
      "create function f() returns void language plpgsql as $$ begin execute 'x'; end $$",
    ])
      expect(mayChangeFloatDigits(text)).toBe(true)
    for (const text of [
      'select 1',
      'update t set x = 1 where id = $1',
      "insert into t values ('reset')",
      'select executed_at, re_execute, execute_count from jobs',
      "select 'execute p' as x",
      'select 1 /* execute p */',
      'select 1 -- execute p',
      'select "execute" from t',
    ])
      expect(mayChangeFloatDigits(text)).toBe(false)
  })

  it('floatDigitsChangeInTransactionMode: writes refused, reads and other settings pass', () => {
    for (const text of [
      'select set_config($1, $2, false)',
      "select set_config(E'extra_float_digits', '0', false)",
      "update pg_settings set setting = '0' where name = 'extra_float_digits'",
      'set /* x */ extra_float_digits = 0',
      'set U&"extra\\005ffloat_digits" = 0',
    ])
      expect(floatDigitsChangeInTransactionMode(text)).toMatch(/extra_float_digits/)
    for (const text of [
      'select 1',
      'show extra_float_digits',
      "select current_setting('extra_float_digits')",
      "select set_config('application_name', 'x', true)",
      'select name from pg_settings',
    ])
      expect(floatDigitsChangeInTransactionMode(text)).toBeUndefined()
  })
})

describe("the pool's formats keep the server's input semantics (review r14d)", () => {
  it('readFormatsOf: the DateStyle order and a sql_standard IntervalStyle are the server defaults', () => {
    expect(readFormatsOf('SQL, DMY', 'sql_standard')).toEqual({
      DateStyle: 'ISO, DMY',
      IntervalStyle: 'sql_standard',
      extra_float_digits: '3',
    })
    expect(readFormatsOf('German, DMY', 'iso_8601')).toMatchObject({ DateStyle: 'ISO, DMY', IntervalStyle: 'postgres' })
    expect(readFormatsOf('Postgres, YMD', 'postgres_verbose')).toMatchObject({ DateStyle: 'ISO, YMD', IntervalStyle: 'postgres' })
    expect(readFormatsOf(undefined, undefined)).toMatchObject({ DateStyle: 'ISO, MDY', IntervalStyle: 'postgres' })
  })

  it('startup parameters: none of DateStyle / IntervalStyle before the defaults are known; the restore sets the whole DateStyle', () => {
    const formats = readFormatsOf('SQL, DMY', 'postgres')
    expect(readFormatStartup(false, undefined)).toEqual({ extra_float_digits: '3' })
    expect(readFormatStartup(true, undefined)).toEqual({})
    expect(readFormatStartup(false, formats)).toEqual({ DateStyle: 'ISO, DMY', IntervalStyle: 'postgres', extra_float_digits: '3' })
    expect(readFormatStartup(true, formats)).toEqual({ DateStyle: 'ISO, DMY' })
    expect(restoreReadFormatsSql(formats)).toBe(`SET DateStyle = 'ISO, DMY'; SET IntervalStyle = postgres`)
  })
})

describe('sessionInit output styles the parsers cannot read (review r17i)', () => {
  it('sessionInitFormatProblem: a DateStyle output other than ISO, an IntervalStyle other than postgres / sql_standard', () => {
    for (const text of [
      `SET datestyle = 'SQL, DMY'`,
      'set DateStyle to German',
      `SET SESSION datestyle = 'ISO, Postgres'`,
      `select set_config('datestyle', 'Postgres, MDY', false)`,
      `SET search_path = app; SET intervalstyle = 'iso_8601'`,
      'set intervalstyle to postgres_verbose',
    ])
      expect([text, sessionInitFormatProblem(text)]).toEqual([text, expect.objectContaining({ setting: expect.any(String) })])
    for (const text of [
      `SET datestyle = 'ISO, DMY'`,
      'SET datestyle = DMY',
      `SET datestyle = 'SQL, ISO, YMD'`,
      `select set_config('datestyle', 'ISO, DMY', false)`,
      `SET intervalstyle = 'sql_standard'`,
      'set intervalstyle to postgres',
      'SET search_path TO app',
    ])
      expect([text, sessionInitFormatProblem(text)]).toEqual([text, undefined])
  })
})
