import type { Client } from 'pg'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, corkAtCursorCommandComplete, poolOn, within } from './helpers'

// A stream issued on a handle behind statements still waiting their turn or their answer (a COMMIT or
// a BEGIN not awaited, a slow write) is kept by dbpool until pg is idle (PostgresConnection.submit).
// Review r9 item 2: the cursor took its transaction status when read() first ran, not when pg wrote
// it: behind a COMMIT its committed write was reported without `outcome: 'committed'` (looked safe to
// run again), behind a BEGIN its rolled-back write as outcome unknown.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) => c.query('create table kept (id serial primary key, v text)'))
}, 120_000)

beforeEach(async () => {
  await admin(db.url, async (c) => c.query('truncate kept restart identity'))
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await db?.drop()
}, 60_000)

function onePool(): DatabasePool<PostgresConnection> {
  const created = poolOn(db.url, { min: 0, max: 1, name: 'stream-kept' }, { cancelTimeoutMs: 2_000 })
  created.on('error', () => undefined)
  return (pool = created)
}

async function rows(): Promise<unknown[]> {
  return admin(db.url, async (c) => (await c.query('select v from kept order by id')).rows)
}

/** Reads `stream` to its end; resolves with the error that ended it (undefined: none). */
async function streamError(stream: AsyncIterable<unknown>): Promise<DatabaseError | undefined> {
  try {
    for await (const row of stream) void row
    return undefined
  } catch (err) {
    if (!DatabaseError.is(err)) throw err
    return err
  }
}

// the result's two columns of one name are refused after the statement ran (see resultColumnsError)
const REFUSED_WRITE = "insert into kept (v) values ('by the stream') returning v, v"

describe('a stream kept behind a COMMIT or a BEGIN not awaited: its transaction is the one it runs in', () => {
  it('behind a COMMIT: its write ran in auto-commit and committed, and the error says so (outcome committed)', async () => {
    const p = onePool()
    const error = await p.withConnection(async (conn) => {
      await conn.query('begin')
      const commit = conn.query('commit')
      const err = await streamError(conn.stream(REFUSED_WRITE))
      await commit
      return err
    })
    expect(error).toMatchObject({ code: 'SYNTAX_ERROR', retryable: false, detail: { outcome: 'committed' } })
    expect(error!.message).toContain('committed: do not run it again')
    expect(await rows()).toEqual([{ v: 'by the stream' }])
  }, 30_000)

  it('behind a BEGIN: its write ran inside the transaction (no outcome, the transaction aborted), and the rollback undoes it', async () => {
    const p = onePool()
    const error = await p.withConnection(async (conn) => {
      const begin = conn.query('begin')
      const err = await streamError(conn.stream(REFUSED_WRITE))
      await begin
      await conn.query('rollback')
      return err
    })
    expect(error).toMatchObject({ code: 'SYNTAX_ERROR', retryable: false })
    expect(error!.detail?.outcome).toBeUndefined()
    expect(error!.message).toContain('inside a transaction')
    expect(error!.message).not.toContain('unknown')
    expect(await rows()).toEqual([])
  }, 30_000)

  it('behind a COMMIT: a connection lost after its Sync leaves its auto-commit write in doubt (outcome unknown)', async () => {
    const p = onePool()
    let error: unknown
    // the lease ends on a lost connection: its own error is not this test's subject
    await p
      .withConnection(async (conn) => {
        const client: Client = conn.native.client
        await conn.query('begin')
        const commit = conn.query('commit')
        const corked = corkAtCursorCommandComplete(client)
        const it = conn.stream("insert into kept (v) values ('lost') returning id", [], { batchSize: 10 })[Symbol.asyncIterator]()
        const first = it.next()
        first.catch(() => undefined)
        await commit
        expect(await within(corked, 5_000)).toEqual({ value: undefined })
        client.connection.stream.destroy()
        const outcome = await within(first, 5_000)
        error = typeof outcome === 'object' && 'error' in outcome ? outcome.error : outcome
      })
      .catch(() => undefined)
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', retryable: false, detail: { outcome: 'unknown' } })
  }, 30_000)
})
