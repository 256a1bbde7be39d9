import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { createHook } from 'node:async_hooks'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { DatabaseError } from '@dbpool/core'
import { toolError } from '../../src/tool-error'
import { hostIdentity } from '../../src/test-database'
import { createServer, connect, Socket } from 'node:net'
import { createTempSqlite, dockerAnswers, setupTestPostgres, startPostgres, startTcpProxy, teardownTestPostgres } from '@dbpool/testing'

describe('createTempSqlite', () => {
  it('gives a path in a fresh directory, removed by remove()', async () => {
    const a = await createTempSqlite()
    const b = await createTempSqlite({ fileName: 'ledger.db' })
    expect(a.dir).not.toBe(b.dir)
    expect(a.path.endsWith('/test.db')).toBe(true)
    expect(b.url).toBe(`sqlite:${b.path}`)
    await writeFile(b.path, 'x')
    await b.remove()
    await b.remove()
    expect(existsSync(b.dir)).toBe(false)
    await a.remove()
  })

  it('refuses a file name with a directory in it, or . or .. (the temp directory or its parent), as CONFIGURATION', async () => {
    for (const fileName of ['../escape.db', 'a/b.db', 'a\\b.db', '.', '..', '', 'a\0b.db']) {
      const err = await createTempSqlite({ fileName }).then(
        (t) => t.path,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(DatabaseError)
      expect(err).toMatchObject({ code: 'CONFIGURATION', message: expect.stringContaining('createTempSqlite fileName') })
    }
    const ok = await createTempSqlite({ fileName: '..db' })
    expect(ok.path).toBe(join(ok.dir, '..db'))
    await ok.remove()
  })
})

describe('dockerAnswers', () => {
  it('answers within about a second either way', async () => {
    const started = performance.now()
    const probe = await dockerAnswers(500)
    expect(performance.now() - started).toBeLessThan(1_500)
    if (!probe.ok) expect(probe.reason.length).toBeGreaterThan(0)
  })

  it('reports an engine that does not answer as absent', async () => {
    const silent = createServer(() => undefined)
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const saved = process.env.DOCKER_HOST
    process.env.DOCKER_HOST = `tcp://127.0.0.1:${(silent.address() as { port: number }).port}`
    try {
      const probe = await dockerAnswers(200)
      expect(probe.ok).toBe(false)
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST
      else process.env.DOCKER_HOST = saved
      silent.close()
    }
  })
})

describe('startTcpProxy', () => {
  async function echoServer(): Promise<{ port: number; close(): void }> {
    const sockets = new Set<Socket>()
    const server = createServer((s) => {
      sockets.add(s)
      s.on('data', (d) => s.write(d))
      s.on('error', () => undefined)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return {
      port: (server.address() as { port: number }).port,
      close: () => {
        for (const s of sockets) s.destroy()
        server.close()
      },
    }
  }

  function roundTrip(socket: Socket, text: string, timeoutMs: number): Promise<string | 'timeout'> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), timeoutMs)
      socket.once('data', (d) => {
        clearTimeout(timer)
        resolve(d.toString())
      })
      socket.write(text)
    })
  }

  it('forwards, blackholes without closing, resumes, resets and closes', async () => {
    const echo = await echoServer()
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: echo.port })
    try {
      const socket = connect(proxy.port, '127.0.0.1')
      socket.on('error', () => undefined)
      await once(socket, 'connect')
      expect(await roundTrip(socket, 'ping', 1_000)).toBe('ping')
      expect(proxy.connections).toBe(1)
      proxy.blackhole()
      expect(await roundTrip(socket, 'lost', 200)).toBe('timeout')
      expect(socket.destroyed).toBe(false)
      proxy.resume()
      expect(await roundTrip(socket, 'again', 1_000)).toBe('again')
      const closed = new Promise((resolve) => socket.once('close', resolve))
      proxy.resetAll()
      await closed
      expect(proxy.urlFor('postgres://u:p@db.internal:5432/x')).toBe(`postgres://u:p@127.0.0.1:${proxy.port}/x`)
    } finally {
      await proxy.close()
      echo.close()
    }
  })
})

