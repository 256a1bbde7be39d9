import { DatabaseConfig, PoolFactory, sql, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// Conformance extras for Postgres: type decisions, session settings, transactions, error codes.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { max: 4, min: 0 })
}, 120_000)

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await db?.drop()
}, 60_000)

describe('types', () => {
  it('int8 is a bigint by default (exact beyond 2^53), count(*) too; bigint parameters round-trip', async () => {
    const big = 9007199254740993n
    const { rows } = await pool.query<{ v: bigint; c: bigint; arr: bigint[] }>(
      sql`select ${big}::int8 as v, count(*) as c, array[${big}::int8, null, 1::int8] as arr from (values (1), (2)) t`,
    )
    expect(rows[0]?.v).toBe(big)
    expect(rows[0]?.c).toBe(2n)
    expect(rows[0]?.arr).toEqual([big, null, 1n])
  })

  it("int8: 'string' gives pg's text, 'number' a number within ±(2^53−1) and an exact bigint beyond (never rounded, never an error)", async () => {
    const asString = poolOn(db.url, { min: 0 }, { int8: 'string' })
    const asNumber = poolOn(db.url, { min: 0 }, { int8: 'number' })
    try {
      expect((await asString.query('select 9007199254740993::int8 as v')).rows[0]).toEqual({ v: '9007199254740993' })
      expect((await asNumber.query('select 42::int8 as v')).rows[0]).toEqual({ v: 42 })
      const { rows } = await asNumber.query(
        `select 9007199254740991::int8 as max_safe, -9007199254740991::int8 as min_safe, 9007199254740992::int8 as above,
          -9007199254740993::int8 as below, 9223372036854775807::int8 as top, array[1, 9007199254740993]::int8[] as arr`,
      )
      expect(rows[0]).toEqual({
        max_safe: 9007199254740991,
        min_safe: -9007199254740991,
        above: 9007199254740992n,
        below: -9007199254740993n,
        top: 9223372036854775807n,
        arr: [1, 9007199254740993n],
      })
    } finally {
      await Promise.all([asString.close(), asNumber.close()])
    }
  })

  it('numeric is an exact string; int2/int4/float are numbers; bool is boolean', async () => {
    const { rows } = await pool.query(
      'select 12345678901234567890.123456789::numeric as n, 1::int2 as s, 2::int4 as i, 1.5::float8 as f, true as b',
    )
    expect(rows[0]).toEqual({ n: '12345678901234567890.123456789', s: 1, i: 2, f: 1.5, b: true })
  })

  it('timestamptz is a Date (an instant); timestamp and date are the server text, never shifted by the process time zone', async () => {
    const instant = new Date('2024-03-01T12:34:56.789Z')
    const { rows } = await pool.query<{ tz: Date; ts: string; d: string; ds: string[] }>(
      sql`select ${instant}::timestamptz as tz, '2024-03-01 12:34:56.789'::timestamp as ts, '2024-03-01'::date as d, array['2024-01-02'::date, null] as ds`,
    )
    expect(rows[0]?.tz).toBeInstanceOf(Date)
    expect(rows[0]?.tz.toISOString()).toBe('2024-03-01T12:34:56.789Z')
    expect(rows[0]?.ts).toBe('2024-03-01 12:34:56.789')
    expect(rows[0]?.d).toBe('2024-03-01')
    expect(rows[0]?.ds).toEqual(['2024-01-02', null])
  })

  it('json and jsonb are parsed; objects as parameters are sent as JSON; bytea is a Buffer', async () => {
    const doc = { a: 1, nested: { list: [1, 'two', null] } }
    const { rows } = await pool.query<{ j: unknown; jb: unknown; by: Buffer }>(
      sql`select ${JSON.stringify(doc)}::json as j, ${doc}::jsonb as jb, ${Buffer.from([1, 2, 255])}::bytea as by`,
    )
    expect(rows[0]?.j).toEqual(doc)
    expect(rows[0]?.jb).toEqual(doc)
    expect(Buffer.isBuffer(rows[0]?.by)).toBe(true)
    expect([...rows[0]!.by]).toEqual([1, 2, 255])
  })

  it('json and jsonb read an integer JS would round as the exact bigint, and keep numbers JS wrote (arrays of them too)', async () => {
    const text = '{"id": 12345678901234567890, "neg": -9007199254740993, "s": "98765432109876543210", "ok": 42}'
    const written = { big: 2 ** 60, huge: 1e21, half: 0.5 }
    for (const prepare of [true, false]) {
      const p = poolOn(db.url, { max: 1, min: 0 }, { prepare })
      try {
        const { rows } = await p.query<{ j: unknown; jb: unknown; arr: unknown; w: unknown }>(
          sql`select ${text}::json as j, ${text}::jsonb as jb, array[${text}::jsonb, '7'::jsonb] as arr, ${written}::jsonb as w`,
        )
        const exact = { id: 12345678901234567890n, neg: -9007199254740993n, s: '98765432109876543210', ok: 42 }
        // JSON.parse would give id 12345678901234567000 and neg -9007199254740992: changed silently
        expect(rows[0]?.j).toEqual(exact)
        expect(rows[0]?.jb).toEqual(exact)
        expect(rows[0]?.arr).toEqual([exact, 7])
        // what JS wrote reads back as the same doubles (jsonb spells 1e21 in full digits)
        expect(rows[0]?.w).toEqual(written)
      } finally {
        await p.close()
      }
    }
  })

  it('returns the last result of a multi-statement text, and rowCount for writes', async () => {
    await pool.query('create table if not exists multi (id int)')
    const r = await pool.query('insert into multi values (1); insert into multi values (2), (3)')
    expect(r.rowCount).toBe(2)
    expect((await pool.query('update multi set id = id + 10')).rowCount).toBe(3)
    expect((await pool.query('select 1 as a; select 2 as b')).rows).toEqual([{ b: 2 }])
  })
})

