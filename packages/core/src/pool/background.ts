import { AsyncResource } from 'node:async_hooks'
import { context, ROOT_CONTEXT } from '@opentelemetry/api'

/**
 * The async context of no caller, captured when `@dbpool/core` is first loaded (an application that
 * imports it at the top of a module loads it at startup, outside every request): no
 * AsyncLocalStorage store of a request is in it.
 */
const BACKGROUND = new AsyncResource('dbpool.background')

function inRootSpanContext<T>(work: () => T): T {
  return context.with(ROOT_CONTEXT, work)
}

/**
 * @internal Runs `work` in no caller's async context: outside the AsyncLocalStorage stores of
 * whoever triggered it (those of {@link BACKGROUND}) and under OpenTelemetry's `ROOT_CONTEXT` (no
 * active span). For the pool's own long-lived work: its maintenance timers, the connects that open
 * its connections (a socket's later events, a loss, run in the context it was opened in) and the
 * Postgres LISTEN connection. Without it, a pool made lazily inside a request, or a connection
 * opened for one caller, ran every later event in that request's context (review r13 item D4):
 * another tenant's store, spans joining a long-ended trace. A caller's own callbacks never run in it
 * (they keep their caller's context, see `LanePool`).
 */
export function inBackground<T>(work: () => T): T {
  return BACKGROUND.runInAsyncScope(inRootSpanContext, undefined, work) as T
}
