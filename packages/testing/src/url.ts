import { redactUrl } from '@dbpool/core'
import { parsePostgresUrl } from '@dbpool/core/internal'

/**
 * @internal `url` (a `postgres://` URL as dbpool reads it: host lists, IPv6, socket directories) with
 * another database and/or another single host, rewritten as text, so everything else stays as written.
 * WHATWG `new URL()` cannot parse a host list (`h1:p1,h2:p2`), and its TypeError carries the whole URL
 * (`input`, password included) into `util.inspect`. A URL core refuses is a CONFIGURATION
 * `DatabaseError` showing it redacted (`what` names the caller).
 */
export function rewritePostgresUrl(url: string, change: { readonly database?: string; readonly host?: string }, what: string): string {
  if (typeof url !== 'string') throw new TypeError(`${what}: the URL must be a string`)
  try {
    parsePostgresUrl(url, redactUrl(url))
  } catch (err) {
    ;(err as Error).message = `${what}: ${(err as Error).message}`
    throw err
  }
  const scheme = (/^postgres(?:ql)?:\/\//i.exec(url) as RegExpExecArray)[0]
  let rest = url.slice(scheme.length)
  const hashAt = rest.indexOf('#')
  const hash = hashAt >= 0 ? rest.slice(hashAt) : ''
  if (hashAt >= 0) rest = rest.slice(0, hashAt)
  const questionAt = rest.indexOf('?')
  let pairs = questionAt >= 0 ? rest.slice(questionAt + 1).split('&') : []
  if (questionAt >= 0) rest = rest.slice(0, questionAt)
  const slash = rest.indexOf('/')
  const authority = slash >= 0 ? rest.slice(0, slash) : rest
  let path = slash >= 0 ? rest.slice(slash) : ''
  const at = authority.lastIndexOf('@')
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : ''
  let hosts = at >= 0 ? authority.slice(at + 1) : authority
  const nameOf = (pair: string): string => decodeURIComponent(pair.slice(0, Math.max(pair.indexOf('='), 0)))
  if (change.host !== undefined) {
    hosts = change.host
    // host= and port= in the query would replace the new host: they go with the old ones
    pairs = pairs.filter((pair) => nameOf(pair) !== 'host' && nameOf(pair) !== 'port')
  }
  if (change.database !== undefined) {
    const database = encodeURIComponent(change.database)
    path = `/${database}`
    // dbname= in the query wins over the path (libpq): it names the new database too
    pairs = pairs.map((pair) => (nameOf(pair) === 'dbname' ? `dbname=${database}` : pair))
  }
  pairs = pairs.filter((pair) => pair !== '')
  const query = pairs.length > 0 ? `?${pairs.join('&')}` : ''
  return `${scheme}${userinfo}${hosts}${path}${query}${hash}`
}
