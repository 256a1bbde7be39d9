import { PoolFactory, type DatabasePool } from '@dbpool/core'
import { ContactRepository, CustomerNotFoundError, CustomerRepository, DealRepository, crmKysely, resetCrm } from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// review r3 item 1: a contact or deal added to a customer that a concurrent softDelete() deleted
describe.each(BACKENDS)('adding to a customer while it is soft-deleted, on %s', (backend) => {
  let db: TestDb
  let blocker: DatabasePool<unknown>
  let customers: CustomerRepository

  beforeAll(async () => {
    db = await openTestDb(backend)
    blocker = await PoolFactory.create(db.url, { name: 'crm-test-blocker' })
  }, 180_000)
  afterAll(async () => {
    await blocker?.close()
    await db?.close()
  })
  beforeEach(async () => {
    await resetCrm(db.pool)
    customers = new CustomerRepository(db.pool)
  })

  const adders = {
    contacts: (id: string) => new ContactRepository(db.pool).add(id, { name: 'Late Contact' }),
    deals: (id: string) =>
      new DealRepository(crmKysely(db.pool)).create({ customerId: id, title: 'Late deal', amount: 100, currency: 'EUR' }),
  }

  it.each(Object.keys(adders) as (keyof typeof adders)[])(
    '%s: a delete started between the check and the insert: the add goes first (the delete waits) or writes nothing',
    async (table) => {
      const customer = await customers.create({ name: 'Gone Ltd', email: `gone-${table}@example.com` })
      if (backend === 'sqlite') {
        // one writer: the add and the delete run one after the other, whatever the order
        const [added, deleted] = await Promise.allSettled([adders[table](customer.id), customers.softDelete(customer.id)])
        expect(deleted).toEqual({ status: 'fulfilled', value: true })
        const rows = await db.pool.query<{ n: unknown }>(`select count(*) as n from ${table} where customer_id = ?`, [customer.id])
        expect(Number(rows.rows[0]?.n)).toBe(added.status === 'fulfilled' ? 1 : 0)
        if (added.status === 'rejected') expect(added.reason).toBeInstanceOf(CustomerNotFoundError)
        return
      }
      // a third session holds the table so that the add's insert waits right after its check
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      let locked!: () => void
      const lockTaken = new Promise<void>((resolve) => (locked = resolve))
      const holder = blocker.transaction(async (tx) => {
        await tx.query(`lock table ${table} in share mode`)
        locked()
        await held
      })
      await lockTaken
      const adding = adders[table](customer.id).then(
        () => undefined,
        (err: unknown) => err,
      )
      await sleep(300)
      const deleting = customers.softDelete(customer.id)
      // before the fix the delete committed here, the add's insert then went through anyway
      const deletedFirst = await Promise.race([deleting.then(() => true), sleep(300).then(() => false)])
      release()
      await holder
      const added = await adding
      expect(await deleting).toBe(true)
      const rows = await db.pool.query<{ n: unknown }>(`select count(*) as n from ${table} where customer_id = $1`, [customer.id])
      // either the add went first (the delete waited for it) or it is CUSTOMER_NOT_FOUND and wrote nothing
      expect({ deletedFirst, added, rows: Number(rows.rows[0]?.n) }).toEqual(
        deletedFirst ? { deletedFirst, added: expect.any(CustomerNotFoundError), rows: 0 } : { deletedFirst, added: undefined, rows: 1 },
      )
    },
  )

  it.each(Object.keys(adders) as (keyof typeof adders)[])(
    '%s: an add started while a soft delete is uncommitted waits for it, then is CUSTOMER_NOT_FOUND',
    async (table) => {
      const customer = await customers.create({ name: 'Going Ltd', email: `going-${table}@example.com` })
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      let deleted!: () => void
      const deleteDone = new Promise<void>((resolve) => (deleted = resolve))
      const deleter = blocker.transaction(async (tx) => {
        expect(await new CustomerRepository(tx).softDelete(customer.id)).toBe(true)
        deleted()
        await held
      })
      await deleteDone
      const adding = rejection(adders[table](customer.id))
      await sleep(300)
      release()
      await deleter
      expect(await adding).toBeInstanceOf(CustomerNotFoundError)
      const rows = await db.pool.query<{ n: unknown }>(
        backend === 'sqlite'
          ? `select count(*) as n from ${table} where customer_id = ?`
          : `select count(*) as n from ${table} where customer_id = $1`,
        [customer.id],
      )
      expect(Number(rows.rows[0]?.n)).toBe(0)
    },
  )

  it('an add that takes the customer first is written before the delete, which then waits for it', async () => {
    const customer = await customers.create({ name: 'Slow Ltd', email: 'slow@example.com' })
    const contacts = new ContactRepository(db.pool)
    let deleting: Promise<boolean> | undefined
    await db.pool.transaction(async (tx) => {
      await new ContactRepository(tx).add(customer.id, { name: 'First' })
      // the delete is queued behind this transaction's lock (Postgres) or its write lane (SQLite)
      deleting = customers.softDelete(customer.id)
      await sleep(100)
    })
    expect(await deleting).toBe(true)
    expect(await customers.findById(customer.id)).toBeUndefined()
    expect(await contacts.listForCustomer(customer.id)).toHaveLength(1)
    await expect(contacts.add(customer.id, { name: 'Second' })).rejects.toBeInstanceOf(CustomerNotFoundError)
  })
})
