import { AccountRepository, TransactionRepository, resetFinance, type Db } from '../src'
import { BACKENDS, openTestDb, type TestDb } from './helpers'

jest.setTimeout(60_000)

// review r3 item 12: entriesForAccount() read every entry's lines at once (Promise.all): on a transaction
// they all went to one connection, where pg warns (and pg@9 will refuse) a query sent while another runs
describe.each(BACKENDS)('entriesForAccount() on a transaction, on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend)
    await resetFinance(db.pool)
  }, 180_000)
  afterAll(() => db?.close())

  it('sends its statements one at a time', async () => {
    const accounts = new AccountRepository(db.pool)
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR', minBalance: null })
    const journal = new TransactionRepository(db.pool)
    for (let i = 1; i <= 5; i++)
      await journal.post({
        description: `t${i}`,
        currency: 'EUR',
        lines: [
          { accountId: 'A', amount: -i },
          { accountId: 'B', amount: i },
        ],
      })
    let running = 0
    let most = 0
    const entries = await db.pool.transaction(async (tx) => {
      // the transaction, counting statements in flight on it
      const counted = new Proxy(tx, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver) as unknown
          if (key !== 'query' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value
          return async (...args: unknown[]) => {
            most = Math.max(most, ++running)
            try {
              return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
            } finally {
              running--
            }
          }
        },
      }) as unknown as Db
      return new TransactionRepository(counted).entriesForAccount('A')
    })
    expect(entries.map((e) => e.description)).toEqual(['t1', 't2', 't3', 't4', 't5'])
    expect(most).toBe(1)
  })
})
