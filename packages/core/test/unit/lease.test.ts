import { DatabaseError } from '@dbpool/core'
import { Lease } from '../../src/pool/lease'
import { PooledConnection } from '../../src/pool/pooled-connection'

// Leases are internal: user code never sees release(). These tests pin the rule the pool relies on.
describe('Lease', () => {
  const conn = () => new PooledConnection({}, 'write', Number.POSITIVE_INFINITY)

  it('is released exactly once; a second release throws', () => {
    const lease = new Lease(conn(), undefined, performance.now())
    expect(lease.active).toBe(true)
    expect(lease.markReleased()).toBe(true)
    expect(lease.active).toBe(false)
    expect(() => lease.markReleased()).toThrow(DatabaseError)
    expect(() => lease.markReleased()).toThrow(/already released/)
  })

  it('a lease revoked by close() ends silently once, then a further release throws', () => {
    const lease = new Lease(conn(), undefined, performance.now())
    lease.revoke()
    expect(lease.revoked).toBe(true)
    expect(lease.markReleased()).toBe(false)
    expect(() => lease.markReleased()).toThrow(/already released/)
  })

  it("reports the acquirer's stack without the pool's own frames, or says capture is off", () => {
    const origin = new Error('connection acquired here')
    expect(new Lease(conn(), origin, 0).stack()).toMatch(/lease\.test\.ts/)
    expect(new Lease(conn(), undefined, 0).stack()).toBe('(stack capture disabled)')
  })
})
