import { DatabaseError, isOutcomeUnknown, OUTCOME_COMMITTED, PoolFactory, sql, type DatabasePool } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// A result with two columns of one name is refused with SYNTAX_ERROR on both engines (README, errors
// table): rows are objects keyed by column name, so one value was silently lost (`{ a: 2 }`).

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'
const BACKENDS = ['postgres', 'sqlite'] as const

let pgDb: TestDatabase
let file: TempSqlite
const pools = {} as Record<Backend, DatabasePool<unknown>>

beforeAll(async () => {
  pgDb = await createTestDatabase()
  file = await createTempSqlite()
  pools.postgres = await PoolFactory.create(pgDb.url, { min: 0, max: 2, name: 'columns-pg' })
  pools.sqlite = await PoolFactory.create(file.url, { min: 0, max: 2, name: 'columns-sqlite' })
  for (const backend of BACKENDS) {
    await pools[backend].query('create table items (id integer primary key, name text)')
    await pools[backend].query("insert into items (id, name) values (1, 'one'), (2, 'two')")
  }
})

afterAll(async () => {
  await pools.postgres?.close()
  await pools.sqlite?.close()
  await pgDb?.drop()
  await file?.remove()
})

async function failure(work: Promise<unknown>): Promise<DatabaseError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

async function drain(iterable: AsyncIterable<unknown>): Promise<unknown[]> {
  const rows: unknown[] = []
  for await (const row of iterable) rows.push(row)
  return rows
}

async function count(backend: Backend, id: number): Promise<number> {
  const { rows } = await pools[backend].query<{ n: unknown }>(sql`select count(*) as n from items where id = ${id}`)
  return Number(rows[0]!.n)
}

