import { DatabaseConfig, sql, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, findPgBouncer, startPgBouncer, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection, uniqueAppName } from './helpers'

// The row parsers read values only in the output formats the pool sets (DateStyle ISO, IntervalStyle
// postgres, extra_float_digits 3): a database or role default, a SET in a lease, a value beyond a JS
// type's range never changes what is read silently.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>
let name: string

beforeAll(async () => {
  db = await createTestDatabase()
  name = await admin(db.url, async (c) => (await c.query<{ n: string }>('select current_database() as n')).rows[0]!.n)
  // what the server would otherwise write: SQL dates, 15-digit floats, sql_standard intervals
  await admin(db.url, async (c) => {
    await c.query(`alter database "${name}" set datestyle = 'SQL, DMY'`)
    await c.query(`alter database "${name}" set extra_float_digits = 0`)
    await c.query(`alter database "${name}" set intervalstyle = 'sql_standard'`)
  })
  pool = poolOn(db.url, { max: 1, min: 0 })
  await pool.query('create table m (at timestamptz not null, x float8 not null, dur interval not null, d date, ts timestamp)')
}, 120_000)

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await db?.drop()
}, 60_000)

const at = new Date('2024-03-01T00:30:00.123Z')

describe('database settings for DateStyle, extra_float_digits, IntervalStyle change nothing read', () => {
  it('query, stream and arrays read exact values (they read null, 0.3, 1152921504606850000 and {})', async () => {
    await pool.query(sql`insert into m values (${at}, ${0.1 + 0.2}, '1 day 2 hours', '2024-03-01', '2024-03-01 12:00:00.5')`)
    const expected = { at, x: 0.1 + 0.2, dur: { days: 1, hours: 2 }, d: '2024-03-01', ts: '2024-03-01 12:00:00.5' }
    const { rows } = await pool.query('select at, x, dur, d, ts from m')
    expect(rows).toEqual([expected])
    expect((await pool.query(sql`select ${2 ** 60}::float8 as v, array[${0.1 + 0.2}::float8] as a`)).rows).toEqual([
      { v: 2 ** 60, a: [0.1 + 0.2] },
    ])
    const streamed: unknown[] = []
    for await (const row of pool.stream('select at, x, dur, d, ts from m')) streamed.push(row)
    expect(streamed).toEqual([expected])
    expect((await pool.query('select array[at] as a from m')).rows).toEqual([{ a: [at] }])
    await pool.query('truncate m')
  })
})

describe("the server's input semantics are kept (review r14d)", () => {
  it('a DMY database default reads 03/04/2024 as 3 April and a sql_standard one -1 2:00:00 as -26 h, as plain pg does, after any reset too', async () => {
    const write = async (src: string, p: DatabasePool<PostgresConnection>): Promise<void> => {
      await p.query(sql`insert into ev values (${src}, ${'03/04/2024'}, ${'-1 2:00:00'})`)
    }
    await pool.query('create table ev (src text, d date, i interval)')
    await admin(db.url, (c) => c.query(`insert into ev values ('pg', $1, $2)`, ['03/04/2024', '-1 2:00:00']))
    await write('pool', pool)
    // a fresh pool: its first connection learns the defaults; RESET ALL returns to them
    const fresh = poolOn(db.url, { max: 1, min: 0 })
    try {
      await write('fresh', fresh)
      await fresh.query('reset all')
      await write('reset', fresh)
      expect((await fresh.query(`select current_setting('datestyle') as ds, current_setting('intervalstyle') as ivs`)).rows).toEqual([
        { ds: 'ISO, DMY', ivs: 'sql_standard' },
      ])
    } finally {
      await fresh.close({ timeoutMs: 5_000 })
    }
    const { rows } = await pool.query(`select src, d, i, extract(epoch from i) / 3600 as hours from ev order by src`)
    const same = { d: '2024-04-03', i: { days: -1, hours: -2 } }
    expect(rows.map((r) => ({ ...r, hours: Number(r.hours) }))).toEqual(
      ['fresh', 'pg', 'pool', 'reset'].map((src) => ({ src, ...same, hours: -26 })),
    )
  })
})

