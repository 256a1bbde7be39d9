import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseConfig } from '@dbpool/core'
import { PostgresConnectionManager } from '../../src/postgres-connection-manager'
import { isReadOnlyStatement } from '../../src/postgres-read-only'
import type { PostgresManagerOptions } from '../../src/postgres-options'
import { parseLsn, readOnlyViaOf, replicaPgBouncerMode, replicaStatusOf, resolveReplicaOptions } from '../../src/postgres-replicas'

const ROOT_PEM = readFileSync(join(__dirname, '../fixtures/tls/ca.crt'), 'utf8')

describe('isReadOnlyStatement (readRouting: auto, readYourWrites)', () => {
  it.each([
    'select 1',
    'SELECT id, body FROM notes WHERE id = $1',
    'select count(*), max(amount) from transfers where account_id in (select id from accounts) ;',
    "with recent as (select * from t where created_at > now() - interval '1 day') select coalesce(sum(x), 0) from recent",
    'values (1), (2)',
    'table accounts',
    'select \'a;b\' as s, "Col" from x -- trailing ; comment',
    '/* app:ledger */ select exists (select 1 from a where b = $1)',
    'select pg_is_in_recovery()',
    'select pg_sleep(1)',
    "select amount::numeric(12, 2), to_char(created_at, 'YYYY') from t",
  ])('%s is read-only', (text) => {
    expect(isReadOnlyStatement(text)).toBe(true)
  })

  it.each(['select 1 --x\r; insert into t values (1)', 'select 1 -- note\rdelete from t', '-- only a comment\rupdate t set a = 1'])(
    '%j is not read-only: a -- comment ends at \\r too on Postgres (scan.l), so what follows runs',
    (text) => {
      expect(isReadOnlyStatement(text)).toBe(false)
    },
  )

  it.each([
    'insert into t values (1)',
    'update t set a = 1',
    'delete from t',
    'with d as (delete from t returning *) select * from d',
    'select * from t for update',
    'select * from t for no key update',
    'select * from t for share',
    'select * into copy_of_t from t',
    "select nextval('s')",
    'select pg_advisory_lock(1)',
    "select set_config('a.b', 'c', false)",
    'select my_function(1)',
    'select public.lower(x) from t',
    'select "lower"(x) from t',
    'select 1; select 2',
    'select 1; delete from t',
    'select $$ text $$',
    "select E'\\''",
    'begin',
    'create table t (id int)',
    'explain analyze select 1',
    'select 1 /* unterminated',
    "select 'unterminated",
    'call p()',
    'lock table t',
  ])('%s is not known read-only', (text) => {
    expect(isReadOnlyStatement(text)).toBe(false)
  })
})

describe('replica option helpers', () => {
  it('parses WAL positions as 64-bit numbers', () => {
    expect(parseLsn('0/0')).toBe(0n)
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n)
    expect(parseLsn('16/B374D848') > parseLsn('15/FFFFFFFF')).toBe(true)
    expect(() => parseLsn('nope')).toThrow(/not a WAL position/)
  })

  it('reads a status row', () => {
    expect(replicaStatusOf({ r: true, lsn: '0/10', lag: 12.5 })).toEqual({ inRecovery: true, position: 16n, lagMs: 12.5 })
    // a server out of recovery (promoted) writes on a timeline of its own: no position comparable with the primary's
    expect(replicaStatusOf({ r: false, lsn: 'FF/10', lag: 0 })).toEqual({ inRecovery: false, position: 0n, lagMs: 0 })
  })

  it('takes replicas from the option, else DATABASE_REPLICA_URLS, and refuses bad values naming them', () => {
    expect(resolveReplicaOptions({}, {}).replicas).toEqual([])
    const fromEnv = resolveReplicaOptions({}, { DATABASE_REPLICA_URLS: 'postgres://u:p@r1:5433/db, postgres://u:p@r2:5434/db' })
    expect(fromEnv.replicas.map((c) => `${c.host}:${c.port}`)).toEqual(['r1:5433', 'r2:5434'])
    expect(resolveReplicaOptions({ replicas: [] }, { DATABASE_REPLICA_URLS: 'postgres://r1/db' }).replicas).toEqual([])
    // a comma inside a URL (a host list, a password) does not split it; its password is never shown
    const multi = resolveReplicaOptions({}, { DATABASE_REPLICA_URLS: 'postgres://u:a,b@r1,r2:5434/db,postgresql://u:p@r3/db' })
    expect(multi.replicas.map((c) => c.hosts.map((h) => `${h.host}:${h.port}`).join(','))).toEqual(['r1:5432,r2:5434', 'r3:5432'])
    const leak = (() => {
      try {
        resolveReplicaOptions({}, { DATABASE_REPLICA_URLS: 'postgres://app:Zz7?secretpart@replica/ledger' })
      } catch (err) {
        return err as Error & { code: string }
      }
    })()
    expect(leak?.code).toBe('CONFIGURATION')
    expect(leak?.message).not.toContain('secretpart')
    expect(() => resolveReplicaOptions({ replicas: 'postgres://r1/db' }, {})).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }))
    expect(() => resolveReplicaOptions({ replicas: [42] }, {})).toThrow(/postgres\.replicas\[0\]/)
    expect(() => resolveReplicaOptions({ readRouting: 'always' }, {})).toThrow(/postgres\.readRouting/)
    expect(() => resolveReplicaOptions({ readYourWrites: 'yes' }, {})).toThrow(/postgres\.readYourWrites/)
    expect(() => resolveReplicaOptions({ maxReplicaLagMs: -1 }, {})).toThrow(/postgres\.maxReplicaLagMs/)
  })
})

