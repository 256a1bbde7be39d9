import { inspect } from 'node:util'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseConfig, DatabaseError, hasAmbiguousCredentials, redactUrl, redactUrlQueryValues, TARGET_SESSION_ATTRS } from '@dbpool/core'

const SECRET = 'pw-S3cret'
const ROOT_PEM = readFileSync(join(__dirname, '../../../postgres/test/fixtures/tls/ca.crt'), 'utf8')

function thrown(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  throw new Error('expected a throw')
}

describe('multi-host URLs (libpq grammar)', () => {
  it('reads a host list with a port per host, the target_session_attrs and connect_timeout', () => {
    const c = DatabaseConfig.fromUrl(`postgres://u:${SECRET}@h1:5432,h2:5433/db?target_session_attrs=read-write&connect_timeout=3`)
    expect(c.hosts).toEqual([
      { host: 'h1', port: 5432 },
      { host: 'h2', port: 5433 },
    ])
    expect(c).toMatchObject({
      host: 'h1',
      port: 5432,
      database: 'db',
      username: 'u',
      targetSessionAttrs: 'read-write',
      connectTimeoutMs: 3000,
    })
    expect(c.toString()).toBe('postgres://u@h1:5432,h2:5433/db')
    for (const text of [String(c), JSON.stringify(c), inspect(c)]) expect(text).not.toContain(SECRET)
  })

  it('hosts without a port take 5432; IPv6 addresses in brackets, with or without a port', () => {
    const c = DatabaseConfig.fromUrl('postgresql://[::1]:6000,db2,[fe80::1%25eth0],10.0.0.3:7000/x')
    expect(c.hosts).toEqual([
      { host: '::1', port: 6000 },
      { host: 'db2', port: 5432 },
      { host: 'fe80::1%eth0', port: 5432 },
      { host: '10.0.0.3', port: 7000 },
    ])
    expect(c.toString()).toBe('postgres://postgres@[::1]:6000,db2:5432,[fe80::1%eth0]:5432,10.0.0.3:7000/x')
  })

  it('a percent-encoded socket directory is a host; an empty host is localhost', () => {
    expect(DatabaseConfig.fromUrl('postgres://%2Fvar%2Frun%2Fpostgresql:5433/d').hosts).toEqual([
      { host: '/var/run/postgresql', port: 5433 },
    ])
    expect(DatabaseConfig.fromUrl('postgres://,h2:5433/d').hosts).toEqual([
      { host: 'localhost', port: 5432 },
      { host: 'h2', port: 5433 },
    ])
    expect(DatabaseConfig.fromUrl('postgres:///d').host).toBe('localhost')
  })

  it('host= and port= query lists replace the hosts before the path; one port applies to all', () => {
    expect(DatabaseConfig.fromUrl('postgres://ignored/d?host=a,b,c&port=6000').hosts).toEqual([
      { host: 'a', port: 6000 },
      { host: 'b', port: 6000 },
      { host: 'c', port: 6000 },
    ])
    expect(DatabaseConfig.fromUrl('postgres:///d?host=a,b&port=1,2').hosts).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ])
    expect(DatabaseConfig.fromUrl('postgres://a,b/d?port=7').hosts.map((h) => h.port)).toEqual([7, 7])
    expect(DatabaseConfig.fromUrl('postgres:///?host=%2Ftmp&dbname=x&user=y')).toMatchObject({ host: '/tmp', database: 'x', username: 'y' })
    const mismatch = thrown(() => DatabaseConfig.fromUrl('postgres:///d?host=a,b,c&port=1,2'))
    expect(mismatch.code).toBe('CONFIGURATION')
    expect(mismatch.message).toMatch(/2 ports \(in port=\) for 3 hosts \(in host=\)/)
  })

  it('host= replaces only the host names: the ports written before "/" stay, as in libpq', () => {
    // libpq (psql): postgres://h:55432/db?host=/tmp connects to /tmp/.s.PGSQL.55432, never 5432
    expect(DatabaseConfig.fromUrl('postgres://u@localhost:55432/postgres?host=/tmp').hosts).toEqual([{ host: '/tmp', port: 55432 }])
    // one port written applies to every host of host=
    expect(DatabaseConfig.fromUrl('postgres://u@h1:6000/db?host=a,b').hosts).toEqual([
      { host: 'a', port: 6000 },
      { host: 'b', port: 6000 },
    ])
    // one per host, paired in order; a host written without a port keeps the default
    expect(DatabaseConfig.fromUrl('postgres://h1:1,h2:2/db?host=a,b').hosts).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ])
    expect(DatabaseConfig.fromUrl('postgres://h1:1,h2/db?host=a,b').hosts).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 5432 },
    ])
    // port= replaces the ports written before "/"
    expect(DatabaseConfig.fromUrl('postgres://h1:1,h2:2/db?host=x&port=9').hosts).toEqual([{ host: 'x', port: 9 }])
    expect(DatabaseConfig.fromUrl('postgres://h1:1/db?port=7').hosts).toEqual([{ host: 'h1', port: 7 }])
    // no port written anywhere: every host's default
    expect(DatabaseConfig.fromUrl('postgres://h1,h2/db?host=x').hosts).toEqual([{ host: 'x', port: 5432 }])
    // libpq: "could not match 2 port numbers to 1 hosts"
    const refused = thrown(() => DatabaseConfig.fromUrl('postgres://u:pw@h1:1,h2:2/db?host=x'))
    expect(refused.code).toBe('CONFIGURATION')
    expect(refused.message).toMatch(/2 ports \(before "\/"\) for 1 host \(in host=\)/)
    expect(refused.message).not.toContain('pw')
  })

  it('refuses unknown query parameters, naming every one of them (libpq: invalid URI query parameter)', () => {
    const typo = thrown(() => DatabaseConfig.fromUrl(`postgres://u:${SECRET}@h/d?sslmod=require&application_name=x&colour=blue`))
    expect(typo.code).toBe('CONFIGURATION')
    expect(typo.message).toMatch(/unknown query parameters "sslmod", "colour"/)
    expect(typo.message).toContain('invalid URI query parameter')
    expect(typo.message + inspect(typo)).not.toContain(SECRET)
    expect(thrown(() => DatabaseConfig.fromUrl('postgres://h/d?sslcert=/x.pem')).message).toMatch(/client certificates are not supported/)
    expect(thrown(() => DatabaseConfig.fromUrl('postgres://h/d?ssl=true')).message).toMatch(/use sslmode/)
    expect(thrown(() => DatabaseConfig.fromUrl('postgres://h/d?sslmode')).message).toMatch(/has no value/)
  })

  it('keeps every parameter accepted before: sslmode, application_name, options, timeouts, pgbouncer, sslrootcert', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-url-'))
    try {
      writeFileSync(join(dir, 'ca.pem'), ROOT_PEM)
      const c = DatabaseConfig.fromUrl(
        `postgres://h/d?sslmode=verify-ca&sslrootcert=${encodeURIComponent(join(dir, 'ca.pem'))}&application_name=api&options=-c%20search_path%3Dapp&statement_timeout=10&lock_timeout=20&idle_in_transaction_session_timeout=30&pgbouncer=true&connect_timeout=1`,
      )
      expect(c).toMatchObject({
        sslMode: 'verify-ca',
        sslRootCert: ROOT_PEM,
        applicationName: 'api',
        options: '-c search_path=app',
        statementTimeoutMs: 10,
        lockTimeoutMs: 20,
        idleInTransactionTimeoutMs: 30,
        pgbouncer: true,
        // libpq: a connect_timeout of 1 s counts as 2 s
        connectTimeoutMs: 2000,
      })
      expect(c.with({ port: 1 }).sslRootCert).toBe(ROOT_PEM)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(DatabaseConfig.fromUrl('postgres://h/d?fallback_application_name=fb').applicationName).toBe('fb')
    expect(thrown(() => DatabaseConfig.fromUrl('postgres://h/d?sslrootcert=/nonexistent/ca.pem')).message).toMatch(
      /sslrootcert.*cannot be read/,
    )
  })

  it('accepts the six target_session_attrs values of libpq and refuses others', () => {
    for (const attrs of TARGET_SESSION_ATTRS)
      expect(DatabaseConfig.fromUrl(`postgres://a,b/d?target_session_attrs=${attrs}`).targetSessionAttrs).toBe(attrs)
    expect(new DatabaseConfig().targetSessionAttrs).toBe('any')
    const bad = thrown(() => DatabaseConfig.fromUrl('postgres://h/d?target_session_attrs=master'))
    expect(bad.detail?.option).toBe('database.url target_session_attrs')
    expect(thrown(() => new DatabaseConfig({ targetSessionAttrs: 'readwrite' as never })).message).toContain('database.targetSessionAttrs')
  })

  it('never shows the password: in the user info (with @ or / in it), or as password=', () => {
    for (const url of [
      `postgres://u:${SECRET}@h1,h2/d?sslmod=x`,
      `postgres://u:${SECRET}@@h1/d?sslmod=x`,
      `postgres://u:a/${SECRET}@h1/d?sslmod=x`,
      `postgres://h1/d?password=${SECRET}&sslmod=x`,
    ]) {
      const err = thrown(() => DatabaseConfig.fromUrl(url))
      expect(err.message + err.stack + inspect(err) + JSON.stringify(err)).not.toContain(SECRET)
    }
    expect(DatabaseConfig.fromUrl(`postgres://u@h/d?password=${SECRET}`).hasPassword).toBe(true)
  })

  it('refuses a password with an unencoded "/", "?" or "#" (CONFIGURATION) before any part of it is read as host, port or query', () => {
    // each would have been parsed: host "u", port "4711" or "Xk9", database or query from the password
    for (const pw of ['4711/Secr3tPart', 'Xk9?vQ2pLpart', 'Xk9#vQ2pLpart', 'p?q=1part', 'ab/cd@efpart', 'p?application_name=xpart']) {
      for (const url of [`postgres://u:${pw}@db.internal:5432/ledger`, `postgresql://u:${pw}@h1,h2/d?sslmode=disable`]) {
        expect(hasAmbiguousCredentials(url)).toBe(true)
        const err = thrown(() => DatabaseConfig.fromUrl(url))
        expect(err.code).toBe('CONFIGURATION')
        expect(err.message).toMatch(/unencoded "\/", "\?" or "#"/)
        const shown = err.message + err.stack + inspect(err) + JSON.stringify(err)
        for (const part of pw.split(/[/?#@=]/).filter((x) => x.length >= 3)) expect(shown).not.toContain(part)
      }
    }
    // DATABASE_URL goes the same way
    expect(thrown(() => DatabaseConfig.fromEnv({ DATABASE_URL: 'postgres://u:4711/Secr3t@h/d' })).message).not.toContain('Secr3t')
    // an "@" in the password, in a known query value, percent-encoded delimiters and sqlite: URLs are not ambiguous
    expect(DatabaseConfig.fromUrl('postgres://u:p@ss@h/d').host).toBe('h')
    expect(DatabaseConfig.fromUrl('postgres://u:pw@h/d?application_name=me@x').applicationName).toBe('me@x')
    expect(DatabaseConfig.fromUrl('postgres://h:5433/d?application_name=me@x').port).toBe(5433)
    expect(DatabaseConfig.fromUrl('postgres://u:a%2Fb%3Fc%23d@h/d').host).toBe('h')
    expect(hasAmbiguousCredentials('sqlite:./a@b/c.db')).toBe(false)
    expect(hasAmbiguousCredentials('sqlite://u:a/b@c.db')).toBe(false)
  })

  it('never shows a secret or unknown query value (a misspelt pasword=, passwd=) in a CONFIGURATION error, names kept; ?sslpassword=s3cr@t is named', () => {
    for (const url of [
      'postgres://app:pw1@db.example/app?pasword=S3cretTypo',
      'postgres://app@db.example/app?sslmode=require&passwd=S3cretTypo',
      'postgres://app@db.example/app?pass%77d=S3cretTypo&sslmode=require',
      'postgres://app@db.example/app?pasword=S3cretTypo#frag',
    ]) {
      const err = thrown(() => DatabaseConfig.fromUrl(url))
      expect(err.code).toBe('CONFIGURATION')
      expect(err.message).toMatch(/unknown query parameter "pas/)
      expect(err.message).toMatch(/\?(?:sslmode=require&)?pas[^=]*=\[REDACTED\]/)
      expect(err.message + err.stack + inspect(err) + JSON.stringify(err)).not.toContain('S3cretTypo')
    }
    for (const [url, name] of [
      ['postgres://app@db.example/app?sslpassword=s3cr@tX', 'sslpassword'],
      ['postgres://app@db.example/app?pasword=s3cr@tX', 'pasword'],
    ] as const) {
      const err = thrown(() => DatabaseConfig.fromUrl(url))
      expect(err.message).toContain(name)
      expect(err.message).not.toMatch(/unencoded/)
      expect(err.message + inspect(err) + JSON.stringify(err)).not.toContain('s3cr')
    }
    // still ambiguous: the "port" of an authority without user info is not digits
    expect(hasAmbiguousCredentials('postgres://u:p?q=1part@h/d')).toBe(true)
  })

  it('shows the host=, port=, sslmode, target_session_attrs values an error is about; hides password=, passfile, sslpassword, options and unknown keys', () => {
    const hosts = thrown(() => DatabaseConfig.fromUrl('postgres://h1:6000,h2:6001/db?host=a'))
    expect(hosts.message).toContain('"postgres://h1:6000,h2:6001/db?host=a": 2 ports (before "/") for 1 host (in host=)')
    const ports = thrown(() =>
      DatabaseConfig.fromUrl('postgres://app@h1,h2,h3/db?port=1,2&sslmode=require&target_session_attrs=read-write'),
    )
    expect(ports.message).toContain(
      '"postgres://app@h1,h2,h3/db?port=1,2&sslmode=require&target_session_attrs=read-write": 2 ports (in port=)',
    )
    expect(
      redactUrl(
        'postgresql://u:pw@h/d?host=a,b&port=1&application_name=app&password=Pw1&passfile=/p/.pgpass&sslpassword=Sp2&options=-c%20x%3Dy&Host=c&tok=T3',
      ),
    ).toBe(
      'postgresql://u:[REDACTED]@h/d?host=a,b&port=1&application_name=app&password=[REDACTED]&passfile=[REDACTED]&sslpassword=[REDACTED]&options=[REDACTED]&Host=[REDACTED]&tok=[REDACTED]',
    )
    // in free text too; a URL of another scheme keeps every value hidden
    expect(redactUrlQueryValues('at "POSTGRES://h/d?sslmode=require&pasword=x": no; https://x/?host=a sqlite:./a.db?mode=ro')).toBe(
      'at "POSTGRES://h/d?sslmode=require&pasword=[REDACTED]": no; https://x/?host=[REDACTED] sqlite:./a.db?mode=[REDACTED]',
    )
  })

  it('never shows a password= or sslpassword= query value (its name percent-encoded or not) when another part of the URL is refused', () => {
    for (const url of [
      'postgres://h/db?foo&sslpassword=hunter2Secret',
      'postgres://h/db?port=%zz&sslpassword=hunter2Secret',
      'postgres://h/d@b?sslpassword=hunter2Secret',
      'postgres://h/db?foo&pass%77ord=hunter2Secret#frag',
      'postgres://h/db?foo&PASSWORD=hunter2Secret',
    ]) {
      const err = thrown(() => DatabaseConfig.fromUrl(url))
      expect(err.code).toBe('CONFIGURATION')
      expect(err.message).toContain('[REDACTED]')
      expect(err.message + inspect(err) + JSON.stringify(err)).not.toContain('hunter2')
    }
  })

  it('refuses an "@" in the path even when a known query value holds another one (a database name writes it as %40)', () => {
    // "1234/Secr3t" as a password: host "u", port 1234, database "Secr3t@db.example/app" to a URL parser
    for (const url of [
      'postgres://u:1234/Secr3tPart@db.example/app?application_name=me@host',
      'postgres://u:1234/Secr3tPart@db.example/app#frag?application_name=me@host',
      'postgres://u:1234/Secr3tPart@db.example/app?sslmode=disable&application_name=me@host',
      'postgresql://u:1234/Secr3tPart@h1,h2/app?fallback_application_name=a@b',
    ]) {
      expect(hasAmbiguousCredentials(url)).toBe(true)
      const err = thrown(() => DatabaseConfig.fromUrl(url))
      expect(err.code).toBe('CONFIGURATION')
      expect(err.message + inspect(err) + JSON.stringify(err)).not.toContain('Secr3tPart')
    }
    // the legitimate forms still parse: %40 in the database name, "@" only in a known query value
    const encoded = DatabaseConfig.fromUrl('postgres://u:p%2F1@db.example/my%40db?application_name=me@host')
    expect([encoded.host, encoded.database, encoded.applicationName]).toEqual(['db.example', 'my@db', 'me@host'])
    expect(DatabaseConfig.fromUrl('postgres://db.example:5433/app?application_name=me@host').port).toBe(5433)
    expect(DatabaseConfig.fromUrl('postgres://u@db.example/app?application_name=me@host').database).toBe('app')
    expect(hasAmbiguousCredentials('postgres://u:p@db.example/app?application_name=a/b@c')).toBe(false)
  })

  it('DatabaseConfig({ hosts }): ports default to port, host and hosts exclude each other, with() swaps the list', () => {
    const c = new DatabaseConfig({ hosts: [{ host: 'a' }, { host: 'b', port: 2 }], port: 9, targetSessionAttrs: 'prefer-standby' })
    expect(c.hosts).toEqual([
      { host: 'a', port: 9 },
      { host: 'b', port: 2 },
    ])
    expect(thrown(() => new DatabaseConfig({ host: 'x', hosts: [{ host: 'a' }] })).message).toMatch(/host or hosts, not both/)
    expect(thrown(() => new DatabaseConfig({ hosts: [] })).message).toMatch(/database\.hosts/)
    expect(thrown(() => new DatabaseConfig({ hosts: [{ host: 'a', port: 0 }] })).message).toMatch(/database\.hosts\[0\]\.port 0/)
    expect(thrown(() => new DatabaseConfig({ hosts: [{ host: 'a', name: 'x' } as never] })).message).toMatch(/database\.hosts\[0\]\.name/)
    expect(c.with({ database: 'z' }).hosts).toEqual(c.hosts)
    expect(c.with({ database: 'z' }).targetSessionAttrs).toBe('prefer-standby')
    // c's ports are 9 and 2: one host cannot keep both (libpq: could not match 2 port numbers to 1 hosts)
    expect(thrown(() => c.with({ host: 'only' })).message).toMatch(/database\.host "only": 1 host for the 2 ports 9,2/)
    expect(c.with({ host: 'only', port: 5432 }).hosts).toEqual([{ host: 'only', port: 5432 }])
    expect(DatabaseConfig.fromUrl('postgres://a,b/d', { host: 'c' }).hosts).toEqual([{ host: 'c', port: 5432 }])
  })

  it('with() and fromUrl overrides replace the host names and the ports each on its own (never a host list dropped for localhost)', () => {
    const c = DatabaseConfig.fromUrl('postgres://app:pw@db1:5433,db2:5434/ledger?target_session_attrs=read-write')
    // port alone: every host moves to it (was localhost:6432)
    expect(c.with({ port: 6432 }).hosts).toEqual([
      { host: 'db1', port: 6432 },
      { host: 'db2', port: 6432 },
    ])
    expect(c.with({ port: 6432 }).targetSessionAttrs).toBe('read-write')
    // new names keep the ports, paired in order
    expect(c.with({ hosts: [{ host: 'a' }, { host: 'b' }] }).hosts).toEqual([
      { host: 'a', port: 5433 },
      { host: 'b', port: 5434 },
    ])
    expect(c.with({ hosts: [{ host: 'a', port: 1 }, { host: 'b' }], port: 2 }).hosts).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ])
    expect(thrown(() => c.with({ hosts: [{ host: 'a' }, { host: 'b' }, { host: 'c' }] })).message).toMatch(
      /database\.hosts \["a","b","c"\]: 3 hosts for the 2 ports/,
    )
    // one port shared by every host stays with a new host
    expect(new DatabaseConfig({ host: 'a', port: 7 }).with({ host: 'b' }).hosts).toEqual([{ host: 'b', port: 7 }])
    expect(new DatabaseConfig({ hosts: [{ host: 'a' }, { host: 'b' }], port: 7 }).with({ host: 'c' }).hosts).toEqual([
      { host: 'c', port: 7 },
    ])
    expect(thrown(() => c.with({ port: 0 })).message).toMatch(/database\.port 0/)
    expect(thrown(() => c.with({ host: 'x', hosts: [{ host: 'y' }] })).message).toMatch(/host or hosts, not both/)
    // fromUrl overrides win over the URL's ports too (a multi-host URL kept its own ports before)
    expect(DatabaseConfig.fromUrl('postgres://h1:1,h2:2/d', { port: 9 }).hosts).toEqual([
      { host: 'h1', port: 9 },
      { host: 'h2', port: 9 },
    ])
    expect(DatabaseConfig.fromUrl('postgres://db:5433/d', { host: 'c' }).hosts).toEqual([{ host: 'c', port: 5433 }])
    expect(thrown(() => DatabaseConfig.fromUrl('postgres://u:pw@h1:1,h2:2/d', { host: 'x' })).code).toBe('CONFIGURATION')
    // defaults fill in what the URL leaves out, list by list
    expect(DatabaseConfig.fromUrl('postgres://h1/d', {}, { port: 9 }).hosts).toEqual([{ host: 'h1', port: 9 }])
    expect(DatabaseConfig.fromUrl('postgres:///d', {}, { host: 'dh', port: 9 }).hosts).toEqual([{ host: 'dh', port: 9 }])
  })

  it('an override, default or with() change given as undefined is not given: the URL value stays (TLS never weakened)', () => {
    const url =
      'postgres://app:pw@db1:5432,db2:5432/ledger?sslmode=verify-full&target_session_attrs=read-write&application_name=api&options=-c%20a%3Db'
    const unset = process.env.DBPOOL_TEST_SURELY_UNSET
    const c = DatabaseConfig.fromUrl(url, {
      sslMode: unset as never,
      targetSessionAttrs: unset as never,
      password: unset,
      applicationName: unset,
      options: unset,
      host: unset,
      port: unset as never,
      hosts: unset as never,
    })
    expect(c).toMatchObject({ sslMode: 'verify-full', targetSessionAttrs: 'read-write', applicationName: 'api', options: '-c a=b' })
    expect(c.hasPassword).toBe(true)
    expect(c.hosts.map((h) => h.host)).toEqual(['db1', 'db2'])
    expect(DatabaseConfig.fromUrl('postgres://h/d', {}, { sslMode: unset as never, port: unset as never }).port).toBe(5432)
    const w = c.with({ sslMode: unset as never, password: unset, applicationName: unset, port: unset as never })
    expect(w).toMatchObject({ sslMode: 'verify-full', applicationName: 'api' })
    expect(w.hasPassword).toBe(true)
    expect(w.hosts).toEqual(c.hosts)
  })

  it('refuses a NUL character in every value sent at connection start (it would inject startup settings)', async () => {
    const nul = (fn: () => unknown, option: string): void => {
      const err = thrown(fn)
      expect(err.code).toBe('CONFIGURATION')
      expect(err.detail).toMatchObject({ option })
      expect(err.message).toMatch(/NUL character \(U\+0000\)/)
    }
    nul(() => DatabaseConfig.fromUrl('postgres://u:pw@h/d?application_name=app%00search_path%00evil'), 'database.applicationName')
    nul(() => DatabaseConfig.fromUrl('postgres://u:pw@h/d?options=-c%20a%3D%00b'), 'database.options')
    nul(() => DatabaseConfig.fromUrl('postgres://u%00x:pw@h/d'), 'database.username')
    nul(() => DatabaseConfig.fromUrl('postgres://u:pw@h/d%00search_path'), 'database.database')
    nul(() => DatabaseConfig.fromUrl('postgres://u:pw@h%00x/d'), 'database.host')
    nul(() => DatabaseConfig.fromUrl('postgres://u:pw@a,b%00x/d'), 'database.hosts[1].host')
    nul(() => new DatabaseConfig({ username: 'app\u0000x' }), 'database.username')
    nul(() => new DatabaseConfig({ options: '-c a=\u0000' }), 'database.options')
    nul(() => new DatabaseConfig().with({ applicationName: 'a\u0000b' }), 'database.applicationName')
    // the password message would be cut at the NUL: refused, never shown
    const pw = thrown(() => DatabaseConfig.fromUrl('postgres://u:s3cr%00et@h/d'))
    expect(pw.detail).toMatchObject({ option: 'database.password' })
    expect(pw.message).not.toMatch(/s3cr/)
    await expect(new DatabaseConfig({ password: () => 'a\u0000b' }).resolvePassword()).rejects.toMatchObject({
      code: 'CONFIGURATION',
      detail: { option: 'database.password' },
    })
  })

  it('fromEnv: PGHOST/PGPORT lists, PGTARGETSESSIONATTRS (also under DATABASE_URL unless the URL sets it), PGCONNECT_TIMEOUT', () => {
    const c = DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '1,2', PGTARGETSESSIONATTRS: 'standby', PGCONNECT_TIMEOUT: '5' })
    expect(c.hosts).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ])
    expect(c).toMatchObject({ targetSessionAttrs: 'standby', connectTimeoutMs: 5000 })
    expect(DatabaseConfig.fromEnv({ PGHOST: 'a,b', PGPORT: '7' }).hosts.map((h) => h.port)).toEqual([7, 7])
    expect(DatabaseConfig.fromEnv({ DATABASE_URL: 'postgres://a,b/d', PGTARGETSESSIONATTRS: 'primary' }).targetSessionAttrs).toBe('primary')
    expect(
      DatabaseConfig.fromEnv({ DATABASE_URL: 'postgres://a,b/d?target_session_attrs=any', PGTARGETSESSIONATTRS: 'primary' })
        .targetSessionAttrs,
    ).toBe('any')
    expect(thrown(() => DatabaseConfig.fromEnv({ PGTARGETSESSIONATTRS: 'master' })).message).toMatch(/PGTARGETSESSIONATTRS "master"/)
    expect(thrown(() => DatabaseConfig.fromEnv({ PGHOST: 'a,b,c', PGPORT: '1,2' })).message).toMatch(/PGPORT/)
  })
})