describe('session settings', () => {
  it('application_name, statement_timeout, idle_in_transaction_session_timeout and lock_timeout come from the config', async () => {
    const config = DatabaseConfig.fromUrl(db.url, {
      applicationName: 'ledger-api',
      statementTimeoutMs: 1_500,
      idleInTransactionTimeoutMs: 60_000,
      lockTimeoutMs: 250,
      sslMode: 'disable',
    })
    const p = createPostgresPool(config, { min: 0 })
    try {
      const { rows } = await p.query(
        "select current_setting('application_name') as app, current_setting('statement_timeout') as st, current_setting('idle_in_transaction_session_timeout') as iit, current_setting('lock_timeout') as lt",
      )
      expect(rows[0]).toEqual({ app: 'ledger-api', st: '1500ms', iit: '1min', lt: '250ms' })
      // the server enforces statement_timeout: SQLSTATE 57014
      const err = await rejection(p.query('select pg_sleep(5)'))
      expect(err.code).toBe('QUERY_CANCELLED')
      expect(err.sqlState).toBe('57014')
    } finally {
      await p.close()
    }
  }, 20_000)

  it('lock_timeout expiry is BUSY (retryable)', async () => {
    const p = createPostgresPool(DatabaseConfig.fromUrl(db.url, { lockTimeoutMs: 200, sslMode: 'disable' }), { min: 0, max: 2 })
    try {
      await p.query('create table if not exists locked (id int primary key)')
      await p.query('insert into locked values (1) on conflict do nothing')
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      let locked!: () => void
      const isLocked = new Promise<void>((resolve) => (locked = resolve))
      const holder = p.transaction(async (tx) => {
        await tx.query('select * from locked where id = 1 for update')
        locked()
        await gate
      })
      await isLocked
      const err = await rejection(p.query('update locked set id = 1 where id = 1'))
      expect(err.code).toBe('BUSY')
      expect(err.sqlState).toBe('55P03')
      expect(err.retryable).toBe(true)
      release()
      await holder
    } finally {
      await p.close()
    }
  })

  it('sessionInit runs on every new connection', async () => {
    const p = poolOn(db.url, { min: 0, max: 2 }, { sessionInit: ["SET search_path TO 'custom', public", "SET TIME ZONE 'Asia/Tokyo'"] })
    try {
      const rows = await Promise.all(
        Array.from({ length: 2 }, () =>
          p.query("select current_setting('search_path') as sp, current_setting('TimeZone') as tz, pg_sleep(0.05)"),
        ),
      )
      for (const r of rows) expect(r.rows[0]).toMatchObject({ sp: 'custom, public', tz: 'Asia/Tokyo' })
    } finally {
      await p.close()
    }
  })

  it('a failing sessionInit fails the connect with its SQLSTATE', async () => {
    const p = poolOn(db.url, { min: 0, acquireTimeoutMs: 5_000 }, { sessionInit: 'SET no_such_setting = 1' })
    try {
      const err = await rejection(p.query('select 1'))
      expect(err.message).toContain('session init')
      expect(err.sqlState).toBe('42704')
    } finally {
      await p.close()
    }
  })

  it('PoolFactory.create reaches this package and honours URL settings', async () => {
    const url = new URL(db.url)
    url.searchParams.set('application_name', 'from-url')
    url.searchParams.set('sslmode', 'disable')
    const p = await PoolFactory.create(url.toString(), { min: 0 })
    try {
      expect(p.backend).toBe('postgres')
      expect(p.target).toBe(`postgres://postgres@${url.hostname}:${url.port}/${db.name}`)
      expect((await p.query("select current_setting('application_name') as a")).rows).toEqual([{ a: 'from-url' }])
    } finally {
      await p.close()
    }
  })
})

