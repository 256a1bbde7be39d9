import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// The peer range admitted Kysely 0.28.0 to 0.28.17, whose Postgres Migrator takes its lock inside the
// run's transaction (pg_advisory_xact_lock; none with disableTransactions): the adapter's session
// discard and run lock did not hold there (review r5 item 3). Verified: 0.28.17 fails, 0.28.18 holds.
it('the kysely peer range starts at 0.28.18, the first version the Migrator guarantees hold with', () => {
  const manifest = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as {
    peerDependencies: Record<string, string>
  }
  expect(manifest.peerDependencies.kysely).toBe('>=0.28.18 <0.29.0')
  const installed = JSON.parse(readFileSync(join(require.resolve('kysely').replace(/dist.*$/, ''), 'package.json'), 'utf8')) as {
    version: string
  }
  const [major, minor, patch] = installed.version.split('.').map(Number)
  expect([major, minor]).toEqual([0, 28])
  expect(patch).toBeGreaterThanOrEqual(18)
})
