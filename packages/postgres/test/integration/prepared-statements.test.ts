import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection, PostgresPoolOptions } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection } from './helpers'

let db: TestDatabase
const pools: DatabasePool<PostgresConnection>[] = []

beforeAll(async () => {
  db = await createTestDatabase()
}, 120_000)

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** A pool of one connection, so every statement runs on the same session. */
function onePool(options: PostgresPoolOptions = {}): DatabasePool<PostgresConnection> {
  const pool = poolOn(db.url, { min: 0, max: 1, name: 'prepared' }, options)
  pools.push(pool)
  return pool
}

interface Prepared {
  name: string
  statement: string
  /** Executions of the prepared statement (generic plus custom plans, Postgres 14+). */
  runs: number
}

/**
 * The session's named statements made by dbpool, read on the pool's one connection. The leading
 * comment keeps the probe itself unnamed (a text dbpool cannot prove to be one plain statement).
 */
async function prepared(pool: DatabasePool<PostgresConnection>): Promise<Prepared[]> {
  const { rows } = await pool.withConnection((c) =>
    c.query<{ name: string; statement: string; runs: string }>(
      "/* probe */ select name, statement, (generic_plans + custom_plans)::text as runs from pg_prepared_statements where name like 'dbpool\\_%' order by name",
    ),
  )
  return rows.map((r) => ({ name: r.name, statement: r.statement, runs: Number(r.runs) }))
}

async function pid(pool: DatabasePool<PostgresConnection>): Promise<number> {
  return pool.withConnection(async (c) =>
    Number((await c.query<{ pid: number }>('/* probe */ select pg_backend_pid() as pid')).rows[0]!.pid),
  )
}

