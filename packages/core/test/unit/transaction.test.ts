import { DatabaseError } from '@dbpool/core'
import { makePool, rejection } from './helpers'

const serialization = () =>
  new DatabaseError('SERIALIZATION_FAILURE', 'could not serialize access', { backend: 'postgres', sqlState: '40001' })

describe('transaction', () => {
  it('begins with the requested settings and commits', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const out = await pool.transaction(
      async (tx) => {
        await tx.query('insert 1')
        return 42
      },
      { isolation: 'serializable', readOnly: false },
    )
    expect(out).toBe(42)
    expect(manager.connections[0]!.statements).toEqual(['BEGIN ISOLATION LEVEL SERIALIZABLE', 'insert 1', 'COMMIT'])
  })

  it('rolls back and rethrows the original error', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const original = new Error('app failure')
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query('insert 1')
        throw original
      }),
    )
    expect(err).toBe(original)
    expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'insert 1', 'ROLLBACK'])
  })

  it('does not roll back when BEGIN failed', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /^BEGIN/, fault: { kind: 'fail', error: new DatabaseError('READ_ONLY', 'no') }, fatal: false })
    const fn = jest.fn()
    expect((await rejection(pool.transaction(fn))).code).toBe('READ_ONLY')
    expect(fn).not.toHaveBeenCalled()
    expect(manager.connections[0]!.statements).toEqual(['BEGIN'])
  })

  it('destroys the connection when ROLLBACK fails, still rethrowing the original', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({
      match: /^ROLLBACK$/,
      fault: { kind: 'fail', error: new DatabaseError('CONNECTION_LOST', 'gone') },
      fatal: false,
    })
    const original = new Error('first')
    expect(
      await rejection(
        pool.transaction(async () => {
          throw original
        }),
      ),
    ).toBe(original)
    expect(manager.connections[0]!.ended).toBe(true)
  })

  it('treats a failed COMMIT as a failure and rolls back', async () => {
    const { pool, manager } = makePool({ max: 1 })
    manager.queryFaults.push({ match: /^COMMIT$/, fault: { kind: 'fail', error: serialization() }, fatal: false })
    expect((await rejection(pool.transaction(async () => 1))).code).toBe('SERIALIZATION_FAILURE')
    expect(manager.connections[0]!.statements.slice(-2)).toEqual(['COMMIT', 'ROLLBACK'])
  })

  it('nests with savepoints, rolling back only the inner part', async () => {
    const { pool, manager } = makePool({ max: 1 })
    await pool.transaction(async (tx) => {
      await tx.query('outer')
      await expect(
        tx.transaction(async (inner) => {
          await inner.query('inner')
          throw new Error('inner')
        }),
      ).rejects.toThrow('inner')
      await tx.transaction(async (inner) => void (await inner.query('inner ok')))
    })
    expect(manager.connections[0]!.statements).toEqual([
      'BEGIN',
      'outer',
      'SAVEPOINT dbpool_sp_1',
      'inner',
      'ROLLBACK TO SAVEPOINT dbpool_sp_1',
      'RELEASE SAVEPOINT dbpool_sp_1',
      'SAVEPOINT dbpool_sp_2',
      'inner ok',
      'RELEASE SAVEPOINT dbpool_sp_2',
      'COMMIT',
    ])
  })

  it('replays the whole callback on retryable errors, with bounded attempts', async () => {
    const { pool } = makePool({ max: 1 })
    let calls = 0
    const out = await pool.transaction(
      async () => {
        if (++calls < 3) throw serialization()
        return 'ok'
      },
      { retry: { maxAttempts: 5, baseDelayMs: 1 } },
    )
    expect(out).toBe('ok')
    expect(calls).toBe(3)
    calls = 0
    const err = await rejection(
      pool.transaction(
        async () => {
          calls++
          throw serialization()
        },
        { retry: 2 },
      ),
    )
    expect(err.code).toBe('SERIALIZATION_FAILURE')
    expect(calls).toBe(2)
  })

  it('replays a retryable READ_ONLY (a write on a server that became read-only), never a plain one', async () => {
    const { pool } = makePool({ max: 1 })
    const readOnly = (retryable: boolean) =>
      new DatabaseError('READ_ONLY', 'cannot execute INSERT in a read-only transaction', {
        backend: 'postgres',
        sqlState: '25006',
        retryable,
      })
    let calls = 0
    const out = await pool.transaction(
      async () => {
        if (++calls < 2) throw readOnly(true)
        return 'on the new primary'
      },
      { retry: { baseDelayMs: 0 } },
    )
    expect(out).toBe('on the new primary')
    expect(calls).toBe(2)
    calls = 0
    const err = await rejection(
      pool.transaction(
        async () => {
          calls++
          throw readOnly(false)
        },
        { retry: true },
      ),
    )
    expect(err.code).toBe('READ_ONLY')
    expect(calls).toBe(1)
  })

  it('does not replay non-retryable errors, nor without retry', async () => {
    const { pool } = makePool({ max: 1 })
    let calls = 0
    await rejection(
      pool.transaction(
        async () => {
          calls++
          throw new DatabaseError('UNIQUE_VIOLATION', 'dup')
        },
        { retry: true },
      ),
    )
    await rejection(
      pool.transaction(async () => {
        calls++
        throw serialization()
      }),
    )
    expect(calls).toBe(2)
  })

  it('never replays an error whose work may have been committed (detail.outcome), whatever its code', async () => {
    const { pool } = makePool({ max: 1 })
    for (const outcome of ['unknown', 'committed']) {
      for (const code of ['BUSY', 'DEADLOCK', 'SERIALIZATION_FAILURE'] as const) {
        let calls = 0
        const cause = new DatabaseError(code, 'after a CALL that committed', { backend: 'postgres', retryable: false, detail: { outcome } })
        const err = await rejection(
          pool.transaction(
            async () => {
              calls++
              throw cause
            },
            { retry: { baseDelayMs: 0 } },
          ),
        )
        expect(err).toBe(cause)
        expect(calls).toBe(1)
        // nor a TRANSACTION_ROLLED_BACK it caused
        calls = 0
        await rejection(
          pool.transaction(
            async () => {
              calls++
              throw new DatabaseError('TRANSACTION_ROLLED_BACK', 'rolled back', { cause, retryable: false })
            },
            { retry: { baseDelayMs: 0 } },
          ),
        )
        expect(calls).toBe(1)
      }
    }
  })

  it('never replays an attempt whose outcome is unknown or committed, even when a custom retryOn accepts it', async () => {
    for (const outcome of ['unknown', 'committed']) {
      const { pool, manager } = makePool({ max: 1 })
      const lost = new DatabaseError('CONNECTION_LOST', 'lost during COMMIT', {
        backend: 'postgres',
        retryable: false,
        detail: { outcome },
      })
      manager.queryFaults.push({ match: /^COMMIT$/, fault: { kind: 'fail', error: lost }, fatal: false })
      let calls = 0
      const asked: DatabaseError[] = []
      const err = await rejection(
        pool.transaction(
          async (tx) => {
            calls++
            await tx.query('insert 1')
          },
          {
            retry: {
              maxAttempts: 3,
              baseDelayMs: 0,
              retryOn: (e) => (asked.push(e), e.code === 'CONNECTION_LOST'),
            },
          },
        ),
      )
      expect(calls).toBe(1)
      expect(asked).toEqual([lost])
      expect(err.code).toBe('CONNECTION_LOST')
      expect(err.retryable).toBe(false)
      expect(err.cause).toBe(lost)
      expect(err.detail).toMatchObject({ outcome, notReplayed: true })
      expect(err.message).toMatch(/^lost during COMMIT \[transaction not replayed although transaction\.retry\.retryOn accepted/)
      expect(manager.connections.flatMap((c) => c.statements).filter((s) => s === 'insert 1')).toHaveLength(1)
      await pool.close()
    }
    // nor a TRANSACTION_ROLLED_BACK over such an error (fn caught it and went on), retryOn accepting everything
    const { pool } = makePool({ max: 1 })
    const committed = new DatabaseError('UNIQUE_VIOLATION', 'kept rows', { retryable: false, detail: { outcome: 'committed' } })
    let calls = 0
    const err = await rejection(
      pool.transaction(
        async () => {
          calls++
          throw new DatabaseError('TRANSACTION_ROLLED_BACK', 'rolled back', { cause: committed, retryable: false })
        },
        { retry: { maxAttempts: 3, baseDelayMs: 0, retryOn: () => true } },
      ),
    )
    expect(calls).toBe(1)
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(err.detail).toMatchObject({ outcome: 'committed', notReplayed: true })
    await pool.close()
  })

  it('honours a custom retryOn', async () => {
    const { pool } = makePool({ max: 1 })
    let calls = 0
    await rejection(
      pool.transaction(
        async () => {
          calls++
          throw new DatabaseError('UNIQUE_VIOLATION', 'dup')
        },
        { retry: { maxAttempts: 3, baseDelayMs: 0, maxDelayMs: 0, retryOn: (e) => e.code === 'UNIQUE_VIOLATION' } },
      ),
    )
    expect(calls).toBe(3)
  })

  it("a retryOn that throws rejects with CONFIGURATION, the attempt's error as cause, and replays nothing", async () => {
    const { pool, manager } = makePool({ max: 1 })
    const attemptError = new DatabaseError('UNIQUE_VIOLATION', 'dup')
    const bug = new TypeError('bug in retryOn')
    let calls = 0
    const err = await rejection(
      pool.transaction(
        async () => {
          calls++
          throw attemptError
        },
        {
          retry: {
            retryOn: () => {
              throw bug
            },
          },
        },
      ),
    )
    expect(err.code).toBe('CONFIGURATION')
    expect(err.cause).toBe(attemptError)
    expect(err.detail).toMatchObject({ option: 'transaction.retry.retryOn', retryOnError: bug })
    expect(err.message).toMatch(/transaction\.retry\.retryOn threw \(TypeError: bug in retryOn\)/)
    expect(calls).toBe(1)
    expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'ROLLBACK'])
  })

  it("a retryOn that throws keeps the attempt's detail.outcome ('unknown': COMMIT's answer lost) in message and detail", async () => {
    const { pool } = makePool({ max: 1 })
    const lost = new DatabaseError('CONNECTION_LOST', 'lost during COMMIT', { detail: { outcome: 'unknown' } })
    const err = await rejection(
      pool.transaction(
        () => {
          throw lost
        },
        {
          retry: {
            retryOn: () => {
              throw new Error('no rule')
            },
          },
        },
      ),
    )
    expect(err.code).toBe('CONFIGURATION')
    expect(err.cause).toBe(lost)
    expect(err.detail).toMatchObject({ option: 'transaction.retry.retryOn', outcome: 'unknown' })
    expect(err.message).toMatch(/outcome is unknown: it may have committed/)
    expect(err.message).not.toMatch(/rolled back/)
  })

  it.each([
    [{ isolation: 'snapshot' }, /transaction\.isolation "snapshot"/],
    [{ readOnly: 'yes' }, /transaction\.readOnly "yes"/],
    [{ deferrable: 1 }, /transaction\.deferrable 1/],
    [{ retry: 0 }, /transaction\.retry 0/],
    // a value of none of its forms names them all (numbers and booleans are accepted, not only objects)
    [{ retry: '3' }, /transaction\.retry "3": must be true, false, a number of attempts \(an integer between 1 and 100\) or an object/],
    [{ retry: null }, /transaction\.retry null: must be true, false, a number of attempts/],
    [{ retry: { attempts: 3 } }, /transaction\.retry\.attempts 3: unknown option/],
    [{ retry: { retryOn: 'x' } }, /transaction\.retry\.retryOn "x"/],
    [{ retry: { maxAttempts: 0 } }, /transaction\.retry\.maxAttempts 0/],
    [{ timeout: 5 }, /transaction\.timeout 5: unknown option/],
  ])('rejects options %j with CONFIGURATION', async (options, message) => {
    const { pool } = makePool({ max: 1 })
    const err = await rejection(pool.transaction(async () => 1, options as never))
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(message)
  })

  it('rejects a non-function callback', async () => {
    const { pool } = makePool({ max: 1 })
    expect((await rejection(pool.transaction('x' as never))).code).toBe('CONFIGURATION')
  })
})
