import { DatabaseError, PoolFactory, sql, type DatabasePool } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// pool.query() runs each statement on whichever connection is free and rolls back whatever a statement
// leaves open when it hands the connection back. A text that opens a transaction without closing it
// must therefore never resolve as if its work were done. Both backends, the lease and the lease-free
// (SQLite) paths.

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'

describe.each<Backend>(['postgres', 'sqlite'])('pool.query and transaction control on %s', (backend) => {
  let pg: TestDatabase | undefined
  let file: TempSqlite | undefined
  let pool: DatabasePool<unknown>

  beforeAll(async () => {
    if (backend === 'postgres') pg = await createTestDatabase()
    else file = await createTempSqlite()
    pool = await PoolFactory.create((pg ?? file)!.url, { min: 0, max: 2, name: `lone-${backend}` })
    await pool.query('create table b (id integer primary key)')
  })

  afterAll(async () => {
    await pool?.close()
    await pg?.drop()
    await file?.remove()
  })

  beforeEach(() => pool.query('delete from b'))

  async function ids(): Promise<number[]> {
    const { rows } = await pool.query<{ id: unknown }>('select id from b order by id')
    return rows.map((r) => Number(r.id))
  }

  it.each([
    ['BEGIN; insert', 'BEGIN; insert into b (id) values (7)'],
    ['a lone BEGIN', 'BEGIN'],
    ['BEGIN; insert; SAVEPOINT', 'BEGIN; insert into b (id) values (8); SAVEPOINT s1'],
  ])('%s: rejects with TRANSACTION_ROLLED_BACK, and nothing it did is kept', async (_name, text) => {
    const err = await pool.query(text).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(DatabaseError.is(err, 'TRANSACTION_ROLLED_BACK')).toBe(true)
    expect((err as DatabaseError).message).toMatch(/left a transaction open/)
    // the connection is clean: later statements are not inside that transaction, and they are kept
    await pool.query(sql`insert into b (id) values (${1})`)
    expect(await ids()).toEqual([1])
  })

  // on the read lane too (a SQLite reader opened and idle: the lease-free path; Postgres without
  // replicas: the primary, on a lease): a reader left inside the transaction answered later reads
  // from its old snapshot
  it.each(['BEGIN', 'SAVEPOINT x', 'select 1; BEGIN'])(
    '%s on the read lane: TRANSACTION_ROLLED_BACK, and later reads there see later commits',
    async (text) => {
      await pool.query('select 1', [], { lane: 'read' })
      // Postgres refuses a SAVEPOINT outside a transaction block (25P01)
      const code = backend === 'postgres' && text.startsWith('SAVEPOINT') ? 'QUERY_FAILED' : 'TRANSACTION_ROLLED_BACK'
      await expect(pool.query(text, [], { lane: 'read' })).rejects.toMatchObject({ code })
      for (const id of [1, 2]) {
        await pool.query(sql`insert into b (id) values (${id})`)
        const { rows } = await pool.query<{ n: unknown }>('select count(*) as n from b', [], { lane: 'read' })
        expect(Number(rows[0]!.n)).toBe(id)
      }
    },
  )

  it('a text that commits what it begins resolves, and its work is kept', async () => {
    await pool.query('BEGIN; insert into b (id) values (2); insert into b (id) values (3); COMMIT')
    expect(await ids()).toEqual([2, 3])
  })

  it('params that are not an array are INVALID_PARAMETER, before anything is sent', async () => {
    const err = await pool.query(backend === 'postgres' ? 'select $1::int' : 'select ?', 5 as never).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(DatabaseError.is(err, 'INVALID_PARAMETER')).toBe(true)
    expect((err as DatabaseError).message).toMatch(/params must be an array, got number/)
    const fragment = await pool.query(sql`select 1`, 'x' as never).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(DatabaseError.is(fragment, 'INVALID_PARAMETER')).toBe(true)
  })
})
