import { DatabaseError, DatabasePool, type ConnectionHooks, type Lane, type LaneLayout, type ReplicaStatus } from '@dbpool/core'
import { FakeConnectionManager, type FakeConnection } from '@dbpool/core/testing'

/** A fake manager whose read lane is two replicas; each connection remembers where it went. */
class ReplicatedFake extends FakeConnectionManager {
  override readonly lanes: LaneLayout = { readers: 0, readTargets: ['r0:5432', 'r1:5432'] }
  readonly readYourWrites: boolean
  readonly maxReplicaLagMs = 1_000
  readonly where = new Map<FakeConnection, string>()
  /** Replayed position and lag per replica. */
  readonly replicas = [
    { position: 0n, lagMs: 0, down: false },
    { position: 0n, lagMs: 0, down: false },
  ]
  primaryPosition = 0n
  positionFault: Error | undefined
  statusCalls = 0

  constructor(readYourWrites: boolean, pipelineDepth?: number) {
    super({ pipelineDepth })
    this.readYourWrites = readYourWrites
  }

  override async connect(lane: Lane, hooks: ConnectionHooks, target?: number): Promise<FakeConnection> {
    if (target !== undefined && this.replicas[target]?.down)
      throw new DatabaseError('CONNECTION_FAILED', `replica ${target} refused`, { backend: 'postgres' })
    const conn = await super.connect(lane, hooks)
    this.where.set(conn, target === undefined ? 'primary' : `r${target}`)
    return conn
  }

  /** `readRouting: 'manual'`: nothing goes to the read lane unless asked for. */
  override route(): Lane {
    return 'write'
  }

  isReadOnly(query: { text: string }): boolean {
    return /^\s*select\b/i.test(query.text)
  }

  async replicaStatus(conn: FakeConnection): Promise<ReplicaStatus> {
    this.statusCalls++
    const replica = this.replicas[Number(this.where.get(conn)?.slice(1))]!
    return { inRecovery: true, position: replica.position, lagMs: replica.lagMs }
  }

  async writePosition(): Promise<bigint> {
    if (this.positionFault) throw this.positionFault
    return this.primaryPosition
  }
}

function open(readYourWrites = false): { manager: ReplicatedFake; pool: DatabasePool<FakeConnection> } {
  const manager = new ReplicatedFake(readYourWrites)
  const pool = new DatabasePool(manager, { min: 0, max: 2, keepaliveIntervalMs: 0 })
  return { manager, pool }
}

