import { checkInteger, configError, requireObject } from './validate'

/**
 * A Postgres target's hosts as libpq keeps them: two lists, the host names and the ports, each
 * replaced on its own (a URL's `host=` replaces the names and keeps the ports written before `/`;
 * `port=` replaces the ports). `undefined`: not given at this layer (the layer below stays). A port
 * entry `undefined` is that host's default (5432).
 */
export interface TargetHosts {
  readonly names: readonly string[] | undefined
  readonly ports: readonly (number | undefined)[] | undefined
}

/**
 * The lists `options` give (`host`, `port`, `hosts`; an `undefined` value is not given): `hosts`
 * gives the names and, when any entry names a port, the ports (an entry naming none takes `port`);
 * `host` gives one name; `port` alone, one port for every host. `host` with `hosts` is CONFIGURATION,
 * as the constructor refuses it.
 */
export function targetHostsOf(options: { readonly host?: unknown; readonly port?: unknown; readonly hosts?: unknown }): TargetHosts {
  const port = options.port === undefined ? undefined : checkInteger('database.port', options.port, 1, 65_535)
  if (options.hosts !== undefined && options.host !== undefined)
    throw configError('database.host', options.host, 'give host or hosts, not both')
  if (options.hosts !== undefined) {
    if (!Array.isArray(options.hosts) || options.hosts.length === 0)
      throw configError('database.hosts', options.hosts, 'must be a non-empty array of { host, port }')
    const entries = options.hosts.map((entry: unknown, i) => requireObject(`database.hosts[${i}]`, entry))
    const names = entries.map((entry) => entry.host as string)
    const own = entries.map((entry) => entry.port as number | undefined)
    if (own.some((p) => p !== undefined)) return { names, ports: own.map((p) => p ?? port) }
    return { names, ports: port === undefined ? undefined : [port] }
  }
  return { names: options.host === undefined ? undefined : [options.host as string], ports: port === undefined ? undefined : [port] }
}

/** `change` over `base`: each list `change` gives replaces the one of `base`, the other stays. */
export function overlayHosts(base: TargetHosts, change: TargetHosts): TargetHosts {
  return { names: change.names ?? base.names, ports: change.ports ?? base.ports }
}

/**
 * The host options of a target (`{ host, port }` or `{ hosts }`; `{}` when nothing is given) with
 * libpq's pairing (connectOptions2): no port list, every host its default; one port, every host; one
 * per host, in order; any other count is CONFIGURATION naming `option` ("could not match 2 port
 * numbers to 1 hosts" in libpq): a host list that kept the ports of another list would pair hosts
 * with ports nobody chose.
 */
export function hostOptionsOf(target: TargetHosts, option: string): Record<string, unknown> {
  const { names, ports } = target
  if (names === undefined) return ports === undefined ? {} : ports.length === 1 ? { port: ports[0] } : unmatched(target, option)
  if (ports !== undefined && ports.length !== 1 && ports.length !== names.length) unmatched(target, option)
  const portOf = (i: number): number | undefined => (ports === undefined ? undefined : ports.length === 1 ? ports[0] : ports[i])
  if (names.length === 1) return { host: names[0], ...(portOf(0) === undefined ? {} : { port: portOf(0) }) }
  return { hosts: names.map((host, i) => ({ host, ...(portOf(i) === undefined ? {} : { port: portOf(i) }) })) }
}

/** The lists of resolved hosts: one port when they all share it (so a new host list keeps it). */
export function resolvedHostsOf(hosts: readonly { readonly host: string; readonly port: number }[]): TargetHosts {
  const ports = hosts.map((h) => h.port)
  return { names: hosts.map((h) => h.host), ports: ports.every((p) => p === ports[0]) ? [ports[0]] : ports }
}

function unmatched(target: TargetHosts, option: string): never {
  const count = target.names?.length ?? 1
  throw configError(
    option,
    target.names === undefined ? 'localhost' : target.names.length === 1 ? target.names[0] : target.names,
    `${count} host${count > 1 ? 's' : ''} for the ${target.ports!.length} ports ${target.ports!.map((p) => p ?? 'default').join(',')} it would keep: libpq pairs one port with every host, or one per host ("could not match ${target.ports!.length} port numbers to ${count} hosts"); give the ports too (port, or each host's)`,
  )
}
