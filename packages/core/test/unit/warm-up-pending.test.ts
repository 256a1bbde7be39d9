import { DatabaseError } from '@dbpool/core'
import { makePool, waitFor } from './helpers'

// With `min: 2` and an unreachable database, before any caller asked, stats().pending (and the
// db.client.connection.pending_requests gauge) read 2, and a caller's ACQUIRE_TIMEOUT said
// pending=3: the pool's own warm-up acquires were counted as pending requests.
describe('the warm-up to min', () => {
  it('is not counted as pending requests: stats, error messages, maxWaitingClients', async () => {
    const { pool, manager } = makePool({ min: 2, max: 4, acquireTimeoutMs: 100, createTimeoutMs: 10_000, maxWaitingClients: 1 })
    manager.connectFault = { kind: 'hang' }
    await waitFor(() => pool.stats().size === 2)
    expect(pool.stats()).toMatchObject({ size: 2, used: 0, pending: 0 })
    expect(pool.metrics.snapshot().connections).toMatchObject({ pending: 0 })
    // one caller: it alone waits (maxWaitingClients 1 is not already full of warm-up acquires)
    const err = await pool.query('select 1').catch((e: unknown) => e)
    expect(DatabaseError.is(err, 'ACQUIRE_TIMEOUT')).toBe(true)
    expect((err as DatabaseError).message).toMatch(/pending=1\b/)
    expect((err as DatabaseError).poolStats).toMatchObject({ pending: 1 })
    expect(pool.stats().pending).toBe(0)
    await pool.close({ timeoutMs: 50 })
  })
})
