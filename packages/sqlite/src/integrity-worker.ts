import { DatabaseError, type HealthCheckDetail } from '@dbpool/core'
import { messageOf } from './sqlite-errors'
import { elapsed, integrityDetail, maxErrorsOf, type IntegrityAnswer, type IntegrityMode, type SqliteHealthContext } from './sqlite-health'
import { startSqliteWorker, type SqliteWorkerRun, type WorkerCheck, type WorkerFailure, type WorkerOutcome } from './sqlite-worker'

/** Where {@link IntegrityWorker} checks: the health context plus the busy timeout of its connection. */
export interface IntegrityWorkerContext extends Pick<SqliteHealthContext, 'path' | 'maxErrors'> {
  /** `busy_timeout` of the worker's read-only connection (a rollback-journal database may be locked by a commit). */
  readonly busyTimeoutMs: number
}

interface IntegrityInput {
  readonly file: string
  readonly mode: IntegrityMode
  readonly maxErrors: number
  readonly busyTimeoutMs: number
}

// integrityCheck's pragma on a read-only connection of its own: it never changes the live database
// (plain JavaScript: see WorkerCheck). Keep it in step with integrityCheck.
const INTEGRITY_CHECK: WorkerCheck = `function integrity(Database, input) {
  const db = new Database(input.file, { readonly: true, fileMustExist: true, timeout: input.busyTimeoutMs })
  try {
    return db.pragma(input.mode + '(' + input.maxErrors + ')', { simple: false }).map((row) => String(Object.values(row)[0]))
  } finally {
    db.close()
  }
}`

/** One worker thread checking the file, and the callers waiting for its answer. */
interface Run {
  readonly mode: IntegrityMode
  readonly worker: SqliteWorkerRun<string[]>
  /** Aborted (terminating the worker) when the last caller waiting for it gives up, or on close. */
  readonly stop: AbortController
  waiting: number
}

/**
 * Runs `quick_check` / `integrity_check` of one database file on a worker thread, so a health probe
 * never blocks the event loop for the time SQLite takes to read the whole file. The details are the
 * ones {@link integrityCheck} gives on a connection, plus `unhealthy` when `timeoutMs` passes first.
 *
 * At most one thread checks the file at a time: a caller asking for the mode being checked shares the
 * running check; any other waits (within its own deadline) for the thread to end. A terminated worker
 * ends only when SQLite's current call returns, so probes that keep timing out never pile up threads
 * reading the same file. The worker is terminated once no caller waits for it any more.
 *
 * ```ts
 * const integrity = new IntegrityWorker({ path: './data/app.db', busyTimeoutMs: 5_000 })
 * const detail = await integrity.check(false, 2_000) // quick_check, unhealthy if not done within 2 s
 * ```
 */
export class IntegrityWorker {
  readonly #context: IntegrityWorkerContext
  #run: Run | undefined

  constructor(context: IntegrityWorkerContext) {
    this.#context = context
  }

  /** The `integrity` detail, within `timeoutMs`; never throws. */
  async check(deep: boolean, timeoutMs: number): Promise<HealthCheckDetail> {
    const mode: IntegrityMode = deep ? 'integrity_check' : 'quick_check'
    const started = performance.now()
    const deadline = deadlineOf(mode, timeoutMs)
    try {
      return integrityDetail(mode, await this.#answer(mode, deadline.expired), elapsed(started), this.#context.path)
    } catch (err) {
      const error = DatabaseError.is(err) ? err : new DatabaseError('QUERY_FAILED', messageOf(err), { backend: 'sqlite', cause: err })
      return {
        name: 'integrity',
        status: 'unhealthy',
        latencyMs: elapsed(started),
        message: error.message,
        data: { mode, ok: false, code: error.code, errors: [error.message] },
      }
    } finally {
      deadline.clear()
    }
  }

  /** Terminates the running check (its callers get `unhealthy`): the database is being closed. */
  stop(reason: unknown): void {
    this.#run?.stop.abort(reason)
  }

  async #answer(mode: IntegrityMode, expired: Promise<never>): Promise<IntegrityAnswer> {
    for (;;) {
      const run = this.#run ?? this.#start(mode)
      if (run.mode === mode && !run.stop.signal.aborted) {
        const outcome = await this.#await(run, expired)
        return 'error' in outcome ? outcome : { messages: outcome.value }
      }
      // another mode, or a terminated worker still inside SQLite: one thread at a time
      await Promise.race([run.worker.exited, expired])
    }
  }

  async #await(run: Run, expired: Promise<never>): Promise<WorkerOutcome<string[]>> {
    run.waiting++
    try {
      return await Promise.race([run.worker.outcome, expired])
    } finally {
      if (--run.waiting === 0) run.stop.abort(new DatabaseError('QUERY_CANCELLED', 'no caller waits for the check any more'))
    }
  }

  #start(mode: IntegrityMode): Run {
    const { path, busyTimeoutMs } = this.#context
    const input: IntegrityInput = { file: path, mode, maxErrors: maxErrorsOf(this.#context), busyTimeoutMs }
    const stop = new AbortController()
    // no deadline of its own: every caller waiting for it has one, and the last to give up stops it
    const worker = startSqliteWorker<string[]>(INTEGRITY_CHECK, input, { signal: stop.signal, fail: (why) => workerFailure(mode, why) })
    worker.outcome.catch(() => undefined) // a run nobody waits for any more rejects unobserved
    const run: Run = { mode, worker, stop, waiting: 0 }
    this.#run = run
    void worker.exited.then(() => {
      if (this.#run === run) this.#run = undefined
    })
    return run
  }
}

/** A promise that rejects with QUERY_TIMEOUT after `timeoutMs` (its timer unref'd; `clear()` when done). */
function deadlineOf(mode: IntegrityMode, requestedMs: number): { readonly expired: Promise<never>; clear(): void } {
  // what setTimeout can wait for: 1 ms to about 24.8 days (beyond, Node would fire after 1 ms)
  const timeoutMs = Math.min(Math.max(Math.trunc(requestedMs) || 1, 1), 2_147_483_647)
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DatabaseError('QUERY_TIMEOUT', `${mode} timed out after ${timeoutMs} ms`, { backend: 'sqlite' })),
      timeoutMs,
    )
    timer.unref()
  })
  expired.catch(() => undefined) // raced, or never looked at when the check answered in time
  return { expired, clear: () => clearTimeout(timer) }
}

function workerFailure(mode: IntegrityMode, why: WorkerFailure): DatabaseError {
  switch (why.kind) {
    case 'start':
      return new DatabaseError('QUERY_FAILED', `${mode} worker could not start: ${messageOf(why.cause)}`, {
        backend: 'sqlite',
        cause: why.cause,
      })
    case 'crash':
      return new DatabaseError('QUERY_FAILED', `${mode} worker crashed: ${messageOf(why.cause)}`, { backend: 'sqlite', cause: why.cause })
    case 'exit':
      return new DatabaseError('QUERY_FAILED', `${mode} worker exited with code ${why.exitCode} before reporting`, { backend: 'sqlite' })
    case 'timeout':
      return new DatabaseError('QUERY_TIMEOUT', `${mode} timed out after ${why.timeoutMs} ms`, { backend: 'sqlite' })
    case 'abort':
      return new DatabaseError('QUERY_CANCELLED', `${mode} stopped: ${messageOf(why.cause)}`, { backend: 'sqlite', cause: why.cause })
  }
}
