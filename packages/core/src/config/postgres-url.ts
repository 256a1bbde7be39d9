import { configError, isSecretName } from './validate'

/** One host of a Postgres target: a name, an IP (IPv6 without brackets) or a Unix socket directory. */
export interface PostgresHost {
  readonly host: string
  /** Default is the target's `port`, else `5432`. */
  readonly port?: number
}

/** What {@link parsePostgresUrl} found, still as strings (DatabaseConfig validates the values). */
export interface ParsedPostgresUrl {
  /** In the order written; an empty host means the default (`localhost`). Query `host=`/`port=` lists replace the names / the ports before `/` (see {@link parsePostgresUrl}). */
  readonly hosts: readonly { readonly host: string; readonly port: string | undefined }[]
  readonly user: string | undefined
  readonly password: string | undefined
  readonly database: string | undefined
  /** The query parameters, decoded; every name is one of {@link URL_PARAMETERS}. */
  readonly params: Readonly<Record<string, string>>
}

/**
 * The query parameters a `postgres://` URL may carry: the libpq keywords dbpool applies, plus
 * `pgbouncer` (Prisma's convention). Any other name is refused, as libpq refuses it
 * (`invalid URI query parameter`), so a typo such as `sslmod=` is an error instead of a silently
 * ignored setting.
 */
export const URL_PARAMETERS = [
  'host',
  'port',
  'user',
  'password',
  'dbname',
  'sslmode',
  'sslrootcert',
  'application_name',
  'fallback_application_name',
  'options',
  'connect_timeout',
  'target_session_attrs',
  'statement_timeout',
  'idle_in_transaction_session_timeout',
  'lock_timeout',
  'pgbouncer',
] as const

/** libpq keywords that exist but that dbpool does not apply: refused with a reason rather than ignored. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  sslcert: 'client certificates are not supported by dbpool',
  sslkey: 'client certificates are not supported by dbpool',
  sslpassword: 'client certificates are not supported by dbpool',
  ssl: 'use sslmode (disable, prefer, require, verify-ca, verify-full)',
  load_balance_hosts: 'dbpool walks the host list in order (load_balance_hosts=disable)',
}

/**
 * Whether a `postgres://` / `postgresql://` URL's password holds an unencoded `/`, `?` or `#` (or its
 * path an `@`): a URL parser ends the user info at the first of those, so it would read part of the
 * password as the host, the port, the database name or the query, and an error, the pool's target or
 * a span would print that part. {@link parsePostgresUrl} refuses such a URL (CONFIGURATION); the CLI
 * checks its URLs with it too. Any other text (a `sqlite:` URL included) answers `false`.
 *
 * An `@` in the path (after the authority's `/`, before `?` or `#`) always counts: a database name
 * writes it as `%40`, so `postgres://u:1234/Secret@db/app?application_name=me@host` (host `u`, port
 * `1234` to a URL parser) is refused. Any other `@` after the authority counts as part of the password
 * unless it is in the value of a query parameter (`?application_name=me@host`; an unknown or unsupported
 * name such as `?sslpassword=s3cr@t` is then refused by {@link parsePostgresUrl} naming it) of a URL whose authority is well formed: it has its own
 * `user@`, or each host's port is digits (`postgres://u:p?application_name=x@h/d` reads `p` as a port:
 * ambiguous). Linear in the length of `url`.
 */
