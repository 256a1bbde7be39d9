import { DatabaseConfig, Migrator, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, listen, notify, type PostgresConnection, type PostgresPoolOptions } from '@dbpool/postgres'
import { createTestDatabase, findPgBouncer, startPgBouncer, type PgBouncer, type TestDatabase } from '@dbpool/testing'
import { admin, rejection, uniqueAppName } from './helpers'

// PgBouncer 1.18 (Debian 12's package) in transaction pooling mode in front of the test server.
// .ci/run installs it; with CI set a missing binary fails these tests instead of skipping them.
const available = findPgBouncer() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip
if (!available) console.warn('pgbouncer.test.ts: no pgbouncer binary (apt-get install pgbouncer): skipped')

let db: TestDatabase
let bouncer: PgBouncer
const pools: DatabasePool<PostgresConnection>[] = []

/** A pool through PgBouncer; `query` is appended to the URL (e.g. `pgbouncer=true`). */
function poolThrough(query: string, max: number, options: PostgresPoolOptions = {}): DatabasePool<PostgresConnection> {
  const url = `${bouncer.urlFor(db.url)}${query ? `?${query}` : ''}`
  const pool = createPostgresPool(
    DatabaseConfig.fromUrl(url, { sslMode: 'disable', applicationName: uniqueAppName('bouncer') }),
    { min: 0, max, name: 'bouncer' },
    options,
  )
  pools.push(pool)
  return pool
}

suite('through PgBouncer in transaction mode', () => {
  beforeAll(async () => {
    db = await createTestDatabase()
    await admin(db.url, (c) =>
      c.query("create table kv (id int primary key, v text not null); insert into kv select g, 'v' || g from generate_series(1, 200) g"),
    )
    // two server connections for every client connection of the pools below
    bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 2 })
  }, 120_000)

  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  })

  afterAll(async () => {
    await bouncer?.stop()
    await db?.drop()
  }, 60_000)

  it('?pgbouncer=true: many concurrent parameterised statements and transactions all succeed, none named', async () => {
    const pool = poolThrough('pgbouncer=true', 10)
    const texts = Array.from({ length: 30 }, (_, t) => `select id, v, $2::int + ${t} as n from kv where id = $1`)
    const results = await Promise.all(
      Array.from({ length: 600 }, (_, i) => {
        const id = (i % 200) + 1
        return pool.query<{ id: number; v: string; n: number }>(texts[i % 30]!, [id, i]).then((r) => r.rows[0])
      }),
    )
    results.forEach((row, i) => expect(row).toEqual({ id: (i % 200) + 1, v: `v${(i % 200) + 1}`, n: i + (i % 30) }))
    const sums = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        pool.transaction(async (tx) => {
          await tx.query('select v from kv where id = $1 for update', [(i % 5) + 1])
          return (await tx.query<{ s: string }>('select sum(id)::text as s from kv where id <= $1', [i + 1])).rows[0]!.s
        }),
      ),
    )
    expect(sums).toEqual(Array.from({ length: 40 }, (_, i) => String(((i + 1) * (i + 2)) / 2)))
    // every server session PgBouncer lent the pool (two) holds no named statement
    const named = await Promise.all(
      Array.from({ length: 10 }, () =>
        pool.query<{ n: number }>('select count(*)::int as n from pg_prepared_statements').then((r) => r.rows[0]!.n),
      ),
    )
    expect(named).toEqual(Array.from({ length: 10 }, () => 0))
  })

  it('pool.stream() through PgBouncer: 4 streams at once over 2 server connections each keep their own portal to the end', async () => {
    const pool = poolThrough('pgbouncer=true', 4)
    const read = async (offset: number): Promise<number[]> => {
      const ids: number[] = []
      for await (const row of pool.stream<{ id: number }>('select id from kv where id > $1 order by id', [offset], { batchSize: 7 }))
        ids.push(row.id)
      return ids
    }
    const all = await Promise.all([0, 50, 100, 150].map(read))
    all.forEach((ids, k) => expect(ids).toEqual(Array.from({ length: 200 - k * 50 }, (_, i) => k * 50 + i + 1)))
    expect(pool.stats().used).toBe(0)
  })

  it('without it, a named statement can reach a server connection that never parsed it: 26000 inside a transaction', async () => {
    const pool = poolThrough('', 1, { prepare: 'always', pipelineDepth: 1 })
    const text = 'select v from kv where id = $1'
    // parsed on the server connection PgBouncer lends this first transaction (it reuses the last one released)
    await pool.query(text, [1])
    // another client holds that server connection in a transaction, so the next one goes elsewhere
    const failure = await admin(bouncer.urlFor(db.url), async (other) => {
      await other.query('begin')
      await other.query('select 1')
      try {
        return await rejection(pool.transaction((tx) => tx.query(text, [2])))
      } finally {
        await other.query('rollback')
      }
    })
    expect(failure.sqlState).toBe('26000')
    expect(failure.retryable).toBe(true)
    // the same through ?pgbouncer=true
    const safe = poolThrough('pgbouncer=true', 1, { pipelineDepth: 1 })
    await safe.query(text, [1])
    const rows = await admin(bouncer.urlFor(db.url), async (other) => {
      await other.query('begin')
      await other.query('select 1')
      try {
        return (await safe.transaction((tx) => tx.query(text, [2]))).rows
      } finally {
        await other.query('rollback')
      }
    })
    expect(rows).toEqual([{ v: 'v2' }])
  })

  it('without it, two clients never run each other\u2019s statement under one name (names are hashes of the text)', async () => {
    // each pool's own text, run from both pools at once over the two shared server connections: a
    // name that meant another text on another session would return the other pool's numbers
    const one = poolThrough('', 2, { prepare: 'always' })
    const two = poolThrough('', 2, { prepare: 'always' })
    const run = (pool: DatabasePool<PostgresConnection>, offset: number, i: number): Promise<number> =>
      pool
        .query<{ x: number }>(`select $1::int + ${offset} as x`, [i])
        .then((r) => r.rows[0]!.x - offset)
        // a 26000 that could not be prepared again in time is a visible failure, not a wrong answer
        .catch(() => i)
    const got = await Promise.all(Array.from({ length: 300 }, (_, i) => run(i % 2 ? one : two, i % 2 ? 1_000 : 2_000, i)))
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => i))
  })
})

