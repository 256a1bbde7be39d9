import { DatabaseError } from '@dbpool/core'
import { DbpoolConnection, DbpoolDriver, dbpoolTransaction } from '@dbpool/kysely'
import { openKyselyDb, rejection } from './helpers'

// Every export of @dbpool/kysely refuses bad input with CONFIGURATION naming the parameter:
// dbpoolTransaction(null, fn) used to throw a bare TypeError ("Cannot read properties of null"),
// new DbpoolDriver(dialect, null) one at its first use.

describe('bad input to the exports of @dbpool/kysely', () => {
  it('dbpoolTransaction: db that is not a Kysely instance, fn that is not a function: CONFIGURATION naming the parameter', async () => {
    for (const bad of [null, undefined, {}, 'db', 42]) {
      const err = await rejection(Promise.resolve().then(() => dbpoolTransaction(bad as never, async () => 1)))
      expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
      expect((err as Error).message).toMatch(/dbpoolTransaction\.db/)
    }
    const t = await openKyselyDb('sqlite')
    try {
      const err = await rejection(dbpoolTransaction(t.db, 'fn' as never))
      expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
      expect((err as Error).message).toMatch(/dbpoolTransaction\.fn/)
    } finally {
      await t.close()
    }
  })

  it('DbpoolDriver and DbpoolConnection without a pool: CONFIGURATION naming the parameter', () => {
    const driver = (): unknown => new DbpoolDriver({} as never, null as never, false)
    expect(driver).toThrow(expect.objectContaining({ code: 'CONFIGURATION', message: expect.stringMatching(/DbpoolDriver\.pool/) }))
    const connection = (): unknown => new DbpoolConnection(undefined as never)
    expect(connection).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION', message: expect.stringMatching(/DbpoolConnection\.context/) }),
    )
  })
})
