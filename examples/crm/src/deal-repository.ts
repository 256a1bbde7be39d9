import { randomUUID } from 'node:crypto'
import { sql } from '@dbpool/core'
import type { Db } from './db'
import { ConcurrentUpdateError, CustomerNotFoundError, DealNotFoundError, InvalidInputError, InvalidStageTransitionError } from './errors'
import { canMove, isClosed, isStage, STAGES, type Stage } from './pipeline'
import { toDate, toInteger, toNullableDate } from './values'

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
  readonly amount: number
}

interface DealRow {
  id: string
  customer_id: string
  title: string
  amount: unknown
  currency: string
  stage: string
  version: unknown
  created_at: unknown
  updated_at: unknown
  closed_at: unknown
}

/**
 * Deals and their stage history. {@link moveStage} checks the pipeline's rules and the deal's
 * version (optimistic concurrency), updates the deal and appends the history row, atomically.
 * Run it in a serializable transaction with `retry` to have concurrent moves replayed.
 */
export class DealRepository {
  readonly #db: Db
  readonly #clock: () => Date

  constructor(db: Db, options: { readonly clock?: () => Date } = {}) {
    this.#db = db
    this.#clock = options.clock ?? (() => new Date())
  }

  /** Opens a deal as a `lead` for an active customer (history row 1). */
  async create(input: NewDeal): Promise<Deal> {
    if (typeof input.title !== 'string' || input.title.trim() === '') throw new InvalidInputError('a deal needs a title')
    if (!Number.isSafeInteger(input.amount) || input.amount < 0)
      throw new InvalidInputError(`amount ${String(input.amount)} must be an integer >= 0 (minor units)`)
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
    await this.#db.transaction(async (tx) => {
      const { rowCount } = await tx.query(sql`select id from customers where id = ${deal.customerId} and deleted_at is null`)
      if (rowCount === 0) throw new CustomerNotFoundError(deal.customerId)
      await tx.query(sql`
        insert into deals (id, customer_id, title, amount, currency, stage, version, created_at, updated_at, closed_at)
        values (${deal.id}, ${deal.customerId}, ${deal.title}, ${deal.amount}, ${deal.currency}, ${deal.stage}, ${1}, ${now}, ${now}, ${null})`)
      await tx.query(sql`
        insert into deal_stage_history (deal_id, seq, from_stage, to_stage, note, changed_at)
        values (${deal.id}, ${1}, ${null}, ${'lead'}, ${'created'}, ${now})`)
    })
    return deal
  }

  /** The deal, or undefined. */
  async findById(id: string): Promise<Deal | undefined> {
    const { rows } = await this.#db.query<DealRow>(sql`select ${columns} from deals where id = ${id}`)
    return rows[0] && toDeal(rows[0])
  }

  /** The deal, or DEAL_NOT_FOUND. */
  async get(id: string): Promise<Deal> {
    const deal = await this.findById(id)
    if (!deal) throw new DealNotFoundError(id)
    return deal
  }

  /** The deals of a customer, newest first. */
  async listForCustomer(customerId: string): Promise<Deal[]> {
    const { rows } = await this.#db.query<DealRow>(
      sql`select ${columns} from deals where customer_id = ${customerId} order by created_at desc, id`,
    )
    return rows.map(toDeal)
  }

  /**
   * Moves a deal to `to`: INVALID_STAGE_TRANSITION when the pipeline forbids it, CONCURRENT_UPDATE
   * when `expectedVersion` is given and the deal is past it (or it changed between read and write).
   */
  async moveStage(dealId: string, to: Stage, options: { readonly note?: string; readonly expectedVersion?: number } = {}): Promise<Deal> {
    if (!isStage(to)) throw new InvalidInputError(`unknown stage ${JSON.stringify(to)}: one of ${STAGES.join(', ')}`)
    return this.#db.transaction(async (tx) => {
      const current = await new DealRepository(tx).get(dealId)
      if (options.expectedVersion !== undefined && options.expectedVersion !== current.version)
        throw new ConcurrentUpdateError(dealId, options.expectedVersion)
      if (!canMove(current.stage, to)) throw new InvalidStageTransitionError(dealId, current.stage, to)
      const now = this.#clock()
      const closedAt = isClosed(to) ? now : null
      const version = current.version + 1
      const { rowCount } = await tx.query(sql`
        update deals set stage = ${to}, version = ${version}, updated_at = ${now}, closed_at = ${closedAt}
        where id = ${dealId} and version = ${current.version}`)
      // under read committed another move can land between the read and this update
      if (rowCount === 0) throw new ConcurrentUpdateError(dealId, current.version)
      await tx.query(sql`
        insert into deal_stage_history (deal_id, seq, from_stage, to_stage, note, changed_at)
        values (${dealId}, ${version}, ${current.stage}, ${to}, ${options.note ?? null}, ${now})`)
      return { ...current, stage: to, version, updatedAt: now, closedAt }
    })
  }

  /** Every move of a deal, in order. */
  async history(dealId: string): Promise<StageChange[]> {
    const { rows } = await this.#db.query<{
      deal_id: string
      seq: unknown
      from_stage: string | null
      to_stage: string
      note: string | null
      changed_at: unknown
    }>(sql`select deal_id, seq, from_stage, to_stage, note, changed_at from deal_stage_history where deal_id = ${dealId} order by seq`)
    return rows.map((r) => ({
      dealId: r.deal_id,
      seq: toInteger(r.seq),
      from: r.from_stage as Stage | null,
      to: r.to_stage as Stage,
      note: r.note,
      changedAt: toDate(r.changed_at),
    }))
  }

  /** Count and total amount of deals per stage (every stage listed, in pipeline order). */
  async pipelineSummary(currency: string): Promise<PipelineSummary[]> {
    const { rows } = await this.#db.query<{ stage: string; deals: unknown; amount: unknown }>(
      sql`select stage, count(*) as deals, coalesce(sum(amount), 0) as amount from deals where currency = ${currency} group by stage`,
    )
    const byStage = new Map(rows.map((r) => [r.stage, r]))
    return STAGES.map((stage) => {
      const row = byStage.get(stage)
      return { stage, deals: row ? toInteger(row.deals) : 0, amount: row ? toInteger(row.amount) : 0 }
    })
  }
}

const columns = sql`id, customer_id, title, amount, currency, stage, version, created_at, updated_at, closed_at`

function toDeal(row: DealRow): Deal {
  return {
    id: row.id,
    customerId: row.customer_id,
    title: row.title,
    amount: toInteger(row.amount, 'amount'),
    currency: row.currency,
    stage: row.stage as Stage,
    version: toInteger(row.version, 'version'),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    closedAt: toNullableDate(row.closed_at),
  }
}
