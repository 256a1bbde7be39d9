import { DatabaseError, DatabasePool, type CompiledQuery, type CursorOptions, type PoolExtension, type RowCursor } from '@dbpool/core'
import { FakeConnectionManager, type FakeConnection } from '@dbpool/core/testing'
import { makePool, rejection } from './helpers'

// pool.stream() against a fake manager whose cursor hands out numbered rows: the lease, the
// cursor's close, the manager capability being optional, and pool extensions.

interface Script {
  rows: number
  failAt?: number
  closes: number
  reads: number
}

class CursorManager extends FakeConnectionManager {
  readonly scripts: Script[] = []

  openCursor<R>(_conn: FakeConnection, query: CompiledQuery, options: CursorOptions): RowCursor<R> {
    if (query.text.includes('refuse')) throw new DatabaseError('INVALID_PARAMETER', 'refused before sending')
    const script: Script = { rows: 25, closes: 0, reads: 0, ...(query.text.includes('fail') ? { failAt: 2 } : {}) }
    this.scripts.push(script)
    let next = 1
    return {
      read: async () => {
        script.reads++
        if (script.failAt !== undefined && script.reads === script.failAt) throw new DatabaseError('QUERY_FAILED', 'boom mid-stream')
        const rows: R[] = []
        while (rows.length < options.batchSize && next <= script.rows) rows.push({ n: next++ } as R)
        return rows
      },
      close: () => {
        script.closes++
      },
    }
  }
}

function cursorPool(): { pool: DatabasePool<FakeConnection>; manager: CursorManager } {
  const manager = new CursorManager()
  const pool = new DatabasePool(manager, { min: 0, max: 2, acquireTimeoutMs: 200 })
  return { pool, manager }
}

async function collect<R>(iterable: AsyncIterable<R>): Promise<R[]> {
  const rows: R[] = []
  for await (const row of iterable) rows.push(row)
  return rows
}

describe('pool.stream() on a fake manager', () => {
  it('is CONFIGURATION when the manager has no openCursor', async () => {
    const { pool } = makePool()
    const error = await rejection(collect(pool.stream('select 1')))
    expect(error.code).toBe('CONFIGURATION')
    expect(pool.stats().used).toBe(0)
  })

  it('reads in batches, holds one lease meanwhile, closes the cursor and releases once at the end', async () => {
    const { pool, manager } = cursorPool()
    try {
      const iterator = pool.stream<{ n: number }>('select n', [], { batchSize: 10 })[Symbol.asyncIterator]()
      expect((await iterator.next()).value).toEqual({ n: 1 })
      expect(pool.stats().used).toBe(1)
      const rest: number[] = []
      for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value.n)
      expect(rest).toHaveLength(24)
      expect(manager.scripts[0]).toMatchObject({ reads: 4, closes: 1 })
      expect(pool.stats().used).toBe(0)
      expect(await iterator.next()).toEqual({ value: undefined, done: true })
    } finally {
      await pool.close()
    }
  })

  it('break closes the cursor before the release; an error mid-stream releases too; a refusal before sending too', async () => {
    const { pool, manager } = cursorPool()
    try {
      for await (const row of pool.stream('select n', [], { batchSize: 5 })) {
        void row
        break
      }
      expect(manager.scripts[0]).toMatchObject({ reads: 1, closes: 1 })
      expect(pool.stats().used).toBe(0)
      const failed = await rejection(collect(pool.stream('select fail', [], { batchSize: 5 })))
      expect(failed.message).toBe('boom mid-stream')
      expect(manager.scripts[1]).toMatchObject({ reads: 2, closes: 1 })
      expect(pool.stats().used).toBe(0)
      expect((await rejection(collect(pool.stream('select refuse')))).code).toBe('INVALID_PARAMETER')
      expect(pool.stats().used).toBe(0)
    } finally {
      await pool.close()
    }
  })

  it('calls to next() made at once are served in order, one batch at a time', async () => {
    const { pool } = cursorPool()
    try {
      const iterator = pool.stream<{ n: number }>('select n', [], { batchSize: 3 })[Symbol.asyncIterator]()
      const results = await Promise.all(Array.from({ length: 27 }, () => iterator.next()))
      expect(results.filter((r) => !r.done).map((r) => r.value.n)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
      expect(results.slice(25).every((r) => r.done)).toBe(true)
      expect(pool.stats().used).toBe(0)
    } finally {
      await pool.close()
    }
  })

  it('throw() ends the iteration and rejects with the given error', async () => {
    const { pool } = cursorPool()
    try {
      const iterator = pool.stream('select n')[Symbol.asyncIterator]()
      await iterator.next()
      const err = new Error('consumer gave up')
      await expect(iterator.throw!(err)).rejects.toBe(err)
      expect(pool.stats().used).toBe(0)
    } finally {
      await pool.close()
    }
  })
})

describe('pool extensions', () => {
  it('counts their connections in stats().dedicated, closes them with the pool, and refuse new ones after close()', async () => {
    const { pool } = makePool()
    expect(pool.stats().dedicated).toBeUndefined()
    let closed = 0
    const key = Symbol('test')
    const extension: PoolExtension = {
      connections: 1,
      close: async () => {
        closed++
      },
    }
    expect(pool.extension(key, () => extension)).toBe(extension)
    expect(pool.extension(key, () => ({ connections: 5, close: async () => undefined }))).toBe(extension)
    expect(pool.stats().dedicated).toBe(1)
    expect(pool.stats('write').dedicated).toBeUndefined()
    await pool.close()
    expect(closed).toBe(1)
    expect(() => pool.extension(Symbol('late'), () => extension)).toThrow(DatabaseError)
  })
})
