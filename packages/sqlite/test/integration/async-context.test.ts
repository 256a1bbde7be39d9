import { AsyncLocalStorage } from 'node:async_hooks'
import { sql } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('async context of callers that waited for a connection (no tracing)', () => {
  it("runs each of 200 callers' callbacks in its own AsyncLocalStorage context on a max-2 pool", async () => {
    const pool = createSqlitePool(tmp.file('context.db'), { max: 2, acquireTimeoutMs: 10_000, name: 'context' })
    try {
      await pool.query('create table seen (id integer primary key, store integer)')
      const requestId = new AsyncLocalStorage<number>()
      let open!: () => void
      const gate = new Promise<void>((r) => (open = r))
      const holders = [pool.withConnection(() => gate), pool.transaction(() => gate)]
      const mismatches: string[] = []
      const callers = Array.from({ length: 200 }, (_, id) =>
        requestId.run(id, async () => {
          const inConnection = await pool.withConnection(async (conn) => {
            await conn.query('select 1')
            return requestId.getStore()
          })
          await pool.transaction(async (tx) => {
            await tx.query(sql`insert into seen (id, store) values (${id}, ${requestId.getStore() ?? null})`)
          })
          if (inConnection !== id) mismatches.push(`caller ${id} saw request ${String(inConnection)} in withConnection`)
        }),
      )
      // more than max + 32 callers wait: most of them in dbpool's own queue
      expect(pool.stats().pending).toBeGreaterThan(2 + 32)
      open()
      await Promise.all([...callers, ...holders])
      const rows = await pool.query<{ id: number; store: number | null }>('select id, store from seen where store is null or store <> id')
      expect(rows.rows.map((r) => `caller ${r.id} saw request ${String(r.store)} in transaction`).concat(mismatches)).toEqual([])
      expect((await pool.query<{ n: number }>('select count(*) as n from seen')).rows[0]!.n).toBe(200)
    } finally {
      await pool.close({ timeoutMs: 2_000 })
    }
  })
})
