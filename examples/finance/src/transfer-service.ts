import { createHash } from 'node:crypto'
import { TRANSACTION_RETRY_CODES, type DatabaseError, type RetryOptions } from '@dbpool/core'
import { isPool, type Db } from './db'
import { InvalidEntryError } from './errors'
import { TransactionRepository, type PostResult } from './transaction-repository'
import { checkedClock } from './dates'
import { checkObject } from './checks'
import { shownValue } from '@dbpool/example-kit'

/** A request to move money between two accounts of the same currency. */
export interface TransferRequest {
  readonly from: string
  readonly to: string
  /** Positive integer minor units. */
  readonly amount: number
  readonly currency: string
  /** Sending the same key again returns the first result and never posts twice. Recommended. */
  readonly idempotencyKey?: string
  /** Default is `transfer <from> -> <to>`. */
  readonly description?: string
}

/** The outcome of a transfer, the same for the first request and every replay of its key. */
export interface TransferResult {
  readonly entryId: string
  readonly from: string
  readonly to: string
  readonly amount: number
  readonly currency: string
  readonly idempotencyKey: string | null
  /** The entry's business date (from the service's clock): shown, not the order postings were applied in. */
  readonly postedAt: Date
  /** True when this request's key had already been posted: nothing moved this time. */
  readonly replayed: boolean
  /** How many times the transaction ran (1 + retries after serialization failures). */
  readonly attempts: number
}

/** Options of a {@link TransferService}. */
export interface TransferServiceOptions {
  /** How serialization failures, deadlocks and busy errors are replayed. Default is `{ maxAttempts: 20, baseDelayMs: 2, maxDelayMs: 200 }`. */
  readonly retry?: RetryOptions
  /**
   * Where `postedAt` comes from. Default is `() => new Date()`. A reading that is not a Date within
   * years 0000 to 9999 (UTC) is INVALID_ENTRY naming `clock` (see `checkDate`), on both backends.
   */
  readonly clock?: () => Date
}

/** Counters of one {@link TransferService}. */
export interface TransferStats {
  /** Transactions started (first attempts and retries). */
  readonly attempts: number
  /** Retries, by the error code that caused them. */
  readonly retries: Readonly<Record<string, number>>
}

const DEFAULT_RETRY: RetryOptions = { maxAttempts: 20, baseDelayMs: 2, maxDelayMs: 200 }

/**
 * Moves money: each transfer is a two-line journal entry posted in a serializable transaction that
 * is replayed on serialization failures (Postgres) or busy errors (SQLite) (on a pool; on a caller's
 * transaction it runs in that transaction, without retry: see {@link TransferService.transfer}). With an idempotency key,
 * a repeated request (sequential or concurrent) posts once and every copy gets the same result.
 *
 * ```ts
 * const transfers = new TransferService(pool)
 * const result = await transfers.transfer({ from: 'A', to: 'B', amount: 1250, currency: 'EUR', idempotencyKey: 'order-17' })
 * ```
 */
export class TransferService {
  readonly #db: Db
  readonly #retry: RetryOptions
  readonly #clock: () => Date
  readonly #retries: Record<string, number> = {}
  #attempts = 0

  constructor(db: Db, options: TransferServiceOptions = {}) {
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
    this.#clock = checkedClock(options.clock)
  }

  /**
   * Posts the transfer, or returns the first result of its idempotency key. Throws the finance
   * errors of {@link TransactionRepository.post}, or the DatabaseError that outlasted the retries.
   *
   * On a transaction (`new TransferService(tx)`) the transfer runs inside it (a savepoint: a refused
   * transfer is undone without aborting the caller) under the caller's isolation, and is never
   * retried: a serialization failure, deadlock or busy error aborts the caller's transaction, which
   * only the caller can replay (`pool.transaction(fn, { isolation: 'serializable', retry })`).
   * `attempts` is then 1, and `retry` is unused.
   */
  async transfer(request: TransferRequest): Promise<TransferResult> {
    checkObject(request, 'request')
    const { from, to, amount, currency, idempotencyKey } = request
    if (typeof from !== 'string' || typeof to !== 'string')
      throw new InvalidEntryError('from and to must be account ids (strings)', { option: typeof from !== 'string' ? 'from' : 'to' })
    if (from === to) throw new InvalidEntryError('a transfer needs two different accounts', { from, to })
    if (!Number.isSafeInteger(amount) || amount <= 0)
      throw new InvalidEntryError(`amount ${shownValue(amount)} must be a positive integer (minor units)`, { amount })
    const requestHash = idempotencyKey === undefined ? undefined : hashRequest(request)
    let attempts = 0
    const post = (db: Db): Promise<PostResult> => {
      attempts++
      this.#attempts++
      return new TransactionRepository(db).post({
        description: request.description ?? `transfer ${from} -> ${to}`,
        currency,
        idempotencyKey,
        requestHash,
        postedAt: this.#clock(),
        lines: [
          { accountId: from, amount: -amount },
          { accountId: to, amount },
        ],
      })
    }
    // inside a caller's transaction: post() runs in a savepoint of it; no isolation to set, nothing to replay
    const { entry, replayed } = isPool(this.#db)
      ? await this.#db.transaction(post, { isolation: 'serializable', retry: this.#retry })
      : await post(this.#db)
    const debit = entry.lines.find((l) => l.amount < 0)
    const credit = entry.lines.find((l) => l.amount > 0)
    return {
      entryId: entry.id,
      from: debit?.accountId ?? from,
      to: credit?.accountId ?? to,
      amount: credit?.amount ?? amount,
      currency: entry.currency,
      idempotencyKey: entry.idempotencyKey,
      postedAt: entry.postedAt,
      replayed,
      attempts,
    }
  }

  /** Attempts and retries so far. */
  stats(): TransferStats {
    return { attempts: this.#attempts, retries: { ...this.#retries } }
  }
}

/** The identity of a transfer request for its idempotency key: accounts, amount and currency. */
export function hashRequest(request: Pick<TransferRequest, 'from' | 'to' | 'amount' | 'currency'>): string {
  return createHash('sha256')
    .update(JSON.stringify([request.from, request.to, request.amount, request.currency]))
    .digest('hex')
}
