import { DatabaseError, PoolFactory, sql, type DatabasePool, type PoolConnection } from '@dbpool/core'
import { createTempSqlite, createTestDatabase, type TempSqlite, type TestDatabase } from '@dbpool/testing'

// Each conn.transaction() and tx.transaction() scope has a handle of its own, closed when the scope
// ends; while it is open, the handle it was opened on refuses statements, streams, native and a second
// scope (QUERY_FAILED, detail.reason 'scope-open'), before anything is sent. Without that, work of one
// async branch landed in another branch's transaction or savepoint and shared its fate: committed when
// its caller was told it rolled back, or rolled back when its caller was told it succeeded.

jest.setTimeout(120_000)

type Backend = 'postgres' | 'sqlite'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (e: unknown) => e,
  )
}

function expectScopeOpen(err: unknown): void {
  expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
  expect((err as DatabaseError).detail).toMatchObject({ reason: 'scope-open' })
}

function expectReleased(err: unknown, scope: 'transaction' | 'savepoint'): void {
  expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
  expect((err as DatabaseError).message).toMatch(new RegExp(`this ${scope} was released`))
}

describe.each<Backend>(['postgres', 'sqlite'])('transaction scopes on one handle, on %s', (backend) => {
  let pg: TestDatabase | undefined
  let file: TempSqlite | undefined
  let pool: DatabasePool<unknown>

  beforeAll(async () => {
    if (backend === 'postgres') pg = await createTestDatabase()
    else file = await createTempSqlite()
    pool = await PoolFactory.create((pg ?? file)!.url, { min: 0, max: 3, name: `tx-scopes-${backend}` })
    await pool.query('create table t (v text primary key)')
  })

  afterAll(async () => {
    await pool?.close()
    await pg?.drop()
    await file?.remove()
  })

  beforeEach(() => pool.query('delete from t'))

  const insert = (h: Pick<PoolConnection, 'query'>, v: string): Promise<unknown> => h.query(sql`insert into t (v) values (${v})`)

  async function rows(): Promise<string[]> {
    const { rows: found } = await pool.query<{ v: string }>('select v from t order by v')
    return found.map((r) => r.v)
  }

  it('withConnection: a second conn.transaction() while one is open is refused, nothing of it runs; the one that failed keeps nothing', async () => {
    let secondRan = false
    const results = await pool.withConnection((conn) =>
      Promise.allSettled([
        conn.transaction(async (tx) => {
          await insert(tx, 'tx1')
          await sleep(20)
        }),
        conn.transaction(async (tx) => {
          secondRan = true
          await insert(tx, 'tx2')
          await sleep(60)
          throw new Error('tx2 fails')
        }),
      ]),
    )
    expect(results[0]!.status).toBe('fulfilled')
    expectScopeOpen((results[1] as PromiseRejectedResult).reason)
    expect(secondRan).toBe(false)
    expect(await rows()).toEqual(['tx1'])
  })

  it('withConnection: the failing transaction of one branch never takes the conn.query() write of another, which is refused while it is open', async () => {
    const results = await pool.withConnection(async (conn) => {
      const settled = await Promise.allSettled([
        conn.transaction(async () => {
          await sleep(60)
          throw new Error('tx fails')
        }),
        (async () => {
          await sleep(10)
          await insert(conn, 'autocommit')
        })(),
      ])
      // the scope has ended: the handle serves its callback again, in autocommit
      await insert(conn, 'after')
      return settled
    })
    expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error('tx fails'))
    expectScopeOpen((results[1] as PromiseRejectedResult).reason)
    expect(await rows()).toEqual(['after'])
  })

  it('tx.transaction(): a second savepoint while one is open is refused; the first one rolling back never undoes a savepoint reported done', async () => {
    let results: PromiseSettledResult<unknown>[] = []
    await pool.transaction(async (tx) => {
      results = await Promise.allSettled([
        tx.transaction(async (a) => {
          await insert(a, 'a')
          await sleep(50)
          throw new Error('A fails')
        }),
        tx.transaction(async (b) => {
          await insert(b, 'b')
          return 'B done'
        }),
      ])
      // nothing half done: the transaction goes on, a later savepoint and statement are kept
      await tx.transaction((c) => insert(c, 'c'))
      await insert(tx, 'd')
    })
    expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error('A fails'))
    expectScopeOpen((results[1] as PromiseRejectedResult).reason)
    expect(await rows()).toEqual(['c', 'd'])
  })

  it('tx.query() of another branch while a savepoint is open is refused and not sent; the transaction commits what was reported done', async () => {
    let results: PromiseSettledResult<unknown>[] = []
    await pool.transaction(async (tx) => {
      results = await Promise.allSettled([
        tx.transaction(async (sp) => {
          await insert(sp, 'in savepoint')
          await sleep(50)
          throw new Error('savepoint fails')
        }),
        (async () => {
          await sleep(10)
          await insert(tx, 'outer')
        })(),
        (async () => {
          await sleep(10)
          for await (const row of tx.stream('select 1 as one')) void row
        })(),
        (async () => {
          await sleep(10)
          return tx.native
        })(),
      ])
      await insert(tx, 'outer after')
    })
    expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error('savepoint fails'))
    for (const r of results.slice(1)) expectScopeOpen((r as PromiseRejectedResult).reason)
    expect(await rows()).toEqual(['outer after'])
  })

  it("conn.transaction()'s tx is closed when its transaction ends: a statement left behind is refused, never run in autocommit", async () => {
    let late: Promise<unknown> | undefined
    let kept: PoolConnection | undefined
    await pool.withConnection(async (conn) => {
      const err = await settle(
        conn.transaction(async (tx) => {
          kept = tx
          await insert(tx, 'in tx')
          late = sleep(20).then(() => settle(insert(tx, 'late')))
          throw new Error('fn fails')
        }),
      )
      expect(err).toEqual(new Error('fn fails'))
      expectReleased(await late, 'transaction')
      // every entry point of the closed handle refuses the same way
      expectReleased(await settle(kept!.transaction(() => insert(kept!, 'late 2'))), 'transaction')
      expectReleased(await settle((async () => kept!.native)()), 'transaction')
      expectReleased(
        await settle(
          (async () => {
            for await (const row of kept!.stream('select 1 as one')) void row
          })(),
        ),
        'transaction',
      )
      // a committed one too
      let committed: PoolConnection | undefined
      await conn.transaction(async (tx) => {
        committed = tx
        await insert(tx, 'committed')
      })
      expectReleased(await settle(insert(committed!, 'late 3')), 'transaction')
    })
    expect(await rows()).toEqual(['committed'])
  })

  it("tx.transaction()'s handle is closed when its savepoint ends: a statement left behind is refused, never run in the outer transaction", async () => {
    let late: Promise<unknown> | undefined
    let released: PoolConnection | undefined
    await pool.transaction(async (tx) => {
      const err = await settle(
        tx.transaction(async (sp) => {
          await insert(sp, 'in savepoint')
          late = sleep(20).then(() => settle(insert(sp, 'late')))
          throw new Error('savepoint fails')
        }),
      )
      expect(err).toEqual(new Error('savepoint fails'))
      await tx.transaction(async (sp) => {
        released = sp
        await insert(sp, 'released savepoint')
      })
      expectReleased(await late, 'savepoint')
      expectReleased(await settle(insert(released!, 'late 2')), 'savepoint')
      await insert(tx, 'outer')
    })
    expect(await rows()).toEqual(['outer', 'released savepoint'])
  })

  it('a savepoint left running when the callback returns rolls the whole transaction back instead of committing half of it', async () => {
    let savepoint: Promise<unknown> | undefined
    const err = await settle(
      pool.transaction(async (tx) => {
        savepoint = settle(
          tx.transaction(async (sp) => {
            await insert(sp, 'first half')
            await sleep(80)
            await insert(sp, 'second half')
          }),
        )
        await sleep(30)
      }),
    )
    expectScopeOpen(err)
    expect(DatabaseError.is(await savepoint, 'QUERY_FAILED')).toBe(true)
    expect(await rows()).toEqual([])
  })

  it('sequential nesting, statements awaited later and streams on scoped handles still work', async () => {
    await pool.withConnection(async (conn) => {
      await conn.transaction(async (tx) => {
        const early = insert(tx, 'a')
        await tx.transaction(async (sp) => {
          const p = insert(sp, 'b')
          await insert(sp, 'c')
          await p
          await sp.transaction(async (inner) => {
            await insert(inner, 'd')
            const seen: unknown[] = []
            for await (const row of inner.stream<{ v: string }>('select v from t order by v')) seen.push(row.v)
            expect(seen).toEqual(['a', 'b', 'c', 'd'])
          })
          await settle(
            sp.transaction(async (inner) => {
              await insert(inner, 'rolled back')
              throw new Error('undo')
            }),
          )
        })
        await early
        await tx.transaction((sp) => insert(sp, 'e'))
        await insert(tx, 'f')
      })
      await conn.transaction((tx) => insert(tx, 'g'))
      await insert(conn, 'h')
    })
    expect(await rows()).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'])
  })

  it('r12b orphan-scope: a conn.transaction() still running when its withConnection callback returned fails with "this connection was released" (not POOL_CLOSED), and keeps nothing', async () => {
    let inner: Promise<unknown> | undefined
    const outer = await settle(
      pool.withConnection(async (conn) => {
        inner = settle(
          conn.transaction(async (tx) => {
            await insert(tx, 'orphan')
            await sleep(40)
          }),
        )
        await sleep(10)
      }),
    )
    expect(DatabaseError.is(outer, 'TRANSACTION_ROLLED_BACK')).toBe(true)
    const err = await inner
    expect(DatabaseError.is(err, 'QUERY_FAILED')).toBe(true)
    expect((err as DatabaseError).message).toMatch(/this connection was released/)
    expect(await rows()).toEqual([])
  })

  it('r12b tx-scopes 10: a savepoint left running when the pool.transaction callback threw says "this transaction was released"', async () => {
    let late: Promise<unknown> | undefined
    const err = await settle(
      pool.transaction(async (tx) => {
        await insert(tx, 'a')
        late = settle(
          tx.transaction(async (sp) => {
            await sleep(30)
            await insert(sp, 'b')
          }),
        )
        throw new Error('outer fails')
      }),
    )
    expect(err).toEqual(new Error('outer fails'))
    expectReleased(await late, 'transaction')
    expect(await rows()).toEqual([])
  })

  it('a retryOn that throws keeps the attempt’s error as cause', async () => {
    const err = await settle(
      pool.transaction(
        async (tx) => {
          await insert(tx, 'x')
          await tx.query('select * from missing_table')
        },
        {
          retry: {
            retryOn: () => {
              throw new TypeError('bug in retryOn')
            },
          },
        },
      ),
    )
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as DatabaseError).message).toMatch(/transaction\.retry\.retryOn threw \(TypeError: bug in retryOn\)/)
    expect(DatabaseError.is((err as DatabaseError).cause, 'SYNTAX_ERROR')).toBe(true)
    expect(await rows()).toEqual([])
  })
})
