import { existsSync } from 'node:fs'
import { HealthChecker, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { exited, lines, spawnFixture, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

describe('crash safety', () => {
  it('after SIGKILL mid-transaction, committed rows are all there, uncommitted ones are not, and integrity is ok', async () => {
    const path = tmp.file('crash.db')
    const child = spawnFixture('crash-child.ts', [path, '25'])
    const out = lines(child)
    await out.waitFor(/^holding$/, 60_000)
    child.kill('SIGKILL')
    const { signal } = await exited(child)
    expect(signal).toBe('SIGKILL')
    // the child died holding an open write transaction: its WAL and lock files are left behind
    expect(existsSync(`${path}-wal`)).toBe(true)

    const committed = out.all.filter((l) => l.startsWith('committed ')).map((l) => Number(l.slice('committed '.length)))
    expect(committed).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))

    const pool: DatabasePool<SqliteDatabase> = createSqlitePool(path, { name: 'after-crash' })
    try {
      const { rows } = await pool.query<{ tx: number; parts: string }>(
        "select tx, group_concat(part, '') as parts from item group by tx order by tx",
      )
      expect(rows.map((r) => r.tx)).toEqual(committed)
      expect(rows.every((r) => r.parts === 'ab')).toBe(true)
      expect((await pool.query("select count(*) as n from item where part = 'uncommitted'")).rows).toEqual([{ n: 0 }])
      const report = await new HealthChecker({ deep: true }).check(pool)
      const integrity = report.checks.find((c) => c.name === 'integrity')
      expect(integrity).toMatchObject({ status: 'healthy', data: { mode: 'integrity_check', ok: true } })
      expect(report.status).toBe('healthy')
      // the pool still writes after recovery
      await pool.transaction((tx) => tx.query("insert into item (part, tx) values ('a', 100)"))
    } finally {
      await pool.close()
    }
  }, 90_000)
})
