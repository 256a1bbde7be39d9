import * as dns from 'node:dns'
import { isIP } from 'node:net'

/**
 * The network addresses a host of the config stands for, in the order the resolver gives them, as
 * libpq tries them ("if a host name translates to more than one network address, each of them is
 * tried", with `target_session_attrs` checked per address): an IP literal or a socket directory as
 * is; a name through `dns.lookup` (the system resolver, as libpq's getaddrinfo: /etc/hosts, then
 * DNS), every address once. When the lookup fails or finds nothing: the name itself, so the connect
 * attempt reports the resolver's error (ENOTFOUND) as a single-address host does. One lookup per
 * host per walk (a connect on a multi-host or `target_session_attrs` target), made when the walk
 * reaches that host (a later host's slow resolver never delays the first), never per statement.
 */
export async function addressesOf(host: string): Promise<readonly string[]> {
  if (host.startsWith('/') || isIP(host) !== 0) return [host]
  try {
    // dns.lookup read at call time: a test (or an application) may replace it, as Node's net does
    const found = await new Promise<readonly dns.LookupAddress[]>((resolve, reject) =>
      dns.lookup(host, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
    )
    const unique = [...new Set(found.map((entry) => entry.address))]
    return unique.length > 0 ? unique : [host]
  } catch {
    return [host]
  }
}
