import { DEFAULT_MIN_VERSION } from 'node:tls'
import { configError } from './validate'

const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const
const CLIENT_CERTIFICATES =
  'client certificates are not supported by dbpool (unset it and use password authentication, or set sslmode=disable)'

/** A variable whose values are checked one by one: accepted (dbpool gives that much), refused (with why), else invalid. */
interface EnumRule {
  readonly accepted: readonly string[]
  readonly refused: Readonly<Record<string, string>>
}

const ENUM_RULES: Readonly<Record<string, EnumRule>> = {
  PGCHANNELBINDING: {
    accepted: ['disable', 'prefer'],
    refused: { require: 'dbpool cannot require SCRAM channel binding (unset it, or set prefer or disable)' },
  },
  PGGSSENCMODE: {
    accepted: ['disable', 'prefer'],
    refused: { require: 'dbpool has no GSSAPI encryption (unset it, or set prefer or disable; use sslmode for TLS)' },
  },
  PGSSLCERTMODE: {
    accepted: ['disable', 'allow'],
    refused: { require: 'client certificates are not supported by dbpool (unset it, or set allow or disable)' },
  },
  PGSSLNEGOTIATION: {
    accepted: ['postgres'],
    refused: { direct: 'dbpool negotiates TLS the postgres way (SSLRequest) only (unset it, or set postgres)' },
  },
  PGLOADBALANCEHOSTS: {
    accepted: ['disable'],
    refused: { random: 'dbpool walks the host list in order (unset it, or set disable)' },
  },
}

/**
 * What every refusal of a variable adds: how to go on without unsetting it (the variable is read
 * because the target is a URL string; a `DatabaseConfig` reads no environment).
 */
export const NO_ENVIRONMENT_HINT = 'or pass the URL as DatabaseConfig.fromUrl(url), which reads no environment'

/**
 * Variables that matter only when TLS is used (libpq never reads them over a plaintext connection),
 * whatever their (non-empty) value: refused only when the target's mode can use TLS (see
 * {@link checkLibpqTlsEnv}).
 */
const TLS_ONLY_REFUSED: Readonly<Record<string, string>> = {
  PGSSLCERT: CLIENT_CERTIFICATES,
  PGSSLKEY: CLIENT_CERTIFICATES,
  PGSSLPASSWORD: CLIENT_CERTIFICATES,
  PGSSLCRL: 'certificate revocation lists are not supported by dbpool (unset it, or set sslmode=disable)',
  PGSSLCRLDIR: 'certificate revocation lists are not supported by dbpool (unset it, or set sslmode=disable)',
}

/** Variables dbpool cannot honour whatever their (non-empty) value and the TLS mode: each asks for more security than dbpool gives. */
const ALWAYS_REFUSED: Readonly<Record<string, string>> = {
  PGREQUIREAUTH: 'dbpool cannot restrict the authentication methods a server asks for (unset it)',
  PGREQUIREPEER: 'dbpool cannot check the server process user of a Unix socket (unset it)',
  PGSERVICE:
    'connection service files are not read by dbpool: the service settings (sslmode among them) would be ignored; write them in the URL (unset it)',
}

/**
 * Checks libpq's security-related environment variables that dbpool does not apply itself, as libpq
 * would read them for every connection (https://www.postgresql.org/docs/current/libpq-envars.html).
 * A variable asking for more security than dbpool gives is CONFIGURATION naming it (never ignored; the
 * message says how to go on: unset it, or pass the URL as `DatabaseConfig.fromUrl(url)`, which reads
 * no environment), whatever the TLS mode: PGSSLCERTMODE=require (libpq fails when no certificate is
 * asked for), PGREQUIREAUTH, PGREQUIREPEER, PGSERVICE (a service file's settings),
 * PGCHANNELBINDING=require, PGGSSENCMODE=require (GSSAPI encryption is used even with sslmode=disable),
 * PGSSLNEGOTIATION=direct, PGLOADBALANCEHOSTS=random (as the URL's `load_balance_hosts`); those read
 * only with TLS (PGSSLCERT, PGSSLKEY, PGSSLCRL...) are {@link checkLibpqTlsEnv}'s; so is a value
 * libpq refuses (an unknown mode or TLS version, a minimum above the maximum). Accepted: the values
 * dbpool meets (PGCHANNELBINDING / PGGSSENCMODE `prefer` or `disable`, PGSSLCERTMODE `allow` /
 * `disable`, a minimum at or below Node's, any valid PGSSLMAXPROTOCOLVERSION: dbpool may negotiate a
 * newer version), and variables that only weaken or concern GSSAPI (PGSSLCOMPRESSION, PGKRBSRVNAME,
 * PGGSSLIB, PGGSSDELEGATION, PGSERVICEFILE without PGSERVICE). An empty variable counts as unset.
 */
