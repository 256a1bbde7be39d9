import { DatabaseError, type PoolConnection } from '@dbpool/core'
import { makePool, rejection } from './helpers'

// conn.transaction(): a transaction on a connection the caller holds (its session kept)
describe('conn.transaction() on a withConnection handle', () => {
  it('runs begin, the callback and commit on the held connection, after the statements before it', async () => {
    const { pool, manager } = makePool({ max: 2 })
    const out = await pool.withConnection(async (conn) => {
      await conn.query('select pg_advisory_lock(1)')
      const inner = await conn.transaction(
        async (tx) => {
          await tx.query('insert 1')
          return 7
        },
        { isolation: 'serializable' },
      )
      await conn.query('select pg_advisory_unlock(1)')
      return inner
    })
    expect(out).toBe(7)
    expect(manager.connections).toHaveLength(1)
    expect(manager.connections[0]!.statements).toEqual([
      'select pg_advisory_lock(1)',
      'BEGIN ISOLATION LEVEL SERIALIZABLE',
      'insert 1',
      'COMMIT',
      'select pg_advisory_unlock(1)',
    ])
  })

  it('rolls back and rethrows the original error; the connection stays usable', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const original = new Error('app failure')
    await pool.withConnection(async (conn) => {
      expect(
        await rejection(
          conn.transaction(async (tx) => {
            await tx.query('insert 1')
            throw original
          }),
        ),
      ).toBe(original)
      await conn.query('after')
    })
    expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'insert 1', 'ROLLBACK', 'after'])
  })

  it('nests with a savepoint inside, and refuses COMMIT through tx.query()', async () => {
    const { pool, manager } = makePool({ max: 1 })
    await pool.withConnection((conn) =>
      conn.transaction(async (tx) => {
        await tx.transaction(async (inner) => void (await inner.query('inner')))
        expect((await rejection(tx.query('COMMIT'))).code).toBe('QUERY_FAILED')
      }),
    )
    expect(manager.connections[0]!.statements).toEqual([
      'BEGIN',
      'SAVEPOINT dbpool_sp_1',
      'inner',
      'RELEASE SAVEPOINT dbpool_sp_1',
      'COMMIT',
    ])
  })

  it('treats a failed COMMIT as a failure and rolls back', async () => {
    const { pool, manager } = makePool({ max: 1 })
    const serialization = new DatabaseError('SERIALIZATION_FAILURE', 'could not serialize', { backend: 'postgres', sqlState: '40001' })
    manager.queryFaults.push({ match: /^COMMIT$/, fault: { kind: 'fail', error: serialization }, fatal: false })
    const err = await rejection(pool.withConnection((conn) => conn.transaction(async () => 1)))
    expect(err.code).toBe('SERIALIZATION_FAILURE')
    expect(manager.connections[0]!.statements.slice(-2)).toEqual(['COMMIT', 'ROLLBACK'])
  })

  it.each([
    [{ isolation: 'snapshot' }, /transaction\.isolation "snapshot"/],
    [{ retry: true }, /transaction\.retry true: unknown option/],
  ])('rejects settings %j with CONFIGURATION, sending nothing', async (settings, message) => {
    const { pool, manager } = makePool({ max: 1 })
    const err = await rejection(pool.withConnection((conn) => conn.transaction(async () => 1, settings as never)))
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toMatch(message)
    expect(manager.connections[0]!.statements).toEqual([])
  })

  it('refuses settings for a savepoint inside a transaction', async () => {
    const { pool } = makePool({ max: 1 })
    const err = await rejection(pool.transaction((tx) => (tx as PoolConnection).transaction(async () => 1, { readOnly: true })))
    expect(err.code).toBe('CONFIGURATION')
  })
})
