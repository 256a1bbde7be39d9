import { existsSync } from 'node:fs'
import { HealthChecker, sql, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, sqliteManagerOf, walSizeBytes, type SqliteDatabase } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

async function bulkInsert(pool: DatabasePool<SqliteDatabase>, rows: number): Promise<void> {
  await pool.transaction(async (tx) => {
    for (let i = 0; i < rows; i++) await tx.query(sql`insert into t (body) values (${'w'.repeat(500)})`)
  })
}

describe('SQLite health and WAL', () => {
  it('reports integrity, WAL size and page counts', async () => {
    const path = tmp.file(`health-${++n}.db`)
    const pool = createSqlitePool(path, {}, { walCheckpointThresholdBytes: 0 })
    try {
      await pool.query('create table t (id integer primary key, body text)')
      await bulkInsert(pool, 200)
      const report = await new HealthChecker({ deep: true }).check(pool)
      expect(report.status).toBe('healthy')
      expect(report.backend).toBe('sqlite')
      expect(report.target).toBe(`sqlite:${path}`)
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]))
      expect(byName.integrity).toMatchObject({ status: 'healthy', data: { mode: 'integrity_check', ok: true, errors: [] } })
      expect(byName.wal?.data?.bytes).toBe(walSizeBytes(path))
      expect(Number(byName.wal?.data?.bytes)).toBeGreaterThan(100_000)
      expect(byName.pages?.data).toMatchObject({ pageSize: 4096, freelistCount: 0 })
      expect(Number(byName.pages?.data?.pageCount)).toBeGreaterThan(20)
      const quick = await pool.backendChecks({ deep: false })
      // not deep: no scan of the file (see sqliteHealthChecks)
      expect(quick.map((c) => c.name)).toEqual(['wal', 'pages', 'file'])
    } finally {
      await pool.close()
    }
  })

  it('checkpoints with TRUNCATE once the WAL passes the threshold (and not without one)', async () => {
    const threshold = 64 * 1024
    const sizes: Record<string, number> = {}
    for (const [label, walCheckpointThresholdBytes] of [
      ['with', threshold],
      ['without', 0],
    ] as const) {
      const path = tmp.file(`wal-${label}-${++n}.db`)
      // wal_autocheckpoint (PASSIVE, 1000 pages) never shrinks the file; only TRUNCATE does
      const pool = createSqlitePool(path, {}, { walCheckpointThresholdBytes })
      try {
        await pool.query('create table t (id integer primary key, body text)')
        await bulkInsert(pool, 400)
        // (with a threshold, a bulk insert slower than 250 ms on a loaded machine has already been
        // checkpointed here; a WAL of 0 bytes at the end is what only TRUNCATE gives)
        if (walCheckpointThresholdBytes === 0) expect(walSizeBytes(path)).toBeGreaterThan(threshold)
        await sleep(300) // the size is looked at most every 250 ms
        await pool.query(sql`insert into t (body) values (${'after'})`)
        sizes[label] = walSizeBytes(path)
      } finally {
        await pool.close()
      }
    }
    expect(sizes.with).toBe(0)
    expect(sizes.without).toBeGreaterThan(threshold)
  })

  it('does not checkpoint (or wait) while a reader holds a snapshot', async () => {
    const path = tmp.file(`wal-snapshot-${++n}.db`)
    const pool = createSqlitePool(path, {}, { busyTimeoutMs: 3_000 })
    const manager = sqliteManagerOf(pool)
    try {
      await pool.query('create table t (id integer primary key, body text)')
      await bulkInsert(pool, 50)
      await pool.transaction(
        async (tx) => {
          await tx.query('select count(*) from t')
          const started = performance.now()
          const result = await pool.withConnection(async (conn) => manager?.checkpoint(conn.native, 'TRUNCATE'))
          expect(result?.busy).toBe(true)
          expect(performance.now() - started).toBeLessThan(1_000) // never the 3 s busy timeout
        },
        { readOnly: true },
      )
      const after = await pool.withConnection(async (conn) => manager?.checkpoint(conn.native, 'TRUNCATE'))
      expect(after?.busy).toBe(false)
      expect(walSizeBytes(path)).toBe(0)
    } finally {
      await pool.close()
    }
  })

  it('checkpoints on close: no WAL is left behind', async () => {
    const path = tmp.file(`wal-close-${++n}.db`)
    const pool = createSqlitePool(path, {}, { walCheckpointThresholdBytes: 0 })
    await pool.query('create table t (id integer primary key, body text)')
    await bulkInsert(pool, 100)
    expect(walSizeBytes(path)).toBeGreaterThan(0)
    await pool.close()
    expect(existsSync(`${path}-wal`) ? walSizeBytes(path) : 0).toBe(0)
    const reopened = createSqlitePool(path)
    try {
      expect((await reopened.query('select count(*) as n from t')).rows).toEqual([{ n: 100 }])
    } finally {
      await reopened.close()
    }
  })
})
