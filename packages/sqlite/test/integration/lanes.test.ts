import { DatabaseError, sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, sqliteManagerOf, type SqliteDatabase } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('lanes on a WAL file', () => {
  let pool: DatabasePool<SqliteDatabase>
  let n = 0

  beforeEach(async () => {
    pool = createSqlitePool(tmp.file(`lanes-${++n}.db`), { acquireTimeoutMs: 2_000, name: 'lanes' }, { readers: 2 })
    await pool.query('create table kv (k text primary key, v integer not null)')
    await pool.query(sql`insert into kv (k, v) values (${'a'}, ${1})`)
  })

  afterEach(async () => {
    await pool.close({ timeoutMs: 2_000 })
  })

  function lanesUsed(): { texts: string[]; readonlyConn: boolean[] } {
    const manager = sqliteManagerOf(pool)
    if (!manager) throw new Error('no manager')
    const seen = { texts: [] as string[], readonlyConn: [] as boolean[] }
    // pool.query calls executeSync directly on an idle connection; a lease calls executeNow (undefined:
    // not run, the pool then calls execute)
    const record = (db: { readonly: boolean }, query: { text: string }): void => {
      seen.texts.push(query.text)
      seen.readonlyConn.push(db.readonly)
    }
    const executeSync = manager.executeSync.bind(manager)
    jest.spyOn(manager, 'executeSync').mockImplementation((db, query) => {
      record(db, query)
      return executeSync(db, query)
    })
    const executeNow = manager.executeNow.bind(manager)
    jest.spyOn(manager, 'executeNow').mockImplementation((db, query) => {
      const result = executeNow(db, query)
      if (result !== undefined) record(db, query)
      return result
    })
    const execute = manager.execute.bind(manager)
    jest.spyOn(manager, 'execute').mockImplementation((db, query, options) => {
      record(db, query)
      return execute(db, query, options)
    })
    return seen
  }

  it('runs read-only statements on readers and everything else on the writer', async () => {
    const seen = lanesUsed()
    await pool.query(sql`select v from kv where k = ${'a'}`)
    await pool.query('with x as (select 1 as n) select n from x')
    await pool.query(sql`update kv set v = v + 1 where k = ${'a'}`)
    await pool.query(sql`insert into kv (k, v) values (${'b'}, ${2}) returning k`)
    await pool.query('pragma user_version')
    await pool.query('select * from no_such_table').catch(() => undefined)
    expect(seen.readonlyConn).toEqual([true, true, false, false, false, false])
    expect(pool.stats('read').size).toBeGreaterThanOrEqual(1)
  })

  it('readers see the last committed state while a write transaction is open', async () => {
    let inside: unknown[] = []
    await pool.transaction(async (tx) => {
      await tx.query(sql`update kv set v = ${2} where k = ${'a'}`)
      await tx.query(sql`insert into kv (k, v) values (${'new'}, ${9})`)
      // the writer is held across awaits: reads still go to a reader, and see the committed state
      const reads = await Promise.all([pool.query(sql`select v from kv where k = ${'a'}`), pool.query(`select count(*) as n from kv`)])
      inside = reads.map((r) => r.rows[0])
      expect(tx.native.inTransaction).toBe(true)
    })
    expect(inside).toEqual([{ v: 1 }, { n: 1 }])
    expect((await pool.query(sql`select v from kv where k = ${'a'}`)).rows).toEqual([{ v: 2 }])
    expect((await pool.query('select count(*) as n from kv')).rows).toEqual([{ n: 2 }])
  })

  it('a read-only transaction runs on a reader with a stable snapshot and refuses writes', async () => {
    const committed = pool.transaction(
      async (tx) => {
        expect(tx.lane).toBe('read')
        expect(tx.native.readonly).toBe(true)
        const before = await tx.query<{ v: number }>(sql`select v from kv where k = ${'a'}`)
        await pool.query(sql`update kv set v = ${50} where k = ${'a'}`) // commits on the writer meanwhile
        const after = await tx.query<{ v: number }>(sql`select v from kv where k = ${'a'}`)
        expect(after.rows).toEqual(before.rows)
        const err = await tx.query(sql`update kv set v = ${3}`).catch((e: unknown) => e)
        expect(DatabaseError.is(err, 'READ_ONLY')).toBe(true)
      },
      { readOnly: true, isolation: 'repeatable read' },
    )
    // the refused write aborted the transaction, as on Postgres (25006): the callback caught it and returned
    await expect(committed).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK', cause: { code: 'READ_ONLY' } })
    expect((await pool.query(sql`select v from kv where k = ${'a'}`)).rows).toEqual([{ v: 50 }])
  })

  it('writers queue for the single writer in call order (FIFO), never in the busy handler', async () => {
    const order = Array.from({ length: 20 }, (_, i) => i)
    await Promise.all(
      order.map((i) =>
        pool.transaction(async (tx) => {
          await tx.query(sql`insert into kv (k, v) values (${`w${i}`}, ${i})`)
          await sleep(1)
        }),
      ),
    )
    const { rows } = await pool.query<{ v: number }>(`select v from kv where k like 'w%' order by rowid`)
    expect(rows.map((r) => r.v)).toEqual(order)
    expect(pool.stats('write').max).toBe(1)
  })

  it('withConnection can pick the read lane', async () => {
    const readonly = await pool.withConnection(async (conn) => conn.native.readonly, { lane: 'read' })
    const writer = await pool.withConnection(async (conn) => conn.native.readonly)
    expect([readonly, writer]).toEqual([true, false])
  })
})

