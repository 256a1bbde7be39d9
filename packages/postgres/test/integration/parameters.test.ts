import { sql, type DatabasePool } from '@dbpool/core'
import { PostgresConnectionManager, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { withTimeZone } from '../time-zone'
import { poolOn, rejection } from './helpers'

// The parameter contract (contract.md, issue 9) against the real server: what each JS value becomes,
// through every statement path of the manager, and refusals that leave the connection usable.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { max: 2, min: 0 })
  await pool.query('create table instants (tag text, tstz timestamptz, ts timestamp, d date, tsa timestamp[])')
  await pool.query('create table docs (tag text, j json, jb jsonb)')
  await pool.query('create table lists (id int, ids int[], names text[])')
}, 120_000)

afterEach(() => {
  jest.restoreAllMocks()
})

afterAll(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  await db?.drop()
}, 60_000)

describe('Dates are sent as UTC, never in the process time zone', () => {
  const instant = new Date('2024-03-01T00:30:00Z')
  const insert = (tag: string) => sql`insert into instants values (${tag}, ${instant}, ${instant}, ${instant}, ${[instant, null]})`

  it.each(['UTC', 'America/New_York'])(
    'TZ=%s: timestamptz stores the instant, timestamp the UTC wall time, date the UTC date, through every statement path',
    async (tz) => {
      await withTimeZone(tz, async () => {
        expect(new Date(2024, 2, 1).getTimezoneOffset()).toBe(tz === 'UTC' ? 0 : 300) // the zone is in effect
        const shared = jest.spyOn(PostgresConnectionManager.prototype, 'executeShared')
        const guarded = { timeoutMs: 5_000 }
        await pool.query(insert(`${tz} query`))
        await pool.query(insert(`${tz} query with a deadline`), [], guarded)
        await pool.withConnection((conn) => conn.query(insert(`${tz} lease`)))
        await pool.transaction((tx) => tx.query(insert(`${tz} transaction`)))
        // more callers than connections: statements share connections (pg pipeline mode)
        await Promise.all(Array.from({ length: 6 }, (_, i) => pool.query(insert(`${tz} shared ${i}`))))
        expect(shared).toHaveBeenCalled()
      })
      const { rows } = await pool.query<{ tag: string; tstz: Date; ts: string; d: string; tsa: string }>(
        sql`select tag, tstz, ts::text as ts, d::text as d, tsa::text as tsa from instants where tag like ${`${tz} %`} order by tag`,
      )
      expect(rows).toHaveLength(10)
      for (const row of rows) {
        expect({ tag: row.tag, instant: row.tstz.toISOString(), ts: row.ts, d: row.d, tsa: row.tsa }).toEqual({
          tag: row.tag,
          instant: '2024-03-01T00:30:00.000Z',
          ts: '2024-03-01 00:30:00',
          d: '2024-03-01',
          tsa: '{"2024-03-01 00:30:00",NULL}',
        })
      }
    },
    20_000,
  )

  it('years before 1 AD and after 9999 AD round-trip', async () => {
    const bc = new Date(Date.UTC(2000, 2, 15, 12))
    bc.setUTCFullYear(-43) // 44 BC
    const far = new Date(Date.UTC(2000, 0, 1))
    far.setUTCFullYear(12345)
    const { rows } = await pool.query<{ bc: string; far: Date }>(sql`select ${bc}::timestamp::text as bc, ${far}::timestamptz as far`)
    expect(rows[0]?.bc).toBe('0044-03-15 12:00:00 BC')
    expect(rows[0]?.far.getTime()).toBe(far.getTime())
  })
})

