import { createHistogram } from 'node:perf_hooks'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { formatMs, formatNumber } from '../format'
import { EXIT_CODES } from '../output'
import { withPools } from '../pools'
import { selectPool } from '../resolve-config'
import type { CommandContext } from './context'
import { isErrorLike } from '@dbpool/core/internal'

/** Options of `dbpool bench`. */
export interface BenchCommandOptions {
  /** How long callers keep issuing statements, in seconds. Default is `5`. */
  readonly seconds?: number
  /** Callers issuing statements at once, each waiting for its previous one. Default is `16`. */
  readonly concurrency?: number
  /** The statement to run (repeatedly: keep it read-only). Default is `select 1`. */
  readonly query?: string
  /** Deadline of one statement in ms (Postgres cancels it on the server). Default is `5000`. */
  readonly statementTimeoutMs?: number
  readonly json?: boolean
}

/** What `dbpool bench` measured on one pool; times and rates unrounded (human output rounds them to 2 decimals). */
export interface BenchReport {
  readonly pool: string
  readonly backend: string
  readonly target: string
  readonly query: string
  readonly concurrency: number
  /** From the first statement to the last one settling. */
  readonly durationMs: number
  /** Statements that succeeded. */
  readonly operations: number
  readonly opsPerSec: number
  /**
   * Latency of successful statements, in ms, as the caller sees it (waiting for a connection
   * included); recorded in whole microseconds, so at most 3 decimals.
   */
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number }
  /** Failed statements by DatabaseError code. */
  readonly errors: Readonly<Record<string, number>>
  /** The first failure's message, when any failed. */
  readonly firstError?: string
  /** Pool counters at the end of the run, and the acquire timeouts during it. */
  readonly poolStats: ReturnType<DatabasePool<unknown>['stats']> & { readonly acquireTimeouts: number }
}

/**
 * Runs one statement through `pool.query` from `concurrency` callers for `seconds` on one pool
 * (`--pool`, or the primary) and reports throughput, latency percentiles and errors. Exit 0 when
 * every statement succeeded, 1 otherwise. The run ends within `seconds` plus one statement deadline once
 * its connections are open (opening them is bounded by the connect timeout, not the statement deadline).
 * `concurrency` is at most the pool's `maxWaitingClients`: on a cold pool every caller waits.
 */
export async function benchCommand(ctx: CommandContext, options: BenchCommandOptions): Promise<number> {
  const config = await ctx.config()
  const def = selectPool(config, ctx.poolName)
  const seconds = options.seconds ?? 5
  const concurrency = options.concurrency ?? 16
  const query = options.query ?? 'select 1'
  const timeoutMs = options.statementTimeoutMs ?? 5_000
  const report = await withPools([def], async (manager) => {
    const pool = manager.get(def.name)
    const { maxWaitingClients } = pool.config
    if (concurrency > maxWaitingClients) {
      // the warm-up starts every caller at once on a cold pool, when none holds a connection yet: all
      // of them wait, and the callers beyond maxWaitingClients would only fail POOL_EXHAUSTED (after
      // the others had been built: a million callers took 1.7 GB before failing)
      ctx.out.error(
        new DatabaseError(
          'CONFIGURATION',
          `--concurrency ${concurrency} is more callers than pool "${def.name}" lets wait for a connection (maxWaitingClients ${maxWaitingClients}): the rest would fail POOL_EXHAUSTED`,
        ),
        false,
      )
      return undefined
    }
    // warm-up: open the connections (each caller holds one for a tick, so up to `max` open), without the
    // statement's deadline, which would bound the wait for a connection too (bounded by the connect
    // timeout instead); then run the statement once per caller to prepare it (its first error fails
    // fast, before the clock)
    await Promise.all(
      Array.from({ length: concurrency }, () => pool.withConnection(() => new Promise<void>((resolve) => setImmediate(resolve)))),
    )
    await Promise.all(Array.from({ length: concurrency }, () => pool.query(query, [], { timeoutMs })))
    return measure(def.name, pool, { seconds, concurrency, query, timeoutMs })
  })
  if (report === undefined) return EXIT_CODES.usage
  if (options.json) ctx.out.json(report)
  else printReport(ctx, report)
  return Object.keys(report.errors).length === 0 ? EXIT_CODES.ok : EXIT_CODES.error
}

async function measure(
  name: string,
  pool: DatabasePool<unknown>,
  run: { seconds: number; concurrency: number; query: string; timeoutMs: number },
): Promise<BenchReport> {
  const histogram = createHistogram()
  const errors: Record<string, number> = {}
  let firstError: string | undefined
  let operations = 0
  const started = performance.now()
  const stopAt = started + run.seconds * 1000
  const before = pool.metrics.snapshot()
  await Promise.all(
    Array.from({ length: run.concurrency }, async () => {
      while (performance.now() < stopAt) {
        const t0 = performance.now()
        try {
          await pool.query(run.query, [], { timeoutMs: run.timeoutMs })
          histogram.record(Math.max(1, Math.round((performance.now() - t0) * 1e3))) // µs
          operations++
        } catch (err) {
          const code = DatabaseError.is(err) ? err.code : 'UNKNOWN'
          errors[code] = (errors[code] ?? 0) + 1
          firstError ??= isErrorLike(err) ? err.message : String(err)
          // a failing statement fails fast: do not spin on it
          if (code !== 'ACQUIRE_TIMEOUT') await new Promise((resolve) => setTimeout(resolve, 10))
        }
      }
    }),
  )
  const durationMs = performance.now() - started
  const after = pool.metrics.snapshot()
  const ms = (micros: number): number => micros / 1e3
  return {
    pool: name,
    backend: pool.backend,
    target: pool.target,
    query: run.query,
    concurrency: run.concurrency,
    durationMs,
    operations,
    opsPerSec: operations / (durationMs / 1000),
    latencyMs:
      operations === 0
        ? { p50: 0, p95: 0, p99: 0, max: 0 }
        : {
            p50: ms(histogram.percentile(50)),
            p95: ms(histogram.percentile(95)),
            p99: ms(histogram.percentile(99)),
            max: ms(histogram.max),
          },
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    poolStats: { ...pool.stats(), acquireTimeouts: after.timeouts - before.timeouts },
  }
}

function printReport(ctx: CommandContext, r: BenchReport): void {
  ctx.out.line(`${r.pool}: ${r.target} (${r.backend})`)
  ctx.out.line(
    `  ${JSON.stringify(r.query)} from ${r.concurrency} callers for ${formatNumber(r.durationMs / 1000)} s: ${r.operations} statements, ${formatNumber(r.opsPerSec)}/s`,
  )
  const l = r.latencyMs
  ctx.out.line(`  latency   p50 ${formatMs(l.p50)}, p95 ${formatMs(l.p95)}, p99 ${formatMs(l.p99)}, max ${formatMs(l.max)}`)
  const failed = Object.entries(r.errors)
  ctx.out.line(
    `  errors    ${failed.length === 0 ? 'none' : `${failed.map(([code, n]) => `${code} ${n}`).join(', ')} (first: ${r.firstError ?? ''})`}`,
  )
  const s = r.poolStats
  ctx.out.line(`  pool      max ${s.max}, size ${s.size}, acquire timeouts ${s.acquireTimeouts}`)
}