describe("replicas inherit the primary's TLS settings they do not set (libpq: what a URL leaves out is filled in)", () => {
  const primary = new DatabaseConfig({ host: 'db', sslMode: 'verify-full', sslRootCert: ROOT_PEM })

  it("a replica URL or options without sslmode take the primary's sslMode and sslRootCert", () => {
    const { replicas } = resolveReplicaOptions({ replicas: ['postgres://u:p@r1/db', { host: 'r2' }] }, {}, primary)
    for (const r of replicas) expect(r).toMatchObject({ sslMode: 'verify-full', sslRootCert: ROOT_PEM })
    const fromEnv = resolveReplicaOptions({}, { DATABASE_REPLICA_URLS: 'postgres://u:p@r1/db,postgres://u:p@r2/db' }, primary)
    expect(fromEnv.replicas.map((r) => r.sslMode)).toEqual(['verify-full', 'verify-full'])
  })

  it('a replica that sets its own keeps it; a DatabaseConfig is taken as it is', () => {
    const own = new DatabaseConfig({ host: 'r3', sslMode: 'disable' })
    const { replicas } = resolveReplicaOptions(
      { replicas: ['postgres://u:p@r1/db?sslmode=require', { host: 'r2', sslMode: 'verify-ca' }, own] },
      {},
      primary,
    )
    expect(replicas.map((r) => r.sslMode)).toEqual(['require', 'verify-ca', 'disable'])
    expect(replicas[0]!.sslRootCert).toBe(ROOT_PEM)
  })

  it('a replica URL takes PGSSLMODE / PGSSLROOTCERT before the primary: a primary sslmode=disable never makes it plaintext', () => {
    const disabled = DatabaseConfig.fromUrl('postgres://u:p@db/app?sslmode=disable')
    const env = { PGSSLMODE: 'require', DATABASE_REPLICA_URLS: 'postgres://u:p@r1/db,postgres://u:p@r2/db?sslmode=prefer' }
    expect(resolveReplicaOptions({}, env, disabled).replicas.map((r) => r.sslMode)).toEqual(['require', 'prefer'])
    const strings = resolveReplicaOptions({ replicas: ['postgres://u:p@r1/db', { host: 'r2' }] }, { PGSSLMODE: 'verify-ca' }, disabled)
    // an options object reads no environment (as new DatabaseConfig(options)): the primary's
    expect(strings.replicas.map((r) => r.sslMode)).toEqual(['verify-ca', 'disable'])
    expect(resolveReplicaOptions({ replicas: ['postgres://u:p@r1/db'] }, { PGREQUIRESSL: '1' }, disabled).replicas[0]!.sslMode).toBe(
      'require',
    )
    // the stricter of the environment's and the primary's: a weaker PGSSLMODE does not lower a verify-full primary's replicas
    expect(resolveReplicaOptions({ replicas: ['postgres://u:p@r1/db'] }, { PGSSLMODE: 'prefer' }, primary).replicas[0]!.sslMode).toBe(
      'verify-full',
    )
    const ca = join(__dirname, '../fixtures/tls/ca.crt')
    const plainRoot = new DatabaseConfig({ host: 'db', sslMode: 'disable' })
    const rooted = resolveReplicaOptions({ replicas: ['postgres://u:p@r1/db'] }, { PGSSLROOTCERT: ca }, plainRoot).replicas[0]!
    expect(rooted.sslRootCert).toBe(ROOT_PEM)
    // sslrootcert=system: verify-full unless the URL or PGSSLMODE says otherwise, whatever the primary's mode
    const system = resolveReplicaOptions(
      { replicas: ['postgres://u:p@r1/db?sslrootcert=system', { host: 'r2', sslRootCert: 'system' }] },
      {},
      plainRoot,
    )
    expect(system.replicas.map((r) => r.sslMode)).toEqual(['verify-full', 'verify-full'])
    // a bad variable is named; it is read only when a replica is a URL
    expect(() => resolveReplicaOptions({ replicas: ['postgres://u:p@r1/db'] }, { PGSSLMODE: 'strict' }, disabled)).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION', detail: expect.objectContaining({ option: 'PGSSLMODE' }) }),
    )
    expect(resolveReplicaOptions({ replicas: [{ host: 'r2' }] }, { PGSSLMODE: 'strict' }, disabled).replicas).toHaveLength(1)
  })

  it('the manager passes its config as the primary', () => {
    const manager = new PostgresConnectionManager(primary, { replicas: ['postgres://u:p@r1/db'] })
    expect(manager.replicaOptions.replicas[0]!.sslMode).toBe('verify-full')
  })
})

