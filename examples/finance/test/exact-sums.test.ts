import {
  AccountRepository,
  BalanceOutOfRangeError,
  checkLedgerInvariants,
  formatMoney,
  InvalidEntryError,
  resetFinance,
  sumExact,
  TransactionRepository,
  type JournalLine,
} from '../src'
import { formatMinorUnits } from '@dbpool/example-kit'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

const MAX = Number.MAX_SAFE_INTEGER

describe('sumExact', () => {
  it('sums exactly where floats round', () => {
    // in floats: 2^53 - 1 + 2 rounds to 2^53, and the sum comes out 0
    expect(sumExact([MAX, 2, -MAX, -1])).toBe(1n)
    expect(sumExact([MAX, 2, -MAX, -2])).toBe(0n)
    expect(sumExact([MAX, MAX, MAX])).toBe(3n * BigInt(MAX))
    expect(sumExact([1, 2, 3])).toBe(6n)
    expect(sumExact([])).toBe(0n)
  })

  it('formats money in integer arithmetic: no float tail on large amounts', () => {
    expect(formatMoney(MAX, 'EUR')).toBe('90,071,992,547,409.91 EUR')
    expect(formatMinorUnits(-MAX, 'EUR')).toBe('-90,071,992,547,409.91 EUR')
    expect(formatMinorUnits(5, 'EUR')).toBe('0.05 EUR')
  })
})

describe.each(BACKENDS)('money is summed exactly on %s', (backend) => {
  let db: TestDb
  let journal: TransactionRepository
  let accounts: AccountRepository

  const post = (lines: JournalLine[]) => journal.post({ description: 'exact', currency: 'EUR', lines })

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    accounts = new AccountRepository(db.pool)
    journal = new TransactionRepository(db.pool)
    for (const id of ['A', 'B', 'C', 'D', 'EQ']) await accounts.create({ id, name: id, currency: 'EUR', minBalance: null })
  })
  afterEach(async () => {
    const report = await checkLedgerInvariants(db.pool)
    expect(report.checks.filter((c) => !c.ok)).toEqual([])
  })

  it('refuses lines that sum to 1 although their float sum is 0, and writes nothing', async () => {
    const err = await rejection(
      post([
        { accountId: 'A', amount: MAX },
        { accountId: 'B', amount: 2 },
        { accountId: 'C', amount: -MAX },
        { accountId: 'D', amount: -1 },
      ]),
    )
    expect(err).toBeInstanceOf(InvalidEntryError)
    expect(err).toMatchObject({ code: 'INVALID_ENTRY', detail: { sum: '1' } })
    expect(await journal.counts()).toEqual({ entries: 0, lines: 0 })
  })

  it('posts a balanced entry whose float sum is not 0, with exact balances', async () => {
    await post([
      { accountId: 'A', amount: MAX },
      { accountId: 'B', amount: 2 },
      { accountId: 'C', amount: -MAX },
      { accountId: 'D', amount: -2 },
    ])
    expect(await accounts.balances(['A', 'B', 'C', 'D'])).toEqual(
      new Map([
        ['A', MAX],
        ['B', 2],
        ['C', -MAX],
        ['D', -2],
      ]),
    )
  })

  it("nets an account's lines exactly", async () => {
    // A's lines: 2^53 - 1 + 2 - 3 = 2^53 - 2; in floats the partial sum rounds and A would get 2^53 - 3
    await post([
      { accountId: 'A', amount: MAX },
      { accountId: 'A', amount: 2 },
      { accountId: 'A', amount: -3 },
      { accountId: 'B', amount: -(MAX - 1) },
    ])
    expect(await accounts.balances(['A', 'B'])).toEqual(
      new Map([
        ['A', MAX - 1],
        ['B', -(MAX - 1)],
      ]),
    )
  })

  it("refuses an account's net change beyond ±(2^53 - 1) with INVALID_ENTRY", async () => {
    const err = await rejection(
      post([
        { accountId: 'A', amount: MAX },
        { accountId: 'A', amount: 2 },
        { accountId: 'B', amount: -MAX },
        { accountId: 'B', amount: -2 },
      ]),
    )
    expect(err).toBeInstanceOf(InvalidEntryError)
    expect(err).toMatchObject({ detail: { accountId: 'A', net: String(BigInt(MAX) + 2n) } })
    expect(await journal.counts()).toEqual({ entries: 0, lines: 0 })
  })

  it('refuses a posting that would take a balance beyond ±(2^53 - 1) with BALANCE_OUT_OF_RANGE, writing nothing', async () => {
    await post([
      { accountId: 'EQ', amount: -MAX },
      { accountId: 'A', amount: MAX },
    ])
    const up = await rejection(
      post([
        { accountId: 'B', amount: -1 },
        { accountId: 'A', amount: 1 },
      ]),
    )
    expect(up).toBeInstanceOf(BalanceOutOfRangeError)
    expect(up).toMatchObject({ code: 'BALANCE_OUT_OF_RANGE', accountId: 'A', balance: MAX, amount: 1 })
    const down = await rejection(
      post([
        { accountId: 'EQ', amount: -1 },
        { accountId: 'B', amount: 1 },
      ]),
    )
    expect(down).toMatchObject({ code: 'BALANCE_OUT_OF_RANGE', accountId: 'EQ', balance: -MAX, amount: -1 })
    expect(await journal.counts()).toEqual({ entries: 1, lines: 2 })
    expect(await accounts.balances(['A', 'B', 'EQ'])).toEqual(
      new Map([
        ['A', MAX],
        ['B', 0],
        ['EQ', -MAX],
      ]),
    )
  })

  it('throws a RangeError for a statement total beyond 2^53 instead of rounding it', async () => {
    const move = (from: string, to: string, amount: number) =>
      post([
        { accountId: from, amount: -amount },
        { accountId: to, amount },
      ])
    await move('EQ', 'A', MAX)
    await move('A', 'B', 2)
    await move('B', 'A', 2)
    // A's credits are 2^53 + 1: as a float that is 2^53
    await expect(journal.statement('A')).rejects.toThrow(RangeError)
    const b = await journal.statement('B')
    expect(b).toMatchObject({ closingBalance: 0, debits: -2, credits: 2 })
  })
})
