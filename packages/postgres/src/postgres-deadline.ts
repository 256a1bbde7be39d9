/** A deadline started by {@link startDeadline}: `clear()` stops it (idempotent; before or after it fired). */
export interface Deadline {
  clear(): void
}

/**
 * Calls `fire` once `ms` have passed **and** the I/O already received has been read: the timer
 * defers `fire` to `setImmediate`, which Node runs after the poll phase of the same loop turn. When
 * the event loop was blocked past the deadline (a long synchronous handler, a busy host), the timers
 * phase comes before the poll phase: without the deferral, an answer that arrived in time but was
 * not read yet would be taken for no answer (a statement reported QUERY_TIMEOUT and its connection
 * closed though it completed; a healthy LISTEN connection declared dead). Costs nothing until the
 * deadline: one timer, as before; the immediate only exists after it fired.
 */
export function startDeadline(ms: number, fire: () => void): Deadline {
  let immediate: NodeJS.Immediate | undefined
  const timer = setTimeout(() => {
    immediate = setImmediate(fire)
  }, ms)
  return {
    clear(): void {
      clearTimeout(timer)
      if (immediate !== undefined) clearImmediate(immediate)
    },
  }
}
