import { DatabaseError } from '@dbpool/core'
import { TransactionOutcome } from '../../src/transaction/transaction-outcome'
import { makePool, rejection } from './helpers'

const unique = () => new DatabaseError('UNIQUE_VIOLATION', 'duplicate key', { backend: 'postgres', sqlState: '23505' })
const serialization = () =>
  new DatabaseError('SERIALIZATION_FAILURE', 'could not serialize access', { backend: 'postgres', sqlState: '40001' })

describe('transaction outcome: resolves only when the engine committed', () => {
  it('an error caught inside fn (Postgres aborts the transaction) rejects with TRANSACTION_ROLLED_BACK, cause the first error', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const first = unique()
    manager.queryFaults.push({ match: /insert dup/, fault: { kind: 'fail', error: first }, fatal: false })
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert ok')
        await tx.query('insert dup').catch(() => undefined)
        return 'done'
      }),
    )
    expect(err).toBeInstanceOf(DatabaseError)
    expect((err as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
    expect((err as DatabaseError).cause).toBe(first)
    expect((err as DatabaseError).retryable).toBe(false)
    // COMMIT was never sent for work the engine had thrown away; the transaction was rolled back
    expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'insert ok', 'insert dup', 'ROLLBACK'])
    await pool.close()
  })

  it('a COMMIT answered with ROLLBACK rejects (the status was not known before COMMIT)', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /insert dup/, fault: { kind: 'fail', error: unique() }, fatal: false })
    // the engine's state is not known (as while Postgres' ReadyForQuery is still on its way)
    const spy = jest.spyOn(manager, 'transactionState').mockReturnValue('unknown')
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert dup').catch(() => undefined)
      }),
    )
    spy.mockRestore()
    expect((err as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
    expect((err as DatabaseError).message).toMatch(/COMMIT was answered with ROLLBACK/)
    expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'insert dup', 'COMMIT'])
    await pool.close()
  })

  it('a statement after the engine ended the transaction (SQLite OR ROLLBACK) is refused without running', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const original = new DatabaseError('UNIQUE_VIOLATION', 'UNIQUE constraint failed', { backend: 'sqlite' })
    manager.queryFaults.push({ match: /insert or rollback/, fault: { kind: 'fail', error: original }, fatal: false, endsTransaction: true })
    let later: unknown
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert 1')
        await tx.query('insert or rollback').catch(() => undefined)
        later = await rejection(tx.query('insert 2'))
      }),
    )
    expect((later as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
    expect((later as DatabaseError).cause).toBe(original)
    expect((err as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
    expect((err as DatabaseError).cause).toBe(original)
    const statements = manager.connections[0]!.statements
    expect(statements).not.toContain('insert 2')
    expect(statements).not.toContain('COMMIT')
    await pool.close()
  })

  it('an uncaught error after the engine ended the transaction is rethrown as is', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const original = new DatabaseError('CHECK_VIOLATION', 'trigger said no', { backend: 'sqlite' })
    manager.queryFaults.push({ match: /raise rollback/, fault: { kind: 'fail', error: original }, fatal: false, endsTransaction: true })
    const err = await rejection(pool.transaction(async (tx) => void (await tx.query('raise rollback'))))
    expect(err).toBe(original)
    await pool.close()
  })

  it('a savepoint whose cleanup fails surfaces the original error, and the transaction does not commit', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const original = new DatabaseError('UNIQUE_VIOLATION', 'UNIQUE constraint failed', { backend: 'sqlite' })
    manager.queryFaults.push({ match: /insert or rollback/, fault: { kind: 'fail', error: original }, fatal: false, endsTransaction: true })
    let inner: unknown
    const err = await rejection(
      pool.transaction(async (tx) => {
        inner = await rejection(tx.transaction(async (sp) => void (await sp.query('insert or rollback'))))
        await tx.query('insert after')
      }),
    )
    expect(inner).toBe(original)
    expect((err as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
    expect(manager.connections[0]!.statements).not.toContain('insert after')
    expect(manager.connections[0]!.statements).not.toContain('COMMIT')
    await pool.close()
  })

  it('a savepoint that rolled back an error lets the transaction commit (the documented way to go on)', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /insert dup/, fault: { kind: 'fail', error: unique() }, fatal: false })
    const out = await pool.transaction(async (tx) => {
      await tx.query('insert ok')
      await tx.transaction(async (sp) => void (await sp.query('insert dup'))).catch(() => undefined)
      await tx.query('insert more')
      return 7
    })
    expect(out).toBe(7)
    expect(manager.connections[0]!.statements.at(-1)).toBe('COMMIT')
    await pool.close()
  })

  it('a later failure is attributed to its own error, not to one a savepoint recovered', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const second = new DatabaseError('CHECK_VIOLATION', 'check', { backend: 'postgres', sqlState: '23514' })
    manager.queryFaults.push({ match: /insert dup/, fault: { kind: 'fail', error: unique() }, fatal: false })
    manager.queryFaults.push({ match: /insert bad/, fault: { kind: 'fail', error: second }, fatal: false })
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.transaction(async (sp) => void (await sp.query('insert dup'))).catch(() => undefined)
        await tx.query('insert bad').catch(() => undefined)
      }),
    )
    expect((err as DatabaseError).cause).toBe(second)
    await pool.close()
  })

  it.each(['COMMIT', 'rollback', 'END', 'commit; insert 3', '-- note\nABORT', 'BEGIN', 'PREPARE TRANSACTION x'])(
    '%j through tx.query is refused before it runs; the transaction rolls back on the error',
    async (control) => {
      const { pool, manager } = makePool({ max: 1 })
      const err = await rejection(
        pool.transaction(async (tx) => {
          await tx.query('insert 1')
          await tx.query(control)
          await tx.query('insert 2')
        }),
      )
      expect((err as DatabaseError).code).toBe('QUERY_FAILED')
      expect((err as DatabaseError).message).toMatch(/through tx\.query\(\) is refused and was not run/)
      expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'insert 1', 'ROLLBACK'])
      await pool.close()
    },
  )

  it('ROLLBACK TO a savepoint of your own stays allowed', async () => {
    const { pool, manager } = makePool({ max: 1 })
    await pool.transaction(async (tx) => {
      await tx.query('SAVEPOINT mine')
      await tx.query('ROLLBACK TO SAVEPOINT mine')
      await tx.query('rollback transaction to mine')
    })
    expect(manager.connections[0]!.statements.at(-1)).toBe('COMMIT')
    await pool.close()
  })

  it('a statement that ended the transaction anyway (not recognised by its text) makes later statements refused', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const real = manager.transactionState.bind(manager)
    // idle once the statement ran (before it, the transaction was open: it is sent)
    const spy = jest
      .spyOn(manager, 'transactionState')
      .mockImplementation((conn) => (conn.statements.includes('call something_that_commits()') ? 'idle' : real(conn)))
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert 1')
        await tx.query('call something_that_commits()')
        await tx.query('insert 2')
      }),
    )
    spy.mockRestore()
    expect((err as DatabaseError).code).toBe('QUERY_FAILED')
    expect((err as DatabaseError).message).toMatch(/ended it/)
    expect(manager.connections[0]!.statements).not.toContain('insert 2')
    await pool.close()
  })

  it.each([
    ['known (Postgres E)', 'failed' as const],
    ['not yet known (ReadyForQuery on its way): the RELEASE fails', 'unknown' as const],
  ])(
    'a savepoint whose callback caught an error and returned, the state %s: rolled back, TRANSACTION_ROLLED_BACK with the first error as cause; the transaction can go on',
    async (_what, state) => {
      const { pool, manager } = makePool({ max: 1 })
      const first = unique()
      manager.queryFaults.push({ match: /insert dup/, fault: { kind: 'fail', error: first }, fatal: false })
      const real = manager.transactionState.bind(manager)
      let pretend = false
      // as while Postgres' ReadyForQuery is on its way: the callback returned before the state was known
      const spy = jest.spyOn(manager, 'transactionState').mockImplementation((conn) => (pretend ? 'unknown' : real(conn)))
      let inner: unknown
      const out = await pool.transaction(async (tx) => {
        await tx.query('insert ok')
        inner = await rejection(
          tx.transaction(async (sp) => {
            await sp.query('insert dup').catch(() => undefined)
            pretend = state === 'unknown'
          }),
        )
        pretend = false
        await tx.query('insert more')
        return 'committed'
      })
      spy.mockRestore()
      expect((inner as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
      expect((inner as DatabaseError).message).toMatch(/^the savepoint was rolled back/)
      expect((inner as DatabaseError).cause).toBe(first)
      expect(out).toBe('committed')
      const statements = manager.connections[0]!.statements
      expect(statements).toContain('ROLLBACK TO SAVEPOINT dbpool_sp_1')
      // the RELEASE is only tried when the state was not known yet, and its failure does not hide the first error
      expect(statements.includes('RELEASE SAVEPOINT dbpool_sp_1')).toBe(true)
      expect(statements.filter((t) => t === 'RELEASE SAVEPOINT dbpool_sp_1')).toHaveLength(state === 'unknown' ? 2 : 1)
      expect(statements.at(-1)).toBe('COMMIT')
      await pool.close()
    },
  )

  it('a savepoint 3 deep whose innermost callback caught an error: the first error reaches the top, nothing commits', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const first = unique()
    manager.queryFaults.push({ match: /insert dup/, fault: { kind: 'fail', error: first }, fatal: false })
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.transaction(async (a) =>
          a.transaction(async (b) =>
            b.transaction(async (c) => {
              await c.query('insert dup').catch(() => undefined)
            }),
          ),
        )
      }),
    )
    expect((err as DatabaseError).code).toBe('TRANSACTION_ROLLED_BACK')
    expect((err as DatabaseError).cause).toBe(first)
    expect(manager.connections[0]!.statements).not.toContain('COMMIT')
    await pool.close()
  })

  it('a caught serialization failure is replayed by retry (TRANSACTION_ROLLED_BACK is retryable like its cause)', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /update hot/, fault: { kind: 'fail', error: serialization() }, fatal: false })
    let attempts = 0
    const out = await pool.transaction(
      async (tx) => {
        attempts++
        if (attempts === 1) await tx.query('update hot').catch(() => undefined)
        else await tx.query('update cold')
        return attempts
      },
      { retry: { maxAttempts: 3, baseDelayMs: 0 } },
    )
    expect(out).toBe(2)
    await pool.close()
  })

  it('a refused parameter does not count as a statement error of the transaction', () => {
    let state: 'open' | 'failed' = 'open'
    const outcome = new TransactionOutcome('postgres', () => state)
    outcome.afterStatement(new DatabaseError('INVALID_PARAMETER', 'parameter 1 (Map) cannot be bound'))
    expect(outcome.firstError).toBeUndefined()
    expect(() => outcome.checkBeforeCommit()).not.toThrow()
    const real = unique()
    outcome.afterStatement(real)
    state = 'failed'
    expect(outcome.firstError).toBe(real)
    expect(() => outcome.checkBeforeCommit()).toThrow(/aborted by an earlier error/)
  })
})

