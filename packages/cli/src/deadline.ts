import { DatabaseError } from '@dbpool/core'

/**
 * What the checks of `health` and `check` may take beyond their `--timeout` (ms). Past `--timeout`
 * plus this, the command gives up (HEALTH_CHECK_FAILED, exit 2).
 */
export const COMMAND_MARGIN_MS = 500

/**
 * How long `health` and `check` wait for their pools' connections once the report is printed (ms):
 * the checks are over, a connection still out is an attempt to a server that does not answer.
 */
export const CLOSE_AFTER_CHECK_MS = 200

/**
 * `work`, or HEALTH_CHECK_FAILED naming `command` and `timeoutMs` when it has not settled after
 * `timeoutMs` + {@link COMMAND_MARGIN_MS}. The timer is cleared when `work` settles.
 */
export async function withinCommandDeadline<T>(command: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DatabaseError(
            'HEALTH_CHECK_FAILED',
            `dbpool ${command} did not finish within --timeout ${timeoutMs} ms (+${COMMAND_MARGIN_MS} ms): a database did not answer in time`,
            { retryable: true, detail: { timeoutMs } },
          ),
        ),
      timeoutMs + COMMAND_MARGIN_MS,
    )
  })
  try {
    return await Promise.race([work, limit])
  } finally {
    clearTimeout(timer)
  }
}
