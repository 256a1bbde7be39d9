import { chmod, chown, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseConfig, type DatabaseError, type SslMode } from '@dbpool/core'
import { createPostgresPool } from '@dbpool/postgres'
import { createTestDatabase, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@dbpool/testing'
import { admin, rejection } from './helpers'

// sslMode against real TLS servers: dedicated embedded servers with ssl=on, one with a certificate for
// `localhost` (no IP SAN) signed by a test CA, one with a self-signed certificate for `localhost`
// (test/fixtures/tls).
const FIXTURES = join(__dirname, '..', 'fixtures', 'tls')
const CA = readFileSync(join(FIXTURES, 'ca.crt'), 'utf8')
const OTHER_CA = readFileSync(join(FIXTURES, 'other-ca.crt'), 'utf8')
let server: EmbeddedPostgresServer
let selfSigned: EmbeddedPostgresServer
/** A TLS server whose pg_hba.conf lets `plain_only` in only without TLS, `tls_only` only with TLS. */
let split: EmbeddedPostgresServer
let certDir: string

/** Starts an embedded server with TLS on, serving the fixture certificate `name`.crt / `name`.key. */
async function startTlsServer(name: string, flags: readonly string[] = []): Promise<EmbeddedPostgresServer> {
  const [crt, key] = [join(certDir, `${name}.crt`), join(certDir, `${name}.key`)]
  await copyFile(join(FIXTURES, `${name}.crt`), crt)
  await copyFile(join(FIXTURES, `${name}.key`), key)
  // the server reads its key as the postgres user and refuses a key others can read
  await chmod(key, 0o600)
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    for (const file of [crt, key]) await chown(file, uid, gid)
  }
  return startEmbeddedPostgres({ postgresFlags: ['-c', 'ssl=on', '-c', `ssl_cert_file=${crt}`, '-c', `ssl_key_file=${key}`, ...flags] })
}

beforeAll(async () => {
  certDir = await mkdtemp(join(tmpdir(), 'dbpool-tls-'))
  await chmod(certDir, 0o755)
  server = await startTlsServer('server')
  selfSigned = await startTlsServer('self-signed')
  const hba = join(certDir, 'split_hba.conf')
  await writeFile(
    hba,
    [
      'host all postgres 127.0.0.1/32 md5',
      'hostnossl all plain_only 127.0.0.1/32 md5',
      'hostssl all tls_only 127.0.0.1/32 md5',
      'hostnossl all tls_only 127.0.0.1/32 reject',
      '',
    ].join('\n'),
    { mode: 0o644 },
  )
  split = await startTlsServer('server', ['-c', `hba_file=${hba}`])
  await admin(split.url, async (c) => {
    for (const role of ['plain_only', 'tls_only']) await c.query(`create role ${role} login password 'split-pw-${role}'`)
  })
}, 180_000)

afterAll(async () => {
  await Promise.all([server?.stop(), selfSigned?.stop(), split?.stop()])
  if (certDir) await rm(certDir, { recursive: true, force: true })
}, 60_000)

function config(sslMode: SslMode, host: string, sslRootCert?: string, on = server): DatabaseConfig {
  const url = new URL(on.url)
  return DatabaseConfig.fromUrl(on.url, { host, port: Number(url.port), sslMode, ...(sslRootCert ? { sslRootCert } : {}) })
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

describe("createTestDatabase({ serverUrl }) reads sslmode as dbpool does (libpq's meanings), not with pg's rules", () => {
  /** The server URL of `on` with `host` and the query `query`. */
  function serverUrl(query: string, host = '127.0.0.1', on = server): string {
    const url = new URL(on.url)
    url.hostname = host
    url.search = query
    return url.toString()
  }

  async function created(url: string): Promise<string> {
    const db = await createTestDatabase({ serverUrl: url })
    try {
      const pool = createPostgresPool(DatabaseConfig.fromUrl(db.url), { min: 0, max: 1 })
      try {
        return (await pool.query<{ d: string }>('select current_database() as d')).rows[0]!.d
      } finally {
        await pool.close()
      }
    } finally {
      await db.drop()
    }
  }

  it('sslmode=require encrypts without verifying the chain (pg failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE)', async () => {
    expect(await created(serverUrl('?sslmode=require'))).toMatch(/^dbpool_test_/)
  })

  it('verify-full checks the chain (sslrootcert a file) and the host name', async () => {
    const ca = join(FIXTURES, 'ca.crt')
    expect(await created(serverUrl(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`, 'localhost'))).toMatch(/^dbpool_test_/)
    await expect(
      createTestDatabase({ serverUrl: serverUrl(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`) }),
    ).rejects.toThrow(/IP: 127\.0\.0\.1|altnames/)
  })
})

