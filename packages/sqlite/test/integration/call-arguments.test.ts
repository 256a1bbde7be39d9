import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

type Call = (...args: unknown[]) => unknown

async function rows(iterable: unknown): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const row of iterable as AsyncIterable<unknown>) out.push(row)
  return out
}

// A wrapper forwarding (text, params, options, cb) passes cb as undefined: that is no 4th argument
// (as an option key set to undefined is none); a defined one (a pg-style callback) is CONFIGURATION.
describe('trailing undefined arguments of query() and stream()', () => {
  it('run on the pool, a connection and a transaction; a defined 4th is refused with a clear message', async () => {
    const pool = createSqlitePool(tmp.file('args.db'), { name: 'args' })
    try {
      const shim = (text: string, params?: unknown[], options?: object, cb?: () => void) =>
        (pool.query as Call).call(pool, text, params, options, cb) as Promise<{ rows: unknown[] }>
      expect((await shim('select 1 as v', [], undefined)).rows).toEqual([{ v: 1 }])
      expect(await rows((pool.stream as Call).call(pool, 'select 2 as v', [], undefined, undefined))).toEqual([{ v: 2 }])
      await pool.withConnection(async (conn) => {
        expect(((await (conn.query as Call).call(conn, 'select 3 as v', [], {}, undefined)) as { rows: unknown[] }).rows).toEqual([
          { v: 3 },
        ])
        expect(await rows((conn.stream as Call).call(conn, 'select 4 as v', [], {}, undefined))).toEqual([{ v: 4 }])
      })
      await pool.transaction(async (tx) => {
        expect(((await (tx.query as Call).call(tx, 'select 5 as v', undefined, undefined, undefined)) as { rows: unknown[] }).rows).toEqual(
          [{ v: 5 }],
        )
        expect(await rows((tx.stream as Call).call(tx, 'select 6 as v', [], {}, undefined))).toEqual([{ v: 6 }])
      })
      await expect(shim('select 1', [], undefined, () => undefined)).rejects.toMatchObject({
        code: 'CONFIGURATION',
        message: 'query() takes at most 3 arguments (text, params, options); a 4th was given: callbacks are not supported, use the promise',
        detail: { option: 'query()', argument: 4 },
      })
      await expect(rows((pool.stream as Call).call(pool, 'select 1', [], {}, () => undefined))).rejects.toMatchObject({
        code: 'CONFIGURATION',
        detail: { option: 'stream()', argument: 4 },
      })
    } finally {
      await pool.close()
    }
  })
})
