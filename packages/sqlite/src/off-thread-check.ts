import type { Worker } from 'node:worker_threads'

/**
 * @internal One `PRAGMA integrity_check` running in a worker thread. SQLite cannot interrupt it from
 * another thread through better-sqlite3 (no `sqlite3_interrupt`, no progress handler), and
 * `worker.terminate()` only takes effect once the native scan returns: a check past its caller's
 * deadline goes on to the end, reading the whole file. So checks are shared instead of repeated:
 * at most one runs per key (a database file and pragma) at a time.
 */
export interface CheckFlight<T> {
  /** Settles with the worker's answer (rejects when the worker failed or exited without one). */
  readonly done: Promise<T>
  /** When it started (`performance.now()`). */
  readonly startedAt: number
  /** The worker; unref'd once no caller waits for it, so it never keeps the process alive alone. */
  readonly worker: Worker
  /** Callers still waiting for `done` within their deadline. */
  waiting: number
}

/** A finished check nobody was waiting for any more: the next caller of its key is answered from it. */
interface Unclaimed<T> {
  readonly outcome: { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown }
  readonly startedAt: number
  readonly finishedAt: number
}

/** @internal What {@link joinCheck} resolves with. */
export type JoinedCheck<T> =
  | { readonly kind: 'answered'; readonly value: T; readonly joined: boolean; readonly ageMs?: number }
  | { readonly kind: 'running'; readonly runningMs: number; readonly joined: boolean }

/** How long a finished check that nobody waited for may answer the next caller, in ms. */
export const UNCLAIMED_ANSWER_TTL_MS = 60_000

const flights = new Map<string, CheckFlight<unknown>>()
const unclaimed = new Map<string, Unclaimed<unknown>>()

/** @internal How many checks run now (tests). */
export function runningChecks(): number {
  return flights.size
}

/**
 * @internal Waits up to `timeoutMs` for the check of `key`: joins the one running, else answers from
 * a finished one nobody collected (when `reuseFinished`, within {@link UNCLAIMED_ANSWER_TTL_MS}),
 * else starts one with `start` (undefined: none could be started, resolves undefined). Past the
 * deadline it resolves `running`: the check goes on and a later call joins it or collects its answer.
 * Rejects with what the worker failed with.
 */
export async function joinCheck<T>(
  key: string,
  timeoutMs: number,
  start: () => { readonly worker: Worker; readonly done: Promise<T> } | undefined,
  reuseFinished: boolean,
): Promise<JoinedCheck<T> | undefined> {
  const now = performance.now()
  const left = unclaimed.get(key) as Unclaimed<T> | undefined
  if (left !== undefined) {
    unclaimed.delete(key)
    if (reuseFinished && now - left.finishedAt <= UNCLAIMED_ANSWER_TTL_MS) {
      if (!left.outcome.ok) throw left.outcome.error
      return { kind: 'answered', value: left.outcome.value, joined: true, ageMs: Math.round(now - left.finishedAt) }
    }
  }
  let flight = flights.get(key) as CheckFlight<T> | undefined
  const joined = flight !== undefined
  if (flight === undefined) {
    const started = start()
    if (started === undefined) return undefined
    const created: CheckFlight<T> = { done: started.done, startedAt: now, worker: started.worker, waiting: 0 }
    flight = created
    flights.set(key, created as CheckFlight<unknown>)
    const finish = (outcome: Unclaimed<T>['outcome']): void => {
      flights.delete(key)
      // nobody waits any more: keep the answer for the next caller instead of scanning again
      if (created.waiting === 0) unclaimed.set(key, { outcome, startedAt: created.startedAt, finishedAt: performance.now() })
    }
    started.done.then(
      (value) => finish({ ok: true, value }),
      (error: unknown) => finish({ ok: false, error }),
    )
  }
  const running = flight
  running.waiting++
  running.worker.ref()
  let timer: NodeJS.Timeout | undefined
  try {
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), Math.max(1, Math.ceil(timeoutMs)))
    })
    const outcome = await Promise.race([running.done, deadline])
    if (outcome === 'deadline') return { kind: 'running', runningMs: Math.round(performance.now() - running.startedAt), joined }
    return { kind: 'answered', value: outcome, joined }
  } finally {
    clearTimeout(timer)
    running.waiting--
    // the scan cannot be stopped: it finishes in the background without holding the process open
    if (running.waiting === 0) running.worker.unref()
  }
}
