import { randomUUID } from 'node:crypto'
import { DatabaseError, sql, type SqlFragment } from '@dbpool/core'
import { decodeCursor, encodeCursor } from './cursor'
import type { Db } from './db'
import { CustomerNotFoundError, DuplicateCustomerError, DuplicateEmailError, InvalidInputError } from './errors'
import { foldForSearch } from './search-text'
import { toDate, toInteger, toNullableDate } from './values'
import { checkedClock } from './dates'
import { checkObject } from './checks'
import { shownValue } from '@dbpool/example-kit'

/** A customer as stored. */
export interface Customer {
  readonly id: string
  readonly name: string
  /** Normalised: trimmed and lower-case. */
  readonly email: string
  readonly phone: string | null
  readonly createdAt: Date
  readonly updatedAt: Date
  /** Set by {@link CustomerRepository.softDelete}; `null` while the customer is active. */
  readonly deletedAt: Date | null
}

/** What {@link CustomerRepository.create} needs. */
export interface NewCustomer {
  /** A string of 1 to 200 characters, unique among all customers (deleted ones too). Default is a random UUID. */
  readonly id?: string
  readonly name: string
  readonly email: string
  /** A string of at most {@link MAX_PHONE_LENGTH} characters, or null. */
  readonly phone?: string | null
}

/** Fields {@link CustomerRepository.update} may change. */
export interface CustomerChanges {
  readonly name?: string
  readonly email?: string
  readonly phone?: string | null
}

/** One page of a keyset-paginated listing. */
export interface Page<T> {
  readonly items: readonly T[]
  /** Pass as `after` for the next page; `null` on the last page. */
  readonly nextCursor: string | null
}

/** Options of {@link CustomerRepository.list} and {@link CustomerRepository.search}. */
export interface PageOptions {
  /** Page size, 1 to 500. Default is `50`. */
  readonly limit?: number
  /** The `nextCursor` of the previous page. */
  readonly after?: string | null
}

interface CustomerRow {
  id: string
  name: string
  email: string
  phone: string | null
  created_at: unknown
  updated_at: unknown
  deleted_at: unknown
}

/**
 * Customers, with a unique email among active customers, search by name or email, keyset
 * pagination by (name, id) and soft delete. A deleted customer disappears from every read here and
 * frees its email; {@link restore} brings it back.
 *
 * ```ts
 * const customers = new CustomerRepository(pool)
 * const c = await customers.create({ name: 'Ada Lovelace', email: 'ada@example.com' })
 * const page = await customers.search('ada', { limit: 20 })
 * ```
 */
export class CustomerRepository {
  readonly #db: Db
  readonly #clock: () => Date

  /**
   * `clock`: where timestamps come from, default `() => new Date()`; a reading that is not a Date
   * within years 0000 to 9999 (UTC) is INVALID_INPUT naming `clock` (`checkDate`).
   */
  constructor(db: Db, options: { readonly clock?: () => Date } = {}) {
    this.#db = db
    this.#clock = checkedClock(options.clock)
  }

