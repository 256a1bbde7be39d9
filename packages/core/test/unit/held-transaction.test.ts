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

// one scope at a time on a handle: what is refused is never sent
describe('scopes opened on a handle', () => {
  it('a second conn.transaction(), a conn.query() and conn.native while a transaction is open are refused without sending anything', async () => {
    const { pool, manager } = makePool({ max: 1 })
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    await pool.withConnection(async (conn) => {
      const first = conn.transaction(async (tx) => {
        await tx.query('insert 1')
        await gate
      })
      const second = jest.fn(async () => undefined)
      const refused = [
        await rejection(conn.transaction(second)),
        await rejection(conn.query('insert 2')),
        await rejection((async () => conn.native)()),
      ]
      for (const err of refused) {
        expect(err.code).toBe('QUERY_FAILED')
        expect(err.detail).toMatchObject({ reason: 'scope-open', scope: 'transaction' })
      }
      expect(second).not.toHaveBeenCalled()
      release()
      await first
      await conn.query('after')
    })
    expect(manager.connections[0]!.statements).toEqual(['BEGIN', 'insert 1', 'COMMIT', 'after'])
  })

  it('tx.transaction() and tx.query() while a savepoint is open are refused without sending anything', async () => {
    const { pool, manager } = makePool({ max: 1 })
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    await pool.transaction(async (tx) => {
      const first = tx.transaction(async (sp) => {
        await sp.query('insert 1')
        await gate
      })
      await new Promise((resolve) => setImmediate(resolve))
      for (const err of [
        await rejection(tx.transaction(async (b) => void (await b.query('insert 2')))),
        await rejection(tx.query('insert 3')),
      ])
        expect(err.detail).toMatchObject({ reason: 'scope-open', scope: 'savepoint' })
      release()
      await first
      await tx.query('after')
    })
    expect(manager.connections[0]!.statements).toEqual([
      'BEGIN',
      'SAVEPOINT dbpool_sp_1',
      'insert 1',
      'RELEASE SAVEPOINT dbpool_sp_1',
      'after',
      'COMMIT',
    ])
  })

  it('a savepoint handle used after its savepoint ended is refused as released; the savepoints of one transaction are numbered apart', async () => {
    const { pool, manager } = makePool({ max: 1 })
    await pool.transaction(async (tx) => {
      let kept: PoolConnection | undefined
      await tx.transaction(async (sp) => {
        kept = sp
        await sp.transaction(async (inner) => void (await inner.query('inner')))
      })
      const err = await rejection(kept!.query('late'))
      expect(err.code).toBe('QUERY_FAILED')
      expect(err.message).toMatch(/this savepoint was released/)
      await tx.transaction(async (sp) => void (await sp.query('second')))
    })
    expect(manager.connections[0]!.statements).toEqual([
      'BEGIN',
      'SAVEPOINT dbpool_sp_1',
      'SAVEPOINT dbpool_sp_2',
      'inner',
      'RELEASE SAVEPOINT dbpool_sp_2',
      'RELEASE SAVEPOINT dbpool_sp_1',
      'SAVEPOINT dbpool_sp_3',
      'second',
      'RELEASE SAVEPOINT dbpool_sp_3',
      'COMMIT',
    ])
  })
})
