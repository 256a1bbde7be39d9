import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHealthHandler, createMetricsRegistry } from '@dbpool/core'
import { EXIT_CODES } from '../output'
import { openPools } from '../pools'
import { selectPools } from '../resolve-config'
import type { CommandContext } from './context'

/** Options of `dbpool serve`. */
export interface ServeCommandOptions {
  /** Default is `9464` (the Prometheus exporter port); `0` picks a free one. */
  readonly port?: number
  /** Default is `'0.0.0.0'` (reachable by probes in a container). */
  readonly host?: string
  /** Deadline of a readiness check in ms. Default is `2000`. */
  readonly timeoutMs?: number
  /** Stops the server (tests); otherwise SIGINT or SIGTERM does. */
  readonly signal?: AbortSignal
}

/**
 * Serves `/health`, `/ready` and `/metrics` for the configured pools until SIGINT / SIGTERM, then
 * closes the server and the pools. The pools record their OpenTelemetry metrics on the registry
 * served at `/metrics` (it is registered as the global meter provider before they are created).
 */
export async function serveCommand(ctx: CommandContext, options: ServeCommandOptions): Promise<number> {
  const config = await ctx.config()
  const registry = createMetricsRegistry()
  registry.registerGlobal()
  const manager = await openPools(selectPools(config, ctx.poolName), { oneShot: false })
  const server = createServer(createHealthHandler(manager, { metrics: registry, timeoutMs: options.timeoutMs ?? 2_000 }))
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 9464, options.host ?? '0.0.0.0', () => resolve())
    })
    const { address, port } = server.address() as AddressInfo
    ctx.out.line(
      `dbpool serve: listening on http://${address.includes(':') ? `[${address}]` : address}:${port} (/health, /ready, /metrics) for ${manager.names.join(', ')}`,
    )
    await stopped(options.signal)
    ctx.out.line('dbpool serve: stopping')
    return EXIT_CODES.ok
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
    await manager.closeAll({ timeoutMs: 5_000 })
    await registry.shutdown()
  }
}

function stopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      resolve()
    }
    if (signal) {
      if (signal.aborted) return done()
      signal.addEventListener('abort', done, { once: true })
    }
    process.once('SIGINT', done)
    process.once('SIGTERM', done)
  })
}