  /**
   * Adds a customer; DUPLICATE_CUSTOMER when a customer (active or deleted) already has the id,
   * DUPLICATE_EMAIL when an active customer has the email (the id is checked first when both are
   * taken), INVALID_INPUT for an id that is not a string of 1 to 200 characters, a bad name or email.
   */
  async create(input: NewCustomer): Promise<Customer> {
    checkObject(input, 'input')
    if (input.id !== undefined && (typeof input.id !== 'string' || input.id === '' || input.id.length > 200))
      throw new InvalidInputError(`id ${JSON.stringify(input.id)?.slice(0, 60)}: must be a string of 1 to 200 characters`, {
        option: 'id',
      })
    const now = this.#clock()
    const customer: Customer = {
      id: input.id ?? randomUUID(),
      name: checkName(input.name),
      email: normaliseEmail(input.email),
      phone: checkPhone(input.phone),
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    }
    // `on conflict (id) do nothing` handles the id alone (both engines): a taken id inserts nothing,
    // a taken email still raises UNIQUE_VIOLATION (the only other unique key)
    const { rowCount } = await this.#unique(customer.email, () =>
      this.#db.query(sql`
        insert into customers (id, name, email, phone, created_at, updated_at, deleted_at, name_search, email_search)
        values (${customer.id}, ${customer.name}, ${customer.email}, ${customer.phone}, ${now}, ${now}, ${null},
                ${foldForSearch(customer.name)}, ${foldForSearch(customer.email)})
        on conflict (id) do nothing`),
    )
    if (rowCount === 0) throw new DuplicateCustomerError(customer.id)
    return customer
  }

  /** The active customer, or undefined (also for a deleted one unless `includeDeleted`). */
  async findById(id: string, options: { readonly includeDeleted?: boolean } = {}): Promise<Customer | undefined> {
    checkObject(options, 'options')
    const active = options.includeDeleted ? sql.empty : sql`and deleted_at is null`
    const { rows } = await this.#db.query<CustomerRow>(sql`select ${columns} from customers where id = ${id} ${active}`)
    return rows[0] && toCustomer(rows[0])
  }

  /** The active customer, or CUSTOMER_NOT_FOUND. */
  async get(id: string): Promise<Customer> {
    const customer = await this.findById(id)
    if (!customer) throw new CustomerNotFoundError(id)
    return customer
  }

  /** The active customer with this email (compared normalised), or undefined. */
  async findByEmail(email: string): Promise<Customer | undefined> {
    const { rows } = await this.#db.query<CustomerRow>(
      sql`select ${columns} from customers where email = ${normaliseEmail(email)} and deleted_at is null`,
    )
    return rows[0] && toCustomer(rows[0])
  }

  /**
   * Changes name, email or phone of an active customer; DUPLICATE_EMAIL, CUSTOMER_NOT_FOUND. Returns
   * the customer as this call's UPDATE left it (`update ... returning`, one statement): never a
   * concurrent caller's values, and never CUSTOMER_NOT_FOUND once the change is stored.
   */
  async update(id: string, changes: CustomerChanges): Promise<Customer> {
    const sets: SqlFragment[] = []
    checkObject(changes, 'changes')
    if (changes.name !== undefined) {
      const name = checkName(changes.name)
      sets.push(sql`name = ${name}`, sql`name_search = ${foldForSearch(name)}`)
    }
    const email = changes.email === undefined ? undefined : normaliseEmail(changes.email)
    if (email !== undefined) sets.push(sql`email = ${email}`, sql`email_search = ${foldForSearch(email)}`)
    if (changes.phone !== undefined) sets.push(sql`phone = ${checkPhone(changes.phone)}`)
    sets.push(sql`updated_at = ${this.#clock()}`)
    // `returning`: the row as this statement wrote it (SQLite 3.35+, Postgres). A re-read after the
    // write could see a softDelete or another update that landed in between.
    const { rows } = await this.#unique(email ?? '', () =>
      this.#db.query<CustomerRow>(sql`update customers set ${sql.join(sets)} where id = ${id} and deleted_at is null returning ${columns}`),
    )
    if (!rows[0]) throw new CustomerNotFoundError(id)
    return toCustomer(rows[0])
  }

