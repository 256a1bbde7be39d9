import { DatabaseError, isOutcomeUnknown } from '@dbpool/core'
import type { Client } from 'pg'
import { sql, type ControlledTransaction, type Kysely } from 'kysely'
import { BACKENDS, openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// Kysely's commitTransaction on a connection that no longer holds a transaction used to resolve (the
// driver's commit() returned at once): a commit retried after its COMMIT failed, one after close()
// revoked the transaction, one after the db.connection() callback that started it returned (its
// release rolled it back). Kysely then marked the transaction committed (isCommitted: true) and the
// app believed rows were kept that were not. Each is refused now (TRANSACTION_ROLLED_BACK, not
// retryable), and so are savepoint commands there (they would run outside any transaction).
//
// The COMMIT fails: on Postgres a deferred constraint trigger raises SERIALIZATION_FAILURE (retryable:
// an app retrying the commit on it got the silent success); on SQLite a deferred foreign key.

jest.setTimeout(120_000)

interface Tables {
  t: { id: number; v: string; parent: number | null }
}

async function createTables(db: Kysely<Tables>, backend: string): Promise<void> {
  await sql`create table parent (id integer primary key)`.execute(db)
  if (backend === 'postgres') {
    await sql`create table t (id integer primary key, v text, parent integer)`.execute(db)
    await sql`create function fail_at_commit() returns trigger language plpgsql as $$ begin if new.v = 'fail' then raise exception 'could not serialize access (at commit)' using errcode = '40001'; end if; return null; end $$`.execute(
      db,
    )
    await sql`create constraint trigger at_commit after insert on t deferrable initially deferred for each row execute function fail_at_commit()`.execute(
      db,
    )
  } else {
    await sql`create table t (id integer primary key, v text, parent integer references parent (id) deferrable initially deferred)`.execute(
      db,
    )
  }
}

function expectNothingCommitted(err: unknown, reason: RegExp): void {
  expect(DatabaseError.is(err, 'TRANSACTION_ROLLED_BACK')).toBe(true)
  expect((err as DatabaseError).retryable).toBe(false)
  expect((err as DatabaseError).message).toMatch(/there is no transaction to (commit|run .*SAVEPOINT in)/)
  expect((err as DatabaseError).message).toMatch(reason)
}

describe.each(BACKENDS)('commit() with no live transaction, on %s', (backend) => {
  let t: KyselyTestDb
  let db: Kysely<Tables>

  beforeAll(async () => {
    t = await openKyselyDb(backend)
    db = t.db as unknown as Kysely<Tables>
    await createTables(db, backend)
  })

  afterAll(async () => {
    await t?.close()
  })

  beforeEach(async () => {
    await db.deleteFrom('t').execute()
  })

  afterEach(() => {
    expect(t.pool.stats().used).toBe(0)
  })

  const insert = (trx: Kysely<Tables>, id: number, v: string): Promise<unknown> =>
    trx
      .insertInto('t')
      .values({ id, v, parent: backend === 'sqlite' && v === 'fail' ? 999 : null })
      .execute()

  async function ids(): Promise<number[]> {
    return (await db.selectFrom('t').select('id').orderBy('id').execute()).map((r) => Number(r.id))
  }

  it('a commit retried after its COMMIT failed rejects (TRANSACTION_ROLLED_BACK, the COMMIT error as cause); nothing is kept', async () => {
    const trx = await db.startTransaction().execute()
    await insert(trx, 1, 'ok')
    await insert(trx, 2, 'fail')
    const first = await rejection(trx.commit().execute())
    expect(DatabaseError.is(first, backend === 'postgres' ? 'SERIALIZATION_FAILURE' : 'FOREIGN_KEY_VIOLATION')).toBe(true)
    const second = await rejection(trx.commit().execute())
    expectNothingCommitted(second, /its COMMIT failed and the transaction was rolled back/)
    expect((second as DatabaseError).cause).toBe(first)
    expect(trx.isCommitted).toBe(false)
    // a savepoint there would run outside any transaction (SQLite: SAVEPOINT would begin one)
    expectNothingCommitted(await rejection(trx.savepoint('sp').execute()), /its COMMIT failed/)
    await trx.rollback().execute()
    expect(trx.isRolledBack).toBe(true)
    expect(await ids()).toEqual([])
  })

  it('db.transaction(): a failing COMMIT still rejects with its own error (the rollback Kysely sends after it resolves)', async () => {
    const err = await rejection(db.transaction().execute((trx) => insert(trx, 3, 'fail')))
    expect(DatabaseError.is(err, backend === 'postgres' ? 'SERIALIZATION_FAILURE' : 'FOREIGN_KEY_VIOLATION')).toBe(true)
    expect(await ids()).toEqual([])
  })

  it('a transaction started in db.connection() and committed after the callback returned: rejects, nothing is kept', async () => {
    const trx = await db.connection().execute(async (c) => {
      const started = await c.startTransaction().execute()
      await insert(started, 1, 'ok')
      return started
    })
    expectNothingCommitted(await rejection(trx.savepoint('sp').execute()), /rolled back when Kysely released its connection/)
    expectNothingCommitted(await rejection(trx.commit().execute()), /rolled back when Kysely released its connection/)
    expect(trx.isCommitted).toBe(false)
    expect(await ids()).toEqual([])
  })

  it('a committed transaction on a db.connection() leaves the next one committing normally', async () => {
    await db.connection().execute(async (c) => {
      const a = await c.startTransaction().execute()
      await insert(a, 1, 'ok')
      await a.commit().execute()
      const b = await c.startTransaction().execute()
      await insert(b, 2, 'ok')
      await b.commit().execute()
    })
    expect(await ids()).toEqual([1, 2])
  })
})

describe.each(BACKENDS)('commit() after close() revoked a controlled transaction, on %s', (backend) => {
  it('the first commit rejects, and so does the second: nothing is kept', async () => {
    const t = await openKyselyDb(backend)
    try {
      const db = t.db as unknown as Kysely<Tables>
      await createTables(db, backend)
      const trx: ControlledTransaction<Tables> = await db.startTransaction().execute()
      await trx.insertInto('t').values({ id: 5, v: 'ctl', parent: null }).execute()
      await t.pool.close({ timeoutMs: 200 })
      const first = await rejection(trx.commit().execute())
      expect(DatabaseError.is(first, 'POOL_CLOSED')).toBe(true)
      const second = await rejection(trx.commit().execute())
      expectNothingCommitted(second, /its COMMIT failed/)
      expect(trx.isCommitted).toBe(false)
      await trx.rollback().execute()
    } finally {
      await t.close()
    }
  })
})

describe.each(BACKENDS)('the words of a transaction close() revoked, on %s', (backend) => {
  it('a statement after the revoke, then commit(): TRANSACTION_ROLLED_BACK saying close() revoked it (not "by itself", not "an earlier error")', async () => {
    const t = await openKyselyDb(backend)
    try {
      const db = t.db as unknown as Kysely<Tables>
      await createTables(db, backend)
      const trx = await db.startTransaction().execute()
      await trx.insertInto('t').values({ id: 5, v: 'ctl', parent: null }).execute()
      await t.pool.close({ timeoutMs: 200 })
      expect(
        DatabaseError.is(await rejection(trx.insertInto('t').values({ id: 6, v: 'after', parent: null }).execute()), 'POOL_CLOSED'),
      ).toBe(true)
      const err = await rejection(trx.commit().execute())
      expect(DatabaseError.is(err, 'TRANSACTION_ROLLED_BACK')).toBe(true)
      expect((err as Error).message).toMatch(/close\(\) revoked the transaction/)
      expect((err as Error).message).not.toMatch(/by itself|earlier error/)
      await trx.rollback().execute()
    } finally {
      await t.close()
    }
  })
})

describe('a savepoint that does not exist is the same error on both backends', () => {
  it.each(BACKENDS)('%s: rollbackToSavepoint() and releaseSavepoint() of an unknown name are QUERY_FAILED', async (backend) => {
    const t = await openKyselyDb(backend)
    try {
      const trx = await t.db.startTransaction().execute()
      const rolled = await rejection(trx.rollbackToSavepoint('nope' as never).execute())
      expect(DatabaseError.is(rolled, 'QUERY_FAILED')).toBe(true)
      await trx.rollback().execute()
      const other = await t.db.startTransaction().execute()
      const released = await rejection(other.releaseSavepoint('nope' as never).execute())
      expect(DatabaseError.is(released, 'QUERY_FAILED')).toBe(true)
      await other.rollback().execute()
    } finally {
      await t.close()
    }
  })
})

describe('commit() retried after a COMMIT whose outcome is unknown, on postgres', () => {
  /** Destroys the socket of `client` at the ReadyForQuery that follows the next CommandComplete. */
  function loseAtCommandComplete(client: Client): void {
    const connection = client.connection as unknown as NodeJS.EventEmitter & { stream: { destroy(): void } }
    const emit = connection.emit.bind(connection)
    let completed = false
    connection.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'commandComplete') completed = true
      if (event === 'readyForQuery' && completed) {
        connection.emit = emit
        connection.stream.destroy()
        return true
      }
      return emit(event, ...args)
    }
  }

  it('rejects with the same code and detail.outcome unknown, never resolving and never claiming a rollback', async () => {
    const t = await openKyselyDb('postgres', { max: 1, min: 0 })
    try {
      t.pool.on('error', () => undefined)
      const db = t.db as unknown as Kysely<Tables>
      await createTables(db, 'postgres')
      // max 1: the transaction runs on this client
      const client = await t.pool.withConnection(async (conn) => (conn.native as { client: Client }).client)
      const trx = await db.startTransaction().execute()
      await trx.insertInto('t').values({ id: 7, v: 'ok', parent: null }).execute()
      loseAtCommandComplete(client)
      const first = await rejection(trx.commit().execute())
      expect(isOutcomeUnknown(first)).toBe(true)
      const second = await rejection(trx.commit().execute())
      expect(DatabaseError.is(second, (first as DatabaseError).code)).toBe(true)
      expect(isOutcomeUnknown(second)).toBe(true)
      expect((second as DatabaseError).retryable).toBe(false)
      expect((second as DatabaseError).message).toMatch(/there is no transaction to commit .*unknown outcome \(it may have committed/)
      expect((second as DatabaseError).cause).toBe(first)
      expect(trx.isCommitted).toBe(false)
      await trx.rollback().execute()
      // it did commit (the socket was lost after the server's CommandComplete)
      expect((await db.selectFrom('t').select('id').execute()).map((r) => Number(r.id))).toEqual([7])
    } finally {
      await t.close()
    }
  })
})
