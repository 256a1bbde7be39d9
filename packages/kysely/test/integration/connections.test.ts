import { DatabaseError } from '@dbpool/core'
import { DbpoolDialect } from '@dbpool/kysely'
import { Kysely, sql } from 'kysely'
import { BACKENDS, createSchema, openKyselyDb, rejection, type Database, type KyselyTestDb } from './helpers'

// each test opens a database of its own (a new Postgres database is slow on a loaded machine)
jest.setTimeout(60_000)

describe.each(BACKENDS)('DbpoolDialect connections on %s', (backend) => {
  let t: KyselyTestDb

  beforeEach(async () => {
    t = await openKyselyDb(backend)
    await createSchema(t.db, backend)
  })

  afterEach(async () => {
    await t.close()
  })

  it('borrows a connection only while a statement or transaction runs', async () => {
    const query = t.db.selectFrom('person').selectAll().execute()
    await query
    expect(t.pool.stats().used).toBe(0)
    await t.db.connection().execute(async (conn) => {
      // nothing borrowed until the first statement
      expect(t.pool.stats().used).toBe(0)
      await conn.selectFrom('person').selectAll().execute()
      expect(t.pool.stats().used).toBe(1)
    })
    expect(t.pool.stats().used).toBe(0)
  })

  it('gives the connection back when the callback of db.connection() throws', async () => {
    const original = new Error('app failure')
    const err = await rejection(
      t.db.connection().execute(async (conn) => {
        await conn.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
        throw original
      }),
    )
    expect(err).toBe(original)
    expect(t.pool.stats().used).toBe(0)
  })

  it('rolls back a controlled transaction left open when its connection is released by close()', async () => {
    const trx = await t.db.startTransaction().execute()
    await trx.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
    expect(t.pool.stats().used).toBe(1)
    await trx.rollback().execute()
    expect(t.pool.stats().used).toBe(0)
  })

  it('reports a closed pool as POOL_CLOSED', async () => {
    const target = await openKyselyDb(backend)
    await target.pool.close()
    const db = new Kysely<Database>({ dialect: new DbpoolDialect({ pool: target.pool }) })
    const err = await rejection(db.selectFrom('person').selectAll().execute())
    expect(DatabaseError.is(err, 'POOL_CLOSED')).toBe(true)
    const inTx = await rejection(db.transaction().execute(async () => 1))
    expect(DatabaseError.is(inTx, 'POOL_CLOSED')).toBe(true)
    await target.close()
  })

  it('refuses a bad configuration with CONFIGURATION naming the option', () => {
    expect(() => new DbpoolDialect({ pool: {} as never })).toThrow(/DbpoolDialect\.pool/)
    expect(() => new DbpoolDialect({ pool: t.pool, closePool: true } as never)).toThrow(/DbpoolDialect\.closePool/)
    expect(() => new DbpoolDialect({ pool: t.pool, closePoolOnDestroy: 'yes' } as never)).toThrow(/DbpoolDialect\.closePoolOnDestroy/)
  })

  it('closes the pool on db.destroy() only with closePoolOnDestroy', async () => {
    // Kysely destroys a driver it has initialised: one that ran a statement
    const shared = new Kysely<Database>({ dialect: new DbpoolDialect({ pool: t.pool }) })
    await sql`select 1`.execute(shared)
    await shared.destroy()
    expect(t.pool.isOpen).toBe(true)
    const own = await openKyselyDb(backend)
    const owning = new Kysely<Database>({ dialect: new DbpoolDialect({ pool: own.pool, closePoolOnDestroy: true }) })
    await sql`select 1`.execute(owning)
    await owning.destroy()
    expect(own.pool.isOpen).toBe(false)
    await own.close()
  })

  // Kysely skips the destroy() of a driver it never initialised (review r5 item 6): documented in the
  // README and the option's TSDoc; a pool.close() of its own closes it, and is idempotent
  it('closePoolOnDestroy on a db that ran nothing leaves the pool open (as documented); pool.close() closes it', async () => {
    const own = await openKyselyDb(backend)
    const unused = new Kysely<Database>({ dialect: new DbpoolDialect({ pool: own.pool, closePoolOnDestroy: true }) })
    await unused.destroy()
    expect(own.pool.isOpen).toBe(true)
    await own.pool.close()
    expect(own.pool.isOpen).toBe(false)
    await own.close()
  })

  if (backend === 'sqlite') {
    it('reads outside a transaction on a reader, writes and write transactions on the writer', async () => {
      expect(t.pool.stats('read').max).toBeGreaterThan(0)
      await t.db.connection().execute(async (conn) => {
        await conn.selectFrom('person').selectAll().execute()
        expect(t.pool.stats('read').used).toBe(1)
        // a write moves the connection to the writer
        await conn.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
        expect(t.pool.stats('read').used).toBe(0)
        expect(t.pool.stats('write').used).toBe(1)
        expect(await conn.selectFrom('person').select('first_name').execute()).toEqual([{ first_name: 'Ada' }])
      })
      await t.db.transaction().execute(async (trx) => {
        await trx.selectFrom('person').selectAll().execute()
        expect(t.pool.stats('write').used).toBe(1)
        // BEGIN IMMEDIATE: the write lock is taken at begin
        const { rows } = await sql<{ n: number }>`select count(*) as n from person`.execute(trx)
        expect(rows[0]!.n).toBe(1)
      })
    })

    it('runs a read-only transaction on a reader while a write transaction holds the writer', async () => {
      const writer = await t.db.startTransaction().execute()
      await writer.insertInto('person').values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' }).execute()
      const seen = await t.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => {
          expect(t.pool.stats('read').used).toBe(1)
          return trx.selectFrom('person').selectAll().execute()
        })
      // the reader's snapshot does not include the uncommitted insert
      expect(seen).toEqual([])
      await writer.commit().execute()
    })
  } else {
    it('keeps a session-level advisory lock across a transaction on the same connection', async () => {
      // sessionReset 'clean': a connection given back is reset (DISCARD ALL drops advisory locks), so a
      // transaction that gave the connection back and borrowed one of its own would lose the lock
      const clean = await openKyselyDb(backend, {}, { sessionReset: 'clean' })
      try {
        await clean.db.connection().execute(async (conn) => {
          await sql`select pg_advisory_lock(4242)`.execute(conn)
          const inside = await conn.transaction().execute((trx) =>
            sql<{
              held: boolean
            }>`select count(*) = 1 as held from pg_locks where locktype = 'advisory' and objid = 4242 and pid = pg_backend_pid()`.execute(
              trx,
            ),
          )
          expect(inside.rows[0]!.held).toBe(true)
          const { rows } = await sql<{ unlocked: boolean }>`select pg_advisory_unlock(4242) as unlocked`.execute(conn)
          expect(rows[0]!.unlocked).toBe(true)
        })
      } finally {
        await clean.close()
      }
    })

    it('runs a transaction on the connection db.connection() holds (same backend process)', async () => {
      await t.db.connection().execute(async (conn) => {
        await sql`select pg_advisory_lock(4242)`.execute(conn)
        const pid = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(conn)
        const inside = await conn.transaction().execute((trx) => sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx))
        expect(inside.rows[0]!.pid).toBe(pid.rows[0]!.pid)
        const { rows } = await sql<{ unlocked: boolean }>`select pg_advisory_unlock(4242) as unlocked`.execute(conn)
        expect(rows[0]!.unlocked).toBe(true)
      })
    })
  }
})
