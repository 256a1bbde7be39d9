import { sql, type DatabaseError, type DatabasePool } from '@dbpool/core'
import { PostgresConnectionManager, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, eventually, poolOn } from './helpers'

let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  const setup = poolOn(db.url, { min: 0 })
  await setup.query('create table reset_flag (x int)')
  await setup.close()
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** Leaves every kind of session state behind on a connection, and prepares a named statement through pg. */
async function dirty(conn: PostgresConnection['client']): Promise<void> {
  await conn.query("set work_mem = '1MB'")
  await conn.query('set statement_timeout = 1234')
  await conn.query("set application_name = 'left-behind'")
  await conn.query('create temp table scratch (x int)')
  await conn.query('listen some_channel')
  await conn.query('select pg_advisory_lock(424242)')
  await conn.query({ name: 'named_probe', text: 'select $1::int as n', values: [1] })
}

interface Session {
  pid: number
  workMem: string
  statementTimeout: string
  applicationName: string
  scratch: boolean
  channels: number
  advisoryLocks: number
}

async function session(pool: DatabasePool<PostgresConnection>): Promise<Session> {
  return pool.withConnection(async (conn) => {
    const { rows } = await conn.query<Record<string, unknown>>(
      `select pg_backend_pid() as pid, current_setting('work_mem') as work_mem, current_setting('statement_timeout') as statement_timeout,
        current_setting('application_name') as application_name, to_regclass('pg_temp.scratch') is not null as scratch,
        (select count(*) from pg_listening_channels()) as channels,
        (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as advisory_locks`,
    )
    const row = rows[0] as Record<string, unknown>
    return {
      pid: Number(row.pid),
      workMem: String(row.work_mem),
      statementTimeout: String(row.statement_timeout),
      applicationName: String(row.application_name),
      scratch: row.scratch === true,
      channels: Number(row.channels),
      advisoryLocks: Number(row.advisory_locks),
    }
  })
}

