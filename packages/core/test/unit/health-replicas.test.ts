import {
  DatabaseError,
  DatabasePool,
  HealthChecker,
  type ConnectionHooks,
  type Lane,
  type LaneLayout,
  type ReplicaStatus,
} from '@dbpool/core'
import { FakeConnectionManager, type FakeConnection } from '@dbpool/core/testing'

/** A fake manager whose read lane is two replicas; `down` ones refuse connections (as a wrong password does). */
class ReplicatedFake extends FakeConnectionManager {
  override readonly lanes: LaneLayout = { readers: 0, readTargets: ['r0:5432', 'r1:5432'] }
  readonly down = new Set<number>()

  override async connect(lane: Lane, hooks: ConnectionHooks, target?: number): Promise<FakeConnection> {
    if (target !== undefined && this.down.has(target))
      throw new DatabaseError('AUTHENTICATION_FAILED', `replica ${target} refused the password`, { backend: 'postgres' })
    return super.connect(lane, hooks)
  }

  override route(): Lane {
    return 'write'
  }

  async replicaStatus(): Promise<ReplicaStatus> {
    return { inRecovery: true, position: 0n, lagMs: 0 }
  }
}

describe('HealthChecker on a pool with read replicas', () => {
  it('reports a replica out of the read lane as a degraded replicas check (the pool stays ready), and all usable as healthy', async () => {
    const manager = new ReplicatedFake()
    const pool = new DatabasePool(manager, { min: 0, max: 2, keepaliveIntervalMs: 0 })
    try {
      const checker = new HealthChecker({ timeoutMs: 2_000 })
      const healthy = await checker.check(pool)
      expect(healthy.status).toBe('healthy')
      expect(healthy.checks.find((c) => c.name === 'replicas')).toMatchObject({ status: 'healthy' })

      manager.down.add(0)
      manager.down.add(1)
      // the reads find both replicas refusing: taken out, the reads run on the primary
      await pool.query('select 1', [], { lane: 'read' })
      const report = await checker.check(pool)
      expect(report.status).toBe('degraded')
      const check = report.checks.find((c) => c.name === 'replicas')
      expect(check).toMatchObject({
        status: 'degraded',
        data: {
          replicas: [
            { replica: 'r0:5432', usable: false, reason: 'unreachable' },
            { replica: 'r1:5432', usable: false, reason: 'unreachable' },
          ],
        },
      })
      expect(check?.message).toBe(
        '2 of 2 replicas out of the read lane (r0:5432 unreachable, r1:5432 unreachable); read-lane work runs on the primary',
      )
    } finally {
      await pool.close()
    }
  })

  it('has no replicas check on a pool without replicas', async () => {
    const pool = new DatabasePool(new FakeConnectionManager(), { min: 0, max: 1, keepaliveIntervalMs: 0 })
    try {
      const report = await new HealthChecker().check(pool)
      expect(report.checks.map((c) => c.name)).not.toContain('replicas')
    } finally {
      await pool.close()
    }
  })
})