describe('a lease that changes the formats', () => {
  it('SET datestyle / intervalstyle: values in the other format are refused naming the column, and the release sets them back', async () => {
    const pid = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    await pool.withConnection(async (conn) => {
      await conn.query(`set datestyle = 'SQL, DMY'`)
      const date = await rejection(conn.query('select 1 as n, now() as t'))
      expect(date.code).toBe('QUERY_FAILED')
      expect(date.detail).toMatchObject({ column: 't', position: 2, type: 'timestamptz', reason: 'format' })
      expect((await rejection(conn.query(`select '2024-03-01'::date as d`))).detail).toMatchObject({ column: 'd', reason: 'format' })
      const streamed = rejection(
        (async () => {
          for await (const row of conn.stream('select now() as t from generate_series(1, 3)')) void row
        })(),
      )
      expect((await streamed).detail).toMatchObject({ column: 't', reason: 'format' })
      await conn.query(`set intervalstyle = 'postgres_verbose'`)
      expect((await rejection(conn.query(`select interval '1 day 2 hours' as i`))).detail).toMatchObject({ column: 'i', type: 'interval' })
      // inside a transaction the refusal aborts it, as a server error would
      await conn.query('begin')
      expect((await rejection(conn.query('select now() as t'))).code).toBe('QUERY_FAILED')
      expect((await rejection(conn.query('select 1 as n'))).sqlState).toBe('25P02')
      await conn.query('rollback')
    })
    // the next borrower (the same session) reads as before
    const { rows } = await pool.query<{ pid: number; ds: string; ivs: string; i: unknown }>(
      `select pg_backend_pid() as pid, current_setting('datestyle') as ds, current_setting('intervalstyle') as ivs, interval '1 day' as i`,
    )
    expect(rows).toEqual([{ pid, ds: 'ISO, DMY', ivs: 'sql_standard', i: { days: 1 } }])
  })

  it('a lease that changes only the input order (ISO, MDY; a function doing it) is set back whole: the next borrower reads 03/04/2024 as 3 April (review r14d)', async () => {
    await pool.query(
      `create or replace function to_mdy() returns text language sql as $$ select set_config('datestyle', 'ISO, MDY', false) $$`,
    )
    for (const change of [`set datestyle = 'ISO, MDY'`, 'select to_mdy()', `set datestyle = 'SQL, MDY'`]) {
      await pool.withConnection(async (conn) => {
        await conn.query(change)
        expect((await conn.query(`select current_setting('datestyle') as ds`)).rows).toEqual([{ ds: expect.stringMatching(/MDY$/) }])
      })
      const { rows } = await pool.query(sql`select ${'03/04/2024'}::date as d, current_setting('datestyle') as ds`)
      expect(rows).toEqual([{ d: '2024-04-03', ds: 'ISO, DMY' }])
    }
  })

  it.each([
    'set extra_float_digits = 0',
    'SET SESSION extra_float_digits TO 0',
    "set local extra_float_digits to '-1'",
    'reset extra_float_digits',
    "select set_config('extra_float_digits', '0', false)",
    'select 1 as n; set extra_float_digits = 1',
  ])('%s is CONFIGURATION before sending (the server does not report it: every later float read rounded)', async (text) => {
    const err = await rejection(pool.query(text))
    expect(err.code).toBe('CONFIGURATION')
    expect(err.detail).toEqual({ setting: 'extra_float_digits' })
    expect((await pool.query(sql`select ${0.1 + 0.2}::float8 as f`)).rows).toEqual([{ f: 0.1 + 0.2 }])
  })

  it('SET extra_float_digits = 3 (the pool value) and SHOW pass', async () => {
    await pool.query('set extra_float_digits = 3')
    expect((await pool.query('show extra_float_digits')).rows).toEqual([{ extra_float_digits: '3' }])
  })
})