describe("sessionReset: 'clean'", () => {
  it('gives the next borrower of the same connection a fresh session: settings, temp tables, LISTEN and advisory locks gone, sessionInit applied again', async () => {
    pool = poolOn(
      db.url,
      { max: 1, min: 0, name: 'reset-clean' },
      { sessionReset: 'clean', sessionInit: "set work_mem = '7MB'" },
      { statementTimeoutMs: 30_000 },
    )
    const fresh = await session(pool)
    expect(fresh).toMatchObject({ workMem: '7MB', statementTimeout: '30s', scratch: false, channels: 0, advisoryLocks: 0 })
    await pool.withConnection((conn) => dirty(conn.native.client))
    const after = await session(pool)
    expect(after).toEqual({ ...fresh, pid: fresh.pid }) // the same backend, as it was
    // pg's named prepared statement survives (CLEAN_SESSION_SQL does not DEALLOCATE)
    await pool.withConnection(async (conn) => {
      const { rows } = await conn.native.client.query({ name: 'named_probe', text: 'select $1::int as n', values: [2] })
      expect(rows).toEqual([{ n: 2 }])
    })
  })

  it('a lone pool.query that changes the session (set_config(..., false), a session advisory lock, SELECT INTO TEMP) is not shared: the next borrower gets a fresh session', async () => {
    // found by review (review-pg/03): with the default pipelineDepth every lone statement shared a
    // pipelined connection, whose release skipped the clean
    pool = poolOn(db.url, { max: 1, min: 0, name: 'reset-lone' }, { sessionReset: 'clean' })
    const fresh = await session(pool)
    const role = `reset_role_${fresh.pid}`
    await admin(db.url, (c) => c.query(`create role ${role}`))
    try {
      await pool.query("select set_config('work_mem', '2MB', false)")
      await pool.query(sql`select "set_config"('statement_timeout', '4321', false)`)
      await pool.query(sql`select pg_advisory_lock(${424243})`)
      await pool.query('select 1 as x into temp table scratch')
      await pool.query(`select pg_catalog.set_config('role', '${role}', false)`)
      const after = await session(pool)
      expect(after).toEqual(fresh)
      const who = await pool.withConnection((c) => c.query<{ u: string }>('select current_user as u'))
      expect(who.rows[0]!.u).not.toBe(role)
    } finally {
      await pool.close({ timeoutMs: 5_000 })
      pool = undefined
      await admin(db.url, (c) => c.query(`drop role ${role}`))
    }
  })

  it('a connection that ran shared (pipelined) statements is cleaned before its next lease: a function called through pool.query that sets search_path and role leaves nothing for the next borrower', async () => {
    // found by review (review-pg/03): the text `select switch_tenant(7)` cannot show that it changes the
    // session, so it was shared, and the release of a pipelined connection skipped the clean
    pool = poolOn(db.url, { max: 1, min: 0, name: 'reset-shared' }, { sessionReset: 'clean', pipelineDepth: 8 })
    const fresh = await pool.withConnection((c) =>
      c.query<{ sp: string; u: string }>("select current_setting('search_path') as sp, current_user as u"),
    )
    const role = `reset_shared_role_${process.pid}`
    await admin(db.url, async (c) => {
      await c.query(`create role ${role}`)
      await c.query(`create schema if not exists tenant_7`)
      await c.query(`grant usage on schema tenant_7 to ${role}`)
      await c.query(`create or replace function switch_tenant(id int) returns int language plpgsql as $$
        begin
          perform set_config('search_path', 'tenant_' || id, false);
          execute format('set role %I', '${role}');
          return id;
        end $$`)
    })
    try {
      // concurrent callers on one connection: they share it in pipeline mode
      const shared = jest.spyOn(PostgresConnectionManager.prototype, 'executeShared')
      const results = await Promise.all([
        pool.query<{ n: number }>('select 1 as n'),
        pool.query<{ n: number }>('select switch_tenant(7) as n'),
        pool.query<{ n: number }>('select 3 as n'),
        pool.query<{ n: number }>('select 4 as n'),
      ])
      expect(results.map((r) => r.rows[0]!.n)).toEqual([1, 7, 3, 4])
      expect(shared.mock.calls.map(([, q]) => q.text)).toContain('select switch_tenant(7) as n')
      shared.mockRestore()
      const after = await pool.withConnection((c) =>
        c.query<{ sp: string; u: string }>("select current_setting('search_path') as sp, current_user as u"),
      )
      expect(after.rows).toEqual(fresh.rows)
      // the same for the statements a lone caller issues one after another (one kept shared connection)
      await pool.query('select switch_tenant(7)')
      await pool.query('select 2')
      const again = await pool.withConnection((c) =>
        c.query<{ sp: string; u: string }>("select current_setting('search_path') as sp, current_user as u"),
      )
      expect(again.rows).toEqual(fresh.rows)
    } finally {
      await pool.close({ timeoutMs: 5_000 })
      pool = undefined
      await admin(db.url, async (c) => {
        await c.query('drop function switch_tenant(int)')
        await c.query('drop schema tenant_7')
        await c.query(`drop role ${role}`)
      })
    }
  })

  it("by contrast 'none' (the default) hands the next borrower the same session state, like pg-pool", async () => {
    pool = poolOn(db.url, { max: 1, min: 0, name: 'reset-none' })
    const fresh = await session(pool)
    await pool.withConnection((conn) => dirty(conn.native.client))
    expect(await session(pool)).toMatchObject({
      pid: fresh.pid,
      workMem: '1MB',
      statementTimeout: '1234ms',
      applicationName: 'left-behind',
      scratch: true,
      channels: 1,
      advisoryLocks: 1,
    })
  })

  it("'none': a session made read-only in an earlier lease (or by sessionInit) fails the next write with READ_ONLY, not retryable, and evicts nothing (it is no failover)", async () => {
    // found by review (review-pg/17): it was READ_ONLY retryable "fenced by a failover", every connection evicted
    pool = poolOn(db.url, { max: 2, min: 2, name: 'reset-read-only' })
    const events: string[] = []
    for (const event of ['connectionLost', 'failover', 'destroy'] as const) pool.on(event, () => events.push(event))
    await Promise.all([1, 2].map(() => pool!.withConnection(() => new Promise((resolve) => setTimeout(resolve, 20)))))
    expect(pool.stats().size).toBe(2)
    // one connection held throughout, so both leases below get the other one
    await pool.withConnection(async (held) => {
      await pool!.withConnection((conn) => conn.query('set default_transaction_read_only = on'))
      const err = await pool!
        .withConnection((conn) => conn.query('insert into reset_flag values (1)'))
        .then(
          () => undefined,
          (e: unknown) => e as DatabaseError,
        )
      expect(err).toMatchObject({ code: 'READ_ONLY', sqlState: '25006', retryable: false })
      expect(err!.message).toContain('default_transaction_read_only')
      await held.query('select 1')
    })
    expect(events).toEqual([])
    expect(pool.stats().size).toBe(2)
    await pool.close({ timeoutMs: 5_000 })
    // the same from sessionInit
    pool = poolOn(db.url, { max: 1, min: 0, name: 'reset-read-only-init' }, { sessionInit: 'SET default_transaction_read_only = on' })
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(info.reason))
    const again = await pool.query('insert into reset_flag values (1)').then(
      () => undefined,
      (e: unknown) => e as DatabaseError,
    )
    expect(again).toMatchObject({ code: 'READ_ONLY', retryable: false })
    expect(destroyed).toEqual([])
  })

  it('cleans after rolling back a transaction the lease left open', async () => {
    pool = poolOn(db.url, { max: 1, min: 0, name: 'reset-tx' }, { sessionReset: 'clean' })
    const fresh = await session(pool)
    await expect(
      pool.withConnection(async (conn) => {
        await conn.query("set work_mem = '2MB'")
        await conn.query('begin')
        await conn.query("set local work_mem = '3MB'")
      }),
    ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    const after = await session(pool)
    expect(after.pid).toBe(fresh.pid)
    expect(after.workMem).toBe(fresh.workMem)
  })

  it('a session that cannot be reset is destroyed, not reused', async () => {
    await admin(db.url, (c) => c.query('insert into reset_flag values (1)'))
    // sessionInit fails with division by zero once reset_flag is empty
    pool = poolOn(
      db.url,
      { max: 1, min: 0, name: 'reset-fails' },
      { sessionReset: 'clean', sessionInit: 'select 1 / (select count(*)::int from reset_flag)' },
    )
    const destroyed: string[] = []
    pool.on('destroy', (info) => destroyed.push(info.reason))
    const first = await session(pool)
    await pool.withConnection(async (conn) => {
      await conn.query('delete from reset_flag')
    })
    await eventually(() => destroyed.length > 0, 5_000, 'the connection whose reset failed to be destroyed')
    expect(pool.stats().size).toBe(0)
    await admin(db.url, (c) => c.query('insert into reset_flag values (1)'))
    expect((await session(pool)).pid).not.toBe(first.pid)
  })
})
