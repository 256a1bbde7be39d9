import {
  ConcurrentUpdateError,
  ContactRepository,
  crmKysely,
  CustomerRepository,
  DealRepository,
  InvalidInputError,
  PipelineService,
  resetCrm,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

describe.each(BACKENDS)('CRM repository inputs are checked the same way on %s', (backend) => {
  let db: TestDb
  let customers: CustomerRepository

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetCrm(db.pool)
    customers = new CustomerRepository(db.pool)
    await customers.create({ name: 'Ada', email: 'ada@example.com' })
  })

  it.each<[string, unknown]>([
    ['-1', -1],
    ['0', 0],
    ['2.5', 2.5],
    ['501', 501],
    ['a string', '5'],
  ])('list and search refuse limit %s with INVALID_INPUT naming the option', async (_name, limit) => {
    for (const page of [() => customers.list({ limit: limit as number }), () => customers.search('ada', { limit: limit as number })]) {
      const err = await rejection(page())
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err).toMatchObject({ code: 'INVALID_INPUT', detail: { option: 'limit' } })
      // the bad value as JSON: the string '5' is not shown as the number 5
      expect((err as Error).message).toContain(`limit ${typeof limit === 'string' ? JSON.stringify(limit) : String(limit)} `)
    }
  })

  it('refuses a clock reading outside years 0000-9999 (SQLite would sort its ISO text wrongly) with INVALID_INPUT', async () => {
    const bad = new Date('+010000-01-01T00:00:00Z')
    const [ada] = (await customers.list()).items
    const deals = new DealRepository(crmKysely(db.pool))
    const deal = await deals.create({ customerId: ada!.id, title: 't', amount: 1, currency: 'EUR' })
    for (const call of [
      () => new CustomerRepository(db.pool, { clock: () => bad }).create({ name: 'B', email: 'b@example.com' }),
      () => new CustomerRepository(db.pool, { clock: () => bad }).update(ada!.id, { name: 'Ada L' }),
      () => new CustomerRepository(db.pool, { clock: () => bad }).softDelete(ada!.id),
      () => new ContactRepository(db.pool, { clock: () => bad }).add(ada!.id, { name: 'C' }),
      () =>
        new DealRepository(crmKysely(db.pool), { clock: () => bad }).create({
          customerId: ada!.id,
          title: 't',
          amount: 1,
          currency: 'EUR',
        }),
      () => new PipelineService(crmKysely(db.pool), { clock: () => bad }).move(deal.id, 'qualified'),
    ]) {
      const err = await rejection(call())
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err).toMatchObject({ code: 'INVALID_INPUT', detail: { option: 'clock' } })
    }
    expect(await customers.get(ada!.id)).toMatchObject({ name: 'Ada', deletedAt: null })
    expect(await deals.get(deal.id)).toMatchObject({ stage: 'lead', version: 1 })
  })

  it('refuses non-object inputs and options, a bad contact email / phone / role with INVALID_INPUT, never a TypeError', async () => {
    const [ada] = (await customers.list()).items
    const contacts = new ContactRepository(db.pool)
    const deals = new DealRepository(crmKysely(db.pool))
    const deal = await deals.create({ customerId: ada!.id, title: 't', amount: 1, currency: 'EUR' })
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a null where an object is expected
    const none = null as any
    for (const [what, call] of [
      ['email', () => contacts.add(ada!.id, { name: 'x', email: 5 as unknown as string })],
      ['email', () => contacts.add(ada!.id, { name: 'x', email: 'not an email' })],
      ['phone', () => contacts.add(ada!.id, { name: 'x', phone: 5 as unknown as string })],
      ['role', () => contacts.add(ada!.id, { name: 'x', role: {} as unknown as string })],
      ['name', () => contacts.add(ada!.id, { name: 'x'.repeat(201) })],
      ['input', () => contacts.add(ada!.id, none)],
      ['input', () => customers.create(none)],
      ['phone', () => customers.create({ name: 'B', email: 'b@example.com', phone: 5 as unknown as string })],
      ['phone', () => customers.update(ada!.id, { phone: 'x'.repeat(51) })],
      ['changes', () => customers.update(ada!.id, none)],
      ['options', () => customers.list(none)],
      ['options', () => customers.findById(ada!.id, none)],
      ['options', () => customers.count(none)],
      ['input', () => deals.create(none)],
      ['customerId', () => deals.create({ customerId: 5 as unknown as string, title: 't', amount: 1, currency: 'EUR' })],
      ['options', () => deals.moveStage(deal.id, 'qualified', none)],
    ] as const) {
      const err = await rejection(call())
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err).toMatchObject({ code: 'INVALID_INPUT', detail: { option: what } })
    }
    expect(await contacts.count()).toBe(0)
    const added = await contacts.add(ada!.id, { name: 'Wile', email: ' Wile@ACME.test ', phone: '+1 555', role: 'buyer' })
    expect(added).toMatchObject({ email: 'wile@acme.test', phone: '+1 555', role: 'buyer' })
  })

  it("moveStage with an expectedVersion above the deal's is INVALID_INPUT (a version it never had); below it CONCURRENT_UPDATE naming both", async () => {
    const [ada] = (await customers.list()).items
    const deals = new DealRepository(crmKysely(db.pool))
    const deal = await deals.create({ customerId: ada!.id, title: 't', amount: 1, currency: 'EUR' })
    const above = await rejection(deals.moveStage(deal.id, 'qualified', { expectedVersion: 7 }))
    expect(above).toBeInstanceOf(InvalidInputError)
    expect(above).toMatchObject({ detail: { option: 'expectedVersion', version: 1 } })
    expect((above as Error).message).toContain('is at version 1')
    await deals.moveStage(deal.id, 'qualified', { expectedVersion: 1 })
    await deals.moveStage(deal.id, 'proposal', { expectedVersion: 2 })
    const stale = await rejection(deals.moveStage(deal.id, 'negotiation', { expectedVersion: 2 }))
    expect(stale).toBeInstanceOf(ConcurrentUpdateError)
    expect(stale).toMatchObject({ code: 'CONCURRENT_UPDATE', detail: { expectedVersion: 2, currentVersion: 3 } })
    expect((stale as Error).message).toContain('changed after version 2 was read (now at version 3)')
  })

  it('refuses a cursor that is not a string with INVALID_INPUT (not a TypeError)', async () => {
    for (const after of [5, {}, true]) {
      const err = await rejection(customers.list({ after: after as unknown as string }))
      expect(err).toMatchObject({ code: 'INVALID_INPUT', detail: { option: 'after' } })
    }
    expect((await customers.list({ after: null })).items).toHaveLength(1)
  })

  it('moveStage refuses an expectedVersion that is not an integer >= 1, and a non-string note', async () => {
    const [ada] = (await customers.list()).items
    const deals = new DealRepository(crmKysely(db.pool))
    const deal = await deals.create({ customerId: ada!.id, title: 't', amount: 1, currency: 'EUR' })
    for (const expectedVersion of ['1', 0, 1.5]) {
      await expect(deals.moveStage(deal.id, 'qualified', { expectedVersion: expectedVersion as number })).rejects.toMatchObject({
        code: 'INVALID_INPUT',
        detail: { option: 'expectedVersion' },
      })
    }
    await expect(deals.moveStage(deal.id, 'qualified', { note: 5 as unknown as string })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      detail: { option: 'note' },
    })
    expect((await deals.moveStage(deal.id, 'qualified', { expectedVersion: 1 })).version).toBe(2)
  })
})
