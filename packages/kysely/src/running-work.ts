/**
 * What a Kysely connection of this package is running, as `dbpoolTransaction()` sees it when the
 * connection of a `c` or a `trx` it was given is held by other work. Kysely's single-connection
 * provider hides which connection that is until it hands it over, so the connections that run
 * something are listed here, process-wide (a statement, a COMMIT or ROLLBACK: work that ends by
 * itself, never waiting for the caller).
 */
export interface RunningWork {
  /** A statement, COMMIT or ROLLBACK is in flight on it. */
  readonly running: boolean
  /** It runs inside a transaction (a Kysely transaction on it, or a `dbpoolTransaction()` attempt). */
  readonly inTransaction: boolean
  /** A stream of it is being read (a loop that may await anything). */
  readonly streaming: boolean
  /** Resolves when nothing is in flight on it any more (at once when nothing is). */
  idle(): Promise<void>
}

const running = new Set<RunningWork>()

/** `work` has started something that ends by itself. */
export function started(work: RunningWork): void {
  running.add(work)
}

/** `work` runs nothing any more. */
export function stopped(work: RunningWork): void {
  running.delete(work)
}

/** The connections with a statement (or COMMIT, ROLLBACK) in flight now, of the kind `inTransaction`, not streaming. */
export function runningNow(inTransaction: boolean): RunningWork[] {
  const found: RunningWork[] = []
  for (const work of running) if (work.running && !work.streaming && work.inTransaction === inTransaction) found.push(work)
  return found
}
