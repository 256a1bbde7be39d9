import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { inspect } from 'node:util'
import { DatabaseError } from '@dbpool/core'
import { createTestDatabase, startTcpProxy, testPostgresUrl } from '@dbpool/testing'
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

// review r3 item 3: a host list (as startPostgresCluster().hostsUrl() writes) went through `new URL()`
describe('createTestDatabase / urlFor with a multi-host URL', () => {
  const withHostList = (url: string): string => url.replace(/@([^/@]+)\//, '@$1,127.0.0.1:1/')

  async function ours(serverUrl: string): Promise<string[]> {
    return withAdmin(serverUrl, async (client) => {
      const { rows } = await client.query<{ datname: string }>(
        `select datname from pg_database where datname like 'dbpool\\_test\\_${process.pid}\\_%' order by datname`,
      )
      return rows.map((r) => r.datname)
    })
  }

  it('keeps the host list in the new URL, which reaches the new database; drop() removes it', async () => {
    const serverUrl = withHostList(await testPostgresUrl())
    expect(serverUrl).toContain(',127.0.0.1:1/')
    const before = await ours(serverUrl)
    const db = await createTestDatabase({ serverUrl })
    try {
      expect(db.url).toContain(',127.0.0.1:1/')
      const name = await withAdmin(
        db.url,
        async (client) => (await client.query<{ d: string }>('select current_database() as d')).rows[0]?.d,
      )
      expect(name).toBe(db.name)
    } finally {
      await db.drop()
    }
    expect(await ours(serverUrl)).toEqual(before)
  }, 60_000)

  it('a URL it cannot rewrite is CONFIGURATION before CREATE DATABASE, its password hidden from inspect', async () => {
    const serverUrl = await testPostgresUrl()
    const password = decodeURIComponent(new URL(serverUrl).password)
    const before = await ours(serverUrl)
    // a password with an unencoded "/": core refuses it (a URL parser would read part of it as the host)
    const bad = serverUrl.replace(/:([^:@/]*)@/, ':$1/zz@')
    const err = await createTestDatabase({ serverUrl: bad }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect(inspect(err)).not.toContain(password)
    expect(await ours(serverUrl)).toEqual(before)
  })

  it('startTcpProxy().urlFor() replaces a host list with the proxy', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 })
    try {
      const url = proxy.urlFor('postgres://u:s3cret@h1:5432,h2:5433/app?sslmode=disable')
      expect(url).toBe(`postgres://u:s3cret@127.0.0.1:${proxy.port}/app?sslmode=disable`)
      expect(proxy.urlFor('postgres://u:s3cret@h/app?host=a,b&port=1')).toBe(`postgres://u:s3cret@127.0.0.1:${proxy.port}/app`)
      let err: unknown
      try {
        proxy.urlFor('postgres://u:s3/cret@h1,h2/app')
      } catch (e) {
        err = e
      }
      expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
      expect(inspect(err)).not.toContain('cret')
    } finally {
      await proxy.close()
    }
  })
})