describe('JSON', () => {
  it('sql.json([...]) and a plain object go into json and jsonb columns; a bigint inside is an exact JSON integer, read back exactly', async () => {
    const list = [1, 'two', { n: 9007199254740993n }, null]
    const doc = { a: { b: [1, null, 'x'] }, big: 2n ** 70n, when: new Date('2024-03-01T00:30:00Z') }
    await pool.query(sql`insert into docs values ('list', ${sql.json(list)}, ${sql.json(list)})`)
    await pool.query(sql`insert into docs values ('doc', ${doc}, ${doc})`)
    await pool.query('insert into docs values ($1, $2, $3)', ['params', sql.json('a string'), { k: 1n }])
    const { rows } = await pool.query<{ tag: string; j: unknown; jb: unknown }>('select tag, j, jb from docs order by tag')
    const expectedList = [1, 'two', { n: 9007199254740993n }, null]
    const expectedDoc = { a: { b: [1, null, 'x'] }, big: 2n ** 70n, when: '2024-03-01T00:30:00.000Z' }
    expect(rows).toEqual([
      { tag: 'doc', j: expectedDoc, jb: expectedDoc },
      { tag: 'list', j: expectedList, jb: expectedList },
      // a bigint JS holds exactly comes back as a number
      { tag: 'params', j: 'a string', jb: { k: 1 } },
    ])
    // it is a JSON number in the database, so SQL sees a number
    const typed = await pool.query<{ t: string; n: string }>(
      "select jsonb_typeof(jb->'big') as t, (jb->'big')::numeric::text as n from docs where tag = 'doc'",
    )
    expect(typed.rows).toEqual([{ t: 'number', n: '1180591620717411303424' }])
  })

  it('a document read and written back keeps its big integers as JSON numbers, exactly', async () => {
    await pool.query(
      `insert into docs values ('rt', '{"orderId": 12345678901234567890, "qty": 1}', '{"orderId": 12345678901234567890, "qty": 1}')`,
    )
    const read = await pool.query<{ jb: { orderId: unknown; qty: number } }>("select jb from docs where tag = 'rt'")
    const doc = read.rows[0]!.jb
    expect(doc.orderId).toBe(12345678901234567890n)
    await pool.query(sql`update docs set jb = ${{ ...doc, qty: 2 }} where tag = 'rt'`)
    const after = await pool.query<{ t: string; hit: boolean }>(
      `select jsonb_typeof(jb->'orderId') as t, jb @> '{"orderId": 12345678901234567890, "qty": 2}' as hit from docs where tag = 'rt'`,
    )
    expect(after.rows).toEqual([{ t: 'number', hit: true }])
  })
})

describe('arrays', () => {
  it('go into int[] and text[] columns, and work with = ANY(...)', async () => {
    const names = ['plain', 'with "quotes"', 'back\\slash', 'NULL', 'a,b', '{braces}', '']
    await pool.query(sql`insert into lists values (1, ${[1, 2, 3]}, ${names}), (2, ${[]}, ${[null, 'x']}), (3, ${[4]}, ${['y']})`)
    const { rows } = await pool.query<{ id: number; ids: number[]; names: (string | null)[] }>('select * from lists order by id')
    expect(rows).toEqual([
      { id: 1, ids: [1, 2, 3], names },
      { id: 2, ids: [], names: [null, 'x'] },
      { id: 3, ids: [4], names: ['y'] },
    ])
    const ids = [1, 3]
    expect((await pool.query<{ id: number }>(sql`select id from lists where id = ANY(${ids}) order by id`)).rows).toEqual([
      { id: 1 },
      { id: 3 },
    ])
    const tags = ['y', 'x']
    expect((await pool.query<{ id: number }>(sql`select id from lists where names && ${tags}::text[] order by id`)).rows).toEqual([
      { id: 2 },
      { id: 3 },
    ])
  })

  it('elements follow the same rules: bigint exact, bytea, nested dimensions, JSON objects', async () => {
    const { rows } = await pool.query<{ big: bigint[]; bytes: Buffer[]; grid: number[][]; docs: string }>(
      sql`select ${[9007199254740993n, -1n]}::int8[] as big, ${[Buffer.from([0, 255]), null]}::bytea[] as bytes,
        ${[
          [1, 2],
          [3, 4],
        ]}::int[] as grid, ${[{ a: 'q"' }, sql.json([1n])]}::jsonb[]::text as docs`,
    )
    expect(rows[0]?.big).toEqual([9007199254740993n, -1n])
    expect(rows[0]?.bytes.map((b) => (b === null ? null : [...b]))).toEqual([[0, 255], null])
    expect(rows[0]?.grid).toEqual([
      [1, 2],
      [3, 4],
    ])
    expect(rows[0]?.docs).toBe('{"{\\"a\\": \\"q\\\\\\"\\"}",[1]}')
  })
})