export function hasAmbiguousCredentials(url: string): boolean {
  const scheme = /^postgres(?:ql)?:\/\//i.exec(url)
  if (!scheme) return false
  const rest = url.slice(scheme[0].length)
  const end = rest.search(/[/?#]/)
  const lastAt = rest.lastIndexOf('@')
  if (end < 0 || lastAt < end) return false
  // an "@" in the path (after the authority, before "?" or "#"): a database name takes it as %40, so it
  // is a password's "@" after an unencoded "/" (u:1234/Secret@db/app read as host u, port 1234)
  const at = rest.indexOf('@', end)
  if (rest.charCodeAt(end) === 47 /* / */ && at < pathEnd(rest, end)) return true
  // the "@" may be in a query value: "?name=...@" or "&name=...@" with a known name, no "#" before it
  const query = rest.indexOf('?', end)
  if (query < 0 || query > lastAt || rest.lastIndexOf('#', lastAt) >= end) return true
  const pair = rest.slice(Math.max(rest.lastIndexOf('&', lastAt), rest.lastIndexOf('?', lastAt)) + 1, lastAt)
  const eq = pair.indexOf('=')
  // any "name=": a known one is read, any other refused naming it (never "an unencoded /" for ?sslpassword=s3cr@t)
  if (eq < 0) return true
  const authority = rest.slice(0, end)
  if (authority.includes('@')) return false
  // no user info of its own: then every port must be digits, else the "port" was a password
  return authority.split(',').some((spec) => !/^(?:\[[^\]]*\]|[^:[\]]*)(?::\d*)?$/.test(spec))
}

/** Where the path starting at `from` ends: the first `?` or `#` after it, else the end of `rest`. */
function pathEnd(rest: string, from: number): number {
  const query = rest.indexOf('?', from)
  const hash = rest.indexOf('#', from)
  if (query < 0) return hash < 0 ? rest.length : hash
  return hash < 0 ? query : Math.min(query, hash)
}

/**
 * Parses a libpq connection URI: `postgres[ql]://[user[:password]@][host[:port][,host[:port]...]][/dbname][?name=value&...]`
 * (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS). Hosts may be
 * names, IPv4, IPv6 in brackets (`[::1]:5433`) or a percent-encoded socket directory (`%2Fvar%2Frun%2Fpostgresql`);
 * each may have its own port. `host=` and `port=` in the query take comma-separated lists too. As in
 * libpq, the hosts and their ports are two lists: `host=` replaces only the host names (the ports
 * written before `/` stay: `postgres://h:55432/db?host=/tmp` is `/tmp` port 55432, `postgres://h:6000/db?host=a,b`
 * is `a:6000,b:6000`), `port=` replaces only the ports; then no port list means every host's default,
 * one port applies to every host, else there must be one per host (`postgres://h1:1,h2:2/db?host=x`
 * is refused, as libpq refuses it). Percent-escapes are
 * decoded everywhere; `+` is kept (libpq does not read it as a space).
 *
 * pg-connection-string (which dbpool used before) reads only one host: it throws on `h1:5432,h2:5433`.
 *
 * Throws CONFIGURATION (option `database.url`, the password never shown) on a malformed URL, on a
 * password with an unencoded `/`, `?` or `#` ({@link hasAmbiguousCredentials}), on an unknown query
 * parameter (naming every unknown one) and on a port list that does not match the host list.
 */
export function parsePostgresUrl(url: string, shown: string): ParsedPostgresUrl {
  const scheme = /^postgres(ql)?:\/\//i.exec(url)
  // a mistyped scheme (postgres:/, postgres//, none): where the password is cannot be told, so only the scheme is shown
  if (!scheme) throw configError('database.url', unrecognisedUrl(url), 'must start with postgres:// or postgresql://')
  if (hasAmbiguousCredentials(url))
    throw configError(
      'database.url',
      shown,
      'its password has an unencoded "/", "?" or "#" (or its database name an "@"): a URL parser would read part of it as the host, port or database; percent-encode them (%2F, %3F, %23, %40)',
    )
  let rest = url.slice(scheme[0].length)
  const hash = rest.indexOf('#')
  if (hash >= 0) rest = rest.slice(0, hash)
  const question = rest.indexOf('?')
  const query = question >= 0 ? rest.slice(question + 1) : ''
  if (question >= 0) rest = rest.slice(0, question)
  const slash = rest.indexOf('/')
  const authority = slash >= 0 ? rest.slice(0, slash) : rest
  const path = slash >= 0 ? rest.slice(slash + 1) : ''
  const at = authority.lastIndexOf('@')
  const userinfo = at >= 0 ? authority.slice(0, at) : undefined
  const hostspec = at >= 0 ? authority.slice(at + 1) : authority

  let user: string | undefined
  let password: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    user = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, shown, 'user name')
    if (colon >= 0) password = decode(userinfo.slice(colon + 1), shown, 'password')
  }
  const params = parseQuery(query, shown)
  // without user info, a "host" may be a user name and password whose "@host" is missing: never echoed
  const written = hostspec === '' ? [] : hostspec.split(',').map((spec) => parseHostPort(spec, shown, userinfo !== undefined))
  // libpq keeps two lists: the host names and the ports; host= replaces only the names, port= only the ports
  const names = params.host !== undefined ? params.host.split(',') : written.map((h) => h.host)
  const ports =
    params.port !== undefined
      ? params.port.split(',')
      : written.some((h) => h.port !== undefined && h.port !== '')
        ? written.map((h) => h.port ?? '')
        : undefined
  const hosts = matchPorts(names, ports, shown, {
    names: params.host !== undefined ? 'in host=' : 'before "/"',
    ports: params.port !== undefined ? 'in port=' : 'before "/"',
  })
  return {
    hosts,
    user: params.user ?? (user === '' ? undefined : user),
    password: params.password ?? password,
    database: params.dbname ?? (path === '' ? undefined : decode(path, shown, 'database name')),
    params,
  }
}

