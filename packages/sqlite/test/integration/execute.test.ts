import { DatabaseError, sql } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('execute', () => {
  const pool = createSqlitePool(tmp.file('execute.db'), { name: 'execute' })
  afterAll(() => pool.close())

  beforeAll(async () => {
    await pool.query('create table t (id integer primary key, flag integer, at text, big integer, note text)')
  })

  it('normalises results: rows, rowCount (changes or rows), lastInsertRowid', async () => {
    const a = await pool.query(sql`insert into t (note) values (${'a'})`)
    const b = await pool.query(sql`insert into t (note) values (${'b'})`)
    expect(a).toEqual({ rows: [], rowCount: 1, lastInsertRowid: 1 })
    expect(b.lastInsertRowid).toBe(2)
    expect((await pool.query(sql`update t set note = ${'z'}`)).rowCount).toBe(2)
    const read = await pool.query('select id from t order by id')
    expect(read).toEqual({ rows: [{ id: 1 }, { id: 2 }], rowCount: 2 })
    expect((await pool.query('select id from t where id < 0')).rows).toEqual([])
    const returning = await pool.query(sql`insert into t (note) values (${'r'}) returning id`)
    expect(returning.rows).toEqual([{ id: 3 }])
    expect((await pool.query('create table if not exists other (x)')).rowCount).toBe(0)
    expect((await pool.query('delete from t where id = 3')).rowCount).toBe(1)
  })

  it('binds booleans as 1/0 and Dates as ISO-8601 text', async () => {
    const at = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6))
    await pool.query(sql`insert into t (id, flag, at) values (${10}, ${true}, ${at})`)
    await pool.query(sql`insert into t (id, flag) values (${11}, ${false})`)
    const { rows } = await pool.query('select id, flag, at from t where id in (10, 11) order by id')
    expect(rows).toEqual([
      { id: 10, flag: 1, at: '2024-01-02T03:04:05.006Z' },
      { id: 11, flag: 0, at: null },
    ])
    expect((await pool.query(sql`select count(*) as n from t where flag = ${true}`)).rows).toEqual([{ n: 1 }])
  })

  it('runs a multi-statement script without parameters', async () => {
    const r = await pool.query('create table s1 (x); create table s2 (y); insert into s1 values (1);')
    expect(r.rowCount).toBe(0)
    expect((await pool.query('select x from s1')).rows).toEqual([{ x: 1 }])
  })

  it('refuses a statement whose signal is already aborted, without running it', async () => {
    const controller = new AbortController()
    controller.abort()
    const err = await pool.query(sql`insert into t (id) values (${99})`, undefined, { signal: controller.signal }).catch((e: unknown) => e)
    expect(DatabaseError.is(err, 'QUERY_CANCELLED')).toBe(true)
    expect((await pool.query('select count(*) as n from t where id = 99')).rows).toEqual([{ n: 0 }])
    // a live signal and a deadline do not stop a statement that finishes synchronously
    expect((await pool.query('select 1 as one', [], { signal: new AbortController().signal, timeoutMs: 1_000 })).rows).toEqual([{ one: 1 }])
  })

  it('caches prepared statements per connection', async () => {
    await pool.withConnection(async (conn) => {
      const spy = jest.spyOn(conn.native, 'prepare')
      try {
        for (let i = 0; i < 5; i++) await conn.query(sql`select note from t where id = ${i}`)
        expect(spy).toHaveBeenCalledTimes(1)
      } finally {
        spy.mockRestore()
      }
    })
  })

  it('a BEGIN sent through pool.query (the lease-free path) does not leave the writer inside a transaction', async () => {
    // it is rolled back at once, so it is not reported done
    expect(await pool.query('BEGIN IMMEDIATE').catch((e: { code?: string }) => e)).toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    await pool.query(sql`insert into t (id, note) values (${40}, ${'dangling'})`)
    await pool.transaction((tx) => tx.query(sql`insert into t (id, note) values (${41}, ${'next'})`))
    const { rows } = await pool.query<{ id: number }>('select id from t where id in (40, 41) order by id')
    expect(rows.map((r) => r.id)).toEqual([40, 41])
    expect(await pool.withConnection(async (conn) => conn.native.inTransaction)).toBe(false)
  })

  it('a failed statement inside a transaction rolls it back and the writer stays usable', async () => {
    const err = await pool
      .transaction(async (tx) => {
        await tx.query(sql`insert into t (id, note) values (${50}, ${'x'})`)
        await tx.query(sql`insert into t (id, note) values (${50}, ${'dup'})`)
      })
      .catch((e: unknown) => e)
    expect(DatabaseError.is(err, 'UNIQUE_VIOLATION')).toBe(true)
    expect((await pool.query('select count(*) as n from t where id = 50')).rows).toEqual([{ n: 0 }])
    await pool.transaction((tx) => tx.query(sql`insert into t (id) values (${51})`))
    expect(pool.stats('write').size).toBe(1)
  })
})

describe('safeIntegers', () => {
  it('returns 64-bit integers as bigint when asked', async () => {
    const pool = createSqlitePool(':memory:', {}, { safeIntegers: true })
    try {
      await pool.query('create table b (v integer)')
      const big = 2n ** 63n - 1n
      const r = await pool.query(sql`insert into b (v) values (${big})`)
      expect(r.lastInsertRowid).toBe(1n)
      expect((await pool.query('select v from b')).rows).toEqual([{ v: big }])
    } finally {
      await pool.close()
    }
    // without safeIntegers, an integer beyond 2^53 - 1 is still exact (integers.test.ts)
    const plain = createSqlitePool(':memory:')
    try {
      expect((await plain.query('select 9007199254740993 as v')).rows[0]?.v).toBe(9007199254740993n)
    } finally {
      await plain.close()
    }
  })
})

describe('pragmas', () => {
  it('applies every option on every connection, readers included', async () => {
    const pool = createSqlitePool(
      tmp.file('pragmas.db'),
      { min: 1 },
      {
        synchronous: 'NORMAL',
        cacheSizeKiB: 8192,
        mmapSizeBytes: 1 << 20,
        tempStore: 'MEMORY',
        foreignKeys: false,
        busyTimeoutMs: 1234,
        readers: 2,
      },
    )
    try {
      for (const lane of ['write', 'read'] as const) {
        const values = await pool.withConnection(
          async (conn) => ({
            journal: conn.native.pragma('journal_mode', { simple: true }),
            synchronous: conn.native.pragma('synchronous', { simple: true }),
            cache: conn.native.pragma('cache_size', { simple: true }),
            mmap: conn.native.pragma('mmap_size', { simple: true }),
            temp: conn.native.pragma('temp_store', { simple: true }),
            fk: conn.native.pragma('foreign_keys', { simple: true }),
            busy: conn.native.pragma('busy_timeout', { simple: true }),
            readonly: conn.native.readonly,
          }),
          { lane },
        )
        expect(values).toEqual({
          journal: 'wal',
          synchronous: 1,
          cache: -8192,
          mmap: 1 << 20,
          temp: 2,
          fk: 0,
          // SQLite's own wait is a few ms; the rest of busyTimeoutMs is waited off the thread
          busy: 5,
          readonly: lane === 'read',
        })
      }
    } finally {
      await pool.close()
    }
  })
})
