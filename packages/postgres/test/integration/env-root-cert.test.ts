import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseConfig, PoolFactory } from '@dbpool/core'
import { createPostgresPool, resolveReplicaOptions } from '@dbpool/postgres'
import { testPostgresUrl } from '@dbpool/testing'

// Review r6 item 7: PGSSLROOTCERT was read (a missing file refused) whatever the TLS mode, so an image
// setting it for its TLS databases could not open a sslmode=disable pool; libpq never reads the root
// certificate without TLS, and with prefer / require ignores a file that does not exist (verify-*
// refuse it).
const MISSING = '/nonexistent/dbpool-r6/root.crt'
const CA = join(__dirname, '../fixtures/tls/ca.crt')
const saved = process.env.PGSSLROOTCERT
afterEach(() => {
  if (saved === undefined) delete process.env.PGSSLROOTCERT
  else process.env.PGSSLROOTCERT = saved
})

const withMode = (url: string, mode: string): string =>
  `${url.replace(/[?&]sslmode=[^&]*/, '')}${url.includes('?') ? '&' : '?'}sslmode=${mode}`

it('sslmode=disable: a PGSSLROOTCERT naming no file is not read, and the pool connects', async () => {
  const url = withMode(await testPostgresUrl(), 'disable')
  process.env.PGSSLROOTCERT = MISSING
  const pool = createPostgresPool(url, { min: 0, max: 1 })
  try {
    expect((await pool.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }])
  } finally {
    await pool.close()
  }
  const viaFactory = await PoolFactory.create(url, { min: 0, max: 1 })
  await viaFactory.close()
  expect(DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLROOTCERT: MISSING }).sslRootCert).toBeUndefined()
  expect(DatabaseConfig.fromEnv({ PGSSLMODE: 'disable', PGSSLROOTCERT: MISSING }).sslRootCert).toBeUndefined()
  // a replica URL of its own sslmode=disable (its mode is final)
  const primary = DatabaseConfig.fromUrl(url)
  expect(resolveReplicaOptions({ replicas: [url] }, { PGSSLROOTCERT: MISSING }, primary).replicas[0]!.sslRootCert).toBeUndefined()
}, 30_000)

describe('the mode decides, as in libpq', () => {
  const url = 'postgres://u@h/db'
  const config = (env: NodeJS.ProcessEnv, u = url): DatabaseConfig =>
    DatabaseConfig.fromUrl(u, {}, DatabaseConfig.envDefaults(env, { url: u }))

  it('prefer / require / allow: a missing file is ignored (no chain check, as libpq)', () => {
    for (const mode of ['allow', 'prefer', 'require'])
      expect(config({ PGSSLROOTCERT: MISSING }, `${url}?sslmode=${mode}`).sslRootCert).toBeUndefined()
    expect(config({ PGSSLROOTCERT: MISSING }).sslRootCert).toBeUndefined()
  })

  it('verify-ca / verify-full: a missing file is refused naming PGSSLROOTCERT (URL, PGSSLMODE, replica)', () => {
    for (const mode of ['verify-ca', 'verify-full']) {
      expect(() => config({ PGSSLROOTCERT: MISSING }, `${url}?sslmode=${mode}`)).toThrow(
        /invalid PGSSLROOTCERT ".*": cannot be read \(ENOENT\)/,
      )
      expect(() => config({ PGSSLROOTCERT: MISSING, PGSSLMODE: mode })).toThrow(/invalid PGSSLROOTCERT/)
    }
    const primary = DatabaseConfig.fromUrl(`${url}?sslmode=verify-full`)
    expect(() => resolveReplicaOptions({ replicas: ['postgres://u@r/db'] }, { PGSSLROOTCERT: MISSING }, primary)).toThrow(
      /invalid PGSSLROOTCERT/,
    )
  })

  it('a file that exists is read with every mode but disable (require then verifies the chain)', () => {
    const pem = readFileSync(CA, 'utf8')
    expect(config({ PGSSLROOTCERT: CA }, `${url}?sslmode=require`).sslRootCert).toBe(pem)
    expect(config({ PGSSLROOTCERT: CA }).sslRootCert).toBe(pem)
    expect(config({ PGSSLROOTCERT: CA }, `${url}?sslmode=disable`).sslRootCert).toBeUndefined()
    // system keeps libpq 16's rule: a weaker mode is refused, disable included
    expect(() => config({ PGSSLROOTCERT: 'system', PGSSLMODE: 'disable' })).toThrow(/PGSSLROOTCERT=system needs verify-full/)
  })
})