describe('startTcpProxy resetAll while a connection shuts down', () => {
  it('closes every accepted socket, so no handle keeps the process alive', async () => {
    const live = new Set<number>()
    const hook = createHook({
      init(id, type) {
        if (type === 'TCPWRAP') live.add(id)
      },
      destroy(id) {
        live.delete(id)
      },
    }).enable()
    const target = createServer((s) => s.on('error', () => undefined))
    target.listen(0, '127.0.0.1')
    await once(target, 'listening')
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: (target.address() as { port: number }).port })
    // resetAll lands in the window between the client's FIN (the proxy's socket then ends its own
    // write side) and the end of that shutdown, as when a pool closes its connection just as a test
    // resets the proxy: libuv refuses to reset a socket that is shutting down, and Node then never
    // closes the handle (before the fix it stayed open and kept the process alive)
    const end = Socket.prototype.end
    let raced = false
    const spy = jest.spyOn(Socket.prototype, 'end').mockImplementation(function (this: Socket, ...args: unknown[]) {
      const result = (end as (...a: unknown[]) => Socket).apply(this, args)
      if (!raced && this.localPort === proxy.port) {
        raced = true
        proxy.resetAll()
      }
      return result
    })
    try {
      const socket = connect(proxy.port, '127.0.0.1')
      socket.on('error', () => undefined)
      await once(socket, 'connect')
      await new Promise((resolve) => setTimeout(resolve, 20))
      socket.end()
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(raced).toBe(true)
      await proxy.close()
      socket.destroy()
      target.close()
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(live.size).toBe(0)
    } finally {
      spy.mockRestore()
      hook.disable()
    }
  })
})

describe('jest global helpers', () => {
  it('setup starts nothing (the first test that needs Postgres does); teardown cleans up', async () => {
    const savedUrl = process.env.DBPOOL_TEST_PG_URL
    const savedShared = process.env.DBPOOL_TEST_PG_SHARED
    delete process.env.DBPOOL_TEST_PG_URL
    delete process.env.DBPOOL_TEST_PG_SHARED
    try {
      const started = performance.now()
      await setupTestPostgres()
      expect(performance.now() - started).toBeLessThan(500)
      const dir = process.env.DBPOOL_TEST_PG_SHARED
      expect(dir && existsSync(dir)).toBeTruthy()
      expect(existsSync(`${dir}/server.json`)).toBe(false)
      await teardownTestPostgres()
      expect(existsSync(dir!)).toBe(false)
      expect(process.env.DBPOOL_TEST_PG_SHARED).toBeUndefined()
    } finally {
      if (savedUrl !== undefined) process.env.DBPOOL_TEST_PG_URL = savedUrl
      if (savedShared !== undefined) process.env.DBPOOL_TEST_PG_SHARED = savedShared
    }
  })

  it('with DBPOOL_TEST_PG_URL set, setup does nothing at all', async () => {
    const savedUrl = process.env.DBPOOL_TEST_PG_URL
    const savedShared = process.env.DBPOOL_TEST_PG_SHARED
    process.env.DBPOOL_TEST_PG_URL = 'postgres://u:p@127.0.0.1:1/postgres'
    delete process.env.DBPOOL_TEST_PG_SHARED
    try {
      await setupTestPostgres()
      expect(process.env.DBPOOL_TEST_PG_SHARED).toBeUndefined()
    } finally {
      if (savedUrl === undefined) delete process.env.DBPOOL_TEST_PG_URL
      else process.env.DBPOOL_TEST_PG_URL = savedUrl
      if (savedShared !== undefined) process.env.DBPOOL_TEST_PG_SHARED = savedShared
    }
  })
})

