import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { createTestDatabase, testPostgresUrl } from '@dbpool/testing'
import { withAdmin } from '../../src/test-database'
import { untilSuccess } from '../../src/until-success'

/** A TCP proxy to the test server that, while `refusing`, closes every new connection at once. */
async function refusingProxy(target: URL): Promise<{ server: Server; port: number; refusing: boolean; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const proxy = {
    refusing: false,
    server: createServer((client) => {
      sockets.add(client)
      client.on('error', () => undefined)
      if (proxy.refusing) return void client.destroy()
      const upstream = connect(Number(target.port || 5432), target.hostname)
      sockets.add(upstream)
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
      client.pipe(upstream).pipe(client)
    }),
    port: 0,
    close: async () => {
      for (const s of sockets) s.destroy()
      proxy.server.close()
      await once(proxy.server, 'close')
    },
  }
  proxy.server.listen(0, '127.0.0.1')
  await once(proxy.server, 'listening')
  proxy.port = (proxy.server.address() as { port: number }).port
  return proxy
}

async function exists(serverUrl: string, name: string): Promise<boolean> {
  const { rows } = await withAdmin(serverUrl, (c) => c.query('select 1 from pg_database where datname = $1', [name]))
  return rows.length === 1
}

describe('createTestDatabase', () => {
  it('drop() after a failed drop() tries again (the failure is not kept) and drops the database', async () => {
    const serverUrl = await testPostgresUrl()
    const proxy = await refusingProxy(new URL(serverUrl))
    const viaProxy = new URL(serverUrl)
    viaProxy.hostname = '127.0.0.1'
    viaProxy.port = String(proxy.port)
    try {
      const db = await createTestDatabase({ serverUrl: viaProxy.toString() })
      expect(await exists(serverUrl, db.name)).toBe(true)
      proxy.refusing = true
      const first = await db.drop().then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(first).toBeInstanceOf(Error)
      expect(await exists(serverUrl, db.name)).toBe(true)
      proxy.refusing = false
      await expect(db.drop()).resolves.toBeUndefined()
      expect(await exists(serverUrl, db.name)).toBe(false)
      // after a success: at once, nothing to do
      proxy.refusing = true
      await expect(db.drop()).resolves.toBeUndefined()
    } finally {
      await proxy.close()
    }
  }, 60_000)
})

describe('untilSuccess (drop, PgBouncer stop, cluster close)', () => {
  it('shares a run in progress, keeps a success, and tries again after a failure', async () => {
    let runs = 0
    let fail = true
    const cleanup = untilSuccess(async () => {
      runs++
      await new Promise((r) => setTimeout(r, 10))
      if (fail) throw new Error(`run ${runs} failed`)
    })
    const [a, b] = await Promise.allSettled([cleanup(), cleanup()])
    expect(runs).toBe(1)
    expect(a).toMatchObject({ status: 'rejected', reason: { message: 'run 1 failed' } })
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'run 1 failed' } })
    fail = false
    await cleanup()
    expect(runs).toBe(2)
    await cleanup()
    expect(runs).toBe(2)
  })
})
