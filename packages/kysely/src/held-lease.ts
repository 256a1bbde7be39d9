import type { DatabasePool, Lane, PoolConnection } from '@dbpool/core'

/**
 * A connection borrowed with `pool.withConnection()` and held until {@link release}: the span between
 * Kysely's `acquireConnection` and `releaseConnection` of a connection that runs statements outside a
 * transaction. The pool still owns the lease (release hygiene, leak detection, `close()` revoking it).
 */
export class HeldLease {
  #end: (() => void) | undefined
  #done: Promise<void> | undefined

  private constructor(
    readonly conn: PoolConnection,
    readonly lane: Lane,
  ) {}

  /**
   * Borrows a connection of `lane`; rejects with the pool's error (ACQUIRE_TIMEOUT, POOL_CLOSED,
   * POOL_EXHAUSTED, a connect error) when none could be had.
   */
  static take(pool: DatabasePool, lane: Lane): Promise<HeldLease> {
    return new Promise<HeldLease>((resolve, reject) => {
      const done = pool.withConnection(
        (conn) =>
          new Promise<void>((end) => {
            const held = new HeldLease(conn, lane)
            held.#end = end
            held.#done = done
            resolve(held)
          }),
        { lane },
      )
      // before the callback ran, this is the acquire's error; after it, withConnection resolves
      done.catch(reject)
    })
  }

  /** Gives the connection back (the pool resets it); resolves when the pool has taken it. Idempotent. */
  release(): Promise<void> {
    const end = this.#end
    this.#end = undefined
    end?.()
    return this.#done ?? Promise.resolve()
  }
}
