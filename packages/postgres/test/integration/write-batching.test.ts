import { DatabaseConfig } from '@dbpool/core'
import { PostgresConnectionManager, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

let db: TestDatabase
let manager: PostgresConnectionManager
let conn: PostgresConnection | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  manager = new PostgresConnectionManager(DatabaseConfig.fromUrl(db.url, { sslMode: 'disable' }))
}, 120_000)

afterEach(async () => {
  if (conn) await manager.destroy(conn)
  conn = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** Counts what reaches the socket's write system call (Node's `_write` / `_writev` of the net.Socket). */
function countWrites(c: PostgresConnection): { readonly count: number } {
  const socket = c.client.connection.stream as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
  const counter = { count: 0 }
  for (const method of ['_write', '_writev'] as const) {
    const original = socket[method]!.bind(socket)
    socket[method] = (...args: unknown[]) => {
      counter.count++
      return original(...args)
    }
  }
  return counter
}

describe('pipelined statements', () => {
  it('written in one tick behind a statement in flight leave in one write; a lone one leaves at once', async () => {
    conn = await manager.connect('write', { onLost: () => undefined })
    const writes = countWrites(conn)
    const first = manager.executeShared<{ n: number }>(conn, { text: 'select $1::int as n, pg_sleep(0.05)', params: [0] })
    // nothing was in flight: written at once, not held to the end of the tick
    expect(writes.count).toBe(1)
    const rest = Array.from({ length: 20 }, (_, i) =>
      manager.executeShared<{ n: number }>(conn!, { text: 'select $1::int as n', params: [i + 1] }),
    )
    const results = await Promise.all([first, ...rest])
    expect(results.map((r) => r.rows[0]!.n)).toEqual(Array.from({ length: 21 }, (_, i) => i))
    // one write for the first, one for the twenty behind it (one each without holding)
    expect(writes.count).toBe(2)
  })

  it('statements sent from promise continuations in the same tick are written together too', async () => {
    conn = await manager.connect('write', { onLost: () => undefined })
    const c = conn
    const writes = countWrites(c)
    const first = manager.executeShared(c, { text: 'select pg_sleep(0.05)', params: [] })
    const chained = Array.from({ length: 10 }, (_, i) =>
      Promise.resolve()
        .then(() => undefined)
        .then(() => manager.executeShared<{ n: number }>(c, { text: 'select $1::int as n', params: [i] })),
    )
    await first
    expect((await Promise.all(chained)).map((r) => r.rows[0]!.n)).toEqual(Array.from({ length: 10 }, (_, i) => i))
    expect(writes.count).toBe(2)
  })
})
