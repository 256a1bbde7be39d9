import {
  AccountNotFoundError,
  AccountRepository,
  checkLedgerInvariants,
  CurrencyMismatchError,
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidEntryError,
  resetFinance,
  TransactionRepository,
  type JournalLine,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

const day = (d: number): Date => new Date(Date.UTC(2024, 0, d, 12))

describe.each(BACKENDS)('TransactionRepository on %s', (backend) => {
  let db: TestDb
  let journal: TransactionRepository
  let accounts: AccountRepository

  const transfer = (
    from: string,
    to: string,
    amount: number,
    extra: { postedAt?: Date; idempotencyKey?: string; requestHash?: string } = {},
  ) =>
    journal.post({
      description: `${from} -> ${to}`,
      currency: 'EUR',
      lines: [
        { accountId: from, amount: -amount },
        { accountId: to, amount },
      ],
      ...extra,
    })

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    accounts = new AccountRepository(db.pool)
    journal = new TransactionRepository(db.pool)
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR', minBalance: -500 })
    await accounts.create({ id: 'U', name: 'U', currency: 'USD' })
    await transfer('EQ', 'A', 10_000, { postedAt: day(1) })
  })

  afterEach(async () => {
    const report = await checkLedgerInvariants(db.pool)
    expect(report.checks.filter((c) => !c.ok)).toEqual([])
  })

  it('posts a balanced entry: lines stored in order, balances moved', async () => {
    const { entry, replayed } = await journal.post({
      description: 'split',
      currency: 'EUR',
      postedAt: day(2),
      lines: [
        { accountId: 'A', amount: -3_000 },
        { accountId: 'B', amount: 2_000 },
        { accountId: 'EQ', amount: 1_000 },
      ],
    })
    expect(replayed).toBe(false)
    const stored = await journal.findById(entry.id)
    expect(stored).toEqual(entry)
    expect(stored?.lines).toEqual([
      { accountId: 'A', amount: -3_000 },
      { accountId: 'B', amount: 2_000 },
      { accountId: 'EQ', amount: 1_000 },
    ])
    expect(await accounts.balances(['A', 'B', 'EQ'])).toEqual(
      new Map([
        ['A', 7_000],
        ['B', 2_000],
        ['EQ', -9_000],
      ]),
    )
  })

  it.each<[string, JournalLine[]]>([
    [
      'unbalanced lines',
      [
        { accountId: 'A', amount: -100 },
        { accountId: 'B', amount: 99 },
      ],
    ],
    ['a single line', [{ accountId: 'A', amount: 0 }]],
    [
      'a zero amount',
      [
        { accountId: 'A', amount: 0 },
        { accountId: 'B', amount: 0 },
      ],
    ],
    [
      'a fractional amount',
      [
        { accountId: 'A', amount: -1.5 },
        { accountId: 'B', amount: 1.5 },
      ],
    ],
  ])('refuses %s with INVALID_ENTRY and writes nothing', async (_name, lines) => {
    const before = await journal.counts()
    const err = await rejection(journal.post({ description: 'bad', currency: 'EUR', lines }))
    expect(err).toBeInstanceOf(InvalidEntryError)
    expect(await journal.counts()).toEqual(before)
  })

  it('refuses to take an account below its limit, and rolls the whole entry back', async () => {
    const before = await journal.counts()
    const err = await rejection(transfer('A', 'B', 10_001))
    expect(err).toBeInstanceOf(InsufficientFundsError)
    expect(err).toMatchObject({ code: 'INSUFFICIENT_FUNDS', accountId: 'A', balance: 10_000, minBalance: 0, amount: -10_001 })
    expect(await journal.counts()).toEqual(before)
    expect(await accounts.balances(['A', 'B'])).toEqual(
      new Map([
        ['A', 10_000],
        ['B', 0],
      ]),
    )
  })

  it('lets an overdraft account go down to its limit and no further', async () => {
    await transfer('B', 'A', 500)
    expect(await accounts.balance('B')).toBe(-500)
    await expect(transfer('B', 'A', 1)).rejects.toBeInstanceOf(InsufficientFundsError)
    await transfer('A', 'B', 1)
    expect(await accounts.balance('B')).toBe(-499)
  })

  it('refuses unknown accounts and a currency mismatch', async () => {
    await expect(transfer('A', 'ghost', 1)).rejects.toBeInstanceOf(AccountNotFoundError)
    await expect(transfer('ghost', 'A', 1)).rejects.toBeInstanceOf(AccountNotFoundError)
    const err = await rejection(transfer('A', 'U', 1))
    expect(err).toBeInstanceOf(CurrencyMismatchError)
    expect(await accounts.balance('A')).toBe(10_000)
  })

  it('posts an idempotency key once: the same key returns the first entry', async () => {
    const first = await transfer('A', 'B', 700, { idempotencyKey: 'k-1', requestHash: 'h' })
    const again = await transfer('A', 'B', 700, { idempotencyKey: 'k-1', requestHash: 'h' })
    expect(first.replayed).toBe(false)
    expect(again.replayed).toBe(true)
    expect(again.entry).toEqual(first.entry)
    expect(await journal.findByIdempotencyKey('k-1')).toEqual(first.entry)
    expect(await accounts.balance('B')).toBe(700)
  })

  it('refuses a key reused for another request with IDEMPOTENCY_CONFLICT', async () => {
    const first = await transfer('A', 'B', 700, { idempotencyKey: 'k-2', requestHash: 'h1' })
    const err = await rejection(transfer('A', 'B', 800, { idempotencyKey: 'k-2', requestHash: 'h2' }))
    expect(err).toBeInstanceOf(IdempotencyConflictError)
    expect(err).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', entryId: first.entry.id })
    expect(await accounts.balance('B')).toBe(700)
  })

  it('inside a caller transaction: a refused posting is undone by its savepoint and the caller continues', async () => {
    await db.pool.transaction(async (tx) => {
      const inTx = new TransactionRepository(tx)
      await inTx.post({
        description: 'ok',
        currency: 'EUR',
        lines: [
          { accountId: 'A', amount: -100 },
          { accountId: 'B', amount: 100 },
        ],
      })
      // debits B first (id order puts A's credit first): the partial write must be undone
      await expect(
        inTx.post({
          description: 'too much',
          currency: 'EUR',
          lines: [
            { accountId: 'B', amount: -10_000 },
            { accountId: 'A', amount: 10_000 },
          ],
        }),
      ).rejects.toBeInstanceOf(InsufficientFundsError)
    })
    expect(await accounts.balances(['A', 'B'])).toEqual(
      new Map([
        ['A', 9_900],
        ['B', 100],
      ]),
    )
  })

  it('inside a caller transaction that fails: nothing is kept', async () => {
    const before = await journal.counts()
    await expect(
      db.pool.transaction(async (tx) => {
        await new TransactionRepository(tx).post({
          description: 'x',
          currency: 'EUR',
          lines: [
            { accountId: 'A', amount: -100 },
            { accountId: 'B', amount: 100 },
          ],
        })
        throw new Error('caller failed')
      }),
    ).rejects.toThrow('caller failed')
    expect(await journal.counts()).toEqual(before)
    expect(await accounts.balance('A')).toBe(10_000)
  })

  describe('balances and statements over date ranges', () => {
    beforeEach(async () => {
      await transfer('A', 'B', 1_000, { postedAt: day(5) })
      await transfer('B', 'A', 300, { postedAt: day(10) })
      await transfer('A', 'B', 2_000, { postedAt: day(15) })
      await transfer('A', 'EQ', 500, { postedAt: day(20) })
    })

    it('computes the balance at a date from the journal', async () => {
      expect(await journal.balanceAt('A', day(1))).toBe(0)
      expect(await journal.balanceAt('A', day(2))).toBe(10_000)
      expect(await journal.balanceAt('A', day(10))).toBe(9_000)
      expect(await journal.balanceAt('A', day(11))).toBe(9_300)
      expect(await journal.balanceAt('A')).toBe(await accounts.balance('A'))
    })

    it('builds a statement: opening balance, lines with running balance, totals, closing balance', async () => {
      const s = await journal.statement('A', { from: day(5), to: day(16) })
      expect(s.openingBalance).toBe(10_000)
      expect(s.lines.map((l) => [l.postedAt.toISOString(), l.amount, l.balance])).toEqual([
        [day(5).toISOString(), -1_000, 9_000],
        [day(10).toISOString(), 300, 9_300],
        [day(15).toISOString(), -2_000, 7_300],
      ])
      expect(s).toMatchObject({ accountId: 'A', from: day(5), to: day(16), closingBalance: 7_300, debits: -3_000n, credits: 300n })
      expect(s.lines[0]?.description).toBe('A -> B')
    })

    it('treats from as inclusive and to as exclusive, and open ends as unbounded', async () => {
      expect((await journal.statement('A', { from: day(10), to: day(15) })).lines.map((l) => l.amount)).toEqual([300])
      const all = await journal.statement('A')
      expect(all.openingBalance).toBe(0)
      expect(all.lines).toHaveLength(5)
      expect(all.closingBalance).toBe(await accounts.balance('A'))
      const tail = await journal.statement('A', { from: day(12) })
      expect(tail.openingBalance).toBe(9_300)
      expect(tail.closingBalance).toBe(6_800)
      expect((await journal.statement('A', { from: day(21), to: day(22) })).lines).toEqual([])
    })

    it('lists the entries of an account within a range', async () => {
      const entries = await journal.entriesForAccount('B', { from: day(2), to: day(12) })
      expect(entries.map((e) => e.postedAt.toISOString())).toEqual([day(5).toISOString(), day(10).toISOString()])
      expect(entries[0]?.lines).toEqual([
        { accountId: 'A', amount: -1_000 },
        { accountId: 'B', amount: 1_000 },
      ])
    })

    it('refuses an unknown account and an inverted range', async () => {
      await expect(journal.statement('ghost')).rejects.toBeInstanceOf(AccountNotFoundError)
      await expect(journal.statement('A', { from: day(3), to: day(2) })).rejects.toBeInstanceOf(InvalidEntryError)
    })
  })
})