// each text is 1 MB; the old scans were quadratic on them (minutes to hours), now linear
describe('isReadOnlyStatement reads 1 MB adversarial texts in linear time', () => {
  const MB = 1 << 20
  const fill = (unit: string): string => unit.repeat(Math.ceil(MB / unit.length))
  it.each<[string, string, boolean]>([
    // skipCommentsAndLiterals tested the text built so far with /[eE]$/ at every quote (and $)
    ['many string literals', `select ${fill("'' ")}`, true],
    ['many $ after names', `select ${fill('a$ ')}`, true],
    // CALL was tried at every character of a long name, each attempt reading the rest of it
    ['one long name', `select ${fill('a')}`, true],
    ['one long name, then a call', `select ${fill('a')} + nextval('s')`, false],
  ])('%s', (_what, text, readOnly) => {
    expect(text.length).toBeGreaterThanOrEqual(MB)
    expect(isReadOnlyStatement(text)).toBe(readOnly)
  })

  it('reads calls and E-strings as before', () => {
    expect(isReadOnlyStatement(`select xnextval('s')`)).toBe(false)
    expect(isReadOnlyStatement(`select lower('A'), public.f(1)`)).toBe(false)
    expect(isReadOnlyStatement(`select "nextval"('s')`)).toBe(false)
    expect(isReadOnlyStatement(`select lower ('A') from t where x in (1, 2)`)).toBe(true)
    expect(isReadOnlyStatement(`select e'\\x41'`)).toBe(false)
    expect(isReadOnlyStatement(`select x'41', 'a'`)).toBe(true)
    expect(isReadOnlyStatement(`select name'x' from t`)).toBe(true)
    expect(isReadOnlyStatement(`select $$x$$`)).toBe(false)
    expect(isReadOnlyStatement(`select a$1 from t`)).toBe(true)
  })
})

describe("isReadOnlyStatement: names follow Postgres's rule (every non-ASCII character is a letter of a name)", () => {
  it.each([
    // the name is åcount (a user function, which may write), not the built-in count after å
    "select åcount('x')",
    "select öupper('x')",
    "select \u00e9lower('x') from t",
    "select ñ1count('x')",
    "select x$count('x')",
    // a non-ASCII letter JavaScript folds to ASCII (the Kelvin sign to k): Postgres folds only ASCII
    'select ran\u212a() over ()',
    // a data-modifying word in a name with non-ASCII letters is the name, but a call to it still is not known
    "select åinsert('x')",
  ])('%s is not known read-only', (text) => {
    expect(isReadOnlyStatement(text)).toBe(false)
  })

  it.each([
    'select åcount from t',
    'select insertå, åupdate, x$delete from t',
    "select count(*) from møbler where navn = 'x'",
    "select åe'\\' from t",
    'select å$a$ from t',
  ])('%s is read-only', (text) => {
    expect(isReadOnlyStatement(text)).toBe(true)
  })
})

describe('resolveReplicaOptions never shows a replica password', () => {
  it.each<[string, unknown]>([
    ['a URL string instead of an array', 'postgres://u:hunter2Secret@h/db'],
    ['options with a bad port', [{ host: 'h', port: 'x', password: 'hunter2Secret' }]],
    ['options with a URL key', [{ url: 'postgres://u:hunter2Secret@h/db', port: -1 }]],
    ['a bad URL', ['postgres://u:hunter2Secret@h/db?sslmod=x']],
  ])('%s', (_what, replicas) => {
    let err: unknown
    try {
      resolveReplicaOptions({ replicas }, {})
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'CONFIGURATION' })
    expect(`${(err as Error).message} ${JSON.stringify(err)}`).not.toContain('hunter2')
  })
})

