import workerThreads from 'node:worker_threads'
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

  it('a deep check past its timeoutMs is degraded (integrity not known) and says its check goes on', async () => {
    const { pool, manager, db } = await seeded('deadline')
    try {
      const checks = await manager.healthChecks(db, { deep: true, timeoutMs: 1 })
      const integrity = checks.find((c) => c.name === 'integrity')
      expect(integrity).toMatchObject({ status: 'degraded', data: { timedOut: true } })
      // worker.terminate() cannot interrupt the native scan: it was not "stopped"
      expect(integrity?.message).not.toMatch(/stopped/)
      expect(integrity?.message).toMatch(/goes on/)
    } finally {
      await pool.close()
    }
  })

  // each timed-out deep probe left its worker scanning the whole file: threads and I/O piled up
  it('probes past their deadline share one worker per database; a later probe is answered from it', async () => {
    const { pool, manager, db } = await seeded('pileup')
    const RealWorker = workerThreads.Worker
    const spawn = jest
      .spyOn(workerThreads, 'Worker')
      .mockImplementation((...args: ConstructorParameters<typeof RealWorker>) => new RealWorker(...args))
    try {
      const probes = await Promise.all(Array.from({ length: 8 }, () => manager.healthChecks(db, { deep: true, timeoutMs: 1 })))
      for (const checks of probes) expect(checks.find((c) => c.name === 'integrity')?.status).toMatch(/^(degraded|healthy)$/)
      expect(spawn).toHaveBeenCalledTimes(1)
      const later = await manager.healthChecks(db, { deep: true, timeoutMs: 20_000 })
      expect(later.find((c) => c.name === 'integrity')).toMatchObject({ status: 'healthy', data: { ok: true } })
    } finally {
      spawn.mockRestore()
      await pool.close()
    }
  })
})