describe('a certificate that fails verification is CONNECTION_FAILED, not retryable, and fails the caller at once', () => {
  /** The error of the first query on a pool that would wait a minute for a connection. */
  async function firstQueryError(target: DatabaseConfig): Promise<DatabaseError> {
    const pool = createPostgresPool(target, { min: 0, acquireTimeoutMs: 60_000, createTimeoutMs: 60_000 })
    try {
      return await rejection(pool.query('select 1'))
    } finally {
      await pool.close()
    }
  }

  function expectCertificateFailure(err: DatabaseError, tlsCode: RegExp): void {
    expect(err.code).toBe('CONNECTION_FAILED') // not ACQUIRE_TIMEOUT: the pool does not retry until the acquire deadline
    expect(err.retryable).toBe(false)
    expect(err.message).toMatch(/the server certificate failed verification \(/)
    expect(err.detail?.tlsCode).toMatch(tlsCode)
    expect(err.message).toContain(String(err.detail?.tlsCode))
  }

  it('verify-full against a self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)', async () => {
    const err = await firstQueryError(config('verify-full', 'localhost', undefined, selfSigned))
    expectCertificateFailure(err, /^DEPTH_ZERO_SELF_SIGNED_CERT$/)
    expect(err.message).toMatch(/self.signed certificate/)
  }, 15_000)

  it('verify-full with a host name the certificate does not name (ERR_TLS_CERT_ALTNAME_INVALID)', async () => {
    const err = await firstQueryError(config('verify-full', '127.0.0.1', CA))
    expectCertificateFailure(err, /^ERR_TLS_CERT_ALTNAME_INVALID$/)
    expect(err.message).toMatch(/IP: 127\.0\.0\.1/)
  }, 15_000)

  it('verify-ca with the wrong CA, and verify-full without sslRootCert (Node CA store)', async () => {
    expectCertificateFailure(
      await firstQueryError(config('verify-ca', '127.0.0.1', OTHER_CA)),
      /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)$/,
    )
    expectCertificateFailure(
      await firstQueryError(config('verify-full', 'localhost')),
      /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)$/,
    )
  }, 15_000)

  it('a pool that is warming up (min > 0) stops at the first failure', async () => {
    const pool = createPostgresPool(config('verify-full', 'localhost', undefined, selfSigned), { min: 2, acquireTimeoutMs: 60_000 })
    try {
      const err = await rejection(pool.query('select 1'))
      expectCertificateFailure(err, /^DEPTH_ZERO_SELF_SIGNED_CERT$/)
    } finally {
      await pool.close()
    }
  }, 15_000)
})

describe("libpq's second attempt: sslmode=prefer goes without TLS after a session refused over TLS, allow tries plain first", () => {
  /** A URL of the split server for `role`, with `sslmode`. */
  function splitUrl(role: string, sslmode: string): string {
    const url = new URL(split.url)
    url.username = role
    url.password = `split-pw-${role}`
    url.pathname = '/postgres'
    url.search = `?sslmode=${sslmode}`
    return url.toString()
  }

  async function sslOf(url: string): Promise<boolean> {
    const pool = createPostgresPool(url, { min: 0, acquireTimeoutMs: 10_000 })
    try {
      const { rows } = await pool.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()')
      return rows[0]!.ssl
    } finally {
      await pool.close()
    }
  }

  it('prefer: a login refused over TLS (28000, hostnossl only) is tried once more without TLS, as libpq does', async () => {
    expect(await sslOf(splitUrl('plain_only', 'prefer'))).toBe(false)
    expect(await sslOf(splitUrl('tls_only', 'prefer'))).toBe(true)
  }, 30_000)

  it('allow: plain TCP first, TLS when the server refuses the plain session', async () => {
    const superuser = new URL(split.url)
    superuser.search = '?sslmode=allow'
    expect(await sslOf(superuser.toString())).toBe(false)
    expect(await sslOf(splitUrl('plain_only', 'allow'))).toBe(false)
    expect(await sslOf(splitUrl('tls_only', 'allow'))).toBe(true)
  }, 30_000)

  it('require and verify-* never go without TLS; both refusals are named', async () => {
    for (const mode of ['require', `verify-ca&sslrootcert=${encodeURIComponent(join(FIXTURES, 'ca.crt'))}`]) {
      const err = await rejection(sslOf(splitUrl('plain_only', mode)))
      expect(err.code).toBe('AUTHENTICATION_FAILED')
      expect(err.message).toMatch(/SSL encryption|no pg_hba.conf entry/)
      expect(err.message).not.toContain('sslmode=')
    }
    const both = await rejection(sslOf(splitUrl('nobody', 'prefer')))
    expect(both.message).toContain('sslmode=prefer: without TLS after TLS failed')
  }, 30_000)
})