  /** Marks an active customer deleted (its email becomes free); false when there was none. */
  async softDelete(id: string): Promise<boolean> {
    const now = this.#clock()
    const { rowCount } = await this.#db.query(
      sql`update customers set deleted_at = ${now}, updated_at = ${now} where id = ${id} and deleted_at is null`,
    )
    return rowCount === 1
  }

  /**
   * Brings a deleted customer back and returns it as this call's UPDATE left it (`returning`);
   * DUPLICATE_EMAIL when its email was taken meanwhile, CUSTOMER_NOT_FOUND when it is not deleted
   * (or another call restored it first).
   */
  async restore(id: string): Promise<Customer> {
    const deleted = await this.findById(id, { includeDeleted: true })
    if (!deleted || deleted.deletedAt === null) throw new CustomerNotFoundError(id)
    const { rows } = await this.#unique(deleted.email, () =>
      this.#db.query<CustomerRow>(
        sql`update customers set deleted_at = ${null}, updated_at = ${this.#clock()} where id = ${id} and deleted_at is not null returning ${columns}`,
      ),
    )
    // restored by a concurrent call in between: not this call's doing
    if (!rows[0]) throw new CustomerNotFoundError(id)
    return toCustomer(rows[0])
  }

  /** Active customers ordered by (name, id), one page at a time. */
  list(options: PageOptions = {}): Promise<Page<Customer>> {
    return this.#page(sql.empty, options)
  }

  /**
   * Active customers whose name or email contains `term` (`%` and `_` match themselves), ordered by
   * (name, id), one page at a time. Case-insensitive for every script, the same on both backends:
   * the term and the stored `name_search` / `email_search` columns are folded in JS by
   * {@link foldForSearch} (NFKC, then `toLowerCase()`), so `ÉMILE` finds `Émile` and `öko` finds
   * `ÖKO` on SQLite as on Postgres, whatever the database's locale. INVALID_INPUT (naming `term`) for
   * a term that is not a string, empty, or longer than {@link MAX_SEARCH_TERM_LENGTH} characters once
   * trimmed: no name (200) or email (254) is longer, and SQLite refuses a LIKE pattern over 50,000
   * bytes ("LIKE or GLOB pattern too complex") where Postgres would answer, so both refuse it here.
   */
  async search(term: string, options: PageOptions = {}): Promise<Page<Customer>> {
    if (typeof term !== 'string' || term.trim() === '')
      throw new InvalidInputError('a search term must be a non-empty string', { option: 'term' })
    if (term.trim().length > MAX_SEARCH_TERM_LENGTH)
      throw new InvalidInputError(`a search term must be at most ${MAX_SEARCH_TERM_LENGTH} characters (got ${term.trim().length})`, {
        option: 'term',
        length: term.trim().length,
      })
    const pattern = `%${foldForSearch(term.trim()).replace(/[\\%_]/g, (c) => `\\${c}`)}%`
    // a row not yet backfilled (name_search null: written before migration 0004) falls back to its old columns
    return this.#page(
      sql`and (coalesce(name_search, lower(name)) like ${pattern} escape '\\' or coalesce(email_search, email) like ${pattern} escape '\\')`,
      options,
    )
  }

  /** How many customers there are: active ones, or every one with `includeDeleted`. */
  async count(options: { readonly includeDeleted?: boolean } = {}): Promise<number> {
    checkObject(options, 'options')
    const where = options.includeDeleted ? sql.empty : sql`where deleted_at is null`
    const { rows } = await this.#db.query<{ n: unknown }>(sql`select count(*) as n from customers ${where}`)
    return toInteger(rows[0]?.n)
  }

  async #page(filter: SqlFragment, options: PageOptions): Promise<Page<Customer>> {
    checkObject(options, 'options')
    const limit = options.limit ?? 50
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 500)
      throw new InvalidInputError(`limit ${shownValue(limit)} must be an integer from 1 to 500`, { option: 'limit', value: limit })
    if (options.after !== undefined && options.after !== null && typeof options.after !== 'string')
      throw new InvalidInputError(`after ${shownValue(options.after)}: must be a nextCursor string or null`, { option: 'after' })
    let after = sql.empty
    if (options.after) {
      const [name, id] = decodeCursor(options.after, 2) as [string, string]
      after = sql`and (name > ${name} or (name = ${name} and id > ${id}))`
    }
    // one row more than asked tells whether another page follows
    const { rows } = await this.#db.query<CustomerRow>(sql`
      select ${columns} from customers
      where deleted_at is null ${filter} ${after}
      order by name, id
      limit ${limit + 1}`)
    const items = rows.slice(0, limit).map(toCustomer)
    const last = items[items.length - 1]
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.name, last.id]) : null }
  }

  async #unique<T>(email: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write()
    } catch (err) {
      // the active-email index is the table's only unique key besides the id (which create() handles)
      if (DatabaseError.is(err, 'UNIQUE_VIOLATION')) throw new DuplicateEmailError(email, err)
      throw err
    }
  }
}

const columns = sql`id, name, email, phone, created_at, updated_at, deleted_at`

/**
 * The longest search term (trimmed) {@link CustomerRepository.search} takes: the longest email (254
 * characters). Folding (NFKC) and escaping keep the LIKE pattern of such a term well under SQLite's
 * 50,000-byte limit (SQLITE_MAX_LIKE_PATTERN_LENGTH).
 */
export const MAX_SEARCH_TERM_LENGTH = 254

function toCustomer(row: CustomerRow): Customer {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    phone: row.phone,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    deletedAt: toNullableDate(row.deleted_at),
  }
}

/** Trims and lower-cases an email and checks its shape; INVALID_INPUT otherwise. */
export function normaliseEmail(email: unknown): string {
  if (typeof email !== 'string') throw new InvalidInputError('email must be a string', { option: 'email' })
  const normalised = email.trim().toLowerCase()
  if (normalised.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(normalised))
    throw new InvalidInputError(`invalid email ${JSON.stringify(email.slice(0, 300))}`, { option: 'email', email: email.slice(0, 300) })
  return normalised
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200)
    throw new InvalidInputError('name must be a non-empty string of at most 200 characters')
  return name.trim()
}

/** The longest phone number (a free-form string) a customer or contact takes. */
export const MAX_PHONE_LENGTH = 50

/** `null` for `undefined` / `null`; otherwise a string of at most {@link MAX_PHONE_LENGTH} characters, INVALID_INPUT naming `phone`. */
export function checkPhone(phone: unknown): string | null {
  if (phone === undefined || phone === null) return null
  if (typeof phone !== 'string' || phone.length > MAX_PHONE_LENGTH)
    throw new InvalidInputError(`phone must be a string of at most ${MAX_PHONE_LENGTH} characters or null`, { option: 'phone' })
  return phone
}
