import { DatabaseError } from '@dbpool/core'
import {
  ContactRepository,
  CustomerNotFoundError,
  CustomerRepository,
  DuplicateCustomerError,
  DuplicateEmailError,
  InvalidCursorError,
  InvalidInputError,
  MAX_SEARCH_TERM_LENGTH,
  checkCrmInvariants,
  resetCrm,
  type CrmError,
  type Customer,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

describe.each(BACKENDS)('CustomerRepository on %s', (backend) => {
  let db: TestDb
  let customers: CustomerRepository
  let now: Date

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetCrm(db.pool)
    now = new Date('2024-06-01T09:00:00.000Z')
    customers = new CustomerRepository(db.pool, { clock: () => now })
  })
  afterEach(async () => {
    expect((await checkCrmInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  async function all(
    page: (after: string | null) => Promise<{ items: readonly Customer[]; nextCursor: string | null }>,
  ): Promise<Customer[]> {
    const out: Customer[] = []
    let after: string | null = null
    for (let guard = 0; guard < 1_000; guard++) {
      const { items, nextCursor } = await page(after)
      out.push(...items)
      if (nextCursor === null) return out
      after = nextCursor
    }
    throw new Error('pagination did not end')
  }

  it('creates a customer with a normalised email and reads it back', async () => {
    const created = await customers.create({ name: '  Ada Lovelace ', email: ' Ada@Example.COM ', phone: '+44 1' })
    expect(created).toMatchObject({ name: 'Ada Lovelace', email: 'ada@example.com', phone: '+44 1', deletedAt: null })
    expect(await customers.get(created.id)).toEqual(created)
    expect(await customers.findByEmail('ADA@example.com')).toEqual(created)
  })

  it('maps a duplicate email (UNIQUE_VIOLATION) to DuplicateEmailError, whatever its case', async () => {
    await customers.create({ name: 'Ada', email: 'ada@example.com' })
    const err = await rejection(customers.create({ name: 'Other Ada', email: 'ADA@example.com ' }))
    expect(err).toBeInstanceOf(DuplicateEmailError)
    expect(err).toMatchObject({ code: 'DUPLICATE_EMAIL', email: 'ada@example.com' })
    expect(DatabaseError.is((err as Error).cause, 'UNIQUE_VIOLATION')).toBe(true)
    expect(await customers.count()).toBe(1)
  })

  it('concurrent creates with one email: exactly one wins, the others get DuplicateEmailError', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => customers.create({ name: `Twin ${i}`, email: 'twin@example.com' })),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(DuplicateEmailError)
  })

  it("a taken id is DuplicateCustomerError naming the id (even a deleted customer's, even when the email is taken too); ids are checked", async () => {
    const first = await customers.create({ id: 'c1', name: 'Ada', email: 'ada@example.com' })
    for (const input of [
      { id: 'c1', name: 'Bob', email: 'bob@example.com' },
      { id: 'c1', name: 'Bob', email: 'ada@example.com' },
    ]) {
      const err = await rejection(customers.create(input))
      expect(err).toBeInstanceOf(DuplicateCustomerError)
      expect(err).toMatchObject({ code: 'DUPLICATE_CUSTOMER', detail: { customerId: 'c1' } })
    }
    await customers.softDelete('c1')
    expect(await rejection(customers.create({ id: 'c1', name: 'Bob', email: 'bob@example.com' }))).toBeInstanceOf(DuplicateCustomerError)
    expect((await customers.create({ id: 'c2', name: 'Bob', email: 'bob@example.com' })).id).toBe('c2')
    expect(await customers.findById('c1', { includeDeleted: true })).toEqual({ ...first, deletedAt: now, updatedAt: now })
    for (const id of ['', 42, 'x'.repeat(201), null]) {
      const err = await rejection(customers.create({ id: id as string, name: 'Eve', email: 'eve@example.com' }))
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err).toMatchObject({ code: 'INVALID_INPUT', detail: { option: 'id' } })
    }
    expect((await customers.create({ id: 'x'.repeat(200), name: 'Eve', email: 'eve@example.com' })).id).toHaveLength(200)
    expect(await customers.count({ includeDeleted: true })).toBe(3)
  })

  it('refuses malformed input', async () => {
    await expect(customers.create({ name: 'x', email: 'not-an-email' })).rejects.toBeInstanceOf(InvalidInputError)
    await expect(customers.create({ name: ' ', email: 'a@b.co' })).rejects.toBeInstanceOf(InvalidInputError)
    await expect(customers.search('  ')).rejects.toBeInstanceOf(InvalidInputError)
    await expect(customers.list({ limit: 0 })).rejects.toBeInstanceOf(InvalidInputError)
  })

  it('updates fields; a taken email is DuplicateEmailError; an unknown id CustomerNotFoundError', async () => {
    const a = await customers.create({ name: 'A', email: 'a@example.com' })
    await customers.create({ name: 'B', email: 'b@example.com' })
    now = new Date('2024-06-02T09:00:00.000Z')
    const updated = await customers.update(a.id, { name: 'Alpha', phone: '123' })
    expect(updated).toMatchObject({ name: 'Alpha', email: 'a@example.com', phone: '123', updatedAt: now })
    await expect(customers.update(a.id, { email: 'B@example.com' })).rejects.toBeInstanceOf(DuplicateEmailError)
    await expect(customers.update('ghost', { name: 'x' })).rejects.toBeInstanceOf(CustomerNotFoundError)
  })

  it("update() returns what it wrote: never CUSTOMER_NOT_FOUND once stored (racing softDelete), never another caller's values", async () => {
    for (let i = 0; i < 10; i++) {
      const x = await customers.create({ name: 'Orig', email: `x${i}@example.com` })
      const [updated] = await Promise.allSettled([customers.update(x.id, { name: 'Changed' }), customers.softDelete(x.id)])
      const stored = await customers.findById(x.id, { includeDeleted: true })
      // either the update came first (and says so) or the delete did (and the update changed nothing)
      if (stored?.name === 'Changed') expect(updated).toMatchObject({ status: 'fulfilled', value: { name: 'Changed' } })
      else expect(updated).toMatchObject({ status: 'rejected', reason: { code: 'CUSTOMER_NOT_FOUND' } })
      const y = await customers.create({ name: 'Y', email: `y${i}@example.com` })
      const [first, second] = await Promise.all([customers.update(y.id, { name: 'First' }), customers.update(y.id, { name: 'Second' })])
      expect([first.name, second.name]).toEqual(['First', 'Second'])
      const [restored] = await Promise.allSettled([customers.restore(x.id), customers.update(x.id, { name: 'Again' })])
      if (restored.status === 'fulfilled') expect(restored.value.deletedAt).toBeNull()
    }
  })

  it('soft delete hides the customer everywhere and frees its email; restore brings it back', async () => {
    const a = await customers.create({ name: 'Gone Soon', email: 'gone@example.com' })
    expect(await customers.softDelete(a.id)).toBe(true)
    expect(await customers.softDelete(a.id)).toBe(false)
    expect(await customers.findById(a.id)).toBeUndefined()
    expect((await customers.findById(a.id, { includeDeleted: true }))?.deletedAt).toEqual(now)
    await expect(customers.get(a.id)).rejects.toBeInstanceOf(CustomerNotFoundError)
    expect((await customers.list()).items).toEqual([])
    expect((await customers.search('gone')).items).toEqual([])
    expect(await customers.count()).toBe(0)
    expect(await customers.count({ includeDeleted: true })).toBe(1)
    await expect(new ContactRepository(db.pool).add(a.id, { name: 'x' })).rejects.toBeInstanceOf(CustomerNotFoundError)

    // the email is free again: a new customer takes it, and restoring the old one then collides
    const b = await customers.create({ name: 'New Owner', email: 'gone@example.com' })
    await expect(customers.restore(a.id)).rejects.toBeInstanceOf(DuplicateEmailError)
    await customers.softDelete(b.id)
    expect((await customers.restore(a.id)).deletedAt).toBeNull()
    expect((await customers.findByEmail('gone@example.com'))?.id).toBe(a.id)
  })

  it('keyset pagination visits every active customer exactly once, in (name, id) order, with ties on name', async () => {
    const names = ['Carol', 'alice', 'Bob', 'Bob', 'Bob', 'Dave', 'Eve', 'Bob', 'Frank', 'Alice']
    const created: Customer[] = []
    for (let i = 0; i < 37; i++) created.push(await customers.create({ name: `${names[i % names.length]}`, email: `c${i}@example.com` }))
    await customers.softDelete((created[5] as Customer).id)
    const pages: number[] = []
    const seen = await all(async (after) => {
      const page = await customers.list({ limit: 7, after })
      pages.push(page.items.length)
      return page
    })
    expect(pages).toEqual([7, 7, 7, 7, 7, 1])
    expect(seen).toHaveLength(36)
    expect(new Set(seen.map((c) => c.id)).size).toBe(36)
    // the order is the database's ORDER BY name, id: the same whether read in pages or at once
    const oneGo = (await customers.list({ limit: 500 })).items.map((c) => c.id)
    expect(seen.map((c) => c.id)).toEqual(oneGo)
    // within one name, ids ascend
    const bobs = seen.filter((c) => c.name === 'Bob').map((c) => c.id)
    expect(bobs).toEqual([...bobs].sort())
  })

  it('keeps a cursor valid while rows are added before and after it', async () => {
    for (let i = 0; i < 10; i++) await customers.create({ name: `M ${i}`, email: `m${i}@example.com` })
    const first = await customers.list({ limit: 5 })
    await customers.create({ name: 'A first', email: 'afirst@example.com' })
    await customers.create({ name: 'Z last', email: 'zlast@example.com' })
    const rest = await all((after) => customers.list({ limit: 5, after: after ?? first.nextCursor }))
    expect(rest.map((c) => c.name)).toEqual(['M 5', 'M 6', 'M 7', 'M 8', 'M 9', 'Z last'])
  })

  it('refuses a forged cursor', async () => {
    await expect(customers.list({ after: 'bm90IGpzb24' })).rejects.toBeInstanceOf(InvalidCursorError)
    const err = (await rejection(customers.list({ after: Buffer.from('[1,2]').toString('base64url') }))) as CrmError
    expect(err.code).toBe('INVALID_CURSOR')
  })

  it('searches name or email, case-insensitively, with % and _ taken literally, paginated', async () => {
    await customers.create({ name: 'Grace Hopper', email: 'grace@navy.test' })
    await customers.create({ name: 'Grace Kelly', email: 'kelly@monaco.test' })
    await customers.create({ name: 'Alan Turing', email: 'alan@bletchley.test' })
    await customers.create({ name: '100% Discount', email: 'promo@shop.test' })
    await customers.create({ name: 'under_score', email: 'us@shop.test' })
    await customers.create({ name: 'underXscore', email: 'ux@shop.test' })
    expect((await customers.search('GRACE')).items.map((c) => c.name)).toEqual(['Grace Hopper', 'Grace Kelly'])
    expect((await customers.search('bletchley')).items.map((c) => c.name)).toEqual(['Alan Turing'])
    expect((await customers.search('.test', { limit: 2 })).items).toHaveLength(2)
    expect(await all((after) => customers.search('.test', { limit: 2, after }))).toHaveLength(6)
    expect((await customers.search('100%')).items.map((c) => c.name)).toEqual(['100% Discount'])
    expect((await customers.search('%')).items.map((c) => c.name)).toEqual(['100% Discount'])
    expect((await customers.search('under_')).items.map((c) => c.name)).toEqual(['under_score'])
    expect((await customers.search('nobody')).items).toEqual([])
  })

  it(`search refuses a term longer than MAX_SEARCH_TERM_LENGTH (${MAX_SEARCH_TERM_LENGTH}) with INVALID_INPUT, the same on both backends`, async () => {
    const email = `${'a'.repeat(240)}@example.com`
    await customers.create({ name: 'Long Mail', email })
    expect((await customers.search(`  ${email.slice(0, MAX_SEARCH_TERM_LENGTH)}  `)).items.map((c) => c.name)).toEqual(['Long Mail'])
    for (const term of ['x'.repeat(MAX_SEARCH_TERM_LENGTH + 1), 'x'.repeat(50_001), '%'.repeat(30_000)]) {
      const err = await rejection(customers.search(term))
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err).toMatchObject({ code: 'INVALID_INPUT', detail: { option: 'term', length: term.length } })
    }
    for (const term of [5, '', '   ']) await expect(customers.search(term as string)).rejects.toMatchObject({ detail: { option: 'term' } })
  })
})

