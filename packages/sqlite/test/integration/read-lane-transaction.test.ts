import type { DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

/**
 * A statement sent on the read lane that opens a transaction (BEGIN, SAVEPOINT, a script ending in
 * one) on an idle reader (the lease-free path), or a script of its own transaction control failing
 * there: the reader must not stay inside that transaction, where every later read routed to it would
 * answer from the old snapshot (or fail, aborted) and the WAL would never be checkpointed.
 */
describe('a transaction opened on the read lane is never left on the reader', () => {
  let pool: DatabasePool<SqliteDatabase>
  let n = 0

  beforeEach(async () => {
    pool = createSqlitePool(tmp.file(`read-lane-tx-${++n}.db`), { acquireTimeoutMs: 2_000 }, { readers: 1 })
    await pool.query('create table t (v integer)')
    // the reader is open and idle: what follows takes the lease-free path
    await pool.query('select 1', [], { lane: 'read' })
  })

  afterEach(async () => {
    await pool.close({ timeoutMs: 2_000 })
  })

  async function count(): Promise<number> {
    const { rows } = await pool.query<{ n: number }>('select count(*) as n from t', [], { lane: 'read' })
    return rows[0]!.n
  }

  it.each(['SAVEPOINT x', 'BEGIN', 'BEGIN TRANSACTION', '/* c */ begin deferred', 'begin; savepoint x; select 1', 'select 1; BEGIN'])(
    '%s: TRANSACTION_ROLLED_BACK, and later reads on the reader see new commits',
    async (text) => {
      await expect(pool.query(text, [], { lane: 'read' })).rejects.toMatchObject({
        code: 'TRANSACTION_ROLLED_BACK',
        retryable: false,
        message: expect.stringContaining('pool.query() runs each statement') as unknown,
      })
      expect(pool.stats('read').size).toBe(1)
      expect(await count()).toBe(0)
      await pool.query('insert into t values (1)')
      expect(await count()).toBe(1)
      await pool.query('insert into t values (2)')
      expect(await count()).toBe(2)
      // a read-only transaction on the same reader can begin
      await expect(pool.transaction((tx) => tx.query('select count(*) as n from t'), { readOnly: true })).resolves.toMatchObject({
        rows: [{ n: 2 }],
      })
    },
  )

  it("'savepoint x; select 1' is refused as Postgres refuses it (re-review r10 item 6), and leaves no transaction on the reader", async () => {
    await expect(pool.query('savepoint x; select 1', [], { lane: 'read' })).rejects.toMatchObject({
      code: 'QUERY_FAILED',
      message: expect.stringContaining('SAVEPOINT can only be used in transaction blocks') as unknown,
    })
    await pool.query('insert into t values (1)')
    expect(await count()).toBe(1)
  })

  it('a failing script with its own BEGIN leaves no aborted transaction on the reader', async () => {
    await expect(pool.query('BEGIN; select count(*) from t; select nope from t', [], { lane: 'read' })).rejects.toMatchObject({
      code: 'SYNTAX_ERROR',
    })
    await pool.query('insert into t values (1)')
    expect(await count()).toBe(1)
    expect(await pool.query('select count(*) as n from t')).toMatchObject({ rows: [{ n: 1 }] })
  })

  it.each(['SAVEPOINT z', 'begin'])(
    'a stream of %s on the read lane: TRANSACTION_ROLLED_BACK, as pool.query() reports it, its message naming pool.stream()',
    async (text) => {
      const consume = async (): Promise<unknown[]> => {
        const rows: unknown[] = []
        for await (const row of pool.stream(text, [], { lane: 'read' })) rows.push(row)
        return rows
      }
      const err = await consume().then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      expect(err).toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
      expect(err?.message).toContain('pool.stream() runs each statement')
      expect(err?.message).not.toContain('pool.query()')
      await pool.query('insert into t values (1)')
      expect(await count()).toBe(1)
    },
  )
})
