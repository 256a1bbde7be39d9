import { chmod, chown, copyFile, mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseConfig, type SslMode } from '@dbpool/core'
import { createPostgresPool } from '@dbpool/postgres'
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '@dbpool/testing'
import { rejection } from './helpers'

// sslMode against a real TLS server: a dedicated embedded server with ssl=on and a certificate for
// `localhost` (no IP SAN) signed by a test CA (test/fixtures/tls).
const FIXTURES = join(__dirname, '..', 'fixtures', 'tls')
const CA = readFileSync(join(FIXTURES, 'ca.crt'), 'utf8')
const OTHER_CA = readFileSync(join(FIXTURES, 'other-ca.crt'), 'utf8')
let server: EmbeddedPostgresServer
let certDir: string

beforeAll(async () => {
  // the server reads its key as the postgres user and refuses a key others can read
  certDir = await mkdtemp(join(tmpdir(), 'dbpool-tls-'))
  await chmod(certDir, 0o755)
  for (const file of ['server.crt', 'server.key']) await copyFile(join(FIXTURES, file), join(certDir, file))
  await chmod(join(certDir, 'server.key'), 0o600)
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    for (const file of ['server.crt', 'server.key']) await chown(join(certDir, file), uid, gid)
  }
  server = await startEmbeddedPostgres({
    postgresFlags: [
      '-c',
      'ssl=on',
      '-c',
      `ssl_cert_file=${join(certDir, 'server.crt')}`,
      '-c',
      `ssl_key_file=${join(certDir, 'server.key')}`,
    ],
  })
}, 120_000)

afterAll(async () => {
  await server?.stop()
  if (certDir) await rm(certDir, { recursive: true, force: true })
}, 60_000)

function config(sslMode: SslMode, host: string, sslRootCert?: string): DatabaseConfig {
  const url = new URL(server.url)
  return DatabaseConfig.fromUrl(server.url, { host, port: Number(url.port), sslMode, ...(sslRootCert ? { sslRootCert } : {}) })
}

async function sslInUse(sslMode: SslMode, host: string, sslRootCert?: string): Promise<boolean> {
  const pool = createPostgresPool(config(sslMode, host, sslRootCert), { min: 0, acquireTimeoutMs: 5_000 })
  try {
    const { rows } = await pool.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()')
    return rows[0]?.ssl ?? false
  } finally {
    await pool.close()
  }
}

it('disable: plain TCP even though the server offers TLS', async () => {
  expect(await sslInUse('disable', '127.0.0.1')).toBe(false)
})

it('prefer and require: TLS, certificate not verified', async () => {
  expect(await sslInUse('prefer', '127.0.0.1')).toBe(true)
  expect(await sslInUse('require', '127.0.0.1')).toBe(true)
})

it('verify-ca: the chain is checked, the host name is not', async () => {
  expect(await sslInUse('verify-ca', '127.0.0.1', CA)).toBe(true)
  const err = await rejection(sslInUse('verify-ca', '127.0.0.1', OTHER_CA))
  expect(err.code).toBe('CONNECTION_FAILED')
})

it('verify-full: the chain and the host name are checked', async () => {
  expect(await sslInUse('verify-full', 'localhost', CA)).toBe(true)
  const wrongHost = await rejection(sslInUse('verify-full', '127.0.0.1', CA))
  expect(wrongHost.code).toBe('CONNECTION_FAILED')
  expect(wrongHost.message).toMatch(/IP: 127\.0\.0\.1|altnames/)
  const wrongCa = await rejection(sslInUse('verify-full', 'localhost', OTHER_CA))
  expect(wrongCa.code).toBe('CONNECTION_FAILED')
})

it('require with a root certificate verifies the chain (libpq)', async () => {
  expect(await sslInUse('require', '127.0.0.1', CA)).toBe(true)
  expect((await rejection(sslInUse('require', '127.0.0.1', OTHER_CA))).code).toBe('CONNECTION_FAILED')
})
