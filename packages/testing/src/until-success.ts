/**
 * @internal Wraps an idempotent cleanup (`drop()`, `stop()`, `close()`): concurrent calls share the
 * run in progress, a success is kept (later calls resolve at once), and a failure is forgotten once
 * it settled, so the next call tries again instead of returning the same rejection without trying.
 */
export function untilSuccess(run: () => Promise<void>): () => Promise<void> {
  let current: Promise<void> | undefined
  return () =>
    (current ??= run().catch((err: unknown) => {
      current = undefined
      throw err
    }))
}
