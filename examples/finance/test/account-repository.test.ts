import { DatabaseError } from '@dbpool/core'
import {
  AccountNotFoundError,
  AccountRepository,
  DuplicateAccountError,
  type FinanceError,
  InvalidEntryError,
  resetFinance,
  TransactionRepository,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

describe.each(BACKENDS)('AccountRepository on %s', (backend) => {
  let db: TestDb
  let accounts: AccountRepository

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    accounts = new AccountRepository(db.pool, { clock: () => new Date('2024-03-01T10:00:00.000Z') })
  })

  it('creates an account and reads it back with normalised types', async () => {
    const created = await accounts.create({ id: 'A', name: 'Alice', currency: 'EUR', minBalance: -5_000 })
    const read = await accounts.get('A')
    expect(read).toEqual(created)
    expect(read).toEqual({
      id: 'A',
      name: 'Alice',
      currency: 'EUR',
      minBalance: -5_000,
      balance: 0,
      createdAt: new Date('2024-03-01T10:00:00.000Z'),
    })
    expect(typeof read.balance).toBe('number')
    expect(read.createdAt).toBeInstanceOf(Date)
  })

  it('defaults to a random id and a zero limit; null means no limit', async () => {
    const a = await accounts.create({ name: 'Plain', currency: 'USD' })
    expect(a.id).toMatch(/^[0-9a-f-]{36}$/)
    expect((await accounts.get(a.id)).minBalance).toBe(0)
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'USD', minBalance: null })
    expect((await accounts.get('EQ')).minBalance).toBeNull()
  })

  it('maps a duplicate id (UNIQUE_VIOLATION) to DuplicateAccountError', async () => {
    await accounts.create({ id: 'A', name: 'Alice', currency: 'EUR' })
    const err = await rejection(accounts.create({ id: 'A', name: 'Again', currency: 'EUR' }))
    expect(err).toBeInstanceOf(DuplicateAccountError)
    expect((err as FinanceError).code).toBe('DUPLICATE_ACCOUNT')
    expect(DatabaseError.is((err as Error).cause, 'UNIQUE_VIOLATION')).toBe(true)
  })

  it('refuses a bad currency and a positive limit before touching the database', async () => {
    await expect(accounts.create({ name: 'x', currency: 'euro' })).rejects.toBeInstanceOf(InvalidEntryError)
    await expect(accounts.create({ name: 'x', currency: 'EUR', minBalance: 10 })).rejects.toBeInstanceOf(InvalidEntryError)
    expect(await accounts.list()).toEqual([])
  })

  it('findById returns undefined and get throws ACCOUNT_NOT_FOUND for an unknown id', async () => {
    expect(await accounts.findById('nope')).toBeUndefined()
    const err = await rejection(accounts.get('nope'))
    expect(err).toBeInstanceOf(AccountNotFoundError)
    expect((err as FinanceError).code).toBe('ACCOUNT_NOT_FOUND')
  })

  it('lists accounts by id with keyset pagination, every account exactly once', async () => {
    const ids = Array.from({ length: 23 }, (_, i) => `ACC-${String(i).padStart(3, '0')}`)
    for (const id of [...ids].reverse()) await accounts.create({ id, name: id, currency: 'EUR' })
    const seen: string[] = []
    let after: string | undefined
    for (;;) {
      const page = await accounts.list({ limit: 5, after })
      if (page.length === 0) break
      expect(page.length).toBeLessThanOrEqual(5)
      seen.push(...page.map((a) => a.id))
      after = page[page.length - 1]?.id
    }
    expect(seen).toEqual(ids)
  })

  it('reports balances and a per-currency summary after postings', async () => {
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR', minBalance: -100 })
    await accounts.create({ id: 'U', name: 'U', currency: 'USD' })
    await new TransactionRepository(db.pool).post({
      description: 'opening',
      currency: 'EUR',
      lines: [
        { accountId: 'EQ', amount: -1_500 },
        { accountId: 'A', amount: 1_000 },
        { accountId: 'B', amount: 500 },
      ],
    })
    expect(await accounts.balance('A')).toBe(1_000)
    expect(await accounts.balances(['A', 'B', 'missing'])).toEqual(
      new Map([
        ['A', 1_000],
        ['B', 500],
      ]),
    )
    expect(await accounts.summary('EUR')).toEqual({ accounts: 3, total: 0n, min: -1_500, max: 1_000, belowLimit: 0 })
    expect(await accounts.summary('EUR', { excludeUnlimited: true })).toEqual({
      accounts: 2,
      total: 1_500n,
      min: 500,
      max: 1_000,
      belowLimit: 0,
    })
    expect(await accounts.summary('GBP')).toEqual({ accounts: 0, total: 0n, min: 0, max: 0, belowLimit: 0 })
  })

  it('keeps amounts exact up to 2^53 - 1 minor units', async () => {
    const big = Number.MAX_SAFE_INTEGER
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'RICH', name: 'Rich', currency: 'EUR' })
    await new TransactionRepository(db.pool).post({
      description: 'big',
      currency: 'EUR',
      lines: [
        { accountId: 'EQ', amount: -big },
        { accountId: 'RICH', amount: big },
      ],
    })
    expect(await accounts.balance('RICH')).toBe(big)
    expect(await accounts.balance('EQ')).toBe(-big)
  })
})
