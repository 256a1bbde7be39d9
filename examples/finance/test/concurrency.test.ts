import { DatabaseError } from '@dbpool/core'
import {
  AccountRepository,
  checkLedgerInvariants,
  InsufficientFundsError,
  resetFinance,
  TransactionRepository,
  TransferService,
  type TransferResult,
} from '../src'
import { BACKENDS, openTestDb, type TestDb } from './helpers'

jest.setTimeout(120_000)

// 200 transfers between the same two accounts, all sent at once, in both directions: on Postgres they
// collide (serializable isolation: SERIALIZATION_FAILURE) and are replayed; on SQLite they queue for
// the one writer. Whatever happens, the balances must equal the opening plus the successful transfers.
describe.each(BACKENDS)('200 concurrent transfers between two accounts on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend, { max: 10 })
    await resetFinance(db.pool)
  }, 180_000)
  afterAll(() => db?.close())

  it('ends with balances equal to the opening plus every successful transfer', async () => {
    const accounts = new AccountRepository(db.pool)
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR' })
    const opening = 50_000
    await new TransactionRepository(db.pool).post({
      description: 'opening',
      currency: 'EUR',
      lines: [
        { accountId: 'EQ', amount: -2 * opening },
        { accountId: 'A', amount: opening },
        { accountId: 'B', amount: opening },
      ],
    })
    const service = new TransferService(db.pool, { retry: { maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 50 } })
    const requests = Array.from({ length: 200 }, (_, i) => ({
      from: i % 3 === 0 ? 'B' : 'A',
      to: i % 3 === 0 ? 'A' : 'B',
      amount: 100 + (i % 17) * 37,
      currency: 'EUR',
      idempotencyKey: `c-${i}`,
    }))
    const outcomes = await Promise.allSettled(requests.map((r) => service.transfer(r)))

    const succeeded = outcomes.filter((o): o is PromiseFulfilledResult<TransferResult> => o.status === 'fulfilled').map((o) => o.value)
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as unknown)
    // a failure may only be a refused overdraft or a conflict that outlasted every retry
    for (const err of failed) expect(err instanceof InsufficientFundsError || DatabaseError.is(err, 'SERIALIZATION_FAILURE')).toBe(true)
    expect(succeeded.length).toBeGreaterThan(150)
    expect(succeeded.every((r) => !r.replayed)).toBe(true)

    const expected = { A: opening, B: opening }
    for (const r of succeeded) {
      expected[r.from as 'A' | 'B'] -= r.amount
      expected[r.to as 'A' | 'B'] += r.amount
    }
    expect(Object.fromEntries(await accounts.balances(['A', 'B']))).toEqual(expected)
    expect((await new TransactionRepository(db.pool).counts()).entries).toBe(1 + succeeded.length)
    expect((await checkLedgerInvariants(db.pool)).ok).toBe(true)

    const { retries, attempts } = service.stats()
    expect(attempts).toBeGreaterThanOrEqual(200)
    // Postgres must actually have collided and replayed; SQLite serialises writers and never needs to
    if (backend === 'postgres') expect(retries.SERIALIZATION_FAILURE ?? 0).toBeGreaterThan(0)
    else expect(retries).toEqual({})
    process.stdout.write(`${backend}: ${succeeded.length}/200 succeeded, ${attempts} attempts, retries ${JSON.stringify(retries)}\n`)
  })
})
