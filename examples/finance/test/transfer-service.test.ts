import {
  AccountRepository,
  checkLedgerInvariants,
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidEntryError,
  resetFinance,
  TransactionRepository,
  TransferService,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

describe.each(BACKENDS)('TransferService on %s', (backend) => {
  let db: TestDb
  let accounts: AccountRepository
  let service: TransferService

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    accounts = new AccountRepository(db.pool)
    service = new TransferService(db.pool, { clock: () => new Date('2024-05-01T08:00:00.000Z') })
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR' })
    await new TransactionRepository(db.pool).post({
      description: 'opening',
      currency: 'EUR',
      lines: [
        { accountId: 'EQ', amount: -20_000 },
        { accountId: 'A', amount: 10_000 },
        { accountId: 'B', amount: 10_000 },
      ],
    })
  })
  afterEach(async () => {
    expect((await checkLedgerInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  it('moves money as a two-line entry and reports it', async () => {
    const result = await service.transfer({
      from: 'A',
      to: 'B',
      amount: 2_500,
      currency: 'EUR',
      idempotencyKey: 'pay-1',
      description: 'rent',
    })
    expect(result).toMatchObject({
      from: 'A',
      to: 'B',
      amount: 2_500,
      currency: 'EUR',
      idempotencyKey: 'pay-1',
      replayed: false,
      attempts: 1,
    })
    expect(result.postedAt).toEqual(new Date('2024-05-01T08:00:00.000Z'))
    const entry = await new TransactionRepository(db.pool).findById(result.entryId)
    expect(entry).toMatchObject({
      description: 'rent',
      lines: [
        { accountId: 'A', amount: -2_500 },
        { accountId: 'B', amount: 2_500 },
      ],
    })
    expect(await accounts.balances(['A', 'B'])).toEqual(
      new Map([
        ['A', 7_500],
        ['B', 12_500],
      ]),
    )
  })

  it('a repeated request with the same idempotency key posts once and returns the original result', async () => {
    const request = { from: 'A', to: 'B', amount: 1_000, currency: 'EUR', idempotencyKey: 'pay-2' }
    const first = await service.transfer(request)
    const second = await service.transfer(request)
    expect(second).toEqual({ ...first, replayed: true })
    expect(await accounts.balance('A')).toBe(9_000)
    expect((await new TransactionRepository(db.pool).counts()).entries).toBe(2)
  })

  it('20 concurrent copies of one request post once; every copy gets the same entry', async () => {
    const request = { from: 'A', to: 'B', amount: 100, currency: 'EUR', idempotencyKey: 'pay-3' }
    const results = await Promise.all(Array.from({ length: 20 }, () => service.transfer(request)))
    expect(results.filter((r) => !r.replayed)).toHaveLength(1)
    expect(new Set(results.map((r) => r.entryId)).size).toBe(1)
    expect(await accounts.balance('A')).toBe(9_900)
    expect((await new TransactionRepository(db.pool).counts()).entries).toBe(2)
  })

  it('refuses a key reused for a different request', async () => {
    await service.transfer({ from: 'A', to: 'B', amount: 100, currency: 'EUR', idempotencyKey: 'pay-4' })
    const err = await rejection(service.transfer({ from: 'A', to: 'B', amount: 101, currency: 'EUR', idempotencyKey: 'pay-4' }))
    expect(err).toBeInstanceOf(IdempotencyConflictError)
    await expect(service.transfer({ from: 'B', to: 'A', amount: 100, currency: 'EUR', idempotencyKey: 'pay-4' })).rejects.toBeInstanceOf(
      IdempotencyConflictError,
    )
    expect(await accounts.balance('A')).toBe(9_900)
  })

  it('refuses an overdraft; the key stays free for a corrected request', async () => {
    await expect(service.transfer({ from: 'A', to: 'B', amount: 10_001, currency: 'EUR', idempotencyKey: 'pay-5' })).rejects.toBeInstanceOf(
      InsufficientFundsError,
    )
    const corrected = await service.transfer({ from: 'A', to: 'B', amount: 10_000, currency: 'EUR', idempotencyKey: 'pay-5' })
    expect(corrected.replayed).toBe(false)
    expect(await accounts.balance('A')).toBe(0)
  })

  it('refuses malformed requests before opening a transaction', async () => {
    const before = service.stats().attempts
    await expect(service.transfer({ from: 'A', to: 'A', amount: 1, currency: 'EUR' })).rejects.toBeInstanceOf(InvalidEntryError)
    await expect(service.transfer({ from: 'A', to: 'B', amount: 0, currency: 'EUR' })).rejects.toBeInstanceOf(InvalidEntryError)
    await expect(service.transfer({ from: 'A', to: 'B', amount: -5, currency: 'EUR' })).rejects.toBeInstanceOf(InvalidEntryError)
    await expect(service.transfer({ from: 'A', to: 'B', amount: 1.25, currency: 'EUR' })).rejects.toBeInstanceOf(InvalidEntryError)
    expect(service.stats().attempts).toBe(before)
  })

  it('works without an idempotency key (every request posts)', async () => {
    await service.transfer({ from: 'A', to: 'B', amount: 1, currency: 'EUR' })
    await service.transfer({ from: 'A', to: 'B', amount: 1, currency: 'EUR' })
    expect(await accounts.balance('B')).toBe(10_002)
  })
})