describe('named prepared statements', () => {
  beforeAll(async () => {
    await admin(db.url, (c) =>
      c.query("create table kv (id int primary key, v text not null); insert into kv select g, 'v' || g from generate_series(1, 50) g"),
    )
  })

  it("'always': a parameterised statement is parsed once per connection and then only executed", async () => {
    const pool = onePool({ prepare: 'always' })
    const text = 'select id, v from kv where id = $1'
    for (let i = 1; i <= 6; i++) expect((await pool.query(text, [i])).rows).toEqual([{ id: i, v: `v${i}` }])
    const statements = await prepared(pool)
    expect(statements).toEqual([{ name: expect.stringMatching(/^dbpool_/), statement: text, runs: 6 }])
    // without parameters: one plain query or DML statement is named too; several statements, DDL,
    // transaction or session control (and anything behind a leading comment) keep the simple protocol
    for (const other of [
      'select 1; select 2',
      'begin',
      'commit',
      "set work_mem = '8MB'",
      '-- comment\nselect 3',
      'create temp table t1 (x int)',
    ])
      // a lone 'begin' is rolled back on release and reported as such (TRANSACTION_ROLLED_BACK)
      await pool.query(other).catch((err: { code?: string }) => expect(err.code).toBe('TRANSACTION_ROLLED_BACK'))
    await pool.query('select 42 as n')
    await pool.query('select 42 as n')
    expect((await prepared(pool)).map((s) => [s.statement, s.runs]).sort()).toEqual([
      ['select 42 as n', 2],
      [text, 6],
    ])
  })

  it.each(['always', 'second-use'] as const)(
    "'%s': values come back the same on every run (unnamed, described, then with the kept description)",
    async (prepare) => {
      const pool = onePool({ prepare, int8: 'bigint' })
      const text =
        'select $1::int8 as big, 1.50::numeric as num, $2::timestamptz as at, $3::jsonb as doc, $4::bytea as bin, null::text as nothing, $5::text as t, $5::text || \'!\' as "T"'
      const at = new Date('2024-03-01T00:30:00.000Z')
      for (let run = 0; run < 4; run++) {
        const { rows } = await pool.query(text, [9007199254740993n, at, { a: [1, run] }, Buffer.from([run, 255]), `run ${run}`])
        expect(rows).toEqual([
          {
            big: 9007199254740993n,
            num: '1.50',
            at,
            doc: { a: [1, run] },
            bin: Buffer.from([run, 255]),
            nothing: null,
            t: `run ${run}`,
            T: `run ${run}!`,
          },
        ])
      }
      // no rows, and a statement that returns none
      for (let run = 0; run < 3; run++) {
        expect((await pool.query('select id from kv where id = $1', [-run])).rows).toEqual([])
        expect((await pool.query('update kv set v = v where id = $1', [1])).rowCount).toBe(1)
      }
    },
  )

  it("'second-use': the first run is unnamed, the second prepares it", async () => {
    const pool = onePool({ prepare: 'second-use' })
    const text = 'select v from kv where id = $1'
    await pool.query(text, [1])
    expect(await prepared(pool)).toEqual([])
    await pool.query(text, [2])
    await pool.query(text, [3])
    expect(await prepared(pool)).toEqual([{ name: expect.stringMatching(/^dbpool_/), statement: text, runs: 2 }])
  })

  it('prepare: false names nothing (pg unnamed statements, as before)', async () => {
    const pool = onePool({ prepare: false })
    for (let i = 1; i <= 3; i++) await pool.query('select v from kv where id = $1', [i])
    expect(await prepared(pool)).toEqual([])
  })

  it('keeps at most statementCacheSize statements per connection, closing the least recently used on the server', async () => {
    const pool = onePool({ prepare: 'always', statementCacheSize: 3 })
    for (let round = 0; round < 2; round++)
      for (let n = 1; n <= 5; n++) expect((await pool.query(`select $1::int + ${n} as x`, [1])).rows).toEqual([{ x: 1 + n }])
    const statements = await prepared(pool)
    expect(statements.map((s) => s.statement).sort()).toEqual([
      'select $1::int + 3 as x',
      'select $1::int + 4 as x',
      'select $1::int + 5 as x',
    ])
  })

  it('a statement that fails in Parse, Bind or Execute leaves the cache and the connection usable', async () => {
    const pool = onePool({ prepare: 'always' })
    const before = await pid(pool)
    expect((await rejection(pool.query('selec $1', [1]))).code).toBe('SYNTAX_ERROR')
    expect((await rejection(pool.query('selec $1', [1]))).code).toBe('SYNTAX_ERROR')
    const insert = 'insert into kv (id, v) values ($1, $2)'
    await pool.query(insert, [1000, 'a'])
    expect((await rejection(pool.query(insert, [1000, 'b']))).code).toBe('UNIQUE_VIOLATION')
    expect((await rejection(pool.query('select v from kv where id = $1', ['not a number']))).code).toBe('QUERY_FAILED')
    expect((await pool.query('select v from kv where id = $1', [1000])).rows).toEqual([{ v: 'a' }])
    await pool.query(insert, [1001, 'c'])
    expect((await prepared(pool)).find((s) => s.statement === insert)?.runs).toBe(3)
    expect(await pid(pool)).toBe(before)
    await pool.query('delete from kv where id >= 1000')
  })

  it('statements queued behind each other on one lease never lose a name the server still holds', async () => {
    const pool = onePool({ prepare: 'always', statementCacheSize: 2 })
    // pg queues these on the lease's client: a statement evicted while a queued one still uses it
    // would be closed in front of that one and parsed again behind dbpool's back
    await pool.withConnection((c) => Promise.all(Array.from({ length: 12 }, (_, i) => c.query(`select $1::int + ${i % 6} as x`, [i]))))
    await pool.query('select $1::int as settle', [0])
    expect((await prepared(pool)).length).toBeLessThanOrEqual(2)
  })

  it('many concurrent statements sharing pipelined connections all use the cache correctly', async () => {
    const pool = poolOn(db.url, { min: 0, max: 3, name: 'prepared-pipelined' }, { prepare: 'always', statementCacheSize: 4 })
    pools.push(pool)
    // more texts than cache slots, so statements are evicted while others are in flight
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => pool.query<{ x: number }>(`select $1::int * ${i % 7} as x`, [i]).then((r) => r.rows[0]!.x)),
    )
    expect(results).toEqual(Array.from({ length: 400 }, (_, i) => i * (i % 7)))
  })
})

