import { Readable } from 'node:stream'
import type { DatabasePool, PoolConnection } from '@dbpool/core'
import { copyFrom, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, rejection } from './helpers'

// copyFrom(conn or tx, ...): the COPY runs on the handle's connection, so inside a transaction it
// commits or rolls back with the other statements. The old copyFrom took a pool only (CONFIGURATION).
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { min: 0, max: 3, name: 'copy-tx' })
  await pool.query('create table items (id int primary key, label text)')
}, 120_000)

beforeEach(async () => {
  await pool.query('truncate items')
})

afterAll(async () => {
  await pool?.close()
  await db?.drop()
}, 60_000)

async function ids(): Promise<number[]> {
  return (await pool.query<{ id: number }>('select id from items order by id')).rows.map((r) => r.id)
}

async function released(): Promise<void> {
  await eventually(() => pool.stats().used === 0, 5_000, 'the lease to be released')
}

describe('copyFrom on a transaction', () => {
  it('commits with the transaction: invisible to other connections before COMMIT, there after', async () => {
    let seenMeanwhile: number[] | undefined
    const n = await pool.transaction(async (tx) => {
      await tx.query("insert into items values (1, 'by insert')")
      const rows = await copyFrom(tx, 'copy items (id, label) from stdin', [
        [2, 'by copy'],
        [3, 'by copy'],
      ])
      seenMeanwhile = await ids()
      return rows
    })
    expect(n).toBe(2)
    expect(seenMeanwhile).toEqual([])
    expect(await ids()).toEqual([1, 2, 3])
  })

  it('rolls back with the transaction: a callback that throws after the COPY leaves nothing', async () => {
    const error = await pool
      .transaction(async (tx) => {
        await tx.query("insert into items values (1, 'by insert')")
        await copyFrom(tx, 'copy items (id, label) from stdin', [[2, 'by copy']])
        throw new Error('changed my mind')
      })
      .catch((err: unknown) => err)
    expect((error as Error).message).toBe('changed my mind')
    expect(await ids()).toEqual([])
    await released()
  })

  it('a deadline inside the transaction: QUERY_TIMEOUT, the connection closed, the transaction fails even if the callback swallows the error; nothing committed', async () => {
    const source = new Readable({ read() {} })
    source.push('5\tfive\n')
    let timedOut: unknown
    const outcome = await pool
      .transaction(async (tx) => {
        await tx.query("insert into items values (1, 'by insert')")
        timedOut = await copyFrom(tx, 'copy items (id, label) from stdin', source, { timeoutMs: 200 }).catch((err: unknown) => err)
      })
      .then(
        () => 'committed',
        (err: unknown) => err,
      )
    expect((timedOut as { code?: string }).code).toBe('QUERY_TIMEOUT')
    expect(outcome).not.toBe('committed')
    expect(source.destroyed).toBe(true)
    expect(await ids()).toEqual([])
    await released()
    expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  })
})

describe('copyFrom on a withConnection handle', () => {
  it('a failed COPY caught inside the transaction: the next statement is TRANSACTION_ROLLED_BACK whose cause is the COPY error, nothing committed', async () => {
    let next: unknown
    const err = await rejection(
      pool.transaction(async (tx) => {
        await tx.query("insert into items values (1, 'before')")
        const copyErr = await rejection(copyFrom(tx, 'copy items (id, label) from stdin', [[1, 'duplicate']]))
        expect(copyErr.code).toBe('UNIQUE_VIOLATION')
        next = await rejection(tx.query("insert into items values (2, 'after')"))
      }),
    )
    expect((next as { code: string }).code).toBe('TRANSACTION_ROLLED_BACK')
    expect(((next as { cause?: { code: string } }).cause ?? {}).code).toBe('UNIQUE_VIOLATION')
    expect(err.code).toBe('TRANSACTION_ROLLED_BACK')
    expect(await ids()).toEqual([])
    await released()
  })

  it('outside a transaction it commits at once, on the same session', async () => {
    await pool.withConnection(async (conn) => {
      await conn.query('create temporary table scratch (id int)')
      expect(await copyFrom(conn, 'copy scratch (id) from stdin', [[1], [2]])).toBe(2)
      expect(await copyFrom(conn, 'copy items (id, label) from stdin', [[7, 'seven']])).toBe(1)
      expect((await conn.query('select count(*)::int as n from scratch')).rows).toEqual([{ n: 2 }])
      expect(await ids()).toEqual([7])
    })
  })

  it('refuses a busy connection and a released handle with QUERY_FAILED, nothing sent', async () => {
    let kept: PoolConnection | undefined
    await pool.withConnection(async (conn) => {
      kept = conn
      const sleeping = conn.query('select pg_sleep(0.2)')
      const busy = await rejection(copyFrom(conn, 'copy items (id, label) from stdin', [[8, 'eight']]))
      expect(busy.code).toBe('QUERY_FAILED')
      expect(busy.message).toContain('busy')
      await sleeping
    })
    const gone = await rejection(copyFrom(kept!, 'copy items (id, label) from stdin', [[9, 'nine']]))
    expect(gone.code).toBe('QUERY_FAILED')
    expect(await ids()).toEqual([])
  })
})