describe.each(BACKENDS)('ContactRepository on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend)
    await resetCrm(db.pool)
  }, 180_000)
  afterAll(() => db?.close())

  it('adds, lists and removes contacts of a customer', async () => {
    const customer = await new CustomerRepository(db.pool).create({ name: 'Acme', email: 'hello@acme.test' })
    let t = 0
    const contacts = new ContactRepository(db.pool, { clock: () => new Date(Date.UTC(2024, 0, 1, 0, 0, t++)) })
    const a = await contacts.add(customer.id, { name: 'Wile E.', role: 'buyer', email: ' Wile@Acme.test' })
    const b = await contacts.add(customer.id, { name: 'Road Runner', phone: '555' })
    expect(a).toMatchObject({ customerId: customer.id, name: 'Wile E.', role: 'buyer', email: 'wile@acme.test', phone: null })
    expect(await contacts.listForCustomer(customer.id)).toEqual([a, b])
    expect(await contacts.remove(a.id)).toBe(true)
    expect(await contacts.remove(a.id)).toBe(false)
    expect(await contacts.listForCustomer(customer.id)).toEqual([b])
    await expect(contacts.add('ghost', { name: 'x' })).rejects.toBeInstanceOf(CustomerNotFoundError)
    await expect(contacts.add(customer.id, { name: '' })).rejects.toBeInstanceOf(InvalidInputError)
  })
})