describe("a replica's PgBouncer mode and read-only sessions", () => {
  const direct = DatabaseConfig.fromUrl('postgres://u@replica/d')
  const bounced = DatabaseConfig.fromUrl('postgres://u@replica/d?pgbouncer=true')

  it("comes from the replica's own config, never from the primary's pgbouncer option", () => {
    for (const primary of [false, 'transaction', 'session'] as const) expect(replicaPgBouncerMode(direct, primary)).toBe(false)
    expect(replicaPgBouncerMode(bounced, false)).toBe('transaction')
    expect(replicaPgBouncerMode(bounced, 'transaction')).toBe('transaction')
    expect(replicaPgBouncerMode(bounced, 'session')).toBe('session')
  })

  it('makes read-lane sessions read-only by the startup option directly, by SET for the primary and behind session-mode PgBouncer, not in transaction mode', () => {
    expect(readOnlyViaOf(false, false)).toBe('startup')
    expect(readOnlyViaOf(false, true)).toBe('set')
    expect(readOnlyViaOf('session', false)).toBe('set')
    expect(readOnlyViaOf('session', true)).toBe('set')
    expect(readOnlyViaOf('transaction', false)).toBe('none')
  })

  it("keeps the primary's read-only pool behind session-mode PgBouncer only", () => {
    const lanes = (primary: string, options: PostgresManagerOptions) =>
      new PostgresConnectionManager(primary, { ...options, replicas: ['postgres://u@replica/d'] }).lanes.readOnlyFallback
    expect(lanes('postgres://u@h/d', {})).toBe(true)
    expect(lanes('postgres://u@h/d', { pgbouncer: 'session' })).toBe(true)
    expect(lanes('postgres://u@h/d', { pgbouncer: 'transaction' })).toBe(false)
    expect(lanes('postgres://u@h/d?pgbouncer=true', {})).toBe(false)
  })
})

// a replica URL is a connection string like any: libpq fills in PGOPTIONS, PGAPPNAME and PGCONNECT_TIMEOUT
// (they were ignored: the read lane read another schema than the write lane under PGOPTIONS search_path)
describe('replica URLs take PGOPTIONS, PGAPPNAME and PGCONNECT_TIMEOUT from the environment', () => {
  const env = { PGOPTIONS: '-c search_path=app', PGAPPNAME: 'billing', PGCONNECT_TIMEOUT: '4', PGTARGETSESSIONATTRS: 'read-write' }

  it('fills in what the replica URL leaves out, never what it sets, and not PGTARGETSESSIONATTRS', () => {
    const { replicas } = resolveReplicaOptions(
      {
        replicas: [
          'postgres://app:pw@replica1/ledger',
          'postgres://app:pw@replica2/ledger?options=-c%20search_path%3Dother&application_name=own',
        ],
      },
      env,
      DatabaseConfig.fromUrl('postgres://app:pw@primary/ledger'),
    )
    expect(replicas[0]).toMatchObject({
      options: '-c search_path=app',
      applicationName: 'billing',
      connectTimeoutMs: 4_000,
      targetSessionAttrs: 'any',
    })
    expect(replicas[1]).toMatchObject({ options: '-c search_path=other', applicationName: 'own', connectTimeoutMs: 4_000 })
  })

  it('PGUSER, PGPORT and PGDATABASE fill in a replica URL that leaves them out, as any connection string', () => {
    const { replicas } = resolveReplicaOptions(
      { replicas: ['postgres://replica1', 'postgres://own@replica2:5433/ledger'] },
      { PGUSER: 'envuser', PGPORT: '6433', PGDATABASE: 'envdb' },
    )
    expect(replicas[0]).toMatchObject({ host: 'replica1', port: 6433, username: 'envuser', database: 'envdb' })
    expect(replicas[1]).toMatchObject({ host: 'replica2', port: 5433, username: 'own', database: 'ledger' })
  })

  it('PGHOSTADDR with a replica URL is CONFIGURATION naming it', () => {
    expect(() => resolveReplicaOptions({ replicas: ['postgres://app:pw@replica1/ledger'] }, { PGHOSTADDR: '10.0.0.9' })).toThrow(
      /PGHOSTADDR/,
    )
  })
})
