import { createSqlitePool, sqliteManagerOf } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// /ready ran PRAGMA quick_check on the event loop at every probe (140-200 ms on a 210 MB file)
describe('SQLite health checks', () => {
  async function seeded(name: string) {
    const pool = createSqlitePool(tmp.file(`${name}.db`), { name })
    await pool.query('create table blobs (id integer primary key, b blob)')
    await pool.query(
      `insert into blobs (b) select randomblob(4000) from (with recursive c(i) as (select 1 union all select i + 1 from c where i < 500) select i from c)`,
    )
    const manager = sqliteManagerOf(pool)!
    const db = await pool.withConnection(async (conn) => conn.native, { lane: 'write' })
    return { pool, manager, db }
  }

  it('a check that is not deep scans nothing: no integrity check', async () => {
    const { pool, manager, db } = await seeded('shallow')
    try {
      const checks = await manager.healthChecks(db, { deep: false, timeoutMs: 5_000 })
      expect(checks.map((c) => c.name)).toEqual(['wal', 'pages', 'file'])
    } finally {
      await pool.close()
    }
  })

  it('a deep check runs integrity_check off the event loop (a setImmediate runs before it answers)', async () => {
    const { pool, manager, db } = await seeded('deep')
    try {
      let answered = false
      const checks = manager.healthChecks(db, { deep: true, timeoutMs: 20_000 }).then((c) => {
        answered = true
        return c
      })
      await new Promise<void>((resolve) => setImmediate(resolve))
      expect(answered).toBe(false)
      expect((await checks).find((c) => c.name === 'integrity')).toMatchObject({
        status: 'healthy',
        data: { mode: 'integrity_check', ok: true },
      })
    } finally {
      await pool.close()
    }
  })

  it('a deep check past its timeoutMs stops the worker and is degraded (integrity not known)', async () => {
    const { pool, manager, db } = await seeded('deadline')
    try {
      const checks = await manager.healthChecks(db, { deep: true, timeoutMs: 1 })
      expect(checks.find((c) => c.name === 'integrity')).toMatchObject({ status: 'degraded', data: { timedOut: true } })
    } finally {
      await pool.close()
    }
  })
})