describe('default replays', () => {
  it('replays a retryable invalidated prepared statement (0A000 / 26000), caught or not', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const invalidated = () =>
      new DatabaseError('QUERY_FAILED', 'cached plan must not change result type', {
        backend: 'postgres',
        sqlState: '0A000',
        retryable: true,
      })
    let attempts = 0
    manager.queryFaults.push({ match: /select stale/, fault: { kind: 'fail', error: invalidated() }, fatal: false })
    const out = await pool.transaction(
      async (tx) => {
        attempts++
        if (attempts === 1) await tx.query('select stale')
        else if (attempts === 2) await tx.query('select stale').catch(() => undefined)
        else await tx.query('select fresh')
        return attempts
      },
      { retry: { maxAttempts: 5, baseDelayMs: 0 } },
    )
    expect(out).toBe(3)
    await pool.close()
  })

  it('replays a retryable 42883 / 42804 / 42846 / 42725 only with detail.failedAtBind (review r13a)', async () => {
    for (const failedAtBind of [true, undefined]) {
      const { pool, manager } = makePool({ max: 1 })
      const error = new DatabaseError('SYNTAX_ERROR', 'function does not exist', {
        backend: 'postgres',
        sqlState: '42883',
        retryable: true,
        detail: failedAtBind === undefined ? {} : { failedAtBind },
      })
      manager.queryFaults.push({ match: /select stale/, fault: { kind: 'fail', error }, fatal: false })
      let attempts = 0
      const run = pool.transaction(
        async (tx) => {
          attempts++
          if (attempts === 1) await tx.query('select stale')
          return attempts
        },
        { retry: { maxAttempts: 5, baseDelayMs: 0 } },
      )
      // without the proof it was refused at Bind, the statement may have executed (a user's error)
      if (failedAtBind === true) expect(await run).toBe(2)
      else expect(await rejection(run)).toBe(error)
      await pool.close()
    }
  })

  it('does not replay the same SQLSTATE when the backend did not mark it retryable', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const fatal = new DatabaseError('QUERY_FAILED', 'feature not supported', { backend: 'postgres', sqlState: '0A000' })
    manager.queryFaults.push({ match: /select feature/, fault: { kind: 'fail', error: fatal }, fatal: false })
    let attempts = 0
    const err = await rejection(
      pool.transaction(
        async (tx) => {
          attempts++
          await tx.query('select feature')
        },
        { retry: { maxAttempts: 5, baseDelayMs: 0 } },
      ),
    )
    expect(err).toBe(fatal)
    expect(attempts).toBe(1)
    await pool.close()
  })
})
