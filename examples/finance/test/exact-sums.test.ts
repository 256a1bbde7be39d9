import {
  AccountRepository,
  BalanceOutOfRangeError,
  BalanceReadOutOfRangeError,
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
  // postings dated from a fixed start (postedAt): the business date; statements list postings in the
  // order they were applied whatever their dates
  const start = Date.parse('2024-03-01T00:00:00Z')
  const postAt = (second: number, lines: JournalLine[]) =>
    journal.post({ description: 'exact', currency: 'EUR', lines, postedAt: new Date(start + second * 1000) })

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

  it('totals a statement exactly as bigints, past 2^53, where a float would round', async () => {
    // all three at the same instant: statements once ordered them by entry id (random), and B -> A
    // before A -> B put A's running balance past 2^53 (BalanceReadOutOfRangeError, 1 run in 6)
    const move = (from: string, to: string, amount: number) =>
      postAt(0, [
        { accountId: from, amount: -amount },
        { accountId: to, amount },
      ])
    await move('EQ', 'A', MAX)
    await move('A', 'B', 2)
    await move('B', 'A', 2)
    // A's credits are 2^53 + 1: as a float that is 2^53
    const a = await journal.statement('A')
    expect(a).toMatchObject({ closingBalance: MAX, debits: -2n, credits: BigInt(MAX) + 2n })
    expect(a.lines.map((l) => l.balance)).toEqual([MAX, MAX - 2, MAX])
    const b = await journal.statement('B')
    expect(b).toMatchObject({ closingBalance: 0, debits: -2n, credits: 2n })
  })

  it('totals money in and out of an account past 2^53 while its balance stays in range (alternating ±2^52)', async () => {
    const half = 2 ** 52
    for (let i = 0; i < 3; i++) {
      await postAt(2 * i, [
        { accountId: 'EQ', amount: -half },
        { accountId: 'A', amount: half },
      ])
      await postAt(2 * i + 1, [
        { accountId: 'A', amount: -half },
        { accountId: 'EQ', amount: half },
      ])
    }
    await postAt(6, [
      { accountId: 'A', amount: 1 },
      { accountId: 'EQ', amount: -1 },
    ])
    const big = 3n * 2n ** 52n
    const a = await journal.statement('A')
    expect(a).toMatchObject({ openingBalance: 0, closingBalance: 1, debits: -big, credits: big + 1n })
    expect(a.lines.map((l) => l.balance)).toEqual([half, 0, half, 0, half, 0, 1])
    const eq = await journal.statement('EQ')
    expect(eq).toMatchObject({ closingBalance: -1, debits: -big - 1n, credits: big })
    expect(formatMinorUnits(a.credits, 'EUR')).toBe('135,107,988,821,114.89 EUR')
  })

  it('shows the real balances of postings applied out of date order, and refuses a balance as of a date beyond ±(2^53 - 1) with BALANCE_OUT_OF_RANGE', async () => {
    await postAt(10, [
      { accountId: 'EQ', amount: -MAX },
      { accountId: 'A', amount: MAX },
    ])
    await postAt(20, [
      { accountId: 'A', amount: -MAX },
      { accountId: 'EQ', amount: MAX },
    ])
    // posted last, dated first: A's balance was in range at every commit, but in date order it is 1, then 2^53
    await postAt(5, [
      { accountId: 'EQ', amount: -1 },
      { accountId: 'A', amount: 1 },
    ])
    expect(await accounts.balance('A')).toBe(1)
    // in posting order: the balances A really had (in date order it would pass through 2^53)
    const whole = await journal.statement('A')
    expect(whole.lines.map((l) => [l.sequence, l.amount, l.balance])).toEqual([
      [1, MAX, MAX],
      [2, -MAX, 0],
      [3, 1, 1],
    ])
    expect(whole).toMatchObject({ openingBalance: 0, closingBalance: 1 })
    // a balance as of a date between them (summed in SQL by posted_at) is 2^53: refused
    const at = new Date(start + 15_000)
    expect(await rejection(journal.balanceAt('A', at))).toMatchObject({
      code: 'BALANCE_OUT_OF_RANGE',
      detail: { accountId: 'A', balance: String(BigInt(MAX) + 1n), entryId: null },
    })
    expect(await rejection(journal.statement('A', { from: at }))).toBeInstanceOf(BalanceReadOutOfRangeError)
    // a range past the excursion reads
    expect(await journal.statement('A', { from: new Date(start + 21_000) })).toMatchObject({
      openingBalance: 1,
      closingBalance: 1,
      lines: [],
    })
  })

  it('totals balances in a summary exactly as a bigint past 2^53 (each balance in range)', async () => {
    for (const id of ['P', 'Q']) await accounts.create({ id, name: id, currency: 'EUR' })
    await post([
      { accountId: 'EQ', amount: -MAX },
      { accountId: 'P', amount: MAX },
    ])
    await post([
      { accountId: 'D', amount: -MAX },
      { accountId: 'Q', amount: MAX },
    ])
    expect(await accounts.summary('EUR', { excludeUnlimited: true })).toEqual({
      accounts: 2,
      total: 2n * BigInt(MAX),
      min: MAX,
      max: MAX,
      belowLimit: 0,
    })
    expect((await accounts.summary('EUR')).total).toBe(0n)
  })
})