describe.each(BACKENDS)('%s', (backend) => {
  it.each([
    ['two aliases alike', 'select 1 as a, 2 as a', 'a', [1, 2]],
    ['the same column of two tables of a join', 'select x.id, y.id from items x join items y on y.id = x.id', 'id', [1, 2]],
    ['a parameterised statement', sql`select ${1} as v, name, ${2} as v from items where id = ${1}`, 'v', [1, 3]],
  ] as const)('%s: SYNTAX_ERROR naming the column, not a row missing a value', async (_label, query, column, positions) => {
    const err = await failure(pools[backend].query(query))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(err.retryable).toBe(false)
    expect(err.detail).toMatchObject({ column, positions })
    expect(err.message).toContain(`two columns named "${column}"`)
    expect(err.message).toContain('with AS')
    // refused again on the next run (a cached statement is no way around it), and the pool still works
    expect((await failure(pools[backend].query(query))).code).toBe('SYNTAX_ERROR')
    expect((await pools[backend].query<{ a: number; b: number }>('select 1 as a, 2 as b')).rows).toEqual([{ a: 1, b: 2 }])
  })

  it('aliased columns are fine; a streamed result is refused the same way', async () => {
    const { rows } = await pools[backend].query(
      'select x.id as left_id, y.id as right_id from items x join items y on y.id = x.id order by x.id',
    )
    expect(rows).toEqual([
      { left_id: 1, right_id: 1 },
      { left_id: 2, right_id: 2 },
    ])
    const err = await failure(drain(pools[backend].stream('select id, name, id from items order by id')))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(err.detail).toMatchObject({ column: 'id', positions: [1, 3] })
    expect(await drain(pools[backend].stream('select id, name from items order by id'))).toHaveLength(2)
  })

  it('a write with RETURNING of two columns alike outside a transaction: SQLite refuses it before it runs; Postgres already committed it and says so', async () => {
    const err = await failure(pools[backend].query(sql`insert into items (id, name) values (${10}, 'ten') returning id, id`))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(isOutcomeUnknown(err)).toBe(false)
    if (backend === 'sqlite') {
      expect(err.message).toContain('was not run')
      expect(await count(backend, 10)).toBe(0)
    } else {
      // never reported as a plain refusal that a caller would fix and run again: the row is there, and
      // the server reported the session idle after it (it committed)
      expect(err.detail).toMatchObject({ outcome: OUTCOME_COMMITTED, column: 'id' })
      expect(err.message).toContain('outside a transaction and committed')
      expect(await count(backend, 10)).toBe(1)
    }
  })

  it('the same inside a transaction: the transaction rolls back, nothing is written', async () => {
    const err = await failure(
      pools[backend].transaction(async (tx) => {
        await tx.query(sql`insert into items (id, name) values (${11}, 'eleven') returning name, name`)
      }),
    )
    // the callback's error, as transaction() rethrows it after the rollback
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(isOutcomeUnknown(err)).toBe(false)
    if (backend === 'postgres') expect(err.message).toContain('already ran inside a transaction, which is now aborted')
    expect(await count(backend, 11)).toBe(0)
  })

  it('a caller that catches the refusal inside transaction() and goes on: the transaction is aborted (later statements refused), nothing commits, transaction() rejects TRANSACTION_ROLLED_BACK', async () => {
    for (const options of [undefined, { timeoutMs: 10_000 }]) {
      let refused: unknown
      let later: unknown
      const err = await failure(
        pools[backend].transaction(async (tx) => {
          await tx.query(sql`insert into items (id, name) values (${13}, 'before')`)
          refused = await failure(tx.query(sql`insert into items (id, name) values (${14}, 'refused') returning id, id`, [], options))
          later = await failure(tx.query(sql`insert into items (id, name) values (${15}, 'after')`))
          return 'done'
        }),
      )
      expect(DatabaseError.is(refused, 'SYNTAX_ERROR')).toBe(true)
      // refused like any statement of an aborted transaction (Postgres 25P02), the refusal as its cause
      expect(DatabaseError.is(later, 'TRANSACTION_ROLLED_BACK')).toBe(true)
      expect((later as DatabaseError).cause).toBe(refused)
      if (backend === 'postgres') expect((later as DatabaseError).sqlState).toBe('25P02')
      expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
      expect(err.cause).toBe(refused)
      for (const id of [13, 14, 15]) expect(await count(backend, id)).toBe(0)
    }
  })

  it('caught inside a savepoint: the savepoint is rolled back (TRANSACTION_ROLLED_BACK) and the outer transaction goes on and commits', async () => {
    const inner = await pools[backend].transaction(async (tx) => {
      await tx.query(sql`insert into items (id, name) values (${16}, 'outer')`)
      const out = await tx
        .transaction(async (sp) => {
          await sp.query(sql`insert into items (id, name) values (${17}, 'in savepoint')`)
          await sp.query(sql`insert into items (id, name) values (${18}, 'refused') returning id, id`).catch(() => undefined)
          return 'savepoint done'
        })
        .catch((e: unknown) => e)
      await tx.query(sql`insert into items (id, name) values (${19}, 'outer again')`)
      return out
    })
    expect(DatabaseError.is(inner, 'TRANSACTION_ROLLED_BACK')).toBe(true)
    expect(DatabaseError.is((inner as DatabaseError).cause, 'SYNTAX_ERROR')).toBe(true)
    expect([await count(backend, 16), await count(backend, 17), await count(backend, 18), await count(backend, 19)]).toEqual([1, 0, 0, 1])
  })

  it('a streamed result refused inside a transaction the caller goes on with: nothing commits', async () => {
    const err = await failure(
      pools[backend].transaction(async (tx) => {
        await failure(drain(tx.stream(sql`insert into items (id, name) values (${30}, 'streamed') returning id, id`)))
        await tx.query(sql`insert into items (id, name) values (${31}, 'after stream')`).catch(() => undefined)
      }),
    )
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(DatabaseError.is(err.cause, 'SYNTAX_ERROR')).toBe(true)
    expect([await count(backend, 30), await count(backend, 31)]).toEqual([0, 0])
  })

  it('in a transaction begun with BEGIN on a withConnection handle: COMMIT after the caught refusal answers ROLLBACK', async () => {
    const commit = await pools[backend].withConnection(async (conn) => {
      await conn.query(backend === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN')
      await conn.query(sql`insert into items (id, name) values (${32}, 'by hand')`)
      await failure(conn.query(sql`insert into items (id, name) values (${33}, 'refused') returning id, id`))
      return conn.query('COMMIT')
    })
    expect(commit.command).toBe('ROLLBACK')
    expect([await count(backend, 32), await count(backend, 33)]).toEqual([0, 0])
  })

  it('a streamed write of two columns alike: refused, and on Postgres outside a transaction it says the write committed (closing the cursor committed it)', async () => {
    const err = await failure(drain(pools[backend].stream(sql`insert into items (id, name) values (${12}, 'twelve') returning id, id`)))
    expect(err.code).toBe('SYNTAX_ERROR')
    // Postgres: the cursor closed (its Sync committed it) before the refusal was reported
    expect(err.detail?.outcome).toBe(backend === 'postgres' ? OUTCOME_COMMITTED : undefined)
    expect(await count(backend, 12)).toBe(backend === 'postgres' ? 1 : 0)
  })
})

it('unnamed expressions: Postgres names each one "?column?" (refused, the message says why); SQLite names them by their text', async () => {
  const err = await failure(pools.postgres.query("select 1 + 1, 'a' || 'b'"))
  expect(err.code).toBe('SYNTAX_ERROR')
  expect(err.detail).toMatchObject({ column: '?column?', positions: [1, 2] })
  expect(err.message).toContain('names every expression without an alias "?column?"')
  expect((await pools.sqlite.query("select 1 + 1, 'a' || 'b'")).rows).toEqual([{ '1 + 1': 2, "'a' || 'b'": 'ab' }])
})

// A column named "__proto__": an assignment of that key sets the prototype (and ignores a value that
// is not an object), so better-sqlite3's own rows dropped the column silently, where node-postgres
// keeps it as an own property. Both engines now return it.
describe.each(BACKENDS)('%s: a column named "__proto__"', (backend) => {
  const own = (row: unknown): void => {
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
    expect(Object.keys(row as object)).toEqual(['__proto__', 'a'])
    expect(Object.getOwnPropertyDescriptor(row, '__proto__')).toMatchObject({ value: 7, enumerable: true, writable: true })
    expect(JSON.stringify(row)).toBe('{"__proto__":7,"a":2}')
  }

  it('is an own property of the row from query(), a transaction, a stream and RETURNING', async () => {
    const pool = pools[backend]
    own((await pool.query('select 7 as "__proto__", 2 as a')).rows[0])
    own((await pool.query(sql`select cast(${7} as integer) as "__proto__", cast(${2} as integer) as a`)).rows[0])
    await pool.transaction(async (tx) => own((await tx.query('select 7 as "__proto__", 2 as a')).rows[0]))
    const streamed = await drain(pool.stream('select 7 as "__proto__", 2 as a'))
    expect(streamed).toHaveLength(1)
    own(streamed[0])
    const returned = await pool.query('insert into items (id, name) values (7, \'seven\') returning id as "__proto__", 2 as a')
    own(returned.rows[0])
    await pool.query('delete from items where id = 7')
  })

  it('an object value does not become the prototype', async () => {
    const { rows } = await pools[backend].query<Record<string, unknown>>(
      backend === 'postgres' ? `select '{"polluted":1}'::json as "__proto__"` : `select json_object('polluted', 1) as "__proto__"`,
    )
    const row = rows[0]!
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
    expect((row as { polluted?: unknown }).polluted).toBeUndefined()
    expect(Object.keys(row)).toEqual(['__proto__'])
  })
})

describe('sqlite: a "__proto__" column from a `*` expansion', () => {
  beforeAll(async () => {
    await pools.sqlite.query('create table protos ("__proto__" integer, a integer)')
    await pools.sqlite.query('insert into protos values (7, 2)')
    await pools.sqlite.query('create table grows (id integer primary key)')
    await pools.sqlite.query('insert into grows values (1)')
  })

  it('present when the statement is prepared: returned as an own property, through query, a stream and a rowid text too', async () => {
    const expected = [JSON.parse('{"__proto__":7,"a":2}')]
    expect((await pools.sqlite.query('select * from protos')).rows).toEqual(expected)
    expect(await drain(pools.sqlite.stream('select * from protos'))).toEqual(expected)
    expect((await pools.sqlite.query('select "__proto__", a from protos where rowid = 1')).rows).toEqual(expected)
    // a write returning it through a stream is refused before it runs (pool.query returns it)
    const streamed = await failure(drain(pools.sqlite.stream('insert into protos values (8, 3) returning *')))
    expect(streamed.detail).toMatchObject({ column: '__proto__' })
    expect((await pools.sqlite.query('select count(*) as n from protos')).rows).toEqual([{ n: 1 }])
    const inserted = await pools.sqlite.query('insert into protos values (8, 3) returning *')
    expect(inserted.rows).toEqual([JSON.parse('{"__proto__":8,"a":3}')])
    await pools.sqlite.query('delete from protos where a = 3')
  })

  it('gained by a schema change after the statement was cached: refused at its next run; inside a transaction the transaction aborts', async () => {
    expect((await pools.sqlite.query('select * from grows')).rows).toEqual([{ id: 1 }])
    await pools.sqlite.query('alter table grows add column "__proto__" integer')
    const err = await failure(pools.sqlite.query('select * from grows'))
    expect(err.detail).toMatchObject({ column: '__proto__', positions: [2] })
    const inTx = await failure(
      pools.sqlite.transaction(async (tx) => {
        await tx.query("insert into items (id, name) values (8, 'eight')")
        await tx.query('select * from grows').catch(() => undefined)
        await tx.query('select 1')
      }),
    )
    expect(inTx.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(await count('sqlite', 8)).toBe(0)
  })
})
