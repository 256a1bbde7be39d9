import type { ConnectedServer } from '../driver/connection-manager'

/** Which server a statement's result or error came from, held beside it (the caller's object is not touched). */
const servers = new WeakMap<object, ConnectedServer>()

/**
 * @internal Records the server a statement's result or error (an object) came from, so the
 * statement's span and operation metric name that server (see `ConnectionManager.serverOf`).
 */
export function noteServer(outcome: unknown, server: ConnectedServer): void {
  if (typeof outcome === 'object' && outcome !== null) servers.set(outcome, server)
}

/** @internal The server {@link noteServer} recorded for `outcome`, if any. */
export function notedServer(outcome: unknown): ConnectedServer | undefined {
  return typeof outcome === 'object' && outcome !== null ? servers.get(outcome) : undefined
}
