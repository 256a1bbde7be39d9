import { randomUUID } from 'node:crypto'
import { DatabaseError, sql } from '@dbpool/core'
import { atomically, type Db } from './db'
import { AccountNotFoundError, DuplicateAccountError, InvalidEntryError } from './errors'
import { toBigInteger, toDate, toInteger, toNullableInteger } from './values'
import { checkedClock } from './dates'
import { checkObject } from './checks'
import { shownValue } from '@dbpool/example-kit'

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
  /**
   * Sum of the balances in minor units, exact: a `bigint`, since each balance is within ±(2^53 - 1)
   * but their sum need not be.
   */
  readonly total: bigint
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

  /**
   * `clock`: where timestamps come from, default `() => new Date()`; a reading that is not a Date
   * within years 0000 to 9999 (UTC) is INVALID_ENTRY naming `clock` (`checkDate`).
   */
  constructor(db: Db, options: { readonly clock?: () => Date } = {}) {
    this.#db = db
    this.#clock = checkedClock(options.clock)
  }

  /**
   * Opens an account with a zero balance; DUPLICATE_ACCOUNT when the id is taken, INVALID_ENTRY for
   * an id that is not a string of 1 to 200 characters, a name that is not a string of at most 200, a
   * bad currency or limit.
   */
  async create(input: NewAccount): Promise<Account> {
    checkObject(input, 'input')
    if (input.id !== undefined && (typeof input.id !== 'string' || input.id === '' || input.id.length > 200))
      throw new InvalidEntryError(`id ${JSON.stringify(input.id)}: must be a string of 1 to 200 characters`, { option: 'id' })
    if (typeof input.name !== 'string' || input.name.length > 200)
      throw new InvalidEntryError('name must be a string of at most 200 characters', { option: 'name' })
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

  /**
   * One page of accounts by id (keyset pagination): pass the last id seen as `after`. `limit` is an
   * integer from 1 to {@link MAX_PAGE_SIZE} (default `100`), `after` a string: anything else is
   * INVALID_ENTRY naming the option, checked here because the backends disagree (SQLite reads
   * `limit -1` as no limit and refuses `2.5`; Postgres refuses both, with other errors).
   */
  async list(options: { readonly limit?: number; readonly after?: string } = {}): Promise<Account[]> {
    checkObject(options, 'options')
    const limit = checkPageLimit(options.limit)
    if (options.after !== undefined && typeof options.after !== 'string')
      throw new InvalidEntryError(`after ${shownValue(options.after)}: must be an account id (a string)`, { option: 'after' })
    const after = options.after === undefined ? sql.empty : sql`where id > ${options.after}`
    const { rows } = await this.#db.query<AccountRow>(sql`select ${columns} from accounts ${after} order by id limit ${limit}`)
    return rows.map(toAccount)
  }

  /** The current balance, or ACCOUNT_NOT_FOUND. */
  async balance(id: string): Promise<number> {
    return (await this.get(id)).balance
  }

  /**
   * Current balances of the given accounts (missing ids are left out). `ids` is an array of strings
   * (INVALID_ENTRY otherwise), of any length: beyond {@link IN_LIST_CHUNK} ids it is read in chunks
   * inside one read-only repeatable-read transaction (one snapshot), so a long list works the same on
   * SQLite (at most 32,766 parameters a statement) and Postgres (65,535). On a transaction the chunks
   * are read in it (a savepoint, under the caller's isolation: one snapshot when that is repeatable
   * read or serializable, or on SQLite).
   */
  async balances(ids: readonly string[]): Promise<Map<string, number>> {
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string'))
      throw new InvalidEntryError('ids must be an array of account ids (strings)', { option: 'ids' })
    if (ids.length === 0) return new Map()
    if (ids.length <= IN_LIST_CHUNK) return readBalances(this.#db, ids)
    return atomically(
      this.#db,
      async (tx) => {
        const out = new Map<string, number>()
        for (let i = 0; i < ids.length; i += IN_LIST_CHUNK)
          for (const [id, balance] of await readBalances(tx, ids.slice(i, i + IN_LIST_CHUNK))) out.set(id, balance)
        return out
      },
      { isolation: 'repeatable read', readOnly: true },
    )
  }

  /** Count, total, lowest and highest balance, and how many are below their limit, over accounts of one currency. */
  async summary(currency: string, options: { readonly excludeUnlimited?: boolean } = {}): Promise<BalanceSummary> {
    checkObject(options, 'options')
    const unlimited = options.excludeUnlimited ? sql`and min_balance is not null` : sql.empty
    const { rows } = await this.#db.query<Record<string, unknown>>(sql`
      select count(*) as accounts, coalesce(sum(balance), 0) as total, coalesce(min(balance), 0) as min, coalesce(max(balance), 0) as max,
             coalesce(sum(case when min_balance is not null and balance < min_balance then 1 else 0 end), 0) as below
      from accounts where currency = ${currency} ${unlimited}`)
    const r = rows[0] ?? {}
    return {
      accounts: toInteger(r.accounts),
      total: toBigInteger(r.total, 'total'),
      min: toInteger(r.min),
      max: toInteger(r.max),
      belowLimit: toInteger(r.below),
    }
  }
}

const columns = sql`id, name, currency, min_balance, balance, created_at`

/** The largest page {@link AccountRepository.list} returns. */
export const MAX_PAGE_SIZE = 10_000

/** Ids per `in (...)` list: well under SQLite's 32,766 parameters a statement and Postgres's 65,535. */
export const IN_LIST_CHUNK = 1_000

/** @internal `limit` of a page: an integer from 1 to {@link MAX_PAGE_SIZE}, default 100; INVALID_ENTRY otherwise. */
export function checkPageLimit(limit: unknown): number {
  if (limit === undefined) return 100
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE)
    throw new InvalidEntryError(`limit ${shownValue(limit)}: must be an integer from 1 to ${MAX_PAGE_SIZE}`, {
      option: 'limit',
      value: limit,
    })
  return limit
}

async function readBalances(db: Db, ids: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await db.query<{ id: string; balance: unknown }>(sql`select id, balance from accounts where id in (${sql.join(ids)})`)
  return new Map(rows.map((r) => [r.id, toInteger(r.balance, 'balance')]))
}

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
    throw new InvalidEntryError(`minBalance ${shownValue(value)}: must be an integer <= 0 (minor units) or null`)
  }
  return value
}
