import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { configError, DatabaseConfig, DatabaseError } from '@dbpool/core'

const SECRET = 's3cr3t-P@ss'
const ROOT_PEM = readFileSync(join(__dirname, '../../../postgres/test/fixtures/tls/ca.crt'), 'utf8')

function thrown(fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a throw')
}

describe('DatabaseConfig', () => {
  it('parses a URL', () => {
    const c = DatabaseConfig.fromUrl(
      `postgres://app:${encodeURIComponent(SECRET)}@db.example:6543/ledger?sslmode=verify-full&application_name=api&statement_timeout=5000&idle_in_transaction_session_timeout=7000&lock_timeout=100`,
    )
    expect(c).toMatchObject({
      host: 'db.example',
      port: 6543,
      database: 'ledger',
      username: 'app',
      sslMode: 'verify-full',
      applicationName: 'api',
      statementTimeoutMs: 5000,
      idleInTransactionTimeoutMs: 7000,
      lockTimeoutMs: 100,
    })
    expect(c.hasPassword).toBe(true)
    return expect(c.resolvePassword()).resolves.toBe(SECRET)
  })

  it('applies libpq-like defaults', () => {
    const c = new DatabaseConfig()
    expect(c).toMatchObject({
      host: 'localhost',
      port: 5432,
      username: 'postgres',
      database: 'postgres',
      sslMode: 'prefer',
      keepAlive: true,
    })
    expect(DatabaseConfig.fromUrl('postgresql://h').host).toBe('h')
  })

  it('reads pgbouncer from the URL (true or false only) and as an option; default false', () => {
    expect(new DatabaseConfig().pgbouncer).toBe(false)
    expect(DatabaseConfig.fromUrl('postgres://h/d?pgbouncer=true').pgbouncer).toBe(true)
    expect(DatabaseConfig.fromUrl('postgres://h/d?pgbouncer=false').pgbouncer).toBe(false)
    expect(DatabaseConfig.fromUrl('postgres://h/d?pgbouncer=true', { pgbouncer: false }).pgbouncer).toBe(false)
    expect(new DatabaseConfig({ pgbouncer: true }).toJSON().pgbouncer).toBe(true)
    expect(DatabaseConfig.fromUrl('postgres://h/d?pgbouncer=true').with({ port: 6432 }).pgbouncer).toBe(true)
    const bad = thrown(() => DatabaseConfig.fromUrl('postgres://h/d?pgbouncer=yes'))
    expect(DatabaseError.is(bad, 'CONFIGURATION') && bad.detail?.option).toBe('database.url pgbouncer')
    expect(thrown(() => new DatabaseConfig({ pgbouncer: 'true' as never })).message).toContain('database.pgbouncer')
  })

  it('reads sslmode with libpq meanings without pg-connection-string warning that prefer/require/verify-ca mean verify-full', () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    try {
      for (const mode of ['prefer', 'require', 'verify-ca', 'verify-full', 'disable'] as const) {
        expect(DatabaseConfig.fromUrl(`postgres://u@h/d?application_name=x&sslmode=${mode}`).sslMode).toBe(mode)
        expect(DatabaseConfig.fromUrl(`postgres://u@h/d?sslmode=${mode}`).sslMode).toBe(mode)
      }
      expect(warn).not.toHaveBeenCalled()
    } finally {
      warn.mockRestore()
    }
  })

  it('keeps sslmode=allow (plain first, then TLS, as libpq) and maps the alias no-verify', () => {
    expect(DatabaseConfig.fromUrl('postgres://h/d?sslmode=allow').sslMode).toBe('allow')
    expect(DatabaseConfig.fromUrl('postgres://h/d?sslmode=no-verify').sslMode).toBe('require')
  })

  it('never shows the password in toString, JSON, inspect or errors', () => {
    const c = DatabaseConfig.fromUrl(`postgres://app:${SECRET}@db:5432/ledger`)
    expect(c.toString()).toBe('postgres://app@db:5432/ledger')
    for (const text of [String(c), JSON.stringify(c), inspect(c, { depth: 5, showHidden: true }), JSON.stringify({ nested: c })]) {
      expect(text).not.toContain(SECRET)
    }
    expect(JSON.stringify(c)).toContain('[REDACTED]')
    const urlError = thrown(() => DatabaseConfig.fromUrl(`mysql://app:${SECRET}@db/x`))
    expect(urlError.message + urlError.stack + JSON.stringify(urlError) + inspect(urlError)).not.toContain(SECRET)
    expect(thrown(() => new DatabaseConfig({ password: 42 as never })).message).toMatch(/database\.password "\[hidden\]"/)
  })

  it('calls a password function for every resolution (rotation)', async () => {
    let n = 0
    const c = new DatabaseConfig({ password: async () => `pw${++n}` })
    expect(await c.resolvePassword()).toBe('pw1')
    expect(await c.resolvePassword()).toBe('pw2')
    const bad = new DatabaseConfig({ password: () => 5 as never })
    await expect(bad.resolvePassword()).rejects.toThrow(/password function must return a string/)
  })

  it('reads DATABASE_URL first, then the libpq variables', () => {
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: 'postgres://u@a/b', PGHOST: 'ignored' }).host).toBe('a')
    const c = DatabaseConfig.fromEnv({
      PGHOST: 'h',
      PGPORT: '5433',
      PGDATABASE: 'd',
      PGUSER: 'u',
      PGPASSWORD: 'p',
      PGSSLMODE: 'require',
      PGAPPNAME: 'app',
    })
    expect(c).toMatchObject({ host: 'h', port: 5433, database: 'd', username: 'u', sslMode: 'require', applicationName: 'app' })
    expect(() => DatabaseConfig.fromEnv({ PGPORT: 'x' })).toThrow(/PGPORT "x"/)
    expect(() => DatabaseConfig.fromEnv({ PGSSLMODE: 'maybe' })).toThrow(/PGSSLMODE "maybe"/)
  })

  it('sslrootcert=system with a weaker mode names where each came from (PGSSLMODE, the URL sslmode), not database.sslMode', () => {
    for (const env of [
      { PGSSLROOTCERT: 'system', PGSSLMODE: 'require' },
      { PGSSLROOTCERT: 'system', PGSSLMODE: 'verify-ca', PGHOST: 'h' },
    ]) {
      const err = thrown(() => DatabaseConfig.fromEnv(env))
      expect((err as DatabaseError).detail).toMatchObject({ option: 'PGSSLMODE' })
      expect(err.message).toMatch(/PGSSLROOTCERT=system needs verify-full/)
      expect(() => DatabaseConfig.envDefaults(env)).toThrow(/invalid PGSSLMODE/)
    }
    const url = thrown(() => DatabaseConfig.fromUrl('postgres://u:pw@h/d?sslrootcert=system&sslmode=require'))
    expect((url as DatabaseError).detail).toMatchObject({ option: 'database.url sslmode' })
    expect(DatabaseConfig.fromEnv({ PGSSLROOTCERT: 'system', PGSSLMODE: 'verify-full' }).sslMode).toBe('verify-full')
    expect(DatabaseConfig.fromEnv({ PGSSLROOTCERT: 'system' }).sslMode).toBe('verify-full')
  })

  it('fills in what DATABASE_URL leaves out from PGSSLMODE, PGSSLROOTCERT and PGTARGETSESSIONATTRS, as libpq', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-env-'))
    const rootCert = join(dir, 'root.crt')
    writeFileSync(rootCert, ROOT_PEM)
    try {
      const url = 'postgres://u:p@db.example/app'
      expect(DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLMODE: 'require' }).sslMode).toBe('require')
      expect(DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLMODE: 'verify-full' }).sslMode).toBe('verify-full')
      expect(DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLMODE: 'no-verify' }).sslMode).toBe('require')
      // the URL's own setting wins
      expect(DatabaseConfig.fromEnv({ DATABASE_URL: `${url}?sslmode=disable`, PGSSLMODE: 'verify-full' }).sslMode).toBe('disable')
      const withRoot = DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLMODE: 'require', PGSSLROOTCERT: rootCert })
      expect(withRoot.sslRootCert).toBe(ROOT_PEM)
      const noUrl = DatabaseConfig.fromEnv({ PGHOST: 'h', PGSSLMODE: 'require', PGSSLROOTCERT: rootCert })
      expect(noUrl).toMatchObject({ sslMode: 'require', sslRootCert: ROOT_PEM })
      expect(DatabaseConfig.fromEnv({ DATABASE_URL: url, PGTARGETSESSIONATTRS: 'primary' }).targetSessionAttrs).toBe('primary')
      expect(DatabaseConfig.envDefaults({ PGSSLMODE: 'verify-ca', PGHOST: 'x' })).toEqual({ host: 'x', sslMode: 'verify-ca' })
      // a file that does not exist: refused where libpq requires it (verify-*), ignored with prefer (review r6 item 7)
      expect(DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLROOTCERT: join(dir, 'missing.crt') }).sslRootCert).toBeUndefined()
      expect(() => DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLMODE: 'verify-ca', PGSSLROOTCERT: join(dir, 'missing.crt') })).toThrow(
        /PGSSLROOTCERT .*missing\.crt.*cannot be read \(ENOENT\)/,
      )
      expect(() => DatabaseConfig.fromEnv({ DATABASE_URL: url, PGSSLMODE: 'strict' })).toThrow(/PGSSLMODE "strict"/)
      // client certificates are not supported: refused, never ignored
      for (const name of ['PGSSLCERT', 'PGSSLKEY']) {
        const err = thrown(() => DatabaseConfig.fromEnv({ DATABASE_URL: url, [name]: '/etc/client.pem' }))
        expect(err).toMatchObject({ code: 'CONFIGURATION' })
        expect(err.message).toContain(name)
        expect(() => DatabaseConfig.fromEnv({ PGHOST: 'h', [name]: '/etc/client.pem' })).toThrow(new RegExp(name))
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  describe('sslRootCert is checked when the config is made (CONFIGURATION naming it, never a key shown)', () => {
    const KEY = readFileSync(join(__dirname, '../../../postgres/test/fixtures/tls/self-signed.key'), 'utf8')
    const keyLine = KEY.split('\n')[1]!

    it.each([
      ['a file path', '/etc/ssl/ca.crt', /database\.sslRootCert "\/etc\/ssl\/ca\.crt": .*not a file path/],
      ['garbage', 'garbage', /database\.sslRootCert "garbage": .*not a file path/],
      ['multi-line text without a certificate', 'a\nb\nc', /database\.sslRootCert "\[text, 5 characters\]": holds no PEM certificate/],
      ['a private key', KEY, /database\.sslRootCert "\[PEM with a private key\]": holds a private key/],
      ['a certificate and a private key', `${ROOT_PEM}\n${KEY}`, /holds a private key/],
      ['a broken certificate', ROOT_PEM.replace(/\n[A-Za-z0-9+/]{20}/, '\n'), /certificate 1 of 1 does not parse/],
      ['an empty string', '', /database\.sslRootCert "": must be PEM text/],
    ])('%s', (_label, sslRootCert, message) => {
      for (const sslMode of ['disable', 'require', 'verify-ca'] as const) {
        const err = thrown(() => new DatabaseConfig({ sslMode, sslRootCert }))
        expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'database.sslRootCert' } })
        expect(err.message).toMatch(message)
        expect(`${err.message}${JSON.stringify(err)}${inspect(err)}`).not.toContain(keyLine)
      }
    })

    it('accepts one or more certificates', () => {
      expect(new DatabaseConfig({ sslMode: 'verify-ca', sslRootCert: `${ROOT_PEM}\n${ROOT_PEM}` }).sslRootCert).toContain(
        'BEGIN CERTIFICATE',
      )
    })

    it('a sslrootcert file (URL, PGSSLROOTCERT) is checked too, named by its path', () => {
      const dir = mkdtempSync(join(tmpdir(), 'dbpool-root-'))
      try {
        writeFileSync(join(dir, 'key.pem'), KEY)
        const path = join(dir, 'key.pem')
        const err = thrown(() => DatabaseConfig.fromUrl(`postgres://h/d?sslmode=require&sslrootcert=${encodeURIComponent(path)}`))
        expect(err.message).toContain('database.url sslrootcert')
        expect(err.message).toContain(path)
        expect(err.message).toMatch(/holds a private key/)
        expect(err.message).not.toContain(keyLine)
        expect(() => DatabaseConfig.fromEnv({ PGHOST: 'h', PGSSLROOTCERT: path })).toThrow(/PGSSLROOTCERT .*holds a private key/)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it("'system' (libpq 16 sslrootcert=system): Node's default trust store, verify-full, a weaker mode refused", () => {
      expect(DatabaseConfig.fromUrl('postgres://h/d?sslrootcert=system')).toMatchObject({ sslMode: 'verify-full', sslRootCert: undefined })
      expect(new DatabaseConfig({ sslRootCert: 'system', sslMode: 'verify-full' }).sslMode).toBe('verify-full')
      expect(DatabaseConfig.fromEnv({ PGHOST: 'h', PGSSLROOTCERT: 'system' }).sslMode).toBe('verify-full')
      expect(() => DatabaseConfig.fromUrl('postgres://h/d?sslrootcert=system&sslmode=require')).toThrow(
        /database\.url sslmode "require": sslrootcert=system needs sslmode=verify-full/,
      )
      expect(() => new DatabaseConfig({ sslRootCert: 'system', sslMode: 'require' })).toThrow(
        /database\.sslMode "require": sslRootCert "system" .*needs verify-full/,
      )
    })
  })

  it('fromUrl(url, overrides, defaults): defaults fill in what the URL leaves out, overrides win', () => {
    const c = DatabaseConfig.fromUrl(
      'postgres://u@a/b?sslmode=require',
      {},
      { sslMode: 'verify-full', host: 'other', applicationName: 'x' },
    )
    expect(c).toMatchObject({ host: 'a', sslMode: 'require', applicationName: 'x' })
    expect(DatabaseConfig.fromUrl('postgres://u@a/b', { sslMode: 'disable' }, { sslMode: 'verify-full' }).sslMode).toBe('disable')
    expect(DatabaseConfig.fromUrl('postgres://u@a,b/c', {}, { host: 'z' }).hosts.map((h) => h.host)).toEqual(['a', 'b'])
  })

  it.each([
    [{ port: 0 }, /database\.port 0/],
    [{ port: 70000 }, /database\.port 70000/],
    [{ sslMode: 'strict' }, /database\.sslMode "strict"/],
    [{ host: '' }, /database\.host ""/],
    [{ statementTimeoutMs: -1 }, /database\.statementTimeoutMs -1/],
    [{ keepAlive: 'yes' }, /database\.keepAlive "yes"/],
    [{ user: 'x' }, /database\.user "x": unknown option/],
  ])('rejects %j', (options, message) => {
    expect(() => new DatabaseConfig(options as never)).toThrow(message)
  })

  it('an unknown option that may hold a secret (a misspelt password, a url, an object) is named, its value hidden', () => {
    for (const options of [
      { pasword: SECRET },
      { url: `postgres://u:${SECRET}@h/db` },
      { conn: `postgres://u:${SECRET}@h/db` },
      { tls: { passphrase: SECRET } },
    ]) {
      let err: unknown
      try {
        new DatabaseConfig(options as never)
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'CONFIGURATION' })
      expect((err as Error).message).toMatch(/unknown option/)
      expect(`${(err as Error).message} ${inspect(err)} ${JSON.stringify(err)}`).not.toContain(SECRET)
    }
  })

  it('rejects URLs of other schemes, and unparsable ones, as CONFIGURATION', () => {
    expect(() => DatabaseConfig.fromUrl('mysql://x')).toThrow(DatabaseError)
    expect(() => DatabaseConfig.fromUrl('postgres://h:notaport/d')).toThrow(/CONFIGURATION|port|invalid/)
  })

  it('with() keeps the password and validates changes', async () => {
    const c = new DatabaseConfig({ password: SECRET })
    const d = c.with({ port: 6000 })
    expect(d.port).toBe(6000)
    expect(await d.resolvePassword()).toBe(SECRET)
    expect(new DatabaseConfig().with({ host: 'x' }).hasPassword).toBe(false)
  })

  it('renders IPv6 and socket hosts in the redacted target', () => {
    expect(new DatabaseConfig({ host: '::1' }).toString()).toBe('postgres://postgres@[::1]:5432/postgres')
    expect(new DatabaseConfig({ host: '/tmp/s' }).toString()).toContain('%2Ftmp%2Fs')
    expect(inspect(new DatabaseConfig({ sslRootCert: ROOT_PEM }))).toContain('[PEM]')
  })
})