describe('values beyond what the JS type holds', () => {
  it('a timestamptz after 275760-09-13 is QUERY_FAILED naming the column (an Invalid Date before), in arrays and streams too', async () => {
    const text = `select '294276-12-31 23:59:59+00'::timestamptz as a`
    expect((await rejection(pool.query(text))).detail).toMatchObject({ column: 'a', type: 'timestamptz', reason: 'out-of-range' })
    const arr = await rejection(pool.query(`select 1 as n, array['275760-09-13 00:00:01+00'::timestamptz] as b`))
    expect(arr.detail).toMatchObject({ column: 'b', position: 2, reason: 'out-of-range' })
    const streamed = rejection(
      (async () => {
        for await (const row of pool.stream(text)) void row
      })(),
    )
    expect((await streamed).detail).toMatchObject({ column: 'a' })
    // the last instant a Date holds, and the escape hatch: the text
    expect(
      (await pool.query(`select '275760-09-13 00:00:00+00'::timestamptz as a, '294276-12-31 23:59:59+00'::timestamptz::text as t`)).rows,
    ).toEqual([{ a: new Date(8.64e15), t: '294276-12-31 23:59:59+00' }])
    // date and timestamp are the server's text: every year, every microsecond
    expect((await pool.query(`select '294276-12-31'::date as d, '294276-12-31 23:59:59.123456'::timestamp as ts`)).rows).toEqual([
      { d: '294276-12-31', ts: '294276-12-31 23:59:59.123456' },
    ])
  })

  it('read past the pool (conn.native.client.query), an unreadable value is a marker that refuses to stand for the value: JSON, strings, arithmetic and binding it throw', async () => {
    // the marker was a plain object there: JSON.stringify(row) wrote {"type":"timestamptz",...} where
    // the value was, and node-postgres bound it as that JSON, so it could be written back silently
    await pool.query('create temp table copy_back (j jsonb, t text)')
    await pool.withConnection(async (conn) => {
      const { rows } = await conn.native.client.query(`select '294276-12-31 23:59:59+00'::timestamptz as a, '{"n": 1.5e400}'::json as j`)
      const row = rows[0] as { a: object; j: { n: unknown } }
      const misuses: (() => unknown)[] = [
        () => JSON.stringify(row),
        () => `${String(row.a)}`,
        () => (row.a as unknown as number) + 1,
        () => String(row.a),
      ]
      for (const misuse of misuses)
        expect(misuse).toThrow(expect.objectContaining({ code: 'QUERY_FAILED', detail: { type: 'timestamptz', reason: 'out-of-range' } }))
      await expect(conn.native.client.query('insert into copy_back (t) values ($1)', [row.a])).rejects.toMatchObject({
        code: 'QUERY_FAILED',
      })
      // a json number beyond a double is read exactly (a bigint), not a marker
      expect(row.j.n).toBe(15n * 10n ** 399n)
    })
    expect((await pool.query('select count(*)::int as n from copy_back')).rows).toEqual([{ n: 0 }])
  })

  it('timestamptz reads to the millisecond (a Date cannot hold microseconds: truncated, documented); ::text keeps them', async () => {
    const { rows } = await pool.query<{ a: Date; t: string }>(
      `select '2024-03-01 00:30:00.123999+00'::timestamptz as a, '2024-03-01 00:30:00.123999+00'::timestamptz::text as t`,
    )
    expect(rows[0]!.a.toISOString()).toBe('2024-03-01T00:30:00.123Z')
    expect(rows[0]!.t).toBe('2024-03-01 00:30:00.123999+00')
  })
})

describe("timestamptz: 'string'", () => {
  it('reads the server text, exact: microseconds, years beyond a Date, infinity, arrays, streams, every TimeZone', async () => {
    const strings = poolOn(
      db.url,
      { max: 1, min: 0, name: 'tz-string' },
      { timestamptz: 'string', sessionInit: "SET TimeZone TO 'Asia/Kolkata'" },
    )
    try {
      const text = `select '2024-03-01 00:30:00.123999+00'::timestamptz as a, '294276-12-31 23:59:59.999999+00'::timestamptz as far,
        'infinity'::timestamptz as inf, array['2024-03-01 00:00:00.000001+00'::timestamptz, null] as arr`
      const expected = {
        a: '2024-03-01 06:00:00.123999+05:30',
        far: '294277-01-01 05:29:59.999999+05:30',
        inf: 'infinity',
        arr: ['2024-03-01 05:30:00.000001+05:30', null],
      }
      expect((await strings.query(text)).rows).toEqual([expected])
      const streamed: unknown[] = []
      for await (const row of strings.stream(text)) streamed.push(row)
      expect(streamed).toEqual([expected])
      // written back as read, the same instant to the microsecond
      expect(
        (await strings.query(sql`select ${expected.a}::timestamptz = '2024-03-01 00:30:00.123999+00'::timestamptz as same`)).rows,
      ).toEqual([{ same: true }])
      // a DateStyle another statement set is still refused, never read as another instant
      await strings.withConnection(async (conn) => {
        await conn.query("SET datestyle = 'SQL, DMY'")
        expect((await rejection(conn.query(text))).detail).toMatchObject({ column: 'a', type: 'timestamptz', reason: 'format' })
      })
    } finally {
      await strings.close({ timeoutMs: 5_000 })
    }
  })

  it('a mode that is not date or string is CONFIGURATION naming postgres.timestamptz', () => {
    for (const bad of ['Date', 'number', true, null])
      expect(() => poolOn(db.url, {}, { timestamptz: bad as never })).toThrow(
        expect.objectContaining({ code: 'CONFIGURATION', message: expect.stringContaining('postgres.timestamptz') }),
      )
  })
})

