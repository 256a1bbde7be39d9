import type { Transaction } from '@dbpool/core'

/** What a rollback makes the transaction's callback reject with: never a DatabaseError, so never replayed. */
const ROLLBACK = Symbol('dbpool-kysely rollback')

/** Starts a dbpool transaction whose callback is `body`: `pool.transaction()` or `conn.transaction()`. */
export type TransactionStarter = (body: (tx: Transaction) => Promise<void>) => Promise<void>

/**
 * A dbpool transaction held open between Kysely's `beginTransaction` and its `commitTransaction` or
 * `rollbackTransaction`. dbpool runs it (begin statement, statement checks, COMMIT only if the engine
 * kept the work, ROLLBACK, release); Kysely decides when its callback ends.
 */
export class HeldTransaction {
  #finish: ((outcome: typeof ROLLBACK | undefined) => void) | undefined
  #running: Promise<void> | undefined

  private constructor(readonly tx: Transaction) {}

  /** Begins; rejects with dbpool's error when no connection could be had or BEGIN failed. */
  static begin(start: TransactionStarter): Promise<HeldTransaction> {
    return new Promise<HeldTransaction>((resolve, reject) => {
      const running = start(
        (tx) =>
          new Promise<void>((commit, rollback) => {
            const held = new HeldTransaction(tx)
            held.#finish = (outcome) => (outcome === ROLLBACK ? rollback(ROLLBACK) : commit())
            held.#running = running
            resolve(held)
          }),
      )
      // before the callback ran, this is the acquire's or BEGIN's error
      running.catch(reject)
    })
  }

  /** Commits; rejects with dbpool's DatabaseError (TRANSACTION_ROLLED_BACK, SERIALIZATION_FAILURE...) when it did not. */
  commit(): Promise<void> {
    return this.#end(undefined)
  }

  /** Rolls back (a failed ROLLBACK destroys the connection, which ends the transaction server-side). */
  async rollback(): Promise<void> {
    try {
      await this.#end(ROLLBACK)
    } catch (err) {
      if (err !== ROLLBACK) throw err
    }
  }

  #end(outcome: typeof ROLLBACK | undefined): Promise<void> {
    const finish = this.#finish
    this.#finish = undefined
    finish?.(outcome)
    return this.#running ?? Promise.resolve()
  }
}
