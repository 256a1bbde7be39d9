import { configError, DatabaseError, MAX_TIMER_MS } from '@dbpool/core'
import { checkInteger, markWaitDeadline, rejectUnknownKeys, requireObject } from '@dbpool/core/internal'
import { startDeadline, type Deadline } from './postgres-deadline'

/** Options of `copyFrom()` and `copyTo()`: the COPY's deadline and its cancellation. */
export interface CopyOptions {
  /**
   * Deadline of the whole COPY in ms, the wait for a connection included: an integer from 1 to
   * 2^31-1. `copyFrom()`: until the server reports the COPY complete; `copyTo()`: until the server's
   * last row was read (a consumer that stops reading holds it up). On expiry the COPY is stopped on
   * the server and the call fails with QUERY_TIMEOUT; when it passed before the COPY had a
   * connection, with ACQUIRE_TIMEOUT (retryable: nothing was sent). Default: none.
   */
  readonly timeoutMs?: number
  /** Aborting stops the COPY as `timeoutMs` does, with QUERY_CANCELLED (`cause`: the signal's reason). Default: none. */
  readonly signal?: AbortSignal
}

const COPY_OPTION_KEYS = ['timeoutMs', 'signal'] as const

/**
 * @internal One COPY's deadline and caller signal, merged into one {@link signal} that stops it: given
 * to `withConnection()` (a caller still waiting leaves the queue) and watched by the COPY itself.
 * Validates the options when made: CONFIGURATION naming `<fn>.timeoutMs`, `<fn>.signal` or an unknown
 * `<fn>.<key>`, with the value. {@link dispose} clears the timer and the caller's listener.
 */
export class CopyDeadline {
  readonly #stop = new AbortController()
  readonly #fn: string
  #timer: Deadline | undefined
  #signal: AbortSignal | undefined

  constructor(fn: 'copyFrom' | 'copyTo', options: unknown) {
    this.#fn = fn
    const raw = requireObject(`${fn} options`, options)
    rejectUnknownKeys(fn, raw, COPY_OPTION_KEYS)
    const timeoutMs = raw.timeoutMs === undefined ? undefined : checkInteger(`${fn}.timeoutMs`, raw.timeoutMs, 1, MAX_TIMER_MS)
    const given = raw.signal as Partial<AbortSignal> | undefined
    if (
      given !== undefined &&
      (typeof given !== 'object' ||
        given === null ||
        typeof given.aborted !== 'boolean' ||
        typeof given.addEventListener !== 'function' ||
        typeof given.removeEventListener !== 'function')
    )
      throw configError(`${fn}.signal`, given, 'must be an AbortSignal')
    const signal = given as AbortSignal | undefined
    if (signal) {
      if (signal.aborted) {
        this.#halt(this.#cancelled(signal.reason, 'before it started'))
        return
      }
      this.#signal = signal
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
    if (timeoutMs !== undefined) {
      // at the deadline, what the server already sent is read first (startDeadline): a COPY whose
      // completion arrived while the event loop was blocked is not reported stopped
      // (still waiting for a connection, the COPY leaves the queue with ACQUIRE_TIMEOUT: markWaitDeadline)
      this.#timer = startDeadline(timeoutMs, () =>
        this.#halt(
          markWaitDeadline(
            new DatabaseError('QUERY_TIMEOUT', `${fn}() exceeded its ${timeoutMs} ms deadline (${fn}.timeoutMs); the COPY was stopped`, {
              backend: 'postgres',
              retryable: false,
              detail: { timeoutMs },
            }),
            { timeoutMs, option: `${fn}.timeoutMs`, subject: 'the COPY' },
          ),
        ),
      )
    }
  }

  /** Aborted at the deadline or by the caller's signal; its `reason` is the {@link DatabaseError} to report. */
  get signal(): AbortSignal {
    return this.#stop.signal
  }

  /** Whether the COPY must stop. */
  get stopped(): boolean {
    return this.#stop.signal.aborted
  }

  /** Why it stopped (QUERY_TIMEOUT or QUERY_CANCELLED); undefined while it runs. */
  get reason(): DatabaseError | undefined {
    return this.stopped ? (this.#stop.signal.reason as DatabaseError) : undefined
  }

  /**
   * The error for a COPY that stopped before it had a connection (`waitError`: what the wait for it
   * rejected with): the lane's ACQUIRE_TIMEOUT as it is (at the deadline it names `<fn>.timeoutMs`,
   * nothing was sent: retryable; made and counted by the lane, see `markWaitDeadline`), else
   * {@link reason} (QUERY_CANCELLED, QUERY_TIMEOUT), or `waitError` when the COPY was not stopped.
   */
  beforeConnection(waitError: unknown): unknown {
    const reason = this.reason
    if (reason === undefined || DatabaseError.is(waitError, 'ACQUIRE_TIMEOUT')) return waitError
    return reason
  }

  /** Calls `fn` once when the COPY must stop (at once if it already must). Returns the unsubscribe. */
  onStop(fn: (reason: DatabaseError) => void): () => void {
    const signal = this.#stop.signal
    if (signal.aborted) {
      fn(signal.reason as DatabaseError)
      return () => undefined
    }
    const listener = (): void => fn(signal.reason as DatabaseError)
    signal.addEventListener('abort', listener, { once: true })
    return () => signal.removeEventListener('abort', listener)
  }

  /** The COPY is over: the timer is cleared and the caller's signal no longer listened to. */
  dispose(): void {
    this.#timer?.clear()
    this.#timer = undefined
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#signal = undefined
  }

  readonly #onAbort = (): void => this.#halt(this.#cancelled(this.#signal?.reason, 'mid-way'))

  #cancelled(cause: unknown, when: string): DatabaseError {
    return new DatabaseError('QUERY_CANCELLED', `${this.#fn}() was cancelled ${when} (AbortSignal aborted)`, {
      backend: 'postgres',
      retryable: false,
      cause,
    })
  }

  #halt(reason: DatabaseError): void {
    if (this.#stop.signal.aborted) return
    this.dispose()
    this.#stop.abort(reason)
  }
}