describe('min applies per lane', () => {
  it.each([
    { min: 1, readers: 2, write: 1, read: 1 },
    { min: 3, readers: 2, write: 1, read: 2 },
  ])(
    'min $min with $readers readers keeps $write writer(s) and $read reader(s) open; stats().min is what is kept open',
    async ({ min, readers, write, read }) => {
      const pool = createSqlitePool(tmp.file(`min-${min}.db`), { min, max: 4, name: 'min' }, { readers })
      try {
        await pool.query('select 1')
        for (let i = 0; i < 100 && pool.stats().size < write + read; i++) await sleep(10)
        expect(pool.stats('write')).toMatchObject({ min: write, size: write })
        expect(pool.stats('read')).toMatchObject({ min: read, size: read })
        expect(pool.stats()).toMatchObject({ min: write + read, size: write + read })
      } finally {
        await pool.close({ timeoutMs: 2_000 })
      }
    },
  )
})

describe(':memory:', () => {
  it('has one connection that every lane and every transaction shares', async () => {
    const pool = createSqlitePool(':memory:', { max: 10 })
    try {
      await pool.query('create table t (x integer)')
      await pool.query(sql`insert into t values (${1})`)
      const viaRead = await pool.withConnection((c) => c.query('select count(*) as n from t'), { lane: 'read' })
      const viaReadOnlyTx = await pool.transaction((tx) => tx.query('select count(*) as n from t'), { readOnly: true })
      expect(viaRead.rows).toEqual([{ n: 1 }])
      expect(viaReadOnlyTx.rows).toEqual([{ n: 1 }])
      expect(pool.stats().max).toBe(1)
      expect(sqliteManagerOf(pool)?.lanes).toEqual({ writeMax: 1, readers: 0 })
    } finally {
      await pool.close()
    }
  })

  it('keeps its data when the connection is retired (max lifetime) and drops it at close', async () => {
    const pool = createSqlitePool(':memory:', { maxLifetimeMs: 50, maxLifetimeJitter: 0, min: 0 })
    const manager = sqliteManagerOf(pool)
    try {
      await pool.query('create table t (x integer)')
      await pool.query(sql`insert into t values (${7})`)
      await sleep(80)
      expect((await pool.query('select x from t')).rows).toEqual([{ x: 7 }])
    } finally {
      await pool.close()
    }
    expect(manager?.openConnections).toBe(0)
  })
})
