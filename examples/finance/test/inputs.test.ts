import {
  AccountRepository,
  checkLedgerInvariants,
  InvalidEntryError,
  resetFinance,
  TransactionRepository,
  TransferService,
  type JournalLine,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(120_000)

describe.each(BACKENDS)('repository inputs are checked the same way on %s', (backend) => {
  let db: TestDb
  let accounts: AccountRepository
  let journal: TransactionRepository

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    accounts = new AccountRepository(db.pool)
    journal = new TransactionRepository(db.pool)
    for (let i = 0; i < 5; i++) await accounts.create({ id: `A${i}`, name: 'n', currency: 'EUR', minBalance: null })
  })
  afterEach(async () => {
    expect((await checkLedgerInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  it.each<[string, unknown]>([
    ['-1', -1],
    ['0', 0],
    ['2.5', 2.5],
    ['NaN', NaN],
    ['a string', '5'],
    ['above the maximum', 10_001],
  ])('list refuses limit %s with INVALID_ENTRY naming the option', async (_name, limit) => {
    const err = await rejection(accounts.list({ limit: limit as number }))
    expect(err).toBeInstanceOf(InvalidEntryError)
    expect(err).toMatchObject({ code: 'INVALID_ENTRY', detail: { option: 'limit' } })
    // the bad value as JSON: the string '5' is not shown as the number 5
    expect((err as Error).message).toContain(`limit ${typeof limit === 'string' ? JSON.stringify(limit) : String(limit)}:`)
  })

  it('shows a bad amount or minBalance as JSON: the string "5" is told from the number 5', async () => {
    const transfers = new TransferService(db.pool)
    const shown = async (promise: Promise<unknown>): Promise<string> => {
      const err = await rejection(promise)
      expect(err).toMatchObject({ code: 'INVALID_ENTRY' })
      return (err as Error).message
    }
    expect(await shown(transfers.transfer({ from: 'A0', to: 'A1', amount: '5' as unknown as number, currency: 'EUR' }))).toMatch(
      /^amount "5" must/,
    )
    expect(await shown(transfers.transfer({ from: 'A0', to: 'A1', amount: 5n as unknown as number, currency: 'EUR' }))).toMatch(
      /^amount 5n must/,
    )
    expect(await shown(transfers.transfer({ from: 'A0', to: 'A1', amount: 1.5, currency: 'EUR' }))).toMatch(/^amount 1\.5 must/)
    const lines = [
      { accountId: 'A0', amount: '-5' },
      { accountId: 'A1', amount: 5 },
    ] as unknown as JournalLine[]
    expect(await shown(journal.post({ description: 'x', currency: 'EUR', lines }))).toMatch(/^line 1: amount "-5" must/)
    expect(await shown(accounts.create({ id: 'M', name: 'm', currency: 'EUR', minBalance: '0' as unknown as number }))).toMatch(
      /^minBalance "0": must/,
    )
    expect(await journal.counts()).toEqual({ entries: 0, lines: 0 })
  })

  it('a transfer or entry naming a missing account is ACCOUNT_NOT_FOUND for it, even when the other account would refuse its balance', async () => {
    const transfers = new TransferService(db.pool)
    // A1 at the maximum balance: a credit of 1 to it is BALANCE_OUT_OF_RANGE
    await transfers.transfer({ from: 'A0', to: 'A1', amount: Number.MAX_SAFE_INTEGER, currency: 'EUR' })
    await expect(transfers.transfer({ from: 'A2', to: 'A1', amount: 1, currency: 'EUR' })).rejects.toMatchObject({
      code: 'BALANCE_OUT_OF_RANGE',
    })
    // the missing account is what is wrong (it used to be BALANCE_OUT_OF_RANGE on A1)
    for (const missing of ['ZZ', '0']) {
      await expect(transfers.transfer({ from: missing, to: 'A1', amount: 5, currency: 'EUR' })).rejects.toMatchObject({
        code: 'ACCOUNT_NOT_FOUND',
        detail: { accountId: missing },
      })
    }
    // a debit past the minimum balance of an account, to a missing one (it used to be INSUFFICIENT_FUNDS)
    await accounts.create({ id: 'B', name: 'b', currency: 'EUR', minBalance: 0 })
    for (const missing of ['ZZ', '0']) {
      await expect(transfers.transfer({ from: 'B', to: missing, amount: 5, currency: 'EUR' })).rejects.toMatchObject({
        code: 'ACCOUNT_NOT_FOUND',
        detail: { accountId: missing },
      })
      await expect(
        journal.post({
          description: 'x',
          currency: 'EUR',
          lines: [
            { accountId: 'B', amount: -5 },
            { accountId: missing, amount: 5 },
          ],
        }),
      ).rejects.toMatchObject({ code: 'ACCOUNT_NOT_FOUND', detail: { accountId: missing } })
    }
    expect(await journal.counts()).toEqual({ entries: 1, lines: 2 })
  })

  it('refuses dates outside years 0000-9999 (SQLite would sort their ISO text wrongly) with INVALID_ENTRY, on every date input', async () => {
    const lines: JournalLine[] = [
      { accountId: 'A0', amount: 1 },
      { accountId: 'A1', amount: -1 },
    ]
    for (const bad of [new Date('+010000-01-01T00:00:00Z'), new Date('-000001-12-31T23:59:59.999Z'), new Date(8.64e15)]) {
      const iso = bad.toISOString()
      for (const [what, call] of [
        ['postedAt', () => journal.post({ description: 'x', currency: 'EUR', postedAt: bad, lines })],
        ['at', () => journal.balanceAt('A0', bad)],
        ['range.from', () => journal.statement('A0', { from: bad })],
        ['range.to', () => journal.entriesForAccount('A0', { to: bad })],
        ['clock', () => new TransactionRepository(db.pool, { clock: () => bad }).post({ description: 'x', currency: 'EUR', lines })],
        ['clock', () => new AccountRepository(db.pool, { clock: () => bad }).create({ name: 'n', currency: 'EUR' })],
        ['clock', () => new TransferService(db.pool, { clock: () => bad }).transfer({ from: 'A0', to: 'A1', amount: 1, currency: 'EUR' })],
      ] as const) {
        const err = await rejection(call())
        expect(err).toBeInstanceOf(InvalidEntryError)
        expect(err).toMatchObject({ code: 'INVALID_ENTRY', detail: { option: what } })
        expect((err as Error).message).toContain(iso)
      }
    }
    // the edges are accepted, and sort with the rest on both backends
    await journal.post({ description: 'first', currency: 'EUR', postedAt: new Date('0000-01-01T00:00:00.000Z'), lines })
    await journal.post({
      description: 'last',
      currency: 'EUR',
      postedAt: new Date('9999-12-31T23:59:59.999Z'),
      lines: [
        { accountId: 'A0', amount: 100 },
        { accountId: 'A1', amount: -100 },
      ],
    })
    expect(await journal.balanceAt('A0', new Date('2025-01-01'))).toBe(1)
    expect((await journal.statement('A0', { from: new Date('2020-01-01') })).openingBalance).toBe(1)
    expect(await accounts.list()).toHaveLength(5)
    expect(await journal.counts()).toEqual({ entries: 2, lines: 4 })
  })

  it('refuses non-object inputs, lines and options with INVALID_ENTRY, never a TypeError', async () => {
    const line = { accountId: 'A1', amount: -4 }
    const service = new TransferService(db.pool)
    for (const [what, call] of [
      ['line 1', () => journal.post({ description: 'd', currency: 'EUR', lines: [null as unknown as JournalLine, line] })],
      ['line 2', () => journal.post({ description: 'd', currency: 'EUR', lines: [line, 5 as unknown as JournalLine] })],
      ['input', () => journal.post(null as unknown as Parameters<TransactionRepository['post']>[0])],
      ['request', () => service.transfer(null as unknown as Parameters<TransferService['transfer']>[0])],
      ['from', () => service.transfer({ from: 5 as unknown as string, to: 'A1', amount: 1, currency: 'EUR' })],
      ['input', () => accounts.create(null as unknown as Parameters<AccountRepository['create']>[0])],
      ['options', () => accounts.list(null as unknown as { limit?: number })],
      ['options', () => accounts.summary('EUR', null as unknown as { excludeUnlimited?: boolean })],
    ] as const) {
      const err = await rejection(call())
      expect(err).toBeInstanceOf(InvalidEntryError)
      expect(err).toMatchObject({ code: 'INVALID_ENTRY', detail: { option: what } })
    }
    expect(await journal.counts()).toEqual({ entries: 0, lines: 0 })
  })

  it('list takes limits from 1 to 10,000 and a string after', async () => {
    expect((await accounts.list({ limit: 1 })).map((a) => a.id)).toEqual(['A0'])
    expect(await accounts.list({ limit: 10_000 })).toHaveLength(5)
    expect((await accounts.list({ limit: 2, after: 'A2' })).map((a) => a.id)).toEqual(['A3', 'A4'])
    await expect(accounts.list({ after: 3 as unknown as string })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'after' },
    })
  })

  it('create refuses a non-string id or name with INVALID_ENTRY', async () => {
    await expect(accounts.create({ id: 7 as unknown as string, name: 'x', currency: 'EUR' })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'id' },
    })
    await expect(accounts.create({ name: undefined as unknown as string, currency: 'EUR' })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'name' },
    })
  })

  it('reads balances of 40,000 ids (beyond SQLite’s 32,766 parameters a statement) in one snapshot', async () => {
    const ids = Array.from({ length: 40_000 }, (_, i) => `missing-${i}`)
    ids[39_999] = 'A3'
    expect(await accounts.balances(ids)).toEqual(new Map([['A3', 0]]))
    await expect(accounts.balances([1 as unknown as string])).rejects.toMatchObject({ code: 'INVALID_ENTRY', detail: { option: 'ids' } })
  })

  it('posts an entry of 9,000 lines (beyond 32,766 parameters in one insert)', async () => {
    const lines: JournalLine[] = Array.from({ length: 9_000 }, (_, i) => ({
      accountId: i % 2 === 0 ? 'A0' : 'A1',
      amount: i % 2 === 0 ? 1 : -1,
    }))
    const { entry } = await journal.post({ description: 'long', currency: 'EUR', lines })
    expect(await journal.counts()).toEqual({ entries: 1, lines: 9_000 })
    expect((await journal.findById(entry.id))?.lines).toHaveLength(9_000)
    expect(await accounts.balances(['A0', 'A1'])).toEqual(
      new Map([
        ['A0', 4_500],
        ['A1', -4_500],
      ]),
    )
  })

  it('refuses an invalid date or range with INVALID_ENTRY naming it, writing nothing', async () => {
    const lines: JournalLine[] = [
      { accountId: 'A0', amount: -1 },
      { accountId: 'A1', amount: 1 },
    ]
    const bad = new Date('not a date')
    await expect(journal.post({ description: 'x', currency: 'EUR', lines, postedAt: bad })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'postedAt' },
    })
    await expect(journal.post({ description: 'x', currency: 'EUR', lines, requestHash: 5 as unknown as string })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'requestHash' },
    })
    expect(await journal.counts()).toEqual({ entries: 0, lines: 0 })
    await expect(journal.balanceAt('A0', bad)).rejects.toMatchObject({ code: 'INVALID_ENTRY', detail: { option: 'at' } })
    await expect(journal.entriesForAccount('A0', { from: bad })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'range.from' },
    })
    await expect(journal.entriesForAccount('A0', { from: new Date(2), to: new Date(1) })).rejects.toBeInstanceOf(InvalidEntryError)
    await expect(journal.statement('A0', { to: '2024-01-01' as unknown as Date })).rejects.toMatchObject({
      code: 'INVALID_ENTRY',
      detail: { option: 'range.to' },
    })
  })
})
