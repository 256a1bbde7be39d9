import { PostgresConnectionManager } from '@dbpool/postgres'

// Review r6 item 4: how long the pool waits for a connect of each lane (ConnectionManager.connectDeadlineMs):
// the walk's own deadline (connect_timeout for each host, libpq), never cut by createTimeoutMs.
describe('PostgresConnectionManager.connectDeadlineMs', () => {
  const primary = 'postgres://app@db1:5432,db2:5432/ledger?sslmode=disable&connect_timeout=10'
  const replica = 'postgres://app@r1:5432,r2:5432,r3:5432/ledger?sslmode=disable&connect_timeout=5'

  it('a multi-host walk with connect_timeout: connect_timeout for each host (two passes for prefer-standby), at least connectTimeoutMs', () => {
    expect(new PostgresConnectionManager(primary, {}, { connectTimeoutMs: 10_000 }).connectDeadlineMs('write')).toBe(20_000)
    expect(
      new PostgresConnectionManager(`${primary}&target_session_attrs=prefer-standby`, {}, { connectTimeoutMs: 10_000 }).connectDeadlineMs(
        'write',
      ),
    ).toBe(40_000)
    expect(new PostgresConnectionManager(primary, {}, { connectTimeoutMs: 60_000 }).connectDeadlineMs('write')).toBe(60_000)
  })

  it('without connect_timeout: the manager connectTimeoutMs (an explicit one beyond createTimeoutMs too)', () => {
    const url = 'postgres://app@db1:5432,db2:5432/ledger?sslmode=disable'
    expect(new PostgresConnectionManager(url, {}, { connectTimeoutMs: 10_000 }).connectDeadlineMs('write')).toBe(10_000)
    expect(new PostgresConnectionManager(url, { connectTimeoutMs: 20_000 }, { connectTimeoutMs: 10_000 }).connectDeadlineMs('write')).toBe(
      20_000,
    )
    expect(new PostgresConnectionManager('postgres://app@db1/ledger?sslmode=disable&connect_timeout=30').connectDeadlineMs('write')).toBe(
      30_000,
    )
  })

  it("a replica's own walk, and the primary read-only pool's", () => {
    const manager = new PostgresConnectionManager(primary, { replicas: [replica] }, { connectTimeoutMs: 10_000 })
    expect(manager.connectDeadlineMs('read', 0)).toBe(15_000)
    expect(manager.connectDeadlineMs('read', 1)).toBe(20_000)
  })
})
