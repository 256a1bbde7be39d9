import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createSqlitePool } from '@dbpool/sqlite'

it('a burst of queued transactions lets timers run (no macrotask starvation)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbpool-fair-'))
  const pool = createSqlitePool(path.join(dir, 'fair.db'), { max: 4 }, { synchronous: 'OFF' })
  try {
    await pool.query('create table t (id integer primary key, v integer not null)')
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    const started = performance.now()
    await Promise.all(
      Array.from({ length: 3_000 }, (_, i) =>
        pool.transaction(async (tx) => {
          await tx.query('insert into t (v) values (?)', [i])
          await tx.query('update t set v = v + 1 where id = ?', [i + 1])
        }),
      ),
    )
    const elapsed = performance.now() - started
    clearInterval(timer)
    // without yielding, the whole burst is one chain of microtasks and the timer never fires
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 50))
    expect(ticks).toBeGreaterThan(0)
    expect((await pool.query<{ n: number }>('select count(*) as n from t')).rows[0]?.n).toBe(3_000)
  } finally {
    await pool.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  // about 1 s alone; what is asserted is that timers ran, not how fast, and a loaded full run took over 5 s
}, 60_000)