describe('the replica read lane (fake manager)', () => {
  it('runs read-lane work on the least busy replica, and lone statements on the primary', async () => {
    const { manager, pool } = open()
    try {
      let release: (() => void) | undefined
      const held = pool.withConnection(
        async (conn) => {
          await conn.query('select held')
          await new Promise<void>((r) => (release = r))
        },
        { lane: 'read' },
      )
      await waitFor(() => release !== undefined)
      await pool.withConnection((conn) => conn.query('select other'), { lane: 'read' })
      release!()
      await held
      const ranOn = (text: string): string | undefined => {
        const conn = manager.connections.find((c) => c.statements.includes(text))
        return conn && manager.where.get(conn)
      }
      expect(new Set([ranOn('select held'), ranOn('select other')])).toEqual(new Set(['r0', 'r1']))
      await pool.query('select 1')
      expect(manager.connections.filter((c) => c.statements.includes('select 1')).map((c) => manager.where.get(c))).toEqual(['primary'])
      await expect(pool.query('select 1', [], { lane: 'elsewhere' as Lane })).rejects.toMatchObject({ code: 'CONFIGURATION' })
    } finally {
      await pool.close()
    }
  })

  it('a replica that refuses connections is taken out; with none left reads run on the primary (events)', async () => {
    const { manager, pool } = open()
    const events: string[] = []
    pool.on('replica', (info) => events.push(`${info.replica} ${String(info.usable)} ${info.reason ?? ''}`))
    pool.on('readFallback', () => events.push('fallback'))
    try {
      manager.replicas[0]!.down = true
      manager.replicas[1]!.down = true
      const { rows } = await pool.query('select 1', [], { lane: 'read' })
      expect(rows).toEqual([])
      expect(manager.connections.map((c) => manager.where.get(c))).toEqual(['primary'])
      expect(events).toEqual(['r0:5432 false unreachable', 'r1:5432 false unreachable', 'fallback'])
      // counted once, where it ran (not also on the replicas whose connect failed)
      expect(pool.replicaStats()).toMatchObject({ readsOnReplicas: 0, readsOnPrimaryFallback: 1 })
      await pool.withConnection((c) => c.query('select 1'), { lane: 'read' })
      expect(pool.replicaStats()).toMatchObject({ readsOnReplicas: 0, readsOnPrimaryFallback: 2 })
    } finally {
      await pool.close()
    }
  })

  it('readYourWrites: reads go to a replica only once it replayed the last write; a failed recording sends reads to the primary', async () => {
    const { manager, pool } = open(true)
    try {
      manager.primaryPosition = 100n
      await pool.query('insert into t values (1)')
      expect(pool.replicaStats()?.positionsRecorded).toBe(1)
      // both replicas behind: asked, then the primary
      manager.replicas[0]!.position = 50n
      manager.replicas[1]!.position = 99n
      expect(await whereRead(manager, pool)).toBe('primary')
      // one caught up
      manager.replicas[1]!.position = 100n
      expect(await whereRead(manager, pool)).toBe('r1')
      // a read-only statement records nothing
      await pool.query('select 1')
      expect(pool.replicaStats()?.positionsRecorded).toBe(1)
      // the position query fails: not known how far, so the primary (even for a replica far ahead)
      manager.positionFault = new Error('gone')
      manager.replicas[0]!.position = 1_000n
      manager.replicas[1]!.position = 1_000n
      await pool.query('update t set a = 1')
      const asked = manager.statusCalls
      expect(await whereRead(manager, pool)).toBe('primary')
      // without asking the replicas: none can be shown to have it
      expect(manager.statusCalls).toBe(asked)
      // a later recording succeeds: known again
      manager.positionFault = undefined
      manager.primaryPosition = 500n
      await pool.query('update t set a = 2')
      expect(await whereRead(manager, pool)).not.toBe('primary')
    } finally {
      await pool.close()
    }
  })

  it('readYourWrites inside withConnection: each statement that leaves a write committed records the position before it resolves, not one still in a transaction', async () => {
    const { manager, pool } = open(true)
    try {
      manager.replicas[0]!.position = 10n
      manager.replicas[1]!.position = 10n
      await pool.withConnection(async (conn) => {
        manager.primaryPosition = 20n
        await conn.query('insert into t values (1)')
        expect(pool.replicaStats()?.positionsRecorded).toBe(1)
        // the replicas have not replayed it: the read in the same callback goes to the primary
        expect(await whereRead(manager, pool)).toBe('primary')
        manager.replicas[1]!.position = 20n
        await conn.transaction(async (tx) => {
          manager.primaryPosition = 30n
          await tx.query('insert into t values (2)')
          // still open: nothing to record yet
          expect(pool.replicaStats()?.positionsRecorded).toBe(1)
        })
        expect(pool.replicaStats()?.positionsRecorded).toBe(2)
        expect(await whereRead(manager, pool)).toBe('primary')
        await conn.query('select 1')
        expect(pool.replicaStats()?.positionsRecorded).toBe(2)
      })
      // nothing left to record at the release
      expect(pool.replicaStats()?.positionsRecorded).toBe(2)
    } finally {
      await pool.close()
    }
  })

  it('readYourWrites: a write inside a transaction is recorded once it committed, before transaction() resolves', async () => {
    const { manager, pool } = open(true)
    try {
      manager.primaryPosition = 7n
      await pool.transaction(async (tx) => {
        await tx.query('insert into t values (1)')
      })
      expect(pool.replicaStats()?.positionsRecorded).toBe(1)
      await pool.transaction(async (tx) => {
        await tx.query('select 1')
      })
      expect(pool.replicaStats()?.positionsRecorded).toBe(1)
    } finally {
      await pool.close()
    }
  })
})

