import * as dns from 'node:dns'
import { isIP, Socket } from 'node:net'
import { isErrorLike } from '@dbpool/core/internal'

/**
 * What a name lookup gave: the addresses (each once, in the resolver's order; `entries` with their
 * families), or the resolver's error (`getaddrinfo ENOTFOUND db`).
 */
export type Lookup = { readonly addresses: readonly string[]; readonly entries?: readonly dns.LookupAddress[] } | { readonly error: Error }

/**
 * The lookups in flight, by name: every walk of the process (every pool, every connect) waiting on
 * one name shares one `dns.lookup`. Node runs each `dns.lookup` (getaddrinfo) on a thread of libuv's
 * pool (4 threads by default, shared with every file read and crypto call); with a resolver that
 * does not answer (10-30 s for a dead nameserver) a lookup per connect attempt, abandoned at the
 * attempt's deadline, would fill them all. An entry is removed when its lookup ends, so the next
 * walk asks the resolver again (nothing is cached past that: the resolver's own cache and TTLs apply).
 */
const inFlight = new Map<string, Promise<Lookup>>()

/** The number of names being looked up now (for tests). @internal */
export function lookupsInFlight(): number {
  return inFlight.size
}

/**
 * The network addresses a host of the config stands for, in the order the resolver gives them, as
 * libpq tries them ("if a host name translates to more than one network address, each of them is
 * tried", with `target_session_attrs` checked per address): an IP literal or a socket directory as
 * is; a name through `dns.lookup` (the system resolver, as libpq's getaddrinfo: /etc/hosts, then
 * DNS), every address once. One lookup per host per walk (a connect on a multi-host or
 * `target_session_attrs` target), made when the walk reaches that host (a later host's slow
 * resolver never delays the first), never per statement; walks looking up the same name at the same
 * time share one lookup (see {@link inFlight}).
 *
 * Resolves with the resolver's error when the lookup fails or finds nothing (the walk reports it for
 * that host; the name is not handed to `net.connect`, which would look it up once more), with
 * `'timed-out'` when it has not answered within `timeoutMs`, and with `'aborted'` once `signal`
 * aborts (the pool closing). The lookup itself cannot be stopped: it goes on (one per name) and
 * serves the walks still waiting on it. Never rejects.
 */
export async function addressesOf(host: string, timeoutMs: number, signal?: AbortSignal): Promise<Lookup | 'timed-out' | 'aborted'> {
  if (host.startsWith('/') || isIP(host) !== 0) return { addresses: [host] }
  if (signal?.aborted === true) return 'aborted'
  const lookup = sharedLookup(host)
  return new Promise((resolve) => {
    const done = (outcome: Lookup | 'timed-out' | 'aborted'): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      resolve(outcome)
    }
    const onAbort = (): void => done('aborted')
    const timer = setTimeout(() => done('timed-out'), Math.max(1, timeoutMs))
    signal?.addEventListener('abort', onAbort, { once: true })
    void lookup.then(done)
  })
}

/** The lookup of `host` in flight, or a new one. Never rejects. */
function sharedLookup(host: string): Promise<Lookup> {
  const running = inFlight.get(host)
  if (running !== undefined) return running
  let resolve!: (outcome: Lookup) => void
  const lookup = new Promise<Lookup>((settled) => (resolve = settled))
  inFlight.set(host, lookup)
  const settle = (outcome: Lookup): void => {
    if (inFlight.get(host) === lookup) inFlight.delete(host)
    resolve(outcome)
  }
  try {
    // dns.lookup read at call time: a test (or an application) may replace it, as Node's net does
    dns.lookup(host, { all: true }, (err, found) => {
      const entries = err ? [] : found.filter((entry, i) => found.findIndex((e) => e.address === entry.address) === i)
      settle(entries.length > 0 ? { addresses: entries.map((e) => e.address), entries } : { error: err ?? notFound(host) })
    })
  } catch (err) {
    // thrown at once (a name Node refuses): as the resolver's error
    settle({ error: isErrorLike(err) ? err : new Error(String(err)) })
  }
  return lookup
}

/** Node's error for a name without addresses (as `net.connect` reports it). */
function notFound(host: string): Error {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: host })
}

/**
 * A `lookup` for `net.connect` (the signature of `dns.lookup`) that shares the lookup in flight of the
 * name (see {@link inFlight}): `{ all: true }` gets every address, otherwise the first of the wanted
 * `family` (4, 6, or any). Used by {@link connectingSocket}.
 */
export function sharedDnsLookup(
  hostname: string,
  options: dns.LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void,
): void {
  void sharedLookup(hostname).then((found) => {
    if ('error' in found) return callback(found.error as NodeJS.ErrnoException, options.all === true ? [] : '')
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family
    const entries = (found.entries ?? []).filter((e) => !family || e.family === family)
    if (options.all === true) return callback(null, entries)
    const first = entries[0]
    if (first === undefined) return callback(notFound(hostname), '')
    callback(null, first.address, first.family)
  })
}

/**
 * The socket pg connects with (its `stream` option), for a connect that hands Node a host name (a
 * single-host target: the walk hands it addresses): `connect(port, name)` resolves the name through
 * {@link sharedDnsLookup}, so connects racing on a dead resolver share one getaddrinfo instead of
 * leaving one per attempt running on libuv's threadpool after pg's `connectionTimeoutMillis` destroyed
 * the socket. Node's own handling of the addresses (`autoSelectFamily`) is unchanged; an address or
 * a Unix socket path connects as before.
 */
export function connectingSocket(): Socket {
  const socket = new Socket()
  const connect = socket.connect.bind(socket) as (...args: unknown[]) => Socket
  ;(socket as unknown as { connect: (...args: unknown[]) => Socket }).connect = (...args: unknown[]): Socket => {
    const [port, host] = args
    if (typeof port === 'number' && typeof host === 'string' && !host.startsWith('/') && isIP(host) === 0)
      return connect({ port, host, lookup: sharedDnsLookup })
    return connect(...args)
  }
  return socket
}
