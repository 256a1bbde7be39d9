import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { configError } from '@dbpool/core'
import { TOKEN_RULE, createHealthHandler, isValidToken, createMetricsRegistry, type HealthRequestListener } from '@dbpool/http'
import { EXIT_CODES } from '../output'
import { openPools } from '../pools'
import { selectPools, type ResolvedConfig } from '../resolve-config'
import type { CommandContext } from './context'

/** The environment variable `dbpool serve` reads its bearer token from when `--token` is not given. */
export const SERVE_TOKEN_ENV = 'DBPOOL_SERVE_TOKEN'

/** Options of `dbpool serve`. */
export interface ServeCommandOptions {
  /** Default is `9464` (the Prometheus exporter port); `0` picks a free one. */
  readonly port?: number
  /** Default is `'0.0.0.0'` (reachable by probes in a container). */
  readonly host?: string
  /** Deadline of a readiness check in ms. Default is `2000`. */
  readonly timeoutMs?: number
  /**
   * `--details`: every caller of `/ready` sees each pool's target, server version, stats and check
   * messages. Default is `false`: statuses only (the server listens on all interfaces).
   */
  readonly details?: boolean
  /**
   * `--token`: callers with `Authorization: Bearer <token>` see the detail; default is the
   * {@link SERVE_TOKEN_ENV} environment variable (preferred: a flag shows in the process list).
   */
  readonly token?: string
  /** Stops the server (tests); otherwise SIGINT or SIGTERM does. */
  readonly signal?: AbortSignal
}

/**
 * Serves `/health`, `/ready` and `/metrics` for the configured pools until SIGINT / SIGTERM, then
 * closes the server and the pools (within 5 s). The signal handlers are in place before the pools
 * open, so a signal sent during startup or right after the `listening` line stops the server
 * cleanly. The pools record their OpenTelemetry metrics on the registry served at `/metrics` (it is
 * registered as the global meter provider before they are created).
 */
export async function serveCommand(ctx: CommandContext, options: ServeCommandOptions): Promise<number> {
  const config = await ctx.config()
  // --details shows everyone the detail: a token from the environment has nothing left to guard then
  const token = options.token ?? (options.details ? undefined : ctx.io.env[SERVE_TOKEN_ENV] || undefined)
  // checked before it is added to the scrubbed secrets (a 1-character "token" would scrub every such letter)
  if (token !== undefined && !isValidToken(token)) throw configError(`--token / ${SERVE_TOKEN_ENV}`, '[set]', TOKEN_RULE)
  // the token never reaches the output, whatever prints it (an error naming it included)
  if (token !== undefined) ctx.out.addSecrets([token])
  // set but empty usually means a secret that failed to load: still statuses only, but said
  else if (!options.details && ctx.io.env[SERVE_TOKEN_ENV] === '')
    ctx.out.note(`dbpool serve: ${SERVE_TOKEN_ENV} is set but empty, so no caller can see the detail (statuses only)`)
  // listening for SIGINT / SIGTERM before anything is opened: a signal sent as soon as the
  // "listening" line appears (or during startup) stops the server cleanly instead of killing it
  const stop = stopRequest(options.signal)
  try {
    return await serve(ctx, config, { ...options, token }, stop.requested)
  } finally {
    stop.dispose()
  }
}

async function serve(
  ctx: CommandContext,
  config: ResolvedConfig,
  options: ServeCommandOptions,
  stopRequested: Promise<void>,
): Promise<number> {
  const registry = createMetricsRegistry()
  registry.registerGlobal()
  const manager = await openPools(selectPools(config, ctx.poolName), { oneShot: false })
  let handler: HealthRequestListener
  try {
    handler = createHealthHandler(manager, {
      metrics: registry,
      timeoutMs: options.timeoutMs ?? 2_000,
      ...(options.details ? { details: true } : {}),
      ...(options.token !== undefined ? { token: options.token } : {}),
    })
  } catch (err) {
    await manager.closeAll({ timeoutMs: 5_000 })
    await registry.shutdown()
    throw err
  }
  const server = createServer(handler)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 9464, options.host ?? '0.0.0.0', () => resolve())
    })
    const { address, port } = server.address() as AddressInfo
    const detail = options.details
      ? 'details for everyone'
      : options.token !== undefined
        ? 'details with the bearer token'
        : 'statuses only'
    ctx.out.line(
      `dbpool serve: listening on http://${address.includes(':') ? `[${address}]` : address}:${port} (/health, /ready, /metrics; ${detail}) for ${manager.names.join(', ')}`,
    )
    await stopRequested
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

/** Resolves `requested` on SIGINT, SIGTERM or `signal`; `dispose` removes the signal listeners. */
function stopRequest(signal: AbortSignal | undefined): { readonly requested: Promise<void>; dispose(): void } {
  let done = (): void => undefined
  const requested = new Promise<void>((resolve) => {
    done = resolve
  })
  const dispose = (): void => {
    process.off('SIGINT', done)
    process.off('SIGTERM', done)
    signal?.removeEventListener('abort', done)
  }
  process.once('SIGINT', done)
  process.once('SIGTERM', done)
  if (signal?.aborted) done()
  else signal?.addEventListener('abort', done, { once: true })
  return { requested, dispose }
}
