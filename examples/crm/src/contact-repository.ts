import { randomUUID } from 'node:crypto'
import { sql } from '@dbpool/core'
import type { Db } from './db'
import { CustomerNotFoundError, InvalidInputError } from './errors'
import { checkPhone, normaliseEmail } from './customer-repository'
import { toDate, toInteger } from './values'
import { checkedClock } from './dates'
import { checkObject } from './checks'

/** A person at a customer. */
export interface Contact {
  readonly id: string
  readonly customerId: string
  readonly name: string
  readonly email: string | null
  readonly phone: string | null
  /** e.g. `buyer`, `CTO`. */
  readonly role: string | null
  readonly createdAt: Date
}

/** What {@link ContactRepository.add} needs. */
export interface NewContact {
  /** A non-empty string of at most 200 characters. */
  readonly name: string
  /** Checked and normalised as a customer's (`normaliseEmail`: trimmed, lower-case); not unique. */
  readonly email?: string | null
  /** A string of at most 50 characters. */
  readonly phone?: string | null
  /** A string of at most 200 characters. */
  readonly role?: string | null
}

interface ContactRow {
  id: string
  customer_id: string
  name: string
  email: string | null
  phone: string | null
  role: string | null
  created_at: unknown
}

/** Contacts of customers. Adding one to a missing or deleted customer is CUSTOMER_NOT_FOUND. */
export class ContactRepository {
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
   * Adds a contact to an active customer: CUSTOMER_NOT_FOUND, or INVALID_INPUT naming the field for
   * an `input` that is not an object, a bad name, email, phone or role.
   */
  async add(customerId: string, input: NewContact): Promise<Contact> {
    checkObject(input, 'input')
    if (typeof input.name !== 'string' || input.name.trim() === '' || input.name.length > 200)
      throw new InvalidInputError('a contact needs a name: a non-empty string of at most 200 characters', { option: 'name' })
    if (input.role !== undefined && input.role !== null && (typeof input.role !== 'string' || input.role.length > 200))
      throw new InvalidInputError('role must be a string of at most 200 characters or null', { option: 'role' })
    const contact: Contact = {
      id: randomUUID(),
      customerId,
      name: input.name.trim(),
      // validated and normalised as a customer's email is (trimmed, lower-case, an address's shape)
      email: input.email === undefined || input.email === null ? null : normaliseEmail(input.email),
      phone: checkPhone(input.phone),
      role: input.role ?? null,
      createdAt: this.#clock(),
    }
    await this.#db.transaction(async (tx) => {
      await lockActiveCustomer(tx, customerId)
      await tx.query(sql`
        insert into contacts (id, customer_id, name, email, phone, role, created_at)
        values (${contact.id}, ${customerId}, ${contact.name}, ${contact.email}, ${contact.phone}, ${contact.role}, ${contact.createdAt})`)
    })
    return contact
  }

  /** The contacts of a customer, oldest first. */
  async listForCustomer(customerId: string): Promise<Contact[]> {
    const { rows } = await this.#db.query<ContactRow>(
      sql`select id, customer_id, name, email, phone, role, created_at from contacts where customer_id = ${customerId} order by created_at, id`,
    )
    return rows.map((r) => ({
      id: r.id,
      customerId: r.customer_id,
      name: r.name,
      email: r.email,
      phone: r.phone,
      role: r.role,
      createdAt: toDate(r.created_at),
    }))
  }

  /** Removes a contact; false when there was none. */
  async remove(id: string): Promise<boolean> {
    const { rowCount } = await this.#db.query(sql`delete from contacts where id = ${id}`)
    return rowCount === 1
  }

  /** How many contacts exist. */
  async count(): Promise<number> {
    const { rows } = await this.#db.query<{ n: unknown }>(sql`select count(*) as n from contacts`)
    return toInteger(rows[0]?.n)
  }
}

/**
 * CUSTOMER_NOT_FOUND unless `customerId` is an active customer, checked under its row lock (held to
 * the end of the caller's transaction). A no-op update, SQL both engines take (SQLite has no `for
 * share`): it waits for a concurrent `softDelete`, re-reads the row and then matches nothing. A plain
 * select would miss a delete committed between it and the caller's insert (read committed), and the
 * insert's foreign-key check takes a lock that the soft delete's update does not conflict with.
 * @internal
 */
export async function lockActiveCustomer(db: Db, customerId: string): Promise<void> {
  const { rowCount } = await db.query(sql`update customers set updated_at = updated_at where id = ${customerId} and deleted_at is null`)
  if (rowCount === 0) throw new CustomerNotFoundError(customerId)
}
