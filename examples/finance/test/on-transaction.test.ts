import { DatabaseError } from '@dbpool/core'
import {
  AccountRepository,
  checkLedgerInvariants,
  InsufficientFundsError,
  resetFinance,
  TransactionRepository,
  TransferService,
} from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

// README: "Repositories take a Db: the pool, or a transaction". A savepoint takes no transaction
// settings (dbpool: CONFIGURATION), so no repository function may pass them to a transaction.
describe.each(BACKENDS)('finance functions on a caller transaction, %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    const accounts = new AccountRepository(db.pool)
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR' })
    await new TransactionRepository(db.pool).post({
      description: 'opening',
      currency: 'EUR',
      lines: [
        { accountId: 'EQ', amount: -1_000 },
        { accountId: 'A', amount: 1_000 },
      ],
    })
  })
  afterEach(async () => {
    expect((await checkLedgerInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  it('transfer, statement, balances (> 1,000 ids) and the invariants run inside it and see its writes', async () => {
    const seen = await db.pool.transaction(async (tx) => {
      const result = await new TransferService(tx).transfer({ from: 'A', to: 'B', amount: 250, currency: 'EUR', idempotencyKey: 'k1' })
      const replay = await new TransferService(tx).transfer({ from: 'A', to: 'B', amount: 250, currency: 'EUR', idempotencyKey: 'k1' })
      const statement = await new TransactionRepository(tx).statement('B')
      const ids = ['A', 'B', ...Array.from({ length: 1_999 }, (_, i) => `missing-${i}`)]
      const balances = await new AccountRepository(tx).balances(ids)
      const invariants = await checkLedgerInvariants(tx)
      return { result, replay, statement, balances, invariants }
    })
    expect(seen.result).toMatchObject({ replayed: false, attempts: 1, amount: 250 })
    expect(seen.replay).toMatchObject({ replayed: true, entryId: seen.result.entryId })
    expect(seen.statement).toMatchObject({ openingBalance: 0, closingBalance: 250, lines: [{ amount: 250 }] })
    expect([...seen.balances]).toEqual([
      ['A', 750],
      ['B', 250],
    ])
    expect(seen.invariants.ok).toBe(true)
    expect(await new AccountRepository(db.pool).balance('B')).toBe(250)
  })

  it('a refused transfer inside it is undone alone; a rollback of the caller undoes a transfer', async () => {
    const err = await rejection(
      db.pool.transaction(async (tx) => {
        const service = new TransferService(tx)
        expect(await rejection(service.transfer({ from: 'B', to: 'A', amount: 1, currency: 'EUR' }))).toBeInstanceOf(InsufficientFundsError)
        await service.transfer({ from: 'A', to: 'B', amount: 100, currency: 'EUR' })
        expect(await new AccountRepository(tx).balance('B')).toBe(100)
        throw new Error('caller gives up')
      }),
    )
    expect(err).toMatchObject({ message: 'caller gives up' })
    expect(DatabaseError.is(err)).toBe(false)
    expect(await new AccountRepository(db.pool).balance('B')).toBe(0)
    expect(await new TransactionRepository(db.pool).counts()).toEqual({ entries: 1, lines: 2 })
  })
})