describe('DatabaseConfig.redactPassword', () => {
  it('hides a string password wherever it occurs; a password function has nothing to hide yet', () => {
    const config = DatabaseConfig.fromUrl('postgres://app:s3cr3t@db/ledger')
    expect(config.redactPassword(`select 's3cr3t', 's3cr3t'`)).toBe(`select '[REDACTED]', '[REDACTED]'`)
    expect(config.redactPassword('select 1')).toBe('select 1')
    expect(new DatabaseConfig({ password: () => 's3cr3t' }).redactPassword('s3cr3t')).toBe('s3cr3t')
    expect(new DatabaseConfig({}).redactPassword('s3cr3t')).toBe('s3cr3t')
  })

  it('hides the password only where it stands as a secret: never inside words, nor where it is the user name', () => {
    const same = DatabaseConfig.fromUrl('postgres://postgres:postgres@db/ledger')
    const text = 'connect postgres://postgres:postgres@db/ledger: password authentication failed for user "postgres"'
    expect(same.redactPassword(text)).toBe(
      'connect postgres://postgres:[REDACTED]@db/ledger: password authentication failed for user "postgres"',
    )
    const short = DatabaseConfig.fromUrl('postgres://app:e@db/ledger')
    expect(short.redactPassword('password authentication failed: "e"')).toBe('password authentication failed: "[REDACTED]"')
  })

  it('shownNames and shownNamesOfUrl: the one list of names a secret equal to is not hidden beside (the CLI uses it too)', () => {
    const url = 'postgres://app:pw@h1:1,h2:2/ledger?application_name=svc'
    expect(DatabaseConfig.fromUrl(url).shownNames).toEqual(['app', 'ledger', 'svc', 'h1', 'h2'])
    expect(DatabaseConfig.shownNamesOfUrl(url)).toEqual(['app', 'ledger', 'svc', 'h1', 'h2'])
    // the defaults, as the constructor's
    expect(DatabaseConfig.shownNamesOfUrl('postgres://:devpass@/')).toEqual([...DatabaseConfig.fromUrl('postgres://:devpass@/').shownNames])
    expect(DatabaseConfig.shownNamesOfUrl('postgres://:devpass@/')).toEqual(['postgres', 'postgres', 'dbpool', 'localhost'])
    // no file read, nothing thrown
    expect(DatabaseConfig.shownNamesOfUrl('postgres://u@h/d?sslrootcert=/nonexistent.pem')).toEqual(['u', 'd', 'dbpool', 'h'])
    expect(DatabaseConfig.shownNamesOfUrl('postgres://u@h/d?bogus=1')).toEqual(['u', 'd', 'dbpool', 'h'])
    expect(DatabaseConfig.shownNamesOfUrl('postgres://u:p/x@h/d')).toEqual([])
    expect(DatabaseConfig.shownNamesOfUrl('sqlite:./a.db')).toEqual([])
  })
})

