import { configError, DatabaseError, type DatabasePool } from '@dbpool/core'
import { checkBoolean, rejectUnknownKeys, requireObject } from '@dbpool/core/internal'
import {
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type MigrationLockOptions,
  type QueryCompiler,
} from 'kysely'
import { DbpoolConnection } from './dbpool-connection'
import { DbpoolDriver } from './dbpool-driver'
import { isPool } from './is-pool'

/** Options of {@link DbpoolDialect}. */
export interface DbpoolDialectConfig {
  /** The pool to run on: a Postgres or a SQLite `DatabasePool` (the one your `sql`-tag repositories use). */
  readonly pool: DatabasePool
  /**
   * Whether `db.destroy()` closes the pool. Default is `false`: the pool is usually shared, and its
   * owner closes it.
   */
  readonly closePoolOnDestroy?: boolean
}

/**
 * SQLite as Kysely's `SqliteAdapter`, except that DDL is run in transactions (SQLite's DDL is
 * transactional): Kysely's `Migrator` then runs its migrations in one dbpool write transaction
 * (`BEGIN IMMEDIATE`), which holds SQLite's write lock against every other writer, in this process
 * or another, for the whole run. Kysely's own adapter takes no lock, relying on its single connection.
 */
export class DbpoolSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

/**
 * Postgres as Kysely's `PostgresAdapter` (its `Migrator` holds `pg_advisory_lock` on the run's
 * connection), except that the connection a `Migrator` run holds is closed at its release instead of
 * going back to the pool, as the core Migrator does: a session-level change in a migration (`SET
 * session_replication_role = replica`, `SET search_path`, `SET ROLE`, a temporary table) never
 * reaches the application's later statements on that pooled session.
 */
export class DbpoolPostgresAdapter extends PostgresAdapter {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override async acquireMigrationLock(db: Kysely<any>, options: MigrationLockOptions): Promise<void> {
    await super.acquireMigrationLock(db, options)
    await discardMigrationSession(db)
  }
}

/**
 * Marks the connection `db` is bound to (a Migrator run's `db.connection()`) to be closed at its
 * release. Reaches the connection through Kysely's executor (`getExecutor().provideConnection`, as
 * `dbpoolTransaction()` does: the one a `db.connection()` callback holds); nothing is done when that
 * is not a {@link DbpoolConnection}.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function discardMigrationSession(db: Kysely<any>): Promise<void> {
  await db.getExecutor().provideConnection(async (connection) => {
    if (connection instanceof DbpoolConnection)
      connection.discardAtRelease(
        new DatabaseError('QUERY_FAILED', "Kysely's Migrator ran on this session: it is closed instead of reused", { retryable: false }),
      )
  })
}

/**
 * Kysely's dialect for a dbpool pool: `new Kysely<DB>({ dialect: new DbpoolDialect({ pool }) })`.
 * The adapter, introspector and query compiler are Kysely's Postgres or SQLite ones, chosen from
 * `pool.backend` (with {@link DbpoolPostgresAdapter} / {@link DbpoolSqliteAdapter}). Statements, transactions and errors go
 * through the pool: see the package README.
 *
 * @throws DatabaseError CONFIGURATION naming `DbpoolDialect.<option>` for a missing pool, a pool of
 *   another backend, or an unknown option.
 */
export class DbpoolDialect implements Dialect {
  readonly #pool: DatabasePool
  readonly #closePool: boolean

  constructor(config: DbpoolDialectConfig) {
    const raw = requireObject('DbpoolDialect', config)
    rejectUnknownKeys('DbpoolDialect', raw, ['pool', 'closePoolOnDestroy'])
    const pool = raw.pool
    if (!isPool(pool)) throw configError('DbpoolDialect.pool', pool, 'must be a DatabasePool')
    if (pool.backend !== 'postgres' && pool.backend !== 'sqlite')
      throw configError('DbpoolDialect.pool', pool.backend, 'must be a postgres or a sqlite pool')
    this.#pool = pool
    this.#closePool =
      raw.closePoolOnDestroy === undefined ? false : checkBoolean('DbpoolDialect.closePoolOnDestroy', raw.closePoolOnDestroy)
  }

  /** The pool this dialect runs on. */
  get pool(): DatabasePool {
    return this.#pool
  }

  createDriver(): Driver {
    return new DbpoolDriver(this, this.#pool, this.#closePool)
  }

  createQueryCompiler(): QueryCompiler {
    return this.#pool.backend === 'postgres' ? new PostgresQueryCompiler() : new SqliteQueryCompiler()
  }

  createAdapter(): DialectAdapter {
    return this.#pool.backend === 'postgres' ? new DbpoolPostgresAdapter() : new DbpoolSqliteAdapter()
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.#pool.backend === 'postgres' ? new PostgresIntrospector(db) : new SqliteIntrospector(db)
  }
}
