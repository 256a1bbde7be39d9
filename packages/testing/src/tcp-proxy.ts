import { rewritePostgresUrl } from './url'
import { createServer, connect, type Server, type Socket } from 'node:net'

/** An in-process TCP proxy for fault injection between a pool and its server. */
export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number
  /** Live client connections. */
  readonly connections: number
  /**
   * `url` (a `postgres://` URL) with its host list, and any `host=` / `port=` in the query, replaced by
   * the proxy's 127.0.0.1:port; CONFIGURATION (URL redacted) for a URL dbpool refuses.
   */
  urlFor(url: string): string
  /** Stops forwarding bytes in both directions without closing anything (a network partition). New connections are accepted and hang. */
  blackhole(): void
  /** Forwards again; bytes held back during the blackhole are dropped, as a partition would. */
  resume(): void
  /** Resets every open connection (RST). */
  resetAll(): void
  /** Closes the proxy and every connection. */
  close(): Promise<void>
}

/**
 * Starts a TCP proxy to `target` on a free port of 127.0.0.1.
 *
 * ```ts
 * const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 })
 * const pool = await PoolFactory.create(proxy.urlFor(db.url))
 * proxy.blackhole() // queries now hang until their deadline
 * ```
 */
export async function startTcpProxy(target: { readonly host: string; readonly port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>()
  let holes = false
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    const pair = { client, upstream }
    pairs.add(pair)
    const forward = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!holes && !to.destroyed) to.write(chunk)
      })
    }
    forward(client, upstream)
    forward(upstream, client)
    const close = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  server.unref()
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    port,
    get connections() {
      return pairs.size
    },
    urlFor(url: string): string {
      return rewritePostgresUrl(url, { host: `127.0.0.1:${port}` }, 'urlFor')
    },
    blackhole() {
      holes = true
    },
    resume() {
      holes = false
    },
    resetAll() {
      for (const { client, upstream } of pairs) {
        // libuv cannot reset a socket whose write side is shutting down (the peer's FIN ended it):
        // Node then reports EINVAL and never closes the handle, which keeps the process alive.
        if (client.writableEnded || client.destroyed) client.destroy()
        else client.resetAndDestroy()
        upstream.destroy()
      }
      pairs.clear()
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      pairs.clear()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