function parseQuery(query: string, shown: string): Record<string, string> {
  const params: Record<string, string> = {}
  const unknown: string[] = []
  for (const pair of query.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    if (eq < 0)
      throw configError(
        'database.url',
        shown,
        `query parameter ${/^[\w-]*$/.test(pair) && !isSecretName(pair) ? JSON.stringify(pair) : '(not shown)'} has no value (libpq: missing key/value separator "=")`,
      )
    const name = decode(pair.slice(0, eq), shown, 'query parameter name')
    const value = decode(pair.slice(eq + 1), shown, `query parameter ${name}`)
    const reason = UNSUPPORTED[name]
    if (reason !== undefined) throw configError(`database.url ${name}`, name === 'sslpassword' ? '[hidden]' : value, reason)
    if (!(URL_PARAMETERS as readonly string[]).includes(name)) unknown.push(name)
    else params[name] = value
  }
  if (unknown.length > 0) {
    throw configError(
      'database.url',
      shown,
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (libpq refuses them too: "invalid URI query parameter"); known parameters are ${URL_PARAMETERS.join(', ')}`,
    )
  }
  return params
}

/** `name`, `name:port`, `[v6]`, `[v6]:port`, `:port` (default host), `%2Fsocket%2Fdir:port`. */
function parseHostPort(spec: string, shown: string, echo: boolean): { host: string; port: string | undefined } {
  const q = (text: string): string => (echo ? JSON.stringify(text) : '(not shown: with no "user@", it may hold a password)')
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']')
    if (close < 0) throw configError('database.url', shown, `host ${q(spec)} has an unterminated IPv6 address (missing "]")`)
    const after = spec.slice(close + 1)
    if (after !== '' && !after.startsWith(':'))
      throw configError('database.url', shown, `unexpected ${q(after)} after the IPv6 address in ${q(spec)}`)
    return { host: decode(spec.slice(1, close), shown, 'host'), port: after === '' ? undefined : after.slice(1) }
  }
  const colon = spec.lastIndexOf(':')
  const host = decode(colon >= 0 ? spec.slice(0, colon) : spec, shown, 'host')
  if (host.includes(':')) throw configError('database.url', shown, `host ${q(host)}: write an IPv6 address in brackets ([::1]:5432)`)
  return { host, port: colon >= 0 ? spec.slice(colon + 1) : undefined }
}

/**
 * libpq's pairing of the host list with the port list (connectOptions2): no port list, every host its
 * default; one port, every host; else one port per host (an empty entry: that host's default), any
 * other count refused ("could not match 2 port numbers to 1 hosts").
 */
function matchPorts(
  names: readonly string[],
  ports: readonly string[] | undefined,
  shown: string,
  from: { readonly names: string; readonly ports: string },
): { host: string; port: string | undefined }[] {
  if (ports === undefined) return names.map((host) => ({ host, port: undefined }))
  const list = names.length > 0 ? names : ['']
  if (ports.length === 1) return list.map((host) => ({ host, port: ports[0] }))
  if (ports.length !== list.length)
    throw configError(
      'database.url',
      shown,
      `${ports.length} ports (${from.ports}) for ${list.length} host${list.length > 1 ? 's' : ''} (${from.names}); libpq: "could not match ${ports.length} port numbers to ${list.length} hosts" (one port for all, or one per host)`,
    )
  return list.map((host, i) => ({ host, port: ports[i] === '' ? undefined : ports[i] }))
}

function decode(text: string, shown: string, what: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw configError('database.url', shown, `the ${what} has an invalid percent-escape`)
  }
}

/**
 * A text that is not a `postgres://` URL as an error shows it (as `PoolFactory.create` does): the
 * text before its first `:` and `...` (`postgres:...`, `postgres//app:...`), or `[unrecognised]` when
 * that part holds an `@` or there is no `:`: never the rest, which may hold the password of a URL
 * whose scheme was mistyped.
 */
export function unrecognisedUrl(url: string): string {
  const colon = url.indexOf(':')
  if (colon < 0) return url.includes('@') ? '[unrecognised]' : url
  const head = url.slice(0, colon)
  return head.includes('@') ? '[unrecognised]' : `${head}:...`
}