describe('when the server no longer accepts a cached statement', () => {
  it('a changed result type (ALTER TABLE between two runs) is prepared again and run once more, on the same connection', async () => {
    await admin(db.url, (c) => c.query('create table shape (id int primary key, a int); insert into shape values (1, 10)'))
    const pool = onePool({ prepare: 'always' })
    const text = 'select * from shape where id = $1'
    expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, a: 10 }])
    const before = await pid(pool)
    await admin(db.url, (c) => c.query("alter table shape alter column a type text using a::text || '!'"))
    // without preparing again: 0A000 "cached plan must not change result type"
    expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, a: '10!' }])
    await admin(db.url, (c) => c.query('alter table shape add column b int default 7'))
    expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, a: '10!', b: 7 }])
    // 0A000 is fatal for other statements (HikariCP's list), never for this one
    expect(await pid(pool)).toBe(before)
    expect((await prepared(pool)).filter((s) => s.statement === text)).toHaveLength(1)
  })

  it('a renamed column comes back under its new name (the kept row description is never stale)', async () => {
    await admin(db.url, (c) => c.query('create table renamed (id int primary key, old_name text); insert into renamed values (1, $$x$$)'))
    const pool = onePool({ prepare: 'always' })
    const text = 'select * from renamed where id = $1'
    expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, old_name: 'x' }])
    expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, old_name: 'x' }])
    await admin(db.url, (c) => c.query('alter table renamed rename column old_name to new_name'))
    expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, new_name: 'x' }])
  })

  it('a parameter whose column changed type (42804 from the parameter types parsed before) is prepared again', async () => {
    await admin(db.url, (c) => c.query('create table typed (x text)'))
    const pool = onePool({ prepare: 'always' })
    const insert = 'insert into typed (x) values ($1)'
    await pool.query(insert, ['1'])
    await pool.query(insert, ['2'])
    await admin(db.url, (c) => c.query('alter table typed alter column x type int using x::int'))
    // without preparing again: 42804 "column x is of type integer but expression is of type text"
    await pool.query(insert, ['3'])
    expect((await pool.query<{ x: number }>('select x from typed order by x')).rows.map((r) => r.x)).toEqual([1, 2, 3])
  })

  it('statements dropped on the server (DEALLOCATE ALL on the pg client) are prepared again outside a transaction', async () => {
    await admin(db.url, (c) => c.query('create table dropped (id int primary key, v text); insert into dropped values (1, $$one$$)'))
    const pool = onePool({ prepare: 'always' })
    const text = 'select v from dropped where id = $1'
    await pool.query(text, [1])
    // behind dbpool's back: pg still believes the statement is parsed
    await pool.withConnection((c) => c.native.client.query('deallocate all'))
    expect((await pool.query(text, [1])).rows).toEqual([{ v: 'one' }])
    expect((await prepared(pool)).map((s) => s.statement)).toEqual([text])
  })

  /** Counts the ErrorResponses the server sends on a leased connection while `fn` runs. */
  async function serverErrors(c: { native: PostgresConnection }, fn: () => Promise<unknown>): Promise<number> {
    let errors = 0
    const count = (): void => void errors++
    const wire = c.native.client.connection
    wire.on('errorMessage', count)
    try {
      await fn()
    } finally {
      wire.off('errorMessage', count)
    }
    return errors
  }

  it('DEALLOCATE ALL run through the pool is noticed: the next run parses again, even inside the same transaction', async () => {
    await admin(db.url, (c) => c.query('create table told (id int primary key, v text); insert into told values (1, $$one$$)'))
    const pool = onePool({ prepare: 'always' })
    const text = 'select v from told where id = $1'
    await pool.query(text, [1])
    const rows = await pool.transaction(async (tx) => {
      await tx.query('deallocate all')
      return (await tx.query(text, [1])).rows
    })
    expect(rows).toEqual([{ v: 'one' }])
    expect(await prepared(pool)).toEqual([{ name: expect.stringMatching(/^dbpool_/), statement: text, runs: 1 }])
  })

  it('DISCARD ALL run through the pool is noticed: the next run parses again without a failed round trip', async () => {
    const pool = onePool({ prepare: 'always' })
    const text = 'select v from told where id = $1'
    await pool.query(text, [1])
    await pool.withConnection(async (c) => {
      await c.query('discard all')
      expect(await serverErrors(c, () => c.query(text, [1]))).toBe(0)
    })
    expect(await prepared(pool)).toEqual([{ name: expect.stringMatching(/^dbpool_/), statement: text, runs: 1 }])
  })

  it('a statement with a deadline is prepared again too', async () => {
    await admin(db.url, (c) => c.query('create table guarded (id int primary key, a int); insert into guarded values (1, 1)'))
    const pool = onePool({ prepare: 'always' })
    const text = 'select * from guarded where id = $1'
    await pool.query(text, [1], { timeoutMs: 5_000 })
    await admin(db.url, (c) => c.query('alter table guarded add column b int default 2'))
    expect((await pool.query(text, [1], { timeoutMs: 5_000 })).rows).toEqual([{ id: 1, a: 1, b: 2 }])
  })

  it("sessionReset 'clean' keeps the prepared statements (it runs DISCARD ALL without DEALLOCATE ALL)", async () => {
    const pool = onePool({ prepare: 'always', sessionReset: 'clean' })
    const text = 'select $1::int as n'
    await pool.withConnection((c) => c.query(text, [1]))
    await pool.withConnection((c) => c.query(text, [2]))
    await pool.withConnection((c) => c.query(text, [3]))
    expect(await prepared(pool)).toEqual([{ name: expect.stringMatching(/^dbpool_/), statement: text, runs: 3 }])
  })

  describe('inside a transaction', () => {
    beforeAll(async () => {
      await admin(db.url, (c) => c.query('create table txshape (id int primary key, a int); insert into txshape values (1, 1)'))
    })

    it('a changed result type aborts the transaction: a retryable DatabaseError, and the replay succeeds', async () => {
      const pool = onePool({ prepare: 'always' })
      const text = 'select * from txshape where id = $1'
      await pool.query(text, [1])
      await admin(db.url, (c) => c.query('alter table txshape add column b int default 2'))
      const err = await rejection(pool.transaction((tx) => tx.query(text, [1])))
      expect(err).toBeInstanceOf(DatabaseError)
      expect(err.retryable).toBe(true)
      expect(err.sqlState).toBe('0A000')
      expect(err.message).toContain('run the transaction again')
      // the statement was invalidated: the next run prepares it again
      expect((await pool.query(text, [1])).rows).toEqual([{ id: 1, a: 1, b: 2 }])
      // transaction({ retry }) replays the whole transaction on it
      await admin(db.url, (c) => c.query('alter table txshape add column c int default 3'))
      let attempts = 0
      const rows = await pool.transaction(
        async (tx) => {
          attempts++
          return (await tx.query(text, [1])).rows
        },
        { retry: { maxAttempts: 3, baseDelayMs: 0, retryOn: (e) => e.retryable } },
      )
      expect(rows).toEqual([{ id: 1, a: 1, b: 2, c: 3 }])
      expect(attempts).toBe(2)
    })

    it('a dropped statement aborts the transaction with a retryable error; the next run prepares it again', async () => {
      const pool = onePool({ prepare: 'always' })
      const text = 'select a from txshape where id = $1'
      await pool.query(text, [1])
      await pool.withConnection((c) => c.native.client.query('deallocate all'))
      const err = await rejection(pool.transaction((tx) => tx.query(text, [1])))
      expect(err.retryable).toBe(true)
      expect(err.sqlState).toBe('26000')
      expect((await pool.transaction((tx) => tx.query(text, [1]))).rows).toEqual([{ a: 1 }])
    })
  })
})