describe('refused before sending; the connection stays usable', () => {
  it.each<[string, string, unknown[], string]>([
    ['NaN', 'select $1::float8', [Number.NaN], 'INVALID_PARAMETER'],
    ['NaN inside an array', 'select $1::float8[]', [[1, Number.NaN]], 'INVALID_PARAMETER'],
    // JSON.stringify writes a boxed NaN / Infinity as null, like an unboxed one
    ['a boxed NaN inside sql.json', 'select $1::jsonb', [sql.json({ n: new Number(Number.NaN) })], 'INVALID_PARAMETER'],
    ['a boxed Infinity inside a plain object', 'select $1::jsonb', [{ n: [new Number(Infinity)] }], 'INVALID_PARAMETER'],
    ['a Map', 'select $1::text', [new Map()], 'INVALID_PARAMETER'],
    ['a class instance', 'select $1::text', [new URL('https://example.com')], 'INVALID_PARAMETER'],
    ['a string with U+0000', 'select $1::text', ['a\u0000b'], 'INVALID_PARAMETER'],
    ['a string with a lone surrogate', 'select $1::text', ['a\ud800b'], 'INVALID_PARAMETER'],
    ['an invalid Date', 'select $1::timestamptz', [new Date('nope')], 'INVALID_PARAMETER'],
    ['65,536 parameters', 'select $1::int', new Array<number>(65_536).fill(1), 'INVALID_PARAMETER'],
    ['statement text with U+0000', 'select 1\u0000; select 2', [], 'SYNTAX_ERROR'],
    // UTF-8 turned it into U+FFFD: a literal stored changed, an alias named otherwise
    ['statement text with a lone surrogate in a literal', "select 'a\ud800b' as v", [], 'SYNTAX_ERROR'],
    ['statement text with a lone surrogate in an alias', 'select 1 as "k\udc00"', [], 'SYNTAX_ERROR'],
  ])('%s', async (_what, text, params, code) => {
    const one = poolOn(db.url, { max: 1, min: 0 })
    const destroyed: string[] = []
    one.on('destroy', ({ reason }) => destroyed.push(reason))
    try {
      const pid = (await one.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
      const err = await rejection(one.query(text, params))
      expect(err.code).toBe(code)
      expect(err.retryable).toBe(false)
      if (code === 'INVALID_PARAMETER' && params.length === 1) expect(err.message).toMatch(/^parameter 1 \(/)
      // the same connection answers the next statement
      expect((await one.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid).toBe(pid)
      expect(destroyed).toEqual([])
      expect(one.stats().size).toBe(1)
    } finally {
      await one.close()
    }
  })

  it('inside a transaction the refused statement never reached the server: the transaction still commits', async () => {
    await pool.query('create table if not exists refused_in_tx (n int)')
    await pool.transaction(async (tx) => {
      await tx.query('insert into refused_in_tx values (1)')
      expect((await rejection(tx.query('insert into refused_in_tx values ($1)', [Number.NaN]))).code).toBe('INVALID_PARAMETER')
      await tx.query('insert into refused_in_tx values (2)')
    })
    expect((await pool.query('select n from refused_in_tx order by n')).rows).toEqual([{ n: 1 }, { n: 2 }])
  })

  describe('a value count that does not fit the placeholders: INVALID_PARAMETER, as on SQLite, and the connection is kept', () => {
    it.each<[string, string, unknown[], boolean]>([
      ['too few values', 'select $1::int as v', [], true],
      ['too many values', 'select $1::int as v', [1, 2], true],
      ['values for a statement without placeholders', 'select 1 as v', [1], true],
      ['too few values, prepare: false', 'select $1::int as v', [], false],
    ])('%s', async (_what, text, params, prepare) => {
      const one = poolOn(db.url, { max: 1, min: 0 }, prepare ? {} : { prepare: false })
      const destroyed: string[] = []
      one.on('destroy', ({ reason }) => destroyed.push(reason))
      try {
        const pid = (await one.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
        // three runs: unnamed, then prepared (prepare: 'second-use'), then the named statement again
        for (let run = 0; run < 3; run++) {
          const err = await rejection(one.query(text, params))
          expect(err.code).toBe('INVALID_PARAMETER')
          expect(err.retryable).toBe(false)
          if (err.sqlState === '08P01') {
            expect(err.message).toMatch(/^the statement's parameters do not fit its placeholders: bind message supplies/)
          } else {
            // pg sends a statement without values as a simple query: the server finds no value for $1
            expect(err.sqlState).toBe('42P02')
            expect(params).toEqual([])
          }
        }
        // the same statement with the right values runs on the same connection
        const right = text.includes('$1') ? [7] : []
        expect((await one.query<{ v: number }>(text, right)).rows).toEqual([{ v: text.includes('$1') ? 7 : 1 }])
        expect((await one.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid).toBe(pid)
        expect(destroyed).toEqual([])
      } finally {
        await one.close()
      }
    })

    it('inside a transaction the server refused it, so the transaction was aborted: transaction() rejects with it as the cause', async () => {
      await pool.query('create table if not exists miscounted_in_tx (n int)')
      const err = await rejection(
        pool.transaction(async (tx) => {
          await tx.query('insert into miscounted_in_tx values (1)')
          await tx.query('insert into miscounted_in_tx values ($1)', []).catch(() => undefined)
        }),
      )
      expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
      expect((err.cause as { code?: string }).code).toBe('INVALID_PARAMETER')
      expect((await pool.query('select n from miscounted_in_tx')).rows).toEqual([])
    })
  })

  it('sessionInit text with U+0000 is refused when the pool is made (CONFIGURATION, text hidden), never sent', () => {
    expect(() => poolOn(db.url, { min: 0 }, { sessionInit: "set application_name = 'x'\u0000" })).toThrow(
      expect.objectContaining({
        code: 'CONFIGURATION',
        message: expect.stringMatching(/postgres\.sessionInit "\[hidden\]": contains a NUL character/),
      }),
    )
  })
})
