import { DatabaseConfig } from '@dbpool/core'
import { createPostgresPool } from '@dbpool/postgres'
import { testPostgresUrl } from '@dbpool/testing'
import { rejection } from './helpers'

// libpq's rule: the environment fills in what DATABASE_URL leaves out. PGSSLMODE=require with a URL
// that sets no sslmode was ignored: the pool connected in plaintext (prefer) to a server without TLS.
it('DATABASE_URL + PGSSLMODE=require refuses a server without TLS (the dev server has none)', async () => {
  const url = await testPostgresUrl()
  const plain = DatabaseConfig.fromUrl(url, { sslMode: 'disable' })
  const probe = createPostgresPool(plain, { min: 0, max: 1 })
  try {
    const { rows } = await probe.query<{ on: string }>(`select current_setting('ssl') as on`)
    if (rows[0]?.on === 'on') return // a server with TLS cannot show the downgrade
  } finally {
    await probe.close()
  }
  const config = DatabaseConfig.fromEnv({ DATABASE_URL: url.replace(/[?&]sslmode=[^&]*/, ''), PGSSLMODE: 'require' })
  expect(config.sslMode).toBe('require')
  const pool = createPostgresPool(config, { min: 0, max: 1, acquireTimeoutMs: 5_000 })
  try {
    const err = await rejection(pool.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toMatch(/does not support SSL/)
  } finally {
    await pool.close()
  }
}, 30_000)

// a replica URL without sslmode took the primary's sslmode=disable over PGSSLMODE=require: the replica was
// reached in plaintext (its password sent unencrypted). libpq: the environment fills in what THAT URL leaves out.
it('PGSSLMODE=require reaches a replica URL without sslmode even when the primary URL says sslmode=disable', async () => {
  const url = await testPostgresUrl()
  const bare = url.replace(/[?&]sslmode=[^&]*/, '')
  const plain = DatabaseConfig.fromUrl(bare, { sslMode: 'disable' })
  const probe = createPostgresPool(plain, { min: 0, max: 1 })
  try {
    const { rows } = await probe.query<{ on: string }>(`select current_setting('ssl') as on`)
    if (rows[0]?.on === 'on') return // a server with TLS cannot show the downgrade
  } finally {
    await probe.close()
  }
  const pool = withEnv({ PGSSLMODE: 'require', DATABASE_REPLICA_URLS: bare }, () =>
    createPostgresPool(DatabaseConfig.fromUrl(bare, { sslMode: 'disable' }), { min: 0, max: 1, acquireTimeoutMs: 5_000 }),
  )
  try {
    await pool.query('select 1', undefined, { lane: 'read' })
    const replica = pool.replicaStats()?.replicas[0]
    // over plaintext it would connect and be found 'not-standby' (the dev server is a primary)
    expect(replica?.reason).toBe('unreachable')
  } finally {
    await pool.close()
  }
}, 30_000)

/** `fn()` with `vars` set in process.env (the manager reads DATABASE_REPLICA_URLS and the libpq variables there). */
function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]))
  Object.assign(process.env, vars)
  try {
    return fn()
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
}
