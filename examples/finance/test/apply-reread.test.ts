import { sql, type Transaction } from '@dbpool/core'
import { AccountRepository, checkLedgerInvariants, resetFinance, TransactionRepository, type Db } from '../src'
import { openTestDb, type TestDb } from './helpers'

jest.setTimeout(60_000)

// post() explains a refused balance update with a second statement. Under read committed (Postgres,
// a post on a pool) a credit committed between the two made the explanation contradict the refusal
// (INSUFFICIENT_FUNDS naming a balance that covers the debit). Postgres only: SQLite has one writer,
// nothing commits between two statements of a write transaction.
describe('a refused debit whose explaining read sees a credit committed in between, on postgres', () => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb('postgres')
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetFinance(db.pool)
    const accounts = new AccountRepository(db.pool)
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR' })
  })
  afterEach(async () => {
    expect((await checkLedgerInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  /** A Db on `tx` that, after the first refused update of A's balance, commits a credit of 500 to A on another connection. */
  function creditingAfterRefusal(tx: Transaction): Db {
    let credited = false
    const wrap = (inner: Transaction): Db => ({
      query: async (query, params, options) => {
        const result = await inner.query(query, params, options)
        const text = typeof query === 'string' ? query : query.strings.join('?')
        if (!credited && /update accounts/.test(text) && result.rowCount === 0) {
          credited = true
          await new TransactionRepository(db.pool).post({
            description: 'credit in between',
            currency: 'EUR',
            lines: [
              { accountId: 'EQ', amount: -500 },
              { accountId: 'A', amount: 500 },
            ],
          })
        }
        return result as never
      },
      stream: (query, params, options) => inner.stream(query, params, options),
      transaction: (fn) => inner.transaction((nested) => fn(wrap(nested) as unknown as Transaction)),
    })
    return wrap(tx)
  }

  it('tries the update again and posts, instead of INSUFFICIENT_FUNDS naming a balance that covers it', async () => {
    const result = await db.pool.transaction((tx) =>
      new TransactionRepository(creditingAfterRefusal(tx)).post({
        description: 'debit A',
        currency: 'EUR',
        lines: [
          { accountId: 'A', amount: -300 },
          { accountId: 'B', amount: 300 },
        ],
      }),
    )
    expect(result.replayed).toBe(false)
    const { rows } = await db.pool.query<{ id: string; balance: unknown }>(sql`select id, balance from accounts order by id`)
    expect(rows.map((r) => [r.id, Number(r.balance)])).toEqual([
      ['A', 200],
      ['B', 300],
      ['EQ', -500],
    ])
  })
})
