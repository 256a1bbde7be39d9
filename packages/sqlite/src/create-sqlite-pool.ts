import { configError, DatabasePool, type DatabasePoolOptions, type PoolConfig, type PoolOptions } from '@dbpool/core'
import { requireObject } from '@dbpool/core/internal'
import { SqliteConnectionManager, type SqliteDatabase } from './sqlite-connection-manager'
import type { SqliteOptions } from './sqlite-options'

interface PoolOrigin {
  readonly manager: SqliteConnectionManager
  readonly poolOptions: DatabasePoolOptions | undefined
}

const origins = new WeakMap<DatabasePool<SqliteDatabase>, PoolOrigin>()

/**
 * A {@link DatabasePool} on a SQLite file (or `':memory:'`): one write connection and
 * `options.readers` read-only ones. This is what `PoolFactory.create('sqlite:./app.db')` calls.
 *
 * ```ts
 * const pool = createSqlitePool('./data/app.db', { name: 'app' }, { readers: 4 })
 * await pool.transaction(async (tx) => { await tx.query(sql`insert into notes (body) values (${body})`) })
 * ```
 */
export function createSqlitePool(
  path: string,
  poolConfig?: PoolConfig | PoolOptions,
  options?: SqliteOptions | Record<string, unknown>,
  poolOptions?: DatabasePoolOptions,
): DatabasePool<SqliteDatabase> {
  const raw = requireObject('sqlite', options)
  if (raw.path !== undefined && raw.path !== path)
    throw configError('sqlite.path', raw.path, `conflicts with the path argument ${JSON.stringify(path)}`)
  const manager = new SqliteConnectionManager({ ...(raw as SqliteOptions), path })
  return sqlitePoolFor(manager, poolConfig, poolOptions)
}

/** A pool on an existing manager, remembered so {@link sqliteManagerOf} (backups, restore) can find it. */
export function sqlitePoolFor(
  manager: SqliteConnectionManager,
  poolConfig?: PoolConfig | PoolOptions,
  poolOptions?: DatabasePoolOptions,
): DatabasePool<SqliteDatabase> {
  const pool = new DatabasePool(manager, poolConfig, poolOptions)
  origins.set(pool, { manager, poolOptions })
  return pool
}

/** The manager behind a pool made by {@link createSqlitePool} or {@link sqlitePoolFor}; undefined otherwise. */
export function sqliteManagerOf(pool: DatabasePool<SqliteDatabase>): SqliteConnectionManager | undefined {
  return origins.get(pool)?.manager
}

/** @internal The pool options a pool was made with (reused when restore reopens it). */
export function sqlitePoolOptionsOf(pool: DatabasePool<SqliteDatabase>): DatabasePoolOptions | undefined {
  return origins.get(pool)?.poolOptions
}
