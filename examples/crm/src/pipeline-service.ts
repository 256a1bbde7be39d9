import { TRANSACTION_RETRY_CODES, type DatabaseError, type RetryOptions } from '@dbpool/core'
import { dbpoolTransaction } from '@dbpool/kysely'
import { DealRepository, type Deal } from './deal-repository'
import type { CrmKysely } from './kysely-db'
import type { Stage } from './pipeline'

/** Options of a {@link PipelineService}. */
export interface PipelineServiceOptions {
  /** How serialization failures, deadlocks and busy errors are replayed. Default is `{ maxAttempts: 20, baseDelayMs: 2, maxDelayMs: 200 }`. */
  readonly retry?: RetryOptions
  /**
   * Passed to the repository. Default is `() => new Date()`. A reading that is not a Date within
   * years 0000 to 9999 (UTC) is INVALID_INPUT naming `clock` (see `checkDate`), on both backends.
   */
  readonly clock?: () => Date
}

const DEFAULT_RETRY: RetryOptions = { maxAttempts: 20, baseDelayMs: 2, maxDelayMs: 200 }

/**
 * Moves deals through the pipeline, each move in a serializable transaction replayed on
 * serialization failures (`dbpoolTransaction`: dbpool's `transaction(fn, { retry })` with a Kysely
 * transaction inside): concurrent moves of one deal are applied one after the other, each checked
 * against the stage the previous one left.
 *
 * ```ts
 * const pipeline = new PipelineService(crmKysely(pool))
 * await pipeline.move(dealId, 'qualified', { note: 'budget confirmed' })
 * ```
 */
export class PipelineService {
  readonly #db: CrmKysely
  readonly #retry: RetryOptions
  readonly #clock: (() => Date) | undefined
  readonly #retries: Record<string, number> = {}
  #attempts = 0

  constructor(db: CrmKysely, options: PipelineServiceOptions = {}) {
    this.#db = db
    const retryOn = options.retry?.retryOn ?? ((err: DatabaseError) => TRANSACTION_RETRY_CODES.has(err.code))
    this.#retry = {
      ...DEFAULT_RETRY,
      ...options.retry,
      retryOn: (err) => {
        const again = retryOn(err)
        if (again) this.#retries[err.code] = (this.#retries[err.code] ?? 0) + 1
        return again
      },
    }
    this.#clock = options.clock
  }

  /**
   * Moves the deal; throws INVALID_STAGE_TRANSITION, DEAL_NOT_FOUND, or the DatabaseError that
   * outlasted the retries. On a Kysely transaction (`new PipelineService(trx)`) the move runs inside
   * it, under the caller's isolation, and is never retried: a serialization failure or busy error
   * ends the caller's transaction, which only the caller can replay (`dbpoolTransaction(db, fn, { retry })`).
   */
  move(dealId: string, to: Stage, options: { readonly note?: string } = {}): Promise<Deal> {
    const move = (trx: CrmKysely): Promise<Deal> => {
      this.#attempts++
      return new DealRepository(trx, { clock: this.#clock }).moveStage(dealId, to, options)
    }
    // a Kysely transaction (dbpoolTransaction's trx, or Kysely's own): the move runs in it, unretried
    if (this.#db.isTransaction) return move(this.#db)
    return dbpoolTransaction(this.#db, move, { isolation: 'serializable', retry: this.#retry })
  }

  /** Transactions started and retries by error code. */
  stats(): { readonly attempts: number; readonly retries: Readonly<Record<string, number>> } {
    return { attempts: this.#attempts, retries: { ...this.#retries } }
  }
}
