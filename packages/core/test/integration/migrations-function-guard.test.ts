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

  it.each(['ROLLBACK', 'COMMIT', 'commit; insert into t values (3)', '/* c */ END', 'BEGIN'])(
    'conn.query(%j) is refused without running: nothing kept, nothing recorded',
    async (control) => {
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
})
