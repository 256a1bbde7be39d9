import { DatabaseError } from '@dbpool/core'

/**
 * How long SQLite's own busy handler waits for a lock (`PRAGMA busy_timeout`, capped by the
 * `busyTimeoutMs` option): a few milliseconds, during which the thread is blocked. A longer wait
 * happens off the thread, in {@link waitForLock}'s timers: better-sqlite3 is synchronous, so a busy
 * handler waiting the whole `busyTimeoutMs` froze the event loop (every timer, socket and other
 * pool of the process) for as long.
 */
export const NATIVE_BUSY_TIMEOUT_MS = 5

/** First pause between two attempts while a lock is held elsewhere; it doubles up to {@link MAX_LOCK_RETRY_DELAY_MS}. */
const FIRST_LOCK_RETRY_DELAY_MS = 1
/** Longest pause between two attempts (a lock freed meanwhile is taken at most this late). */
const MAX_LOCK_RETRY_DELAY_MS = 50

/** The SQLite result codes of a lock held by another connection that a later attempt may get (not BUSY_SNAPSHOT: a stale snapshot never will). */
export function isLockBusy(sqliteCode: string | undefined): boolean {
  return sqliteCode === 'SQLITE_BUSY' || sqliteCode === 'SQLITE_BUSY_RECOVERY'
}

/** What {@link waitForLock} needs of the call. */
export interface LockWaitOptions {
  /** The longest wait for the lock, ms (the `busyTimeoutMs` option). */
  readonly busyTimeoutMs: number
  /** The call's own deadline, ms from now (`timeoutMs`). */
  readonly timeoutMs?: number | undefined
  /** The call's cancellation. */
  readonly signal?: AbortSignal | undefined
}

/**
 * Runs `attempt` again after a pause (1 ms, doubling up to 50 ms) for as long as it answers undefined
 * (the statement found the lock held and changed nothing), so the event loop runs while another
 * connection holds the lock. Once `busyTimeoutMs` has passed, `last` runs the statement a final time
 * (it then fails with BUSY as SQLite's own busy handler would have). The call's deadline or signal
 * ends the wait first: QUERY_TIMEOUT (`retryable: true`, `detail.timeoutMs`, `detail.waitedMs`, `cause`
 * the last BUSY) or QUERY_CANCELLED (`cause` the signal's reason), the statement not run. Every timer is
 * cleared and every listener removed.
 *
 * @param attempt One more try: the result, or undefined while the lock is held.
 * @param last The final try, which throws BUSY if the lock is still held.
 * @param busy The error of the last BUSY attempt (the `cause` of a timeout).
 */
export async function waitForLock<T>(
  attempt: () => T | undefined,
  last: () => T,
  options: LockWaitOptions,
  busy: () => unknown,
): Promise<T> {
  const started = performance.now()
  const giveUpAt = started + options.busyTimeoutMs
  const deadline = options.timeoutMs === undefined ? Infinity : started + options.timeoutMs
  let delay = FIRST_LOCK_RETRY_DELAY_MS
  for (;;) {
    const now = performance.now()
    if (now >= deadline) throw lockTimeout(options.timeoutMs ?? 0, now - started, busy())
    if (now >= giveUpAt) return last()
    await pause(Math.max(1, Math.min(delay, deadline - now, giveUpAt - now)), options.signal, busy)
    delay = Math.min(delay * 2, MAX_LOCK_RETRY_DELAY_MS)
    const result = attempt()
    if (result !== undefined) return result
  }
}

/** Resolves after `ms`; rejects with QUERY_CANCELLED as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined, busy: () => unknown): Promise<void> {
  if (signal?.aborted) return Promise.reject(lockCancelled(signal, busy()))
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(lockCancelled(signal!, busy()))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function lockTimeout(timeoutMs: number, waitedMs: number, cause: unknown): DatabaseError {
  return new DatabaseError(
    'QUERY_TIMEOUT',
    `statement exceeded its ${timeoutMs} ms deadline waiting for a SQLite lock another connection holds (SQLITE_BUSY); it was not run`,
    { backend: 'sqlite', cause, retryable: true, detail: { timeoutMs, waitedMs: Math.round(waitedMs) } },
  )
}

function lockCancelled(signal: AbortSignal, cause: unknown): DatabaseError {
  return new DatabaseError(
    'QUERY_CANCELLED',
    'the statement was cancelled while it waited for a SQLite lock another connection holds; it was not run',
    { backend: 'sqlite', cause: signal.reason ?? cause },
  )
}
