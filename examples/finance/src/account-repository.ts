import { randomUUID } from 'node:crypto'
import { DatabaseError, sql } from '@dbpool/core'
import type { Db } from './db'
import { AccountNotFoundError, DuplicateAccountError, InvalidEntryError } from './errors'
import { toDate, toInteger, toNullableInteger } from './values'

/** An account as stored. Amounts are integer minor units. */
export interface Account {
  readonly id: string
  readonly name: string
  /** ISO 4217 code, e.g. `EUR`. */
  readonly currency: string
  /** The lowest balance allowed (negative: an overdraft); `null` for no limit. */
  readonly minBalance: number | null
  readonly balance: number
  readonly createdAt: Date
}

/** What {@link AccountRepository.create} needs. */
export interface NewAccount {
  /** Default is a random UUID. */
  readonly id?: string
  readonly name: string
  readonly currency: string
  /** Default is `0` (no overdraft); `null` for no limit (a system account such as equity). */
  readonly minBalance?: number | null
}

/** Totals over every account (one currency assumed per call: filter by currency to mix). */
export interface BalanceSummary {
  readonly accounts: number
  readonly total: number
  readonly min: number
  readonly max: number
  readonly belowLimit: number
}

interface AccountRow {
  id: string
  name: string
  currency: string
  min_balance: unknown
  balance: unknown
  created_at: unknown
}

/**
 * Accounts of the ledger. Balances change only through {@link TransactionRepository.post}, never here.
 *
 * ```ts
 * const accounts = new AccountRepository(pool)
 * const acc = await accounts.create({ name: 'Alice', currency: 'EUR' })
 * await accounts.get(acc.id)
 * ```
 */
export class AccountRepository {
  readonly #db: Db
  readonly #clock: () => Date

  constructor(db: Db, options: { readonly clock?: () => Date } = {}) {
    this.#db = db
    this.#clock = options.clock ?? (() => new Date())
  }

  /** Opens an account with a zero balance; DUPLICATE_ACCOUNT when the id is taken. */
  async create(input: NewAccount): Promise<Account> {
    const account: Account = {
      id: input.id ?? randomUUID(),
      name: input.name,
      currency: checkCurrency(input.currency),
      minBalance: input.minBalance === undefined ? 0 : input.minBalance === null ? null : checkLimit(input.minBalance),
      balance: 0,
      createdAt: this.#clock(),
    }
    try {
      await this.#db.query(sql`
        insert into accounts (id, name, currency, min_balance, balance, created_at)
        values (${account.id}, ${account.name}, ${account.currency}, ${account.minBalance}, ${0}, ${account.createdAt})`)
    } catch (err) {
      if (DatabaseError.is(err, 'UNIQUE_VIOLATION')) throw new DuplicateAccountError(account.id, err)
      throw err
    }
    return account
  }

  /** The account, or undefined. */
  async findById(id: string): Promise<Account | undefined> {
    const { rows } = await this.#db.query<AccountRow>(sql`select ${columns} from accounts where id = ${id}`)
    return rows[0] && toAccount(rows[0])
  }

  /** The account, or ACCOUNT_NOT_FOUND. */
  async get(id: string): Promise<Account> {
    const account = await this.findById(id)
    if (!account) throw new AccountNotFoundError(id)
    return account
  }

  /** One page of accounts by id (keyset pagination): pass the last id seen as `after`. */
  async list(options: { readonly limit?: number; readonly after?: string } = {}): Promise<Account[]> {
    const limit = options.limit ?? 100
    const after = options.after === undefined ? sql.empty : sql`where id > ${options.after}`
    const { rows } = await this.#db.query<AccountRow>(sql`select ${columns} from accounts ${after} order by id limit ${limit}`)
    return rows.map(toAccount)
  }

  /** The current balance, or ACCOUNT_NOT_FOUND. */
  async balance(id: string): Promise<number> {
    return (await this.get(id)).balance
  }

  /** Current balances of the given accounts (missing ids are left out). */
  async balances(ids: readonly string[]): Promise<Map<string, number>> {
    if (ids.length === 0) return new Map()
    const { rows } = await this.#db.query<{ id: string; balance: unknown }>(
      sql`select id, balance from accounts where id in (${sql.join(ids)})`,
    )
    return new Map(rows.map((r) => [r.id, toInteger(r.balance, 'balance')]))
  }

  /** Count, total, lowest and highest balance, and how many are below their limit, over accounts of one currency. */
  async summary(currency: string, options: { readonly excludeUnlimited?: boolean } = {}): Promise<BalanceSummary> {
    const unlimited = options.excludeUnlimited ? sql`and min_balance is not null` : sql.empty
    const { rows } = await this.#db.query<Record<string, unknown>>(sql`
      select count(*) as accounts, coalesce(sum(balance), 0) as total, coalesce(min(balance), 0) as min, coalesce(max(balance), 0) as max,
             coalesce(sum(case when min_balance is not null and balance < min_balance then 1 else 0 end), 0) as below
      from accounts where currency = ${currency} ${unlimited}`)
    const r = rows[0] ?? {}
    return {
      accounts: toInteger(r.accounts),
      total: toInteger(r.total),
      min: toInteger(r.min),
      max: toInteger(r.max),
      belowLimit: toInteger(r.below),
    }
  }
}

const columns = sql`id, name, currency, min_balance, balance, created_at`

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    name: row.name,
    currency: row.currency,
    minBalance: toNullableInteger(row.min_balance, 'min_balance'),
    balance: toInteger(row.balance, 'balance'),
    createdAt: toDate(row.created_at),
  }
}

/** @internal */
export function checkCurrency(currency: unknown): string {
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency))
    throw new InvalidEntryError(`currency ${JSON.stringify(currency)}: must be a 3-letter ISO 4217 code`)
  return currency
}

function checkLimit(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value > 0) {
    throw new InvalidEntryError(`minBalance ${String(value)}: must be an integer <= 0 (minor units) or null`)
  }
  return value
}