describe('json read exactly', () => {
  it('duplicate keys, exponents and 1e400 keep every integer exact (they read rounded, or Infinity in json and a bigint in jsonb)', async () => {
    const { rows } = await pool.query(`select
      '{"id": 1, "id": 12345678901234567890}'::json as dup,
      '{"other": {"a": 1, "a": 2}, "id": 9007199254740993}'::json as dup2,
      '{"id": 9007199254740993e0}'::json as expo,
      '{"n": 1e400}'::json as huge_json, '{"n": 1e400}'::jsonb as huge_jsonb`)
    expect(rows).toEqual([
      {
        dup: { id: 12345678901234567890n },
        dup2: { other: { a: 2 }, id: 9007199254740993n },
        expo: { id: 9007199254740993n },
        huge_json: { n: 10n ** 400n },
        huge_jsonb: { n: 10n ** 400n },
      },
    ])
    const err = await rejection(pool.query(`select '{"x": 1e-400}'::json as doc`))
    expect(err.detail).toMatchObject({ column: 'doc', type: 'json', reason: 'out-of-range' })
  })
})

const bouncerSuite = findPgBouncer() !== undefined || process.env.CI ? describe : describe.skip

bouncerSuite('behind PgBouncer', () => {
  const through = async (
    mode: 'session' | 'transaction',
    declared: 'session' | 'transaction' | undefined,
    fn: (p: DatabasePool<PostgresConnection>) => Promise<void>,
  ) => {
    const bouncer = await startPgBouncer(db.url, { poolMode: mode, poolSize: 2 })
    const p = createPostgresPool(
      DatabaseConfig.fromUrl(bouncer.urlFor(db.url), { sslMode: 'disable', applicationName: uniqueAppName('fmt') }),
      { min: 0, max: 1, name: 'fmt' },
      declared === undefined ? {} : { pgbouncer: declared },
    )
    try {
      await fn(p)
    } finally {
      await p.close({ timeoutMs: 5_000 })
      await bouncer.stop()
    }
  }

  it('session mode (declared or not): DateStyle at startup, IntervalStyle and extra_float_digits SET after connecting', async () => {
    for (const declared of ['session', undefined] as const) {
      await through('session', declared, async (p) => {
        const { rows } = await p.query(
          sql`select now() - now() as z, ${0.1 + 0.2}::float8 as f, interval '1 day' as i, current_date - current_date as n`,
        )
        expect(rows).toEqual([{ z: {}, f: 0.1 + 0.2, i: { days: 1 }, n: 0 }])
        // the database's DMY input order and sql_standard interval input are kept (review r14d)
        expect((await p.query(sql`select ${'03/04/2024'}::date as d, ${'-1 2:00:00'}::interval as i`)).rows).toEqual([
          { d: '2024-04-03', i: { days: -1, hours: -2 } },
        ])
        expect((await p.query(`select pg_typeof(now())::text as t, now() is not null as ok`)).rows).toEqual([
          { t: 'timestamp with time zone', ok: true },
        ])
        const read = await p.query<{ at: Date }>(sql`select ${at}::timestamptz as at`)
        expect(read.rows[0]!.at).toEqual(at)
      })
    }
  }, 60_000)

  it('transaction mode: a server default that cannot be set is CONFIGURATION naming the setting, at connect', async () => {
    await through('transaction', 'transaction', async (p) => {
      const err = await rejection(p.query('select 1 as n'))
      expect(err.code).toBe('CONFIGURATION')
      // sql_standard (the database's IntervalStyle) is read exactly; extra_float_digits = 0 cannot be
      expect(err.detail).toMatchObject({ setting: 'extra_float_digits', value: 0 })
    })
  }, 60_000)
})
