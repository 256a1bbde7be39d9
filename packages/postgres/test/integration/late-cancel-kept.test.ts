import { Client } from 'pg'
import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { copyFrom, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn } from './helpers'

// A statement aborted by its signal just as it completes: the cancel request is still on its way
// when the statement's ReadyForQuery comes. The statements issued behind it on the same lease are
// kept until the server has confirmed the cancel, so a late cancel can never hit one of them; a
// cancel the server does not confirm fails them not started and closes the connection (review r11
// item 5: pg was handed the next kept statement at the aborted one's ReadyForQuery, and the cancel
// cancelled it, a statement the caller never aborted, in 6 of 10 runs). The same for copyFrom()
// stopped after its CopyDone.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined
let locker: Client

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (c) =>
    c.query(`
      create table late (id int primary key);
      create table loaded (id int primary key);
      -- every row a COPY loads waits for advisory lock 7 (held by the test), after the COPY's CopyDone
      create function loaded_waits() returns trigger language plpgsql as $$
        begin perform pg_advisory_lock(7); perform pg_advisory_unlock(7); return new; end $$;
      create trigger loaded_waits before insert on loaded for each row execute function loaded_waits();
    `),
  )
  locker = new Client({ connectionString: db.url, application_name: 'dbpool-test-locker' })
  await locker.connect()
}, 120_000)

beforeEach(async () => {
  await admin(db.url, async (c) => c.query('delete from late; delete from loaded'))
})

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
}, 15_000)

afterAll(async () => {
  await locker?.end()
  await db?.drop()
}, 60_000)

function onePool(cancelTimeoutMs = 5_000): DatabasePool<PostgresConnection> {
  return (pool = poolOn(db.url, { min: 0, max: 1, name: 'late-cancel' }, { cancelTimeoutMs }))
}

function outcome(settled: PromiseSettledResult<unknown>): unknown {
  if (settled.status === 'fulfilled') return 'ok'
  const err = settled.reason as unknown
  return DatabaseError.is(err) ? { code: err.code, retryable: err.retryable, detail: err.detail } : err
}

async function count(table: string): Promise<number> {
  return admin(db.url, async (c) => (await c.query<{ n: number }>(`select count(*)::int as n from ${table}`)).rows[0]!.n)
}

/** Until the lease's backend waits for a lock (the statement or COPY is blocked on the server). */
async function untilWaiting(appName: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const waiting = await admin(
      db.url,
      async (c) =>
        (await c.query("select 1 from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'", [appName])).rowCount,
    )
    if (waiting) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('the statement never waited for the lock')
}

function appName(p: DatabasePool<PostgresConnection>): Promise<string> {
  return p.query<{ name: string }>("select current_setting('application_name') as name").then((r) => r.rows[0]!.name)
}

const RUNS = 10

it('a statement aborted as it completes: the cancel never hits the statement kept behind it on the lease (no signal), in any run', async () => {
  const p = onePool()
  const app = await appName(p)
  const results: unknown[] = []
  for (let i = 0; i < RUNS; i++) {
    await locker.query('select pg_advisory_lock(42)')
    const ac = new AbortController()
    results.push(
      await p.withConnection(async (conn) => {
        const first = conn.query('select pg_advisory_lock(42), pg_advisory_unlock(42)', [], { signal: ac.signal })
        const second = conn.query(`insert into late select ${i} from pg_sleep(0.2)`)
        await untilWaiting(app)
        // the first statement completes as soon as the lock is released: abort at the same time
        await locker.query('select pg_advisory_unlock(42)')
        ac.abort()
        return (await Promise.allSettled([first, second])).map(outcome)
      }),
    )
  }
  // the first one completed before the cancel landed (or was cancelled); the second one always ran
  for (const [first, second] of results as [unknown, unknown][]) {
    expect(first === 'ok' || (first as { code?: unknown }).code === 'QUERY_CANCELLED').toBe(true)
    expect(second).toBe('ok')
  }
  expect(await count('late')).toBe(RUNS)
}, 60_000)

it('a cancel request the server does not confirm: the statements kept behind it, and those issued later, fail not started; the connection is closed', async () => {
  const p = onePool()
  const before = (await p.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
  const ac = new AbortController()
  const [first, second, third] = await p.withConnection(async (conn) => {
    // no cancel key: the cancel request cannot be sent, so the server never confirms it
    ;(conn.native.client as unknown as { processID: number | null }).processID = null
    const running = conn.query('select pg_sleep(0.3)', [], { signal: ac.signal })
    const kept = conn.query('insert into late values (1)')
    await new Promise((resolve) => setTimeout(resolve, 50))
    ac.abort()
    const later = conn.query('insert into late values (2)')
    return (await Promise.allSettled([running, kept, later])).map(outcome)
  })
  // the aborted statement ran to its end (its cancel was never sent)
  expect(first).toBe('ok')
  const notStarted = { code: 'CONNECTION_LOST', retryable: true, detail: { started: false } }
  expect(second).toEqual(notStarted)
  expect(third).toEqual(notStarted)
  expect(await count('late')).toBe(0)
  // never reused: the next lease has a new connection
  const after = (await p.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
  expect(after).not.toBe(before)
}, 30_000)

it('copyFrom() on a lease stopped after its CopyDone, as it completes: the cancel never hits the statement kept behind it', async () => {
  const p = onePool()
  const app = await appName(p)
  const results: unknown[] = []
  for (let i = 0; i < RUNS; i++) {
    await locker.query('select pg_advisory_lock(7)')
    const ac = new AbortController()
    results.push(
      await p.withConnection(async (conn) => {
        const copying = copyFrom(conn, 'copy loaded (id) from stdin', [[i]], { signal: ac.signal })
        const kept = conn.query(`insert into late select ${i} from pg_sleep(0.2)`)
        // all its data sent, CopyDone too: the server waits in the trigger
        await untilWaiting(app)
        await locker.query('select pg_advisory_unlock(7)')
        ac.abort()
        return (await Promise.allSettled([copying, kept])).map(outcome)
      }),
    )
  }
  for (const [, kept] of results as [unknown, unknown][]) expect(kept).toBe('ok')
  expect(await count('late')).toBe(RUNS)
}, 60_000)