describe('startPostgres never skips silently', () => {
  it('throws, naming what it tried, when the forced source is unavailable', async () => {
    const savedUrl = process.env.DBPOOL_TEST_PG_URL
    const savedHost = process.env.DOCKER_HOST
    delete process.env.DBPOOL_TEST_PG_URL
    process.env.DOCKER_HOST = 'tcp://127.0.0.1:1'
    try {
      await expect(startPostgres({ provider: 'env' })).rejects.toThrow(
        /no PostgreSQL available for tests[\s\S]*DBPOOL_TEST_PG_URL is not set/,
      )
      await expect(startPostgres({ provider: 'container' })).rejects.toThrow(/container: the Docker engine does not answer/)
    } finally {
      if (savedUrl !== undefined) process.env.DBPOOL_TEST_PG_URL = savedUrl
      if (savedHost === undefined) delete process.env.DOCKER_HOST
      else process.env.DOCKER_HOST = savedHost
    }
  })

  it('refuses an unknown DBPOOL_TEST_PG_PROVIDER', async () => {
    process.env.DBPOOL_TEST_PG_PROVIDER = 'podman'
    try {
      await expect(startPostgres()).rejects.toThrow('DBPOOL_TEST_PG_PROVIDER="podman"')
    } finally {
      delete process.env.DBPOOL_TEST_PG_PROVIDER
    }
  })
})

describe('toolError (startPostgresCluster running initdb, pg_ctl, pg_basebackup)', () => {
  it('hides the conninfo password of a tool killed at its timeout (Node names the whole command), in the message and the cause', async () => {
    const secret = 'replpw0123456789abcdef'
    const args = ['-e', 'setTimeout(() => {}, 10000)', `host=127.0.0.1 user=replicator password=${secret} application_name=standby1`]
    const failure = await promisify(execFile)(process.execPath, args, { timeout: 200 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    // what the old message was built from: empty output, Node's message with the command line
    expect(failure).toMatchObject({ killed: true, stderr: '', stdout: '' })
    expect((failure as Error).message).toContain(secret)
    const err = toolError('pg_basebackup', args, failure, [secret])
    const everything = `${err.stack} ${JSON.stringify(err, Object.getOwnPropertyNames(err))} ${JSON.stringify(err.cause, Object.getOwnPropertyNames(err.cause))} ${(err.cause as Error).stack}`
    expect(everything).not.toContain(secret)
    expect(err.message).toContain('pg_basebackup')
    expect(err.message).toContain('killed by SIGTERM')
    expect(err.message).toContain('password=[REDACTED]')
    expect(err.cause).toMatchObject({ killed: true, signal: 'SIGTERM' })
  })

  it('hides a secret the tool printed on stderr', async () => {
    const secret = 'superpw0123456789abcdef'
    const args = ['-e', `process.stderr.write('could not connect: password=${secret} and postgres://u:${secret}@h/db'); process.exit(3)`]
    const failure = await promisify(execFile)(process.execPath, args).then(
      () => undefined,
      (e: unknown) => e,
    )
    const err = toolError('pg_ctl', args, failure, [secret])
    expect(`${err.stack} ${JSON.stringify(err.cause, Object.getOwnPropertyNames(err.cause))}`).not.toContain(secret)
    expect(err.message).toContain('could not connect')
    expect(err.cause).toMatchObject({ code: 3 })
  })
})

describe('hostIdentity (which test databases the stale sweep may drop)', () => {
  it('sweeps only where a boot id tells this machine apart; the tag changes with the boot id', () => {
    const linux = (bootId: string) => (path: string) =>
      path.endsWith('boot_id') ? bootId : path.endsWith('/pid') ? 'pid:[4026531836]' : ''
    const a = hostIdentity(linux('0f5d...a'))
    expect(a).toEqual({ tag: expect.stringMatching(/^[0-9a-f]{8}$/), sweeps: true })
    expect(hostIdentity(linux('0f5d...b')).tag).not.toBe(a.tag)
    // macOS, Windows: the host name alone, which another machine on the same server may share
    expect(hostIdentity(() => '').sweeps).toBe(false)
  })
})
