import { HealthChecker } from '@dbpool/core'
import { createSqlitePool, sqliteManagerOf } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { tempDir } from './helpers'

// DELETE journal mode: while another connection writes, the `pages` check got BUSY at once and made
// /ready unhealthy (503 within ~20 ms). It waits for the lock within its deadline; BUSY is degraded.
const tmp = tempDir()
afterAll(() => tmp.cleanup())

async function deleteModePool(name: string) {
  const file = tmp.file(`${name}.db`)
  const pool = createSqlitePool(file, { name }, { journalMode: 'DELETE' })
  await pool.query('create table t (id integer primary key, v text)')
  const db = await pool.withConnection(async (conn) => conn.native, { lane: 'write' })
  return { file, pool, manager: sqliteManagerOf(pool)!, db }
}

/** Another connection holding the file's EXCLUSIVE lock (a writer of another process). */
function lockedBy(file: string): Database.Database {
  const other = new Database(file, { timeout: 0 })
  other.exec('begin exclusive')
  other.prepare("insert into t (v) values ('x')").run()
  return other
}

it('a lock held past the deadline makes the pages check degraded (busy, not down), not unhealthy', async () => {
  const { file, pool, manager, db } = await deleteModePool('busy-held')
  const other = lockedBy(file)
  try {
    const checks = await manager.healthChecks(db, { deep: false, timeoutMs: 100 })
    expect(checks.find((c) => c.name === 'pages')).toMatchObject({ status: 'degraded', data: { code: 'BUSY' } })
  } finally {
    other.exec('rollback')
    other.close()
    await pool.close()
  }
})

it('the pages check waits for a lock released within its deadline: healthy', async () => {
  const { file, pool, manager, db } = await deleteModePool('busy-released')
  const other = lockedBy(file)
  setTimeout(() => {
    other.exec('commit')
    other.close()
  }, 50)
  try {
    const checks = await manager.healthChecks(db, { deep: false, timeoutMs: 5_000 })
    expect(checks.find((c) => c.name === 'pages')).toMatchObject({ status: 'healthy' })
    expect((await new HealthChecker({ timeoutMs: 2_000 }).check(pool)).status).toBe('healthy')
  } finally {
    if (other.open) other.close()
    await pool.close()
  }
})