describe('readYourWrites: writes the pool cannot record a position for', () => {
  it('a write whose connection is lost (its outcome unknown) sends reads to the primary until a later write records a position', async () => {
    const { manager, pool } = open(true)
    try {
      manager.primaryPosition = 10n
      manager.replicas[0]!.position = 1_000n
      manager.replicas[1]!.position = 1_000n
      const lost = new DatabaseError('QUERY_TIMEOUT', 'timed out', {
        backend: 'postgres',
        retryable: false,
        detail: { outcome: 'unknown' },
      })
      manager.queryFaults.push({ match: /^insert into t values \(1\)/, fault: { kind: 'fail', error: lost }, fatal: true })
      await expect(pool.query('insert into t values (1)')).rejects.toBe(lost)
      // it may have committed: no replica can be shown to have it (the caller's check before running it again)
      const asked = manager.statusCalls
      expect(await whereRead(manager, pool)).toBe('primary')
      expect(manager.statusCalls).toBe(asked)
      // a later write records a position: known again
      await pool.query('update t set a = 1')
      expect(await whereRead(manager, pool)).not.toBe('primary')
      // inside withConnection: a read later in the same callback goes to the primary
      manager.queryFaults.push({ match: /^insert into t values \(2\)/, fault: { kind: 'fail', error: lost }, fatal: true })
      await pool.withConnection(async (conn) => {
        await expect(conn.query('insert into t values (2)')).rejects.toBe(lost)
        expect(await whereRead(manager, pool)).toBe('primary')
      })
      expect(await whereRead(manager, pool)).toBe('primary')
      // a COMMIT whose connection is lost, in a transaction
      await pool.query('update t set a = 2')
      expect(await whereRead(manager, pool)).not.toBe('primary')
      manager.queryFaults.push({ match: /^COMMIT$/, fault: { kind: 'fail', error: lost }, fatal: true })
      await expect(pool.transaction((tx) => tx.query('insert into t values (3)'))).rejects.toThrow()
      expect(await whereRead(manager, pool)).toBe('primary')
    } finally {
      await pool.close()
    }
  })

  it('a text of several statements that starts with transaction control is a write when one of its statements may write', async () => {
    const { manager, pool } = open(true)
    try {
      manager.primaryPosition = 10n
      for (const text of [
        'commit; insert into t values (1)',
        'rollback; insert into t values (2)',
        'END; insert into t values (3)',
        'savepoint a; release a; insert into t values (4)',
        "commit prepared 'x'",
      ]) {
        const before = pool.replicaStats()!.positionsRecorded
        await pool.query(text)
        expect([text, pool.replicaStats()!.positionsRecorded]).toEqual([text, before + 1])
      }
      // transaction control alone writes nothing
      const before = pool.replicaStats()!.positionsRecorded
      await pool.query('commit')
      await pool.query('rollback; commit;')
      expect(pool.replicaStats()!.positionsRecorded).toBe(before)
    } finally {
      await pool.close()
    }
  })
})

describe('a read-lane statement sharing a replica connection that is lost', () => {
  async function runs(error: DatabaseError): Promise<{ error: unknown; attempts: number }> {
    const manager = new ReplicatedFake(false, 4)
    const pool = new DatabasePool(manager, { min: 0, max: 2, keepaliveIntervalMs: 0 })
    manager.queryFaults.push({ match: /^insert/, fault: { kind: 'fail', error }, fatal: true })
    try {
      const failed = await pool.query('insert into t values (1)', [], { lane: 'read' }).then(
        () => undefined,
        (err: unknown) => err,
      )
      return { error: failed, attempts: manager.connections.filter((c) => c.statements.includes('insert into t values (1)')).length }
    } finally {
      await pool.close()
    }
  }

  it('runs again on the next choice when its outcome is known, never when it is unknown (it may have committed)', async () => {
    const plain = await runs(new DatabaseError('CONNECTION_LOST', 'lost', { backend: 'postgres' }))
    expect(plain.attempts).toBe(2)
    const unknown = new DatabaseError('CONNECTION_LOST', 'lost', { backend: 'postgres', retryable: false, detail: { outcome: 'unknown' } })
    const once = await runs(unknown)
    expect(once.error).toBe(unknown)
    expect(once.attempts).toBe(1)
  })
})

/** Runs a read-lane statement and says which server got it (the connection whose statements grew). */
async function whereRead(manager: ReplicatedFake, pool: DatabasePool<FakeConnection>): Promise<string | undefined> {
  const before = new Map(manager.connections.map((c) => [c, c.statements.length]))
  await pool.query('select 42', [], { lane: 'read' })
  const ran = manager.connections.find((c) => c.statements.slice(before.get(c) ?? 0).includes('select 42'))
  return ran && manager.where.get(ran)
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; !check(); i++) {
    if (i > 200) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}
