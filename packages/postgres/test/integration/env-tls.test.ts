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
})