describe('configError never shows a secret option`s value', () => {
  it.each([
    ['health handler.token', Buffer.from('TokenBytes-SECRET'), '[hidden Buffer]'],
    ['health handler.token', 90210902109021, '[hidden number]'],
    ['database.password', 'Pw-SECRET', '[hidden string]'],
    ['postgres.ssl.passphrase', ['Pass-SECRET'], '[hidden Array]'],
    ['--token / DBPOOL_SERVE_TOKEN', 'Cli-SECRET', '[hidden string]'],
  ])('%s: only the kind of its value', (option, value, shown) => {
    const message = configError(option, value, 'must be right').message
    expect(message).toBe(`invalid ${option} ${shown}: must be right`)
    expect(message).not.toMatch(/SECRET|90210/)
  })

  it('an object shown as JSON has its secret-named properties hidden; other options keep their value', () => {
    const message = configError('postgres.ssl', { ca: 'ca-text', key: 'Key-SECRET', passphrase: 'Pass-SECRET' }, 'is wrong').message
    expect(message).toBe('invalid postgres.ssl {"ca":"ca-text","key":"[hidden]","passphrase":"[hidden]"}: is wrong')
    expect(configError('pool.max', 0, 'must be >= 1').message).toBe('invalid pool.max 0: must be >= 1')
  })
})
