import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// pool.stream('select * from t; drop table t') without parameters said "a text of several statements
// cannot take parameters": a stream runs one statement, with or without parameters.

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('a stream of a text of several statements', () => {
  it('is SYNTAX_ERROR saying a stream runs one statement (pool, held connection, transaction), and runs nothing', async () => {
    const pool = createSqlitePool(tmp.file('several.db'), { name: 'stream-several' })
    try {
      await pool.query('create table t (x integer); insert into t values (1), (2)')
      const drain = async (rows: AsyncIterable<unknown>): Promise<unknown> => {
        try {
          for await (const _ of rows) void _
        } catch (err) {
          return err
        }
        return undefined
      }
      const text = 'select * from t; drop table t'
      let inTransaction: unknown
      // the refusal aborts the transaction (as on Postgres): its commit is refused after it
      await expect(
        pool.transaction(async (tx) => {
          inTransaction = await drain(tx.stream(text))
        }),
      ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
      const errors = [
        await drain(pool.stream(text)),
        await drain(pool.stream('select * from t where x = ?; drop table t', [1])),
        await pool.withConnection((conn) => drain(conn.stream(text))),
        inTransaction,
      ]
      for (const err of errors) {
        expect(err).toMatchObject({ code: 'SYNTAX_ERROR', detail: { severalStatements: true } })
        expect((err as Error).message).toMatch(/^a stream runs one statement and this text holds several/)
        expect((err as Error).message).not.toMatch(/cannot take parameters/)
      }
      expect((await pool.query('select count(*) as n from t')).rows).toEqual([{ n: 2 }])
      // query() with parameters keeps its own message: a script runs only without parameters
      await expect(pool.query('select ?; select ?', [1, 2])).rejects.toMatchObject({
        code: 'SYNTAX_ERROR',
        message: expect.stringMatching(/cannot take parameters/),
      })
    } finally {
      await pool.close()
    }
  })
})
