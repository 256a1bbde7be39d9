import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseError, Migrator, PoolFactory, type DatabasePool } from '@dbpool/core'
import { createTestDatabase } from '@dbpool/testing'

jest.setTimeout(120_000)

/** A fresh database of each backend, and a pool on it. */
const BACKENDS = {
  sqlite: async (): Promise<{ url: string; cleanup(): Promise<void> }> => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-guard-'))
    return { url: `sqlite:${join(dir, 'app.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
  },
  postgres: async (): Promise<{ url: string; cleanup(): Promise<void> }> => {
    const db = await createTestDatabase()
    return { url: db.url, cleanup: () => db.drop() }
  },
}

describe.each(Object.keys(BACKENDS) as (keyof typeof BACKENDS)[])('Migrator on %s: what a function migration cannot do', (backend) => {
  let database: { url: string; cleanup(): Promise<void> }
  let pool: DatabasePool<unknown>

  beforeEach(async () => {
    database = await BACKENDS[backend]()
    pool = await PoolFactory.create(database.url, { min: 0, max: 3, name: 'migrations-guard' })
    await pool.query('create table t (v integer not null)')
  })

  afterEach(async () => {
    await pool.close({ timeoutMs: 5_000 })
    await database.cleanup()
  })

  const rows = async (): Promise<number[]> => (await pool.query<{ v: number }>('select v from t order by v')).rows.map((r) => Number(r.v))
  const states = async (m: Migrator): Promise<string[]> => (await m.status()).map((s) => `${s.version}:${s.state}`)

  it.each([
    'ROLLBACK',
    'COMMIT',
    'commit; insert into t values (3)',
    '/* c */ END',
    'BEGIN',
    // what the engine reads as a COMMIT between two statements: SQLite has no dollar quotes ($$ is a
    // parameter name), and Postgres reads é$$ as an identifier
    ...(backend === 'sqlite' ? ['select $$; commit; select $$'] : ['select 1 as é$$; commit; select $$x$$']),
  ])('conn.query(%j) is refused without running: nothing kept, nothing recorded', async (control) => {
    let refused: unknown
    const m = new Migrator(pool, {
      migrations: [
        {
          version: 1,
          name: 'control',
          up: async (conn) => {
            await conn.query('insert into t values (1)')
            refused = await conn.query(control).catch((e: unknown) => e)
            await conn.query('insert into t values (2)')
            throw new Error('boom after')
          },
        },
      ],
    })
    await expect(m.up()).rejects.toMatchObject({ code: 'MIGRATION_FAILED' })
    expect(refused).toBeInstanceOf(DatabaseError)
    expect(refused).toMatchObject({ code: 'QUERY_FAILED', message: expect.stringMatching(/is refused and was not run/) })
    expect(await rows()).toEqual([])
    expect(await states(m)).toEqual(['1:pending'])
  })

  // r12b migr M2, M3: a forgotten await on conn.transaction() failed with the Migrator's own record
  // statement refused (QUERY_FAILED scope-open), naming no migration
  it.each(backend === 'postgres' ? [true, false] : [true])(
    'transaction %s: a conn.transaction() left running when the function returns is MIGRATION_FAILED naming the migration (scope-open), not recorded',
    async (transaction) => {
      let inner: Promise<unknown> | undefined
      const m = new Migrator(pool, {
        migrations: [
          {
            version: 1,
            name: 'forgotten',
            ...(transaction ? {} : { transaction: false }),
            up: async (conn) => {
              await conn.query('insert into t values (1)')
              inner = conn
                .transaction(async (tx) => {
                  await new Promise((resolve) => setTimeout(resolve, 50))
                  await tx.query('insert into t values (2)')
                })
                .catch((e: unknown) => e)
            },
          },
        ],
      })
      const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
      expect(err).toMatchObject({ code: 'MIGRATION_FAILED', detail: { version: 1, name: 'forgotten', reason: 'scope-open' } })
      expect(err.message).toMatch(/migration 1 \(forgotten\) failed: its function returned while a (transaction|savepoint) it opened/)
      expect(DatabaseError.is(await inner)).toBe(true)
      // transaction: false keeps what committed on its own (the note says so); nothing else is kept
      expect(await rows()).toEqual(transaction ? [] : [1])
      expect(await states(m)).toEqual(['1:pending'])
      // the migration lock was freed (the connection was closed, not reused): a second run is not blocked
      await expect(new Migrator(pool, { migrations: [{ version: 2, name: 'next', up: 'select 1' }] }).up()).resolves.toBeDefined()
    },
  )

  it('a ROLLBACK through conn.stream is refused too', async () => {
    const m = new Migrator(pool, {
      migrations: [
        {
          version: 1,
          name: 'stream',
          up: async (conn) => {
            await conn.query('insert into t values (1)')
            for await (const row of conn.stream('ROLLBACK')) void row
          },
        },
      ],
    })
    await expect(m.up()).rejects.toMatchObject({ code: 'MIGRATION_FAILED', cause: { code: 'QUERY_FAILED' } })
    expect(await rows()).toEqual([])
    expect(await states(m)).toEqual(['1:pending'])
  })

  it('a statement error caught inside the function: MIGRATION_FAILED naming the migration, cause TRANSACTION_ROLLED_BACK', async () => {
    const m = new Migrator(pool, {
      migrations: [
        {
          version: 7,
          name: 'seed_defaults',
          up: async (conn) => {
            await conn.query('insert into t values (1)')
            await conn.query('insert into t values (null)').catch(() => undefined)
          },
        },
      ],
    })
    const err = (await m.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({
      code: 'MIGRATION_FAILED',
      detail: { version: 7, name: 'seed_defaults' },
      cause: { code: 'TRANSACTION_ROLLED_BACK' },
    })
    expect(err.message).toMatch(/migration 7 \(seed_defaults\).*caught/)
    expect(await rows()).toEqual([])
    expect(await states(m)).toEqual(['7:pending'])
  })

  it('MIGRATION_FAILED repeats no literal of the statement through the database message (22P02 quotes the input)', async () => {
    const strict = backend === 'sqlite' ? ' strict' : ''
    await pool.query(`create table creds (id integer primary key, pin integer)${strict}`)
    const fromFile = new Migrator(pool, {
      migrations: [
        {
          version: 1,
          name: 'creds',
          up: "insert into creds (id, pin) values (2, 'S3CRET-PIN');\ninsert into creds (id, pin) values (3, 'x9')",
        },
      ],
    })
    const err = (await fromFile.up().catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'MIGRATION_FAILED', detail: { statementIndex: 1 } })
    expect(`${err.message} ${JSON.stringify(err.detail)}`).not.toMatch(/S3CRET/)
    // the code, the SQLSTATE and the database's own error are kept
    expect(err.cause).toBeInstanceOf(DatabaseError)
    if (backend === 'postgres') expect(err).toMatchObject({ sqlState: '22P02' })
    const fromCode = new Migrator(pool, {
      migrations: [
        {
          version: 1,
          name: 'creds',
          up: async (conn) =>
            void (await conn.query('insert into creds (id, pin) values ($1, $2)'.replace(/\$\d/g, backend === 'sqlite' ? '?' : '$&'), [
              4,
              'PARAM-S3CRET',
            ])),
        },
      ],
    })
    const err2 = (await fromCode.up().catch((e: unknown) => e)) as DatabaseError
    expect(err2).toMatchObject({ code: 'MIGRATION_FAILED' })
    expect(`${err2.message} ${JSON.stringify(err2.detail)}`).not.toMatch(/S3CRET/)
  })

  if (backend === 'postgres')
    it('transaction: false: BEGIN is refused saying what holds there, and conn.transaction() commits a batch', async () => {
      await pool.query('insert into t values (1), (2)')
      let refused: unknown
      const m = new Migrator(pool, {
        migrations: [
          {
            version: 1,
            name: 'backfill',
            transaction: false,
            up: async (conn) => {
              refused = await conn.query('begin').catch((e: unknown) => e)
              await conn.transaction(async (tx) => void (await tx.query('update t set v = v + 10')))
            },
          },
        ],
      })
      await m.up()
      expect(refused).toMatchObject({ code: 'QUERY_FAILED', message: expect.stringMatching(/is refused and was not run/) })
      const message = (refused as DatabaseError).message
      expect(message).toMatch(/outside a transaction \(transaction: false\)/)
      expect(message).toMatch(/conn\.transaction\(\), a real transaction that commits/)
      expect(message).not.toMatch(/savepoint|owns the migration's transaction/)
      expect(await rows()).toEqual([11, 12])
    })

  it('an error after a migration committed says which were applied (detail.applied): a later failure, the pool closed', async () => {
    const slow =
      backend === 'sqlite'
        ? 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000) select count(*) from c'
        : 'select pg_sleep(0.3)'
    const twoSteps = new Migrator(pool, {
      migrations: [
        { version: 1, name: 'one', up: 'insert into t values (1)' },
        { version: 2, name: 'two', up: 'insert into t values (null)' },
      ],
    })
    const failed = (await twoSteps.up().catch((e: unknown) => e)) as DatabaseError
    expect(failed).toMatchObject({ code: 'MIGRATION_FAILED', detail: { version: 2, applied: [1] } })
    expect(failed.message).toMatch(/applied before it in this run .*: 1$/)
    expect(await rows()).toEqual([1])

    const other = await PoolFactory.create(database.url, { min: 0, max: 2, name: 'migrations-guard-close' })
    let started!: () => void
    const running = new Promise<void>((resolve) => (started = resolve))
    const closing = new Migrator(other, {
      table: 'closing_migrations',
      migrations: [{ version: 1, name: 'slow', up: async (conn) => void (started(), await conn.query(slow)) }],
    })
    const up = closing.up().then(
      (result) => ({ ok: true as const, applied: result.migrations.map((m) => m.version) }),
      (e: DatabaseError) => ({ ok: false as const, applied: e.detail?.applied, code: e.code }),
    )
    await running
    await other.close({ timeoutMs: 5_000 })
    const outcome = await up
    // it committed: the outcome says so, whether up() could read the table back (resolves) or not (MIGRATION_FAILED)
    expect(outcome.applied).toEqual([1])
    if (!outcome.ok) expect(outcome.code).toBe('MIGRATION_FAILED')
    expect((await pool.query<{ version: number }>('select version from closing_migrations')).rows.map((r) => Number(r.version))).toEqual([
      1,
    ])
  })
})