export function checkLibpqSecurityEnv(env: NodeJS.ProcessEnv): void {
  for (const [name, rule] of Object.entries(ALWAYS_REFUSED)) if (env[name]) throw envRefusal(name, env[name], rule)
  for (const [name, rule] of Object.entries(ENUM_RULES)) {
    const value = env[name]
    if (!value || rule.accepted.includes(value)) continue
    const refused = rule.refused[value]
    if (refused !== undefined) throw envRefusal(name, value, refused)
    throw configError(name, value, `must be one of ${[...rule.accepted, ...Object.keys(rule.refused)].join(', ')} (as libpq reads it)`)
  }
  // libpq checks these values whatever the mode
  const min = tlsVersion('PGSSLMINPROTOCOLVERSION', env.PGSSLMINPROTOCOLVERSION)
  const max = tlsVersion('PGSSLMAXPROTOCOLVERSION', env.PGSSLMAXPROTOCOLVERSION)
  if (min !== undefined && max !== undefined && min > max)
    throw configError(
      'PGSSLMINPROTOCOLVERSION',
      env.PGSSLMINPROTOCOLVERSION,
      `is above PGSSLMAXPROTOCOLVERSION ${env.PGSSLMAXPROTOCOLVERSION}`,
    )
}

/**
 * Checks the variables libpq reads only for a TLS connection, for a target whose final mode is
 * `sslMode` (the URL's, else PGSSLMODE / PGREQUIRESSL, else `prefer`): with `disable` none is read
 * (libpq never uses them without TLS), else each asking for more than dbpool gives is CONFIGURATION
 * naming it: PGSSLCERT, PGSSLKEY, PGSSLPASSWORD (client certificates), PGSSLCRL, PGSSLCRLDIR
 * (revocation lists), PGSSLSNI=0 (dbpool sends the host name with verify-full),
 * PGSSLMINPROTOCOLVERSION above Node's minimum (`tls.DEFAULT_MIN_VERSION`). Every refusal says how to
 * go on: unset it, or pass the URL as `DatabaseConfig.fromUrl(url)`, which reads no environment.
 */
export function checkLibpqTlsEnv(env: NodeJS.ProcessEnv, sslMode: string): void {
  if (sslMode === 'disable') return
  for (const [name, rule] of Object.entries(TLS_ONLY_REFUSED)) if (env[name]) throw envRefusal(name, env[name], rule)
  if (env.PGSSLSNI && env.PGSSLSNI.trim() === '0')
    throw envRefusal('PGSSLSNI', env.PGSSLSNI, 'dbpool sends the host name (SNI) with verify-full (unset it)')
  const min = tlsVersion('PGSSLMINPROTOCOLVERSION', env.PGSSLMINPROTOCOLVERSION)
  const floor = TLS_VERSIONS.indexOf(DEFAULT_MIN_VERSION as (typeof TLS_VERSIONS)[number])
  if (min !== undefined && floor >= 0 && min > floor)
    throw envRefusal(
      'PGSSLMINPROTOCOLVERSION',
      env.PGSSLMINPROTOCOLVERSION,
      `dbpool accepts TLS from ${DEFAULT_MIN_VERSION} (Node's minimum), it cannot require more (unset it, or set ${DEFAULT_MIN_VERSION} or lower)`,
    )
}

/** CONFIGURATION refusing a variable dbpool cannot honour, with {@link NO_ENVIRONMENT_HINT}. */
function envRefusal(name: string, value: string | undefined, why: string): ReturnType<typeof configError> {
  return configError(name, value, `${why}; ${NO_ENVIRONMENT_HINT}`)
}

/**
 * libpq's deprecated PGREQUIRESSL: a value starting with `1` means `sslmode=require`, any other is
 * ignored; PGSSLMODE, when set, wins (libpq 9.3 and later).
 */
export function requireSslMode(env: NodeJS.ProcessEnv): 'require' | undefined {
  return !env.PGSSLMODE && env.PGREQUIRESSL?.startsWith('1') ? 'require' : undefined
}

/** The index of a TLS version in {@link TLS_VERSIONS}, or `undefined` when `value` is unset; else CONFIGURATION. */
function tlsVersion(name: string, value: string | undefined): number | undefined {
  if (!value) return undefined
  // libpq compares the names without case
  const index = TLS_VERSIONS.findIndex((v) => v.toLowerCase() === value.toLowerCase())
  if (index < 0) throw configError(name, value, `must be one of ${TLS_VERSIONS.join(', ')} (as libpq reads it)`)
  return index
}

/**
 * libpq's PGHOSTADDR: the numeric address to connect to instead of looking the host name up (the
 * name still checked by TLS and sent as SNI). dbpool has no `hostaddr`: it would connect to the host
 * name (PGHOST, the URL's host), maybe another server than the one psql reaches, so a set PGHOSTADDR
 * is CONFIGURATION naming it (write the address as the host, or unset it). An empty one counts as unset.
 */
export function checkLibpqHostAddrEnv(env: NodeJS.ProcessEnv): void {
  if (env.PGHOSTADDR)
    throw envRefusal(
      'PGHOSTADDR',
      env.PGHOSTADDR,
      'hostaddr is not supported by dbpool: it would connect to the host name (PGHOST, the URL), not to this address (give the address as the host, or unset it)',
    )
}
