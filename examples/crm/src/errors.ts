import type { Stage } from './pipeline'

/** Stable codes of the CRM domain errors. */
export type CrmErrorCode =
  | 'CUSTOMER_NOT_FOUND'
  | 'DUPLICATE_EMAIL'
  | 'DUPLICATE_CUSTOMER'
  | 'INVALID_INPUT'
  | 'INVALID_CURSOR'
  | 'DEAL_NOT_FOUND'
  | 'INVALID_STAGE_TRANSITION'
  | 'CONCURRENT_UPDATE'

/**
 * A business rule said no. Database failures stay `DatabaseError`s; `cause` keeps the one a rule was
 * mapped from (a duplicate email comes from UNIQUE_VIOLATION).
 */
export class CrmError extends Error {
  override readonly name: string = 'CrmError'
  /** Stable, machine-readable code. */
  readonly code: CrmErrorCode
  /** Structured facts (ids, values). */
  readonly detail: Readonly<Record<string, unknown>>

  constructor(code: CrmErrorCode, message: string, detail: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.detail = detail
  }

  /** True when `err` is a CrmError, and when `code` is given, one with that code. */
  static is(err: unknown, code?: CrmErrorCode): err is CrmError {
    return err instanceof CrmError && (code === undefined || err.code === code)
  }
}

/** No customer (that is not deleted) has this id. */
export class CustomerNotFoundError extends CrmError {
  override readonly name = 'CustomerNotFoundError'
  constructor(readonly customerId: string) {
    super('CUSTOMER_NOT_FOUND', `customer ${customerId} does not exist`, { customerId })
  }
}

/** Another customer that is not deleted has this email (mapped from UNIQUE_VIOLATION). */
export class DuplicateEmailError extends CrmError {
  override readonly name = 'DuplicateEmailError'
  constructor(
    readonly email: string,
    cause?: unknown,
  ) {
    super('DUPLICATE_EMAIL', `a customer with email ${email} already exists`, { email }, cause)
  }
}

/** A customer (active or soft-deleted) already has this id. */
export class DuplicateCustomerError extends CrmError {
  override readonly name = 'DuplicateCustomerError'
  constructor(readonly customerId: string) {
    super('DUPLICATE_CUSTOMER', `a customer with id ${customerId} already exists`, { customerId })
  }
}

/** A malformed value (email, name, amount, ...). */
export class InvalidInputError extends CrmError {
  override readonly name = 'InvalidInputError'
  constructor(message: string, detail: Record<string, unknown> = {}) {
    super('INVALID_INPUT', message, detail)
  }
}

/** A pagination cursor that this repository did not make. */
export class InvalidCursorError extends CrmError {
  override readonly name = 'InvalidCursorError'
  constructor(cursor: string) {
    super('INVALID_CURSOR', `invalid pagination cursor ${JSON.stringify(cursor.slice(0, 40))}`, {})
  }
}

/** No deal has this id. */
export class DealNotFoundError extends CrmError {
  override readonly name = 'DealNotFoundError'
  constructor(readonly dealId: string) {
    super('DEAL_NOT_FOUND', `deal ${dealId} does not exist`, { dealId })
  }
}

/** The pipeline does not allow this move. */
export class InvalidStageTransitionError extends CrmError {
  override readonly name = 'InvalidStageTransitionError'
  constructor(
    readonly dealId: string,
    readonly from: Stage,
    readonly to: Stage,
  ) {
    super('INVALID_STAGE_TRANSITION', `deal ${dealId} cannot move from ${from} to ${to}`, { dealId, from, to })
  }
}

/** The deal changed since it was read (optimistic version check). Read it again and retry. */
export class ConcurrentUpdateError extends CrmError {
  override readonly name = 'ConcurrentUpdateError'
  constructor(
    readonly dealId: string,
    readonly expectedVersion: number,
    /** The version the deal is at now, when known (an `expectedVersion` check read it). */
    readonly currentVersion?: number,
  ) {
    super(
      'CONCURRENT_UPDATE',
      `deal ${dealId} changed after version ${expectedVersion} was read${currentVersion === undefined ? '' : ` (now at version ${currentVersion})`}`,
      currentVersion === undefined ? { dealId, expectedVersion } : { dealId, expectedVersion, currentVersion },
    )
  }
}
