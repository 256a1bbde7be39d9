import { PoolFactory, type DatabasePool, type PoolOptions } from '@dbpool/core'
import { createTempSqlite, createTestDatabase } from '@dbpool/testing'
import { Kysely, type Generated } from 'kysely'
import { DbpoolDialect } from '@dbpool/kysely'

/** The backends every suite runs on. */
export const BACKENDS = ['sqlite', 'postgres'] as const
export type BackendName = (typeof BACKENDS)[number]

export interface PersonTable {
  id: Generated<number>
  first_name: string
  last_name: string | null
  email: string
}

export interface PetTable {
  id: Generated<number>
  owner_id: number
  name: string
  species: string
}

export interface Database {
  person: PersonTable
  pet: PetTable
}

/** A fresh database of one backend, a pool on it and a Kysely on the pool. */
export interface KyselyTestDb {
  readonly backend: BackendName
  readonly pool: DatabasePool
  readonly db: Kysely<Database>
  close(): Promise<void>
}

/** A temp SQLite file (with readers) or a database of its own on the test Postgres; never skips Postgres. */
export async function openKyselyDb(
  backend: BackendName,
  options: PoolOptions = {},
  backendOptions?: Record<string, unknown>,
): Promise<KyselyTestDb> {
  const target = backend === 'sqlite' ? await createTempSqlite({ fileName: 'kysely.db' }) : await createTestDatabase()
  const poolOptions = { name: `kysely-test-${backend}`, max: 4, ...options }
  const pool = await PoolFactory.create(target.url, poolOptions, backendOptions ? { backend: backendOptions } : {})
  const db = new Kysely<Database>({ dialect: new DbpoolDialect({ pool }) })
  return {
    backend,
    pool,
    db,
    close: async () => {
      await db.destroy()
      await pool.close({ timeoutMs: 10_000 })
      if ('remove' in target) await target.remove()
      else await target.drop()
    },
  }
}

/** The person and pet tables through Kysely's schema builder (serial ids on Postgres, rowids on SQLite). */
export async function createSchema(db: Kysely<Database>, backend: BackendName): Promise<void> {
  const id = backend === 'postgres' ? 'serial' : 'integer'
  await db.schema
    .createTable('person')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('first_name', 'varchar(100)', (c) => c.notNull())
    .addColumn('last_name', 'varchar(100)')
    .addColumn('email', 'varchar(200)', (c) => c.notNull().unique())
    .execute()
  await db.schema
    .createTable('pet')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('owner_id', 'integer', (c) => c.notNull().references('person.id').onDelete('cascade'))
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('species', 'varchar(50)', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('pet_owner_idx').on('pet').column('owner_id').execute()
}

/** Resolves with the rejection of `promise` (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}
