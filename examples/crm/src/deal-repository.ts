import { randomUUID } from 'node:crypto'
import { sql, type Selectable } from 'kysely'
import type { CrmDatabase, CrmKysely } from './kysely-db'
import { ConcurrentUpdateError, CustomerNotFoundError, DealNotFoundError, InvalidInputError, InvalidStageTransitionError } from './errors'
import { canMove, isClosed, isStage, STAGES, type Stage } from './pipeline'
import { toBigInteger, toDate, toInteger, toNullableDate } from './values'
import { checkedClock } from './dates'
import { checkObject } from './checks'
import { shownValue } from '@dbpool/example-kit'

/** A deal in the pipeline. */
export interface Deal {
  readonly id: string
  readonly customerId: string
  readonly title: string
  /** Integer minor units. */
  readonly amount: number
  readonly currency: string
  readonly stage: Stage
  /** 1 when created; +1 per move. Equals the number of history rows. */
  readonly version: number
  readonly createdAt: Date
  readonly updatedAt: Date
  /** When it reached `won` or `lost`. */
  readonly closedAt: Date | null
}

/** What {@link DealRepository.create} needs. */
export interface NewDeal {
  readonly customerId: string
  readonly title: string
  readonly amount: number
  readonly currency: string
}

/** One move of a deal (the first one, `from: null`, is its creation as a lead). */
export interface StageChange {
  readonly dealId: string
  readonly seq: number
  readonly from: Stage | null
  readonly to: Stage
  readonly note: string | null
  readonly changedAt: Date
}

/** Deals per stage. */
export interface PipelineSummary {
  readonly stage: Stage
  readonly deals: number
  /** Total of the stage's deal amounts in minor units, exact: a `bigint` (each amount is at most 2^53 - 1, their sum need not be). */
  readonly amount: bigint
}

type DealRow = Selectable<CrmDatabase['deals']>

/** 2^20: {@link DealRepository.pipelineSummary} sums `amount / SPLIT` and `amount % SPLIT` apart. */
const SPLIT = 1_048_576

/**
 * Deals and their stage history, written with Kysely (`DbpoolDialect`) on the same pool as the
 * `sql`-tag repositories (customers, contacts). {@link moveStage} checks the pipeline's rules and the
 * deal's version (optimistic concurrency), updates the deal and appends the history row, atomically.
 * Run it through `PipelineService` (a serializable `dbpoolTransaction` with `retry`) to have
 * concurrent moves replayed.
 *
 * ```ts
 * const deals = new DealRepository(crmKysely(pool))
 * ```
 */
export class DealRepository {
  readonly #db: CrmKysely
  readonly #clock: () => Date

  /**
   * `db`: a Kysely on the pool, or a Kysely transaction (then every method runs inside it). `clock`:
   * default `() => new Date()`; a reading that is not a Date within years 0000 to 9999 (UTC) is
   * INVALID_INPUT naming `clock` (`checkDate`).
   */
  constructor(db: CrmKysely, options: { readonly clock?: () => Date } = {}) {
    this.#db = db
    this.#clock = checkedClock(options.clock)
  }

