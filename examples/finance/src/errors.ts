/** Stable codes of the finance domain errors. */
export type FinanceErrorCode =
  | 'ACCOUNT_NOT_FOUND'
  | 'DUPLICATE_ACCOUNT'
  | 'INSUFFICIENT_FUNDS'
  | 'BALANCE_OUT_OF_RANGE'
  | 'CURRENCY_MISMATCH'
  | 'IDEMPOTENCY_CONFLICT'
  | 'INVALID_ENTRY'

/**
 * A business rule said no. Database failures stay `DatabaseError`s; these are the answers a caller
 * shows to a user. `cause` keeps the database error a rule was mapped from, when there is one.
 */
export class FinanceError extends Error {
  override readonly name: string = 'FinanceError'
  /** Stable, machine-readable code. */
  readonly code: FinanceErrorCode
  /** Structured facts (account id, amounts). */
  readonly detail: Readonly<Record<string, unknown>>

  constructor(code: FinanceErrorCode, message: string, detail: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.detail = detail
  }

  /** True when `err` is a FinanceError, and when `code` is given, one with that code. */
  static is(err: unknown, code?: FinanceErrorCode): err is FinanceError {
    return err instanceof FinanceError && (code === undefined || err.code === code)
  }
}

/** The account does not exist. */
export class AccountNotFoundError extends FinanceError {
  override readonly name = 'AccountNotFoundError'
  constructor(readonly accountId: string) {
    super('ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`, { accountId })
  }
}

/** An account with this id already exists (mapped from UNIQUE_VIOLATION). */
export class DuplicateAccountError extends FinanceError {
  override readonly name = 'DuplicateAccountError'
  constructor(
    readonly accountId: string,
    cause?: unknown,
  ) {
    super('DUPLICATE_ACCOUNT', `account ${accountId} already exists`, { accountId }, cause)
  }
}

/** The posting would take the account below its limit (`min_balance`). */
export class InsufficientFundsError extends FinanceError {
  override readonly name = 'InsufficientFundsError'
  constructor(
    readonly accountId: string,
    readonly balance: number,
    readonly minBalance: number,
    readonly amount: number,
  ) {
    super('INSUFFICIENT_FUNDS', `account ${accountId} cannot be debited ${-amount}: balance ${balance}, limit ${minBalance}`, {
      accountId,
      balance,
      minBalance,
      amount,
    })
  }
}

/**
 * The posting would take the account's balance outside ±(2^53 - 1) minor units, the range a balance
 * is exact in as a JS number (what every read of it returns). Nothing is written.
 */
export class BalanceOutOfRangeError extends FinanceError {
  override readonly name = 'BalanceOutOfRangeError'
  constructor(
    readonly accountId: string,
    readonly balance: number,
    readonly amount: number,
  ) {
    super(
      'BALANCE_OUT_OF_RANGE',
      `account ${accountId} cannot be moved by ${amount}: balance ${balance} would leave ±${Number.MAX_SAFE_INTEGER} minor units`,
      { accountId, balance, amount },
    )
  }
}

/**
 * A balance read back (a statement's opening or closing balance, {@link TransactionRepository.balanceAt})
 * is outside ±(2^53 - 1) minor units, where a JS number would round it. Postings keep every balance
 * in range in the order they are applied (each posting records the balance it left, and a statement
 * shows those), but a balance as of a date sums the lines by `posted_at`: a backdated entry
 * (`postedAt`) can put it out of range. A recorded balance is out of range only on a line migration
 * 0003 numbered from the order statements used before it (`entryId` names it). Code
 * `BALANCE_OUT_OF_RANGE`; `balance` is the exact value as a decimal string. Nothing was read wrong:
 * the statement is refused.
 */
export class BalanceReadOutOfRangeError extends FinanceError {
  override readonly name = 'BalanceReadOutOfRangeError'
  constructor(
    readonly accountId: string,
    readonly balance: string,
    readonly entryId: string | null,
  ) {
    super(
      'BALANCE_OUT_OF_RANGE',
      `account ${accountId}'s balance ${entryId === null ? '' : `after entry ${entryId} `}is ${balance}, outside ±${Number.MAX_SAFE_INTEGER} minor units`,
      { accountId, balance, entryId },
    )
  }
}

/** An account's currency differs from the entry's. */
export class CurrencyMismatchError extends FinanceError {
  override readonly name = 'CurrencyMismatchError'
  constructor(accountId: string, accountCurrency: string, entryCurrency: string) {
    super('CURRENCY_MISMATCH', `account ${accountId} holds ${accountCurrency}, the entry is in ${entryCurrency}`, {
      accountId,
      accountCurrency,
      entryCurrency,
    })
  }
}

/** The idempotency key was first used with a different request. */
export class IdempotencyConflictError extends FinanceError {
  override readonly name = 'IdempotencyConflictError'
  constructor(
    readonly idempotencyKey: string,
    readonly entryId: string,
  ) {
    super(
      'IDEMPOTENCY_CONFLICT',
      `idempotency key ${JSON.stringify(idempotencyKey)} was already used for a different request (entry ${entryId})`,
      {
        idempotencyKey,
        entryId,
      },
    )
  }
}

/** The entry or request is malformed (unbalanced lines, a non-integer amount, ...). */
export class InvalidEntryError extends FinanceError {
  override readonly name = 'InvalidEntryError'
  constructor(message: string, detail: Record<string, unknown> = {}) {
    super('INVALID_ENTRY', message, detail)
  }
}
