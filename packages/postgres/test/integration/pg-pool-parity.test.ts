// The behaviours pg-pool's own test suite (brianc/node-postgres, packages/pg-pool/test) checks, where
// they apply to dbpool, one test per behaviour, on a real server. Where dbpool differs from pg-pool on
// purpose the test says so; docs/architecture.md ("Lifecycle next to pg-pool and HikariCP") says why.
// pg-pool behaviours with no dbpool counterpart: maxUses, the verify hook, callbacks, submittables.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { DatabaseError, sql, type DatabasePool, type PoolOptions } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection, type PostgresPoolOptions } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { backends, eventually, poolOn, rejection, sleep, terminate, uniqueAppName } from './helpers'

let db: TestDatabase
const opened: DatabasePool<PostgresConnection>[] = []

beforeAll(async () => {
  db = await createTestDatabase()
  const setup = poolOn(db.url, { min: 0 })
  await setup.query('create table hook_log (id serial primary key, pid int not null)')
  await setup.close()
}, 120_000)

afterEach(async () => {
  for (const pool of opened.splice(0)) await pool.close({ timeoutMs: 5_000 })
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** A pool on the test database with its own application_name (so its backends can be found); closed after the test. */
function pgPool(poolOptions: PoolOptions = {}, options: PostgresPoolOptions = {}): { pool: DatabasePool<PostgresConnection>; app: string } {
  const app = uniqueAppName('parity')
  const pool = poolOn(db.url, { min: 0, ...poolOptions }, options, { applicationName: app })
  opened.push(pool)
  return { pool, app }
}

/** A pool on a local TCP server that is not Postgres. */
function poolOnServer(server: Server, poolOptions: PoolOptions): DatabasePool<PostgresConnection> {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('server not listening')
  const pool = createPostgresPool(
    { host: '127.0.0.1', port: address.port, username: 'nobody', database: 'none', sslMode: 'disable' },
    { min: 0, name: 'fake-server', ...poolOptions },
  )
  opened.push(pool)
  return pool
}

async function listen(onSocket: (socket: Socket) => void): Promise<Server> {
  const server = createServer(onSocket)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

async function pids(app: string): Promise<number[]> {
  return (await backends(db.url, app)).map((b) => b.pid).sort()
}

async function settledCodes(promises: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(promises)
  return settled.map((r) => (r.status === 'fulfilled' ? 'ok' : DatabaseError.is(r.reason) ? r.reason.code : String(r.reason)))
}

describe('pool ending (pg-pool: ending.js)', () => {
  it('close() on a pool that was never used resolves', async () => {
    const { pool } = pgPool()
    const report = await pool.close()
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
  })

  it('close() after queries resolves and leaves no backend open', async () => {
    const { pool, app } = pgPool({ max: 3 })
    await Promise.all([1, 2, 3].map((i) => pool.query(sql`select ${i}::int as n`)))
    expect((await pids(app)).length).toBeGreaterThan(0)
    await pool.close()
    await eventually(async () => (await pids(app)).length === 0, 5_000, 'the backends to go')
  })

  it('a query issued just before close() completes', async () => {
    const { pool } = pgPool()
    const query = pool.query<{ name: string }>(sql`select ${'brianc'}::text as name`)
    await pool.close()
    expect((await query).rows[0]?.name).toBe('brianc')
  })

  it('close() waits for queued queries: 20 issued before close() on a pool of max 1 all complete', async () => {
    const { pool } = pgPool({ max: 1 })
    let completed = 0
    const queries = Array.from({ length: 20 }, (_, i) => pool.query(sql`select ${i}::int as n`).then(() => completed++))
    const report = await pool.close({ timeoutMs: 10_000 })
    expect(completed).toBe(20)
    expect(await settledCodes(queries)).toEqual(Array(20).fill('ok'))
    expect(report).toMatchObject({ outstandingLeases: [], abortedWaiters: 0, timedOut: false })
  })

  it('the same, with pipelining off: 20 queued leases drain through one connection', async () => {
    const { pool } = pgPool({ max: 1 }, { pipelineDepth: 1 })
    const queries = Array.from({ length: 20 }, (_, i) => pool.query(sql`select ${i}::int as n`))
    await pool.close({ timeoutMs: 10_000 })
    expect(await settledCodes(queries)).toEqual(Array(20).fill('ok'))
  })
})

describe('error handling (pg-pool: error-handling.js)', () => {
  it('concurrent failing statements each reject and the pool keeps working', async () => {
    const { pool } = pgPool({ max: 2 })
    const codes = await settledCodes(Array.from({ length: 5 }, () => pool.query("select 'asd' + 1")))
    expect(codes).toHaveLength(5)
    expect(codes.every((c) => c !== 'ok')).toBe(true)
    expect((await pool.query('select 1 as n')).rows).toEqual([{ n: 1 }])
  })

  it('a query that is neither text nor a sql fragment rejects CONFIGURATION naming query (it does not throw synchronously)', async () => {
    const { pool } = pgPool()
    const result = pool.query(null as unknown as string)
    const err = await rejection(result)
    expect([err.code, err.message]).toEqual(['CONFIGURATION', 'invalid query null: must be SQL text or a sql`` fragment'])
  })

  it('a handle cannot be used once its callback returned (dbpool releases in one place; there is no release() to call twice)', async () => {
    const { pool } = pgPool()
    let kept: { query(q: string): Promise<unknown> } | undefined
    await pool.withConnection(async (conn) => {
      kept = conn
    })
    expect((await rejection(kept!.query('select 1'))).code).toBe('QUERY_FAILED')
  })

  it('an ended pool rejects every further call, and a second close() returns the same report (pg-pool rejects it)', async () => {
    const { pool } = pgPool()
    const first = await pool.close()
    expect(await settledCodes([pool.query('select 1'), pool.withConnection(async () => 1), pool.transaction(async () => 1)])).toEqual([
      'POOL_CLOSED',
      'POOL_CLOSED',
      'POOL_CLOSED',
    ])
    expect(await pool.close()).toBe(first)
  })

  it('an error on an idle connection removes it from the pool and is reported (connectionLost)', async () => {
    const { pool, app } = pgPool({ max: 1 })
    const lost: string[] = []
    pool.on('connectionLost', (err, info) => lost.push(`${err.code}:${info.idle}`))
    await pool.query('select 1')
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1 })
    await terminate(db.url, app)
    await eventually(() => pool.stats().size === 0, 5_000, 'the lost connection to leave the pool')
    expect(lost).toEqual(['CONNECTION_LOST:true'])
    expect((await pool.query('select 1 as n')).rows).toEqual([{ n: 1 }])
  })

  it('an error on a leased connection keeps it out of the pool until its lease ends, then destroys it', async () => {
    const { pool, app } = pgPool({ max: 1 })
    const lost: boolean[] = []
    pool.on('connectionLost', (_err, info) => lost.push(info.idle))
    await pool.withConnection(async (conn) => {
      await conn.query('select 1')
      await terminate(db.url, app)
      await eventually(() => lost.length === 1, 5_000, 'the loss to be seen')
      expect(pool.stats()).toMatchObject({ size: 1, used: 1, idle: 0 })
    })
    expect(lost).toEqual([false])
    await eventually(() => pool.stats().size === 0, 5_000, 'the dead connection to be destroyed')
  })

  it('many statement errors on a pool of max 1 leave it working', async () => {
    const { pool } = pgPool({ max: 1 })
    for (let i = 0; i < 20; i++) expect((await rejection(pool.query('invalid sql'))).code).toBe('SYNTAX_ERROR')
    expect((await pool.query<{ name: string }>(sql`select ${'brianc'}::text as name`)).rows).toEqual([{ name: 'brianc' }])
  })

  it('a connection error is delivered to the waiting caller, and to the next one queued behind it', async () => {
    const server = await listen((socket) => socket.destroy())
    try {
      const pool = poolOnServer(server, { max: 1, acquireTimeoutMs: 20_000 })
      const started = Date.now()
      const codes = await settledCodes([pool.query('select 1'), pool.query('select 2')])
      expect(codes).toEqual(['CONNECTION_FAILED', 'CONNECTION_FAILED'])
      expect(Date.now() - started).toBeLessThan(10_000) // the cause, not the 20 s acquire timeout
    } finally {
      server.close()
    }
  })

  it('a connection killed during a query fails that query with CONNECTION_LOST', async () => {
    const { pool, app } = pgPool({ max: 1 })
    const failed = rejection(pool.query('select pg_sleep(5)'))
    await eventually(async () => (await backends(db.url, app)).some((b) => b.query.includes('pg_sleep')), 5_000, 'the query to run')
    await terminate(db.url, app)
    expect((await failed).code).toBe('CONNECTION_LOST')
  })
})

describe('connection timeout (pg-pool: connection-timeout.js)', () => {
  let silent: Server
  beforeAll(async () => {
    // accepts and never answers
    silent = await listen((socket) => socket.on('data', () => undefined))
  })
  afterAll(() => {
    silent.close()
  })

  it('a connect that gets no answer fails with CONNECTION_FAILED naming the timeout, and leaves nothing idle', async () => {
    const pool = poolOnServer(silent, { createTimeoutMs: 200 })
    const err = await rejection(pool.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toMatch(/timed out/)
    expect(pool.stats().idle).toBe(0)
  })

  it('repeated connect timeouts each fail', async () => {
    const pool = poolOnServer(silent, { createTimeoutMs: 50 })
    const codes: string[] = []
    for (let i = 0; i < 5; i++) codes.push((await rejection(pool.query('select 1'))).code)
    expect(codes).toEqual(Array(5).fill('CONNECTION_FAILED'))
  })

  it('a caller waiting for a busy connection times out with ACQUIRE_TIMEOUT', async () => {
    const { pool } = pgPool({ max: 1, min: 1, acquireTimeoutMs: 100 })
    // connected first: under load a connect alone can take longer than the 100 ms acquire deadline
    await eventually(() => pool.stats().idle === 1, 10_000, 'the warm-up')
    await pool.withConnection(async () => {
      expect((await rejection(pool.query('select now()'))).code).toBe('ACQUIRE_TIMEOUT')
    })
  })

  it('a timeout does not break the callers queued after it, and the pool recovers', async () => {
    const { pool } = pgPool({ max: 1, acquireTimeoutMs: 300 })
    let release!: () => void
    const holder = pool.withConnection(() => new Promise<void>((r) => (release = r)))
    await eventually(() => pool.stats().used === 1, 2_000, 'the lease')
    const early = rejection(pool.query('select 1'))
    await sleep(150)
    const late = pool.query('select 2 as n')
    expect((await early).code).toBe('ACQUIRE_TIMEOUT')
    release()
    await holder
    expect((await late).rows).toEqual([{ n: 2 }])
    expect((await pool.query(sql`select ${'brianc'}::text as name`)).rows).toEqual([{ name: 'brianc' }])
  })

  it('a connection that opens after its caller gave up is closed, not kept', async () => {
    const { pool, app } = pgPool({ max: 1, createTimeoutMs: 1 })
    const err = await rejection(pool.query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    await sleep(500)
    expect(await pids(app)).toEqual([])
  })
})

describe('idle timeout (pg-pool: idle-timeout.js, idle-timeout-exit.js)', () => {
  it('idle clients are removed after idleTimeoutMs', async () => {
    const { pool, app } = pgPool({ idleTimeoutMs: 200 })
    await pool.query('select now()')
    await eventually(async () => pool.stats().size === 0 && (await pids(app)).length === 0, 200 + 2_000, 'the idle backend to go')
  })

  it('idle clients are removed on time while another one is destroyed for an error', async () => {
    const { pool, app } = pgPool({ max: 2, idleTimeoutMs: 200 })
    await Promise.all([
      pool.withConnection((conn) => conn.query('select 1')),
      // a connection that saw a fatal error is destroyed at release (pg-pool: release(err))
      pool.withConnection((conn) => conn.query('select pg_terminate_backend(pg_backend_pid())').catch(() => undefined)),
    ])
    expect(pool.stats().size).toBe(1)
    await eventually(async () => pool.stats().size === 0 && (await pids(app)).length === 0, 200 + 2_000, 'both backends to go')
  })

  it('idle clients can be removed and recreated, again and again', async () => {
    const { pool } = pgPool({ idleTimeoutMs: 50 })
    const seen = new Set<number>()
    for (let i = 0; i < 5; i++) {
      const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid')
      seen.add(rows[0]!.pid)
      await eventually(() => pool.stats().size === 0, 2_000, 'the idle connection to go')
    }
    expect(seen.size).toBe(5)
  })

  it('a connection in use is never removed for being idle', async () => {
    const { pool } = pgPool({ max: 1, idleTimeoutMs: 10 })
    const pidsSeen: number[] = []
    for (let i = 0; i < 5; i++) {
      await pool.withConnection(async (conn) => {
        await sleep(50)
        pidsSeen.push((await conn.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid)
      })
    }
    expect(pidsSeen).toHaveLength(5)
  })

  it('with allowExitOnIdle, a script that never calls close() exits once its work is done', async () => {
    const child = runChild(['true'])
    await child.line(/^completed 1$/)
    expect(await child.exit(10_000)).toBe(0)
  }, 60_000)

  it('without allowExitOnIdle, idle sockets keep a script alive until the idle connections are removed', async () => {
    const child = runChild(['false', '300'])
    await child.line(/^completed 1$/)
    await child.line(/^removed$/)
    expect(await child.exit(10_000)).toBe(0)
  }, 60_000)

  it('without allowExitOnIdle and no idle timeout, an open socket keeps the script alive (close() is the normal end)', async () => {
    const child = runChild(['false', '0'])
    await child.line(/^completed 1$/)
    expect(await child.exit(2_000)).toBe('running')
    child.kill()
  }, 60_000)
})

describe('lifetime timeout (pg-pool: lifetime-timeout.js)', () => {
  it('an idle connection is removed once its max lifetime passes', async () => {
    const { pool, app } = pgPool({ maxLifetimeMs: 1_000, maxLifetimeJitter: 0 })
    await pool.query('select now()')
    expect(pool.stats().size).toBe(1)
    await eventually(async () => pool.stats().size === 0 && (await pids(app)).length === 0, 1_000 + 1_500, 'the expired backend to go')
  })

  it('a connection busy past its lifetime is removed after the caller is done, without a replacement', async () => {
    const { pool, app } = pgPool({ maxLifetimeMs: 1_000, maxLifetimeJitter: 0 })
    await pool.query('select pg_sleep(1.2)')
    await eventually(() => pool.stats().size === 0, 1_500, 'the expired connection to go')
    await sleep(100)
    expect(await pids(app)).toEqual([])
  })

  it('an expired connection is replaced when a caller needs one', async () => {
    const { pool } = pgPool({ maxLifetimeMs: 500, maxLifetimeJitter: 0 })
    const first = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    await eventually(() => pool.stats().size === 0, 2_000, 'the expired connection to go')
    const second = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    expect(second).not.toBe(first)
    expect(pool.stats().size).toBe(1)
  })
})

describe('sizing (pg-pool: sizing.js)', () => {
  it('a pool of max 1 uses one backend for many concurrent statements', async () => {
    const { pool, app } = pgPool({ max: 1 })
    const text = 'select count(*)::int as n from pg_stat_activity where application_name = $1'
    const results = await Promise.all(Array.from({ length: 20 }, () => pool.query<{ n: number }>(text, [app])))
    expect(results.map((r) => r.rows[0]?.n)).toEqual(Array(20).fill(1))
  })

  it('connections at or below min are kept past the idle timeout', async () => {
    const { pool } = pgPool({ max: 1, min: 1, idleTimeoutMs: 10 })
    await pool.query('select 1')
    await sleep(100)
    expect(pool.stats().idle).toBe(1)
  })

  it('a connection at min is still retired at its max lifetime (and replaced to keep min)', async () => {
    const { pool } = pgPool({ max: 1, min: 1, idleTimeoutMs: 10, maxLifetimeMs: 1_000, maxLifetimeJitter: 0 })
    const first = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    await sleep(1_000 + 1_000)
    const second = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    expect(second).not.toBe(first)
  })

  it('idle connections above min are removed, down to min', async () => {
    const { pool } = pgPool({ max: 2, min: 1, idleTimeoutMs: 10 })
    await Promise.all([pool.withConnection(() => sleep(20)), pool.withConnection(() => sleep(20))])
    await eventually(() => pool.stats().size === 1, 2_000, 'one connection to go')
    await sleep(100)
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1 })
  })

  it('connections released at the same time never drop below min', async () => {
    const { pool } = pgPool({ max: 2, min: 2, idleTimeoutMs: 10 })
    await Promise.all([pool.withConnection(() => sleep(5)), pool.withConnection(() => sleep(5))])
    await sleep(100)
    expect(pool.stats().idle).toBe(2)
  })
})

describe('lifecycle hooks and events (pg-pool: lifecycle-hooks.js, events.js)', () => {
  it('the session init runs once per new connection, not per borrow', async () => {
    const { pool } = pgPool({ max: 2 }, { sessionInit: ['insert into hook_log (pid) values (pg_backend_pid())'] })
    let connects = 0
    pool.on('connect', () => connects++)
    for (let i = 0; i < 5; i++) await pool.query('select 1')
    // Both leases held at once (a barrier, not a sleep): with a sleep, a loaded machine opened the
    // second connection slower than the first lease lasted, the second caller took the released
    // first connection, and the check below ran while the second connection's session init was
    // still in flight (1 connect, 1 row logged).
    let arrived = 0
    let bothIn!: () => void
    const together = new Promise<void>((resolve) => (bothIn = resolve))
    const hold = async (): Promise<void> => {
      if (++arrived === 2) bothIn()
      await together
    }
    await Promise.all([pool.withConnection(hold), pool.withConnection(hold)])
    const logged = await pool.query<{ pid: number }>('select pid from hook_log')
    expect(connects).toBe(2)
    expect(logged.rows).toHaveLength(2)
    expect(new Set(logged.rows.map((r) => r.pid)).size).toBe(2)
  })

  it('a failing session init fails the caller', async () => {
    const { pool } = pgPool({}, { sessionInit: ['select invalid here'] })
    const err = await rejection(pool.query('select 1'))
    expect(err.message).toMatch(/session init/)
  })

  it('connect is emitted once per new connection, and only for a successful one', async () => {
    const { pool } = pgPool({ max: 2 })
    const connects: number[] = []
    pool.on('connect', (info) => connects.push(info.connectionId))
    // both leases held until both started: two connections (a 20 ms sleep let the first come back
    // before the second connected on a loaded machine, and the second caller took it)
    let started = 0
    let bothStarted!: () => void
    const both = new Promise<void>((resolve) => (bothStarted = resolve))
    const hold = async (): Promise<void> => {
      if (++started === 2) bothStarted()
      await both
    }
    await Promise.all([pool.withConnection(hold), pool.withConnection(hold)])
    for (let i = 0; i < 5; i++) await pool.query('select 1')
    expect(new Set(connects).size).toBe(2)
    expect(connects).toHaveLength(2)

    const server = await listen((socket) => socket.destroy())
    try {
      const failing = poolOnServer(server, {})
      let emitted = 0
      failing.on('connect', () => emitted++)
      expect((await rejection(failing.query('select 1'))).code).toBe('CONNECTION_FAILED')
      expect(emitted).toBe(0)
    } finally {
      server.close()
    }
  })
})

describe('releasing clients (pg-pool: releasing-clients.js)', () => {
  it('a connection whose socket closed during the lease is removed on release, and the pool still works', async () => {
    const { pool } = pgPool({ max: 1 })
    await pool.withConnection(async (conn) => {
      conn.native.client.connection.stream.destroy()
      await sleep(20)
    })
    expect(pool.stats().size).toBe(0)
    expect((await pool.query('select 1 as n')).rows).toEqual([{ n: 1 }])
  })

  it('a connection the caller ended during the lease is removed on release', async () => {
    const { pool } = pgPool({ max: 1 })
    await pool.withConnection(async (conn) => {
      void conn.native.client.end()
    })
    expect(pool.stats().size).toBe(0)
    expect((await pool.query('select 1 as n')).rows).toEqual([{ n: 1 }])
  })

  it('sequential queries reuse one connection (pooling)', async () => {
    const { pool } = pgPool({ max: 10 })
    const seen = new Set<number>()
    for (let i = 0; i < 10; i++) seen.add((await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid)
    expect(seen.size).toBe(1)
  })
})

// ---- child processes: one query, no close() ----

const fixtures = join(__dirname, '..', 'fixtures')
const repoRoot = join(__dirname, '..', '..', '..', '..')

interface Child {
  line(match: RegExp, timeoutMs?: number): Promise<string>
  /** The exit code, or 'running' if it has not exited within `timeoutMs`. */
  exit(timeoutMs: number): Promise<number | null | 'running'>
  kill(): void
}

const children: ChildProcess[] = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
})

/** Runs fixtures/one-query-child.ts with ts-node (sources mapped as jest does) against the test database. */
function runChild(args: string[]): Child {
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register', '-r', join(fixtures, 'register-sources.ts'), join(fixtures, 'one-query-child.ts'), db.url, ...args],
    {
      cwd: repoRoot,
      env: { ...process.env, TS_NODE_PROJECT: join(repoRoot, 'tsconfig.jest.json'), TS_NODE_TRANSPILE_ONLY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  children.push(child)
  const out: string[] = []
  let stderr = ''
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(...chunk.split('\n').filter(Boolean)))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return {
    async line(match, timeoutMs = 45_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const seen = out.find((l) => match.test(l))
        if (seen) return seen
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`no line matching ${match} (exit ${child.exitCode}); stdout: ${out.join(' | ')}; stderr: ${stderr}`)
        await sleep(25)
      }
    },
    async exit(timeoutMs) {
      let timer: NodeJS.Timeout | undefined
      const running = new Promise<'running'>((resolve) => (timer = setTimeout(() => resolve('running'), timeoutMs)))
      const outcome = await Promise.race([exited, running])
      clearTimeout(timer)
      return outcome
    },
    kill: () => child.kill('SIGKILL'),
  }
}
