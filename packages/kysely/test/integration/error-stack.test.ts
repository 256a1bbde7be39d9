import { DatabaseError } from '@dbpool/core'
import { dbpoolTransaction } from '@dbpool/kysely'
import { BACKENDS, createSchema, openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// each test opens a database of its own (a new Postgres database is slow on a loaded machine)
jest.setTimeout(60_000)

/**
 * Kysely's own drivers keep the caller's frames in a driver error's stack (its dialect tests: "should
 * retain the full stack trace"): a DatabaseError is built in dbpool's callbacks, so without them the
 * stack ends in dbpool's internals and does not say which query of the app failed.
 */
describe.each(BACKENDS)('error stacks on %s', (backend) => {
  let t: KyselyTestDb
  const stackTraceLimit = Error.stackTraceLimit

  // Node's default (jest raises it): dbpool's and the driver's frames alone fill ten
  beforeAll(() => {
    Error.stackTraceLimit = 10
  })

  afterAll(() => {
    Error.stackTraceLimit = stackTraceLimit
  })

  beforeEach(async () => {
    t = await openKyselyDb(backend)
    await createSchema(t.db, backend)
  })

  afterEach(async () => {
    expect(t.pool.stats().used).toBe(0)
    await t.close()
  })

  /** The app's repository functions, whose names the stacks must show (awaited: V8's async frames). */
  async function appFindMissingTable(): Promise<unknown> {
    return await t.db
      .selectFrom('no_such_table' as never)
      .selectAll()
      .execute()
  }

  async function appDuplicateInTransaction(): Promise<unknown> {
    return await t.db.transaction().execute(async (trx) => {
      await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
      await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
    })
  }

  async function appDuplicateInDbpoolTransaction(): Promise<unknown> {
    return await dbpoolTransaction(t.db, async (trx) => {
      await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
      await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
    })
  }

  async function appStreamMissingTable(): Promise<void> {
    for await (const row of t.db
      .selectFrom('no_such_table' as never)
      .selectAll()
      .stream())
      void row
  }

  async function appTransactionOnClosedPool(): Promise<unknown> {
    return await t.db.transaction().execute(async (trx) => trx.selectFrom('person').selectAll().execute())
  }

  it.each([
    ['a statement', appFindMissingTable, 'DatabaseError'],
    ['a statement in db.transaction()', appDuplicateInTransaction, 'UNIQUE_VIOLATION'],
    ['a statement in dbpoolTransaction()', appDuplicateInDbpoolTransaction, 'UNIQUE_VIOLATION'],
    ['a stream', appStreamMissingTable, 'DatabaseError'],
  ] as const)('keeps the caller in the stack when %s fails', async (_what, call, code) => {
    const err = await rejection(call())
    expect(DatabaseError.is(err, code === 'DatabaseError' ? undefined : code)).toBe(true)
    // this file's frames: the failing statement's line in the app (Kysely's own test looks for its file)
    expect((err as Error).stack).toContain('error-stack.test.ts')
    // a statement awaited in the app's function: that function too (in a transaction callback the
    // callback's line is the app's frame, the callers beyond ten frames)
    if (call === appFindMissingTable || call === appStreamMissingTable) expect((err as Error).stack).toContain(call.name)
  })

  it('keeps the caller in the stack of a transaction that could not begin', async () => {
    await t.pool.close()
    const err = await rejection(appTransactionOnClosedPool())
    expect(DatabaseError.is(err, 'POOL_CLOSED')).toBe(true)
    expect((err as Error).stack).toContain('error-stack.test.ts')
    expect((err as Error).stack).toContain(appTransactionOnClosedPool.name)
  })
})