  /** Opens a deal as a `lead` for an active customer (history row 1). */
  async create(input: NewDeal): Promise<Deal> {
    checkObject(input, 'input')
    if (typeof input.customerId !== 'string') throw new InvalidInputError('customerId must be a string', { option: 'customerId' })
    if (typeof input.title !== 'string' || input.title.trim() === '') throw new InvalidInputError('a deal needs a title')
    if (!Number.isSafeInteger(input.amount) || input.amount < 0)
      throw new InvalidInputError(`amount ${shownValue(input.amount)} must be an integer >= 0 (minor units)`)
    if (typeof input.currency !== 'string' || !/^[A-Z]{3}$/.test(input.currency))
      throw new InvalidInputError(`currency ${JSON.stringify(input.currency)} must be an ISO 4217 code`)
    const now = this.#clock()
    const deal: Deal = {
      id: randomUUID(),
      customerId: input.customerId,
      title: input.title.trim(),
      amount: input.amount,
      currency: input.currency,
      stage: 'lead',
      version: 1,
      createdAt: now,
      updatedAt: now,
      closedAt: null,
    }
    await this.#atomically(async (trx) => {
      // the customer's row lock, held to the end (a no-op update, both engines): a concurrent
      // softDelete either commits first (nothing matches: CUSTOMER_NOT_FOUND) or waits for this deal
      const { numUpdatedRows } = await trx
        .updateTable('customers')
        .set({ updated_at: sql<Date>`updated_at` })
        .where('id', '=', deal.customerId)
        .where('deleted_at', 'is', null)
        .executeTakeFirstOrThrow()
      if (numUpdatedRows === 0n) throw new CustomerNotFoundError(deal.customerId)
      await trx
        .insertInto('deals')
        .values({
          id: deal.id,
          customer_id: deal.customerId,
          title: deal.title,
          amount: deal.amount,
          currency: deal.currency,
          stage: deal.stage,
          version: 1,
          created_at: now,
          updated_at: now,
          closed_at: null,
        })
        .execute()
      await trx
        .insertInto('deal_stage_history')
        .values({ deal_id: deal.id, seq: 1, from_stage: null, to_stage: 'lead', note: 'created', changed_at: now })
        .execute()
    })
    return deal
  }

  /** The deal, or undefined. */
  async findById(id: string): Promise<Deal | undefined> {
    const row = await this.#db.selectFrom('deals').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toDeal(row)
  }

  /** The deal, or DEAL_NOT_FOUND. */
  async get(id: string): Promise<Deal> {
    const deal = await this.findById(id)
    if (!deal) throw new DealNotFoundError(id)
    return deal
  }

  /** The deals of a customer, newest first. */
  async listForCustomer(customerId: string): Promise<Deal[]> {
    const rows = await this.#db
      .selectFrom('deals')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute()
    return rows.map(toDeal)
  }

  /**
   * Moves a deal to `to`: INVALID_STAGE_TRANSITION when the pipeline forbids it, CONCURRENT_UPDATE
   * when `expectedVersion` is given and the deal is past it (or it changed between read and write),
   * INVALID_INPUT for an unknown stage, an `expectedVersion` that is not an integer >= 1 or is above
   * the deal's version (one it never had: `detail.version` is the current one), a `note` that is not
   * a string, or `options` that is not an object.
   */
  async moveStage(dealId: string, to: Stage, options: { readonly note?: string; readonly expectedVersion?: number } = {}): Promise<Deal> {
    if (!isStage(to)) throw new InvalidInputError(`unknown stage ${JSON.stringify(to)}: one of ${STAGES.join(', ')}`)
    checkObject(options, 'options')
    const expected = options.expectedVersion
    if (expected !== undefined && (typeof expected !== 'number' || !Number.isSafeInteger(expected) || expected < 1))
      throw new InvalidInputError(`expectedVersion ${shownValue(expected)}: must be an integer >= 1`, { option: 'expectedVersion' })
    if (options.note !== undefined && typeof options.note !== 'string')
      throw new InvalidInputError('note must be a string', { option: 'note' })
    return this.#atomically(async (trx) => {
      const current = await new DealRepository(trx).get(dealId)
      // versions only grow: one above the deal's was never read (a bad input, not a concurrent change)
      if (expected !== undefined && expected > current.version)
        throw new InvalidInputError(
          `expectedVersion ${expected}: deal ${dealId} is at version ${current.version}, it never had ${expected}`,
          {
            option: 'expectedVersion',
            version: current.version,
          },
        )
      if (expected !== undefined && expected !== current.version) throw new ConcurrentUpdateError(dealId, expected, current.version)
      if (!canMove(current.stage, to)) throw new InvalidStageTransitionError(dealId, current.stage, to)
      const now = this.#clock()
      const closedAt = isClosed(to) ? now : null
      const version = current.version + 1
      const { numUpdatedRows } = await trx
        .updateTable('deals')
        .set({ stage: to, version, updated_at: now, closed_at: closedAt })
        .where('id', '=', dealId)
        .where('version', '=', current.version)
        .executeTakeFirstOrThrow()
      // under read committed another move can land between the read and this update
      if (numUpdatedRows === 0n) throw new ConcurrentUpdateError(dealId, current.version)
      await trx
        .insertInto('deal_stage_history')
        .values({ deal_id: dealId, seq: version, from_stage: current.stage, to_stage: to, note: options.note ?? null, changed_at: now })
        .execute()
      return { ...current, stage: to, version, updatedAt: now, closedAt }
    })
  }

  /** Every move of a deal, in order. */
  async history(dealId: string): Promise<StageChange[]> {
    const rows = await this.#db.selectFrom('deal_stage_history').selectAll().where('deal_id', '=', dealId).orderBy('seq').execute()
    return rows.map((r) => ({
      dealId: r.deal_id,
      seq: toInteger(r.seq),
      from: r.from_stage,
      to: r.to_stage,
      note: r.note,
      changedAt: toDate(r.changed_at),
    }))
  }

  /**
   * Count and total amount of deals per stage (every stage listed, in pipeline order); INVALID_INPUT
   * for a currency that is not an ISO 4217 code. The total is exact on both backends: SQLite's
   * `sum()` of integers fails with "integer overflow" past 2^63 - 1 (about 1,025 deals at the largest
   * amount), where Postgres's `sum(bigint)` is an exact numeric. So the amounts are summed in two
   * parts that cannot overflow, `amount / 2^20` (at most 2^33 each) and `amount % 2^20` (integer
   * division and remainder on both engines, amounts being >= 0), combined as `bigint`.
   */
  async pipelineSummary(currency: string): Promise<PipelineSummary[]> {
    if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency))
      throw new InvalidInputError(`currency ${shownValue(currency)} must be an ISO 4217 code`, { option: 'currency' })
    const rows = await this.#db
      .selectFrom('deals')
      .select((eb) => [
        'stage',
        eb.fn.countAll().as('deals'),
        eb.fn.coalesce(eb.fn.sum(sql<number>`amount / ${sql.lit(SPLIT)}`), eb.lit(0)).as('high'),
        eb.fn.coalesce(eb.fn.sum(sql<number>`amount % ${sql.lit(SPLIT)}`), eb.lit(0)).as('low'),
      ])
      .where('currency', '=', currency)
      .groupBy('stage')
      .execute()
    const byStage = new Map(rows.map((r) => [r.stage, r]))
    return STAGES.map((stage) => {
      const row = byStage.get(stage)
      const amount = row ? toBigInteger(row.high, 'amount') * BigInt(SPLIT) + toBigInteger(row.low, 'amount') : 0n
      return { stage, deals: row ? toInteger(row.deals) : 0, amount }
    })
  }

  /** Runs `fn` in a transaction, or in the one this repository already runs in. */
  #atomically<T>(fn: (trx: CrmKysely) => Promise<T>): Promise<T> {
    return this.#db.isTransaction ? fn(this.#db) : this.#db.transaction().execute(fn)
  }
}

function toDeal(row: DealRow): Deal {
  return {
    id: row.id,
    customerId: row.customer_id,
    title: row.title,
    amount: toInteger(row.amount, 'amount'),
    currency: row.currency,
    stage: row.stage,
    version: toInteger(row.version, 'version'),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    closedAt: toNullableDate(row.closed_at),
  }
}