describe('transactions', () => {
  it.each([
    [{ isolation: 'read committed' as const }, 'read committed', 'off', 'off'],
    [{ isolation: 'repeatable read' as const }, 'repeatable read', 'off', 'off'],
    [{ isolation: 'serializable' as const, readOnly: true, deferrable: true }, 'serializable', 'on', 'on'],
    [{ readOnly: true }, 'read committed', 'on', 'off'],
  ])('%j begins with the requested settings', async (options, isolation, readOnly, deferrable) => {
    const seen = await pool.transaction(
      async (tx) =>
        (
          await tx.query(
            "select current_setting('transaction_isolation') as i, current_setting('transaction_read_only') as r, current_setting('transaction_deferrable') as d",
          )
        ).rows[0],
      options,
    )
    expect(seen).toEqual({ i: isolation, r: readOnly, d: deferrable })
  })

  it('a write in a read-only transaction is READ_ONLY', async () => {
    await pool.query('create table if not exists ro (id int)')
    const err = await rejection(pool.transaction((tx) => tx.query('insert into ro values (1)'), { readOnly: true }))
    expect(err.code).toBe('READ_ONLY')
    expect(err.sqlState).toBe('25006')
  })

  it('deferrable without serializable read only is refused before anything runs', async () => {
    const err = await rejection(pool.transaction(async () => 'never', { deferrable: true }))
    expect(err.code).toBe('CONFIGURATION')
  })

  it('a deadlock is DEADLOCK (retryable) and replays with retry', async () => {
    await pool.query('drop table if exists dl; create table dl (id int primary key, v int); insert into dl values (1, 0), (2, 0)')
    let attempts = 0
    const seen: { code: string; retryable: boolean; sqlState?: string }[] = []
    let firstBoth!: () => void
    let arrivals = 0
    const both = new Promise<void>((resolve) => (firstBoth = resolve))
    const run = (a: number, b: number) =>
      pool.transaction(
        async (tx) => {
          attempts++
          await tx.query(sql`update dl set v = v + 1 where id = ${a}`)
          if (++arrivals === 2) firstBoth()
          await both
          await tx.query(sql`update dl set v = v + 1 where id = ${b}`)
        },
        {
          retry: {
            maxAttempts: 5,
            baseDelayMs: 1,
            retryOn: (e) => {
              seen.push({ code: e.code, retryable: e.retryable, sqlState: e.sqlState })
              return e.code === 'DEADLOCK'
            },
          },
        },
      )
    await Promise.all([run(1, 2), run(2, 1)])
    // one of the two is chosen as the deadlock victim and replayed (under load, rarely, both are in turn)
    expect(attempts).toBe(2 + seen.length)
    expect(seen.length).toBeGreaterThanOrEqual(1)
    for (const error of seen) expect(error).toEqual({ code: 'DEADLOCK', retryable: true, sqlState: '40P01' })
    expect((await pool.query<{ s: bigint }>('select sum(v)::int8 as s from dl')).rows[0]?.s).toBe(4n)
  }, 20_000)
})