// PgBouncer as it ships: ignore_startup_parameters empty, so any startup parameter it does not
// track closes the connection ("unsupported startup parameter").
suite('pgbouncer modes against a PgBouncer that refuses unknown startup parameters', () => {
  let strictDb: TestDatabase
  let inTransactionMode: PgBouncer
  let inSessionMode: PgBouncer
  const opened: DatabasePool<PostgresConnection>[] = []

  function through(
    bouncerOf: PgBouncer,
    query: string,
    options: PostgresPoolOptions = {},
    overrides: Parameters<typeof DatabaseConfig.fromUrl>[1] = {},
  ): DatabasePool<PostgresConnection> {
    const url = `${bouncerOf.urlFor(strictDb.url)}${query ? `?${query}` : ''}`
    const pool = createPostgresPool(
      DatabaseConfig.fromUrl(url, { sslMode: 'disable', applicationName: uniqueAppName('modes'), ...overrides }),
      { min: 0, max: 2, name: 'modes' },
      options,
    )
    opened.push(pool)
    return pool
  }

  beforeAll(async () => {
    strictDb = await createTestDatabase()
    inTransactionMode = await startPgBouncer(strictDb.url, { poolMode: 'transaction', poolSize: 2, ignoreStartupParameters: [] })
    inSessionMode = await startPgBouncer(strictDb.url, { poolMode: 'session', poolSize: 4, ignoreStartupParameters: [] })
  }, 120_000)

  afterEach(async () => {
    delete process.env.PGOPTIONS
    await Promise.all(opened.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
  })

  afterAll(async () => {
    await inTransactionMode?.stop()
    await inSessionMode?.stop()
    await strictDb?.drop()
  }, 60_000)

  it('PGOPTIONS is CONFIGURATION naming database.options in both modes, as the options parameter: never dropped silently (its search_path lost)', () => {
    process.env.PGOPTIONS = '-c search_path=public'
    expect(() => through(inTransactionMode, 'pgbouncer=true')).toThrow(/invalid database\.options .*PGOPTIONS/)
    expect(() => through(inSessionMode, '', { pgbouncer: 'session' })).toThrow(/invalid database\.options .*PGOPTIONS/)
    delete process.env.PGOPTIONS
  })

  it('transaction mode: no options startup parameter is sent (pg would send PGOPTIONS set after the pool was made)', async () => {
    const pool = through(inTransactionMode, 'pgbouncer=true')
    process.env.PGOPTIONS = '-c search_path=public'
    expect((await pool.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }])
  })

  it('session mode: the timeouts go with SET after connecting instead of as startup parameters, and sessions work', async () => {
    const pool = through(
      inSessionMode,
      'statement_timeout=4321&lock_timeout=1234',
      { pgbouncer: 'session', sessionInit: 'SET search_path TO pg_catalog, public', prepare: 'always' },
      {},
    )
    const { rows } = await pool.query<{ st: string; lt: string; sp: string }>(
      "select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt, current_setting('search_path') as sp",
    )
    expect(rows).toEqual([{ st: '4321ms', lt: '1234ms', sp: 'pg_catalog, public' }])
    // named statements and LISTEN are allowed: the session is the client's
    await pool.query('select $1::int as n', [1])
    await pool.withConnection(async (conn) => {
      await conn.query('listen dbpool_modes')
      expect((await conn.query<{ n: number }>('select count(*)::int as n from pg_prepared_statements')).rows[0]!.n).toBeGreaterThan(0)
    })
    expect(pool.sessionFeatures).toEqual({ pgbouncer: 'session', sessions: true })
    // listen() too: its dedicated connection keeps its server session
    const received: string[] = []
    const subscription = await listen(pool, 'dbpool_modes', (payload) => void received.push(payload))
    await notify(pool, 'dbpool_modes', 'through session mode')
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(received).toEqual(['through session mode'])
    await subscription.unlisten()
  })

  it("session mode: the timeouts sent with SET survive sessionReset 'clean' and a RESET ALL (the setup runs again on release)", async () => {
    // found by review (r11a t10): the clean's RESET ALL, or the application's, set them to 0 for good
    const expected = { st: '4321ms', lt: '1234ms', it: '9876ms' }
    for (const sessionReset of ['none', 'clean'] as const) {
      const pool = through(
        inSessionMode,
        'statement_timeout=4321&lock_timeout=1234&idle_in_transaction_session_timeout=9876',
        { pgbouncer: 'session', sessionReset, sessionInit: 'SET search_path TO pg_catalog, public' },
        {},
      )
      const show = async (): Promise<Record<string, string>> =>
        (
          await pool.query<Record<string, string>>(
            "select current_setting('statement_timeout') st, current_setting('lock_timeout') lt, current_setting('idle_in_transaction_session_timeout') it, current_setting('search_path') sp",
          )
        ).rows[0]!
      const all = { ...expected, sp: 'pg_catalog, public' }
      expect(await show()).toEqual(all)
      await pool.withConnection((conn) => conn.query('select 1'))
      expect(await show()).toEqual(all)
      await pool.query('RESET ALL')
      expect(await show()).toEqual(all)
      await pool.query('DISCARD ALL')
      expect(await show()).toEqual(all)
    }
  })

  it('transaction mode: LISTEN, SET, session advisory locks are CONFIGURATION before anything is sent; their transaction-scoped forms run', async () => {
    const pool = through(inTransactionMode, 'pgbouncer=true')
    expect((await rejection(listen(pool, 'jobs', () => undefined))).code).toBe('CONFIGURATION')
    for (const text of [
      'listen jobs',
      'set search_path to public',
      'select pg_advisory_lock(42)',
      'select pg_try_advisory_lock(42)',
      'create temp table pgb_scratch (id int)',
      // found by review: quoted names, a SET in a DO block or its dynamic SQL
      `select "set_config"('search_path', 'pg_catalog', false)`,
      `select pg_catalog."set_config"('search_path', 'pg_catalog', false)`,
      'select "pg_advisory_lock"(42)',
      'do $$ begin set search_path = pg_catalog; end $$',
      "do $$ begin execute 'set search_path = pg_catalog'; end $$",
      // found by review: cursor options in any order, escaped dynamic SQL, a concatenated piece
      'declare c scroll binary cursor with hold for select 1',
      "do $$ begin execute E'\\x73et search_path = pg_catalog'; end $$",
      "do $$ begin execute 'select 1' || '; set search_path = pg_catalog'; end $$",
    ]) {
      const err = await rejection(pool.query(text))
      expect(err.code).toBe('CONFIGURATION')
      expect(err.message).toContain('PgBouncer in transaction mode')
    }
    const inTx = await rejection(pool.transaction((tx) => tx.query('select pg_advisory_lock(42)')))
    expect(inTx.code).toBe('CONFIGURATION')
    const got = await pool.transaction(async (tx) => {
      await tx.query('set local search_path to pg_catalog')
      await tx.query('select pg_advisory_xact_lock(42)')
      // a temporary table dropped at commit never outlives the transaction
      await tx.query('create temp table pgb_scratch (id int) on commit drop')
      await tx.query('insert into pgb_scratch values (1)')
      return (await tx.query<{ sp: string }>("select current_setting('search_path') as sp")).rows[0]!.sp
    })
    expect(got).toBe('pg_catalog')
    // a DO block whose setting is transaction-scoped runs
    await pool.query("do $$ begin perform set_config('search_path', 'pg_catalog', true); end $$")
    // found by review: a common migration whose data literals read like session commands runs
    const migration =
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'pgb_job_state') THEN CREATE TYPE pgb_job_state AS ENUM ('prepare', 'load', 'run'); END IF; END $$"
    await pool.query(migration)
    await pool.query(migration)
    await pool.query("DO $$ DECLARE v text := 'listen'; BEGIN PERFORM 'reset password requested'; END $$")
    const labels = await pool.query<{ l: string }>('select unnest(enum_range(null::pgb_job_state))::text as l')
    expect(labels.rows.map((r) => r.l)).toEqual(['prepare', 'load', 'run'])
    // nothing was sent: no session lock is held in this database (other test files on the server hold their own)
    const locks = await admin(strictDb.url, (c) =>
      c.query<{ n: number }>(
        "select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())",
      ),
    )
    expect(locks.rows[0]!.n).toBe(0)
    expect(pool.sessionFeatures).toMatchObject({ pgbouncer: 'transaction', sessions: false })
  })

  it("transaction mode: the Migrator's transaction:false migrations (a session advisory lock) are refused with CONFIGURATION", async () => {
    const pool = through(inTransactionMode, 'pgbouncer=true')
    let ran = false
    const err = await rejection(
      new Migrator(pool, {
        migrations: [
          {
            version: 1,
            name: 'concurrently',
            transaction: false,
            up: async () => {
              ran = true
            },
          },
        ],
      }).up(),
    )
    expect(err.code).toBe('CONFIGURATION')
    expect(err.message).toContain('session-level')
    expect(ran).toBe(false)
  })
})
