import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'

/**
 * A check run on a worker thread: the source of a plain JavaScript function `(Database, input) => value`
 * that gets better-sqlite3's `Database` class and the `input` given to {@link startSqliteWorker}, and
 * returns (or throws) synchronously. It is compiled in the worker, so it can use nothing from its
 * surroundings; `input` and the value must survive structured clone.
 */
export type WorkerCheck = string

/** What a check answered: its return value, or what it threw (a real `SqliteError` when it was one). */
export type WorkerOutcome<T> = { readonly value: T } | { readonly error: unknown }

/** Why a worker gave no answer; {@link SqliteWorkerOptions.fail} turns it into the rejection. */
export type WorkerFailure =
  | { readonly kind: 'start'; readonly cause: unknown }
  | { readonly kind: 'crash'; readonly cause: unknown }
  | { readonly kind: 'exit'; readonly exitCode: number }
  | { readonly kind: 'timeout'; readonly timeoutMs: number }
  | { readonly kind: 'abort'; readonly cause: unknown }

/** Options of {@link startSqliteWorker}. */
export interface SqliteWorkerOptions {
  /** Deadline in ms: on expiry the worker is terminated (`timeout`). Omit it only when `signal` bounds the run. */
  readonly timeoutMs?: number
  /** Aborting terminates the worker (`abort`, with the reason as cause). */
  readonly signal?: AbortSignal
  /** Builds the error `outcome` rejects with. */
  readonly fail: (failure: WorkerFailure) => Error
}

/** A running check. */
export interface SqliteWorkerRun<T> {
  /** Settles once: on the answer (when the thread has exited), or at once on a deadline, abort or crash. */
  readonly outcome: Promise<WorkerOutcome<T>>
  /**
   * Resolves when the thread has ended (at once if it never started). Later than `outcome` after a
   * deadline or abort: termination takes effect only once SQLite's current call returns.
   */
  readonly exited: Promise<void>
}

/** What the worker posts back: the error flattened to plain data (a posted Error loses `code`). */
type Posted<T> =
  | { readonly value: T }
  | { readonly error: { readonly name: string; readonly message: string; readonly code?: string; readonly stack?: string } }

// Plain CommonJS run with `eval: true`: a worker cannot load this package's TypeScript sources (under
// jest), and an inline source needs no extra file beside the compiled output. It requires the very
// better-sqlite3 the caller resolved (workerData.driver).
function workerSource(check: WorkerCheck): string {
  return `'use strict'
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const check = (${check})
let posted
try {
  posted = { value: check(Database, workerData.input) }
} catch (err) {
  const e = err !== null && typeof err === 'object' ? err : {}
  posted = {
    error: {
      name: typeof e.name === 'string' ? e.name : 'Error',
      message: typeof e.message === 'string' ? e.message : String(err),
      code: typeof e.code === 'string' ? e.code : undefined,
      stack: typeof e.stack === 'string' ? e.stack : undefined,
    },
  }
}
parentPort.postMessage(posted)
`
}

/**
 * Runs `check(Database, input)` on a worker thread, so the event loop keeps running while SQLite
 * reads a whole file. A worker that crashes, exits without an answer, misses `timeoutMs` or is
 * aborted is terminated and `outcome` rejects with `fail(...)` at once. SQLite cannot be interrupted
 * mid-call (better-sqlite3 has no `sqlite3_interrupt`): a terminated thread ends only when the current
 * call returns (`exited`), and until then it still keeps the process from exiting.
 */
export function startSqliteWorker<T>(check: WorkerCheck, input: unknown, options: SqliteWorkerOptions): SqliteWorkerRun<T> {
  const { timeoutMs, signal, fail } = options
  if (signal?.aborted) return { outcome: Promise.reject(fail({ kind: 'abort', cause: signal.reason })), exited: Promise.resolve() }
  let worker: Worker
  try {
    // execArgv []: no loaders or -r hooks of the parent (ts-node, APM agents) in a thread that needs none
    worker = new Worker(workerSource(check), { eval: true, workerData: { driver: require.resolve('better-sqlite3'), input }, execArgv: [] })
  } catch (err) {
    return { outcome: Promise.reject(fail({ kind: 'start', cause: err })), exited: Promise.resolve() }
  }
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
  const outcome = new Promise<WorkerOutcome<T>>((resolve, reject) => {
    let answer: WorkerOutcome<T> | undefined
    let settled = false
    const settle = (done: () => void): void => {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      done()
    }
    const stop = (failure: WorkerFailure): void =>
      settle(() => {
        worker.unref()
        worker.terminate().catch(() => undefined)
        reject(fail(failure))
      })
    const onAbort = (): void => stop({ kind: 'abort', cause: signal?.reason })
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => stop({ kind: 'timeout', timeoutMs }), timeoutMs)
    timer?.unref()
    signal?.addEventListener('abort', onAbort, { once: true })
    worker.on('message', (posted: Posted<T>) => (answer = revive(posted)))
    // stays attached after settling: a late error of a terminated worker is ignored, never uncaught
    worker.on('error', (err) => stop({ kind: 'crash', cause: err }))
    worker.on('exit', (exitCode) => settle(() => (answer ? resolve(answer) : reject(fail({ kind: 'exit', exitCode })))))
  })
  return { outcome, exited }
}

/** The worker's flattened error as the error the check threw (a real SqliteError when it was one). */
function revive<T>(posted: Posted<T>): WorkerOutcome<T> {
  if (!('error' in posted)) return posted
  const { name, message, code, stack } = posted.error
  const err = code?.startsWith('SQLITE_') ? new Database.SqliteError(message, code) : Object.assign(new Error(message), { name })
  if (stack !== undefined) err.stack = stack
  return { error: err }
}
