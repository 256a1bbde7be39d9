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
import { valueKind } from './value-kind'
import { isPool } from './is-pool'

/** Options of {@link DbpoolDialect}. */
export interface DbpoolDialectConfig {
  /** The pool to run on: a Postgres or a SQLite `DatabasePool` (the one your `sql`-tag repositories use). */
  readonly pool: DatabasePool
  /**
   * Whether `db.destroy()` closes the pool. Default is `false`: the pool is usually shared, and its
   * owner closes it. Only for a `db` that ran something (a query, a connection, a transaction):
   * Kysely's `destroy()` skips the driver of a `db` never used, whose pool then stays open (close it
   * with `pool.close()`, which is idempotent).
   */
  readonly closePoolOnDestroy?: boolean
}

/** The name of the lock a Kysely Migrator run takes on SQLite (the file `<database>-kysely-migration.lock`). */
const SQLITE_MIGRATION_LOCK = 'kysely-migration'

/** How long a Migrator run waits for another run's lock on SQLite before BUSY, ms (the core Migrator's default `lockTimeoutMs`). */
const SQLITE_MIGRATION_LOCK_TIMEOUT_MS = 60_000

/**
 * SQLite as Kysely's `SqliteAdapter`, except that DDL is run in transactions (SQLite's DDL is
 * transactional): Kysely's `Migrator` then runs its migrations in one dbpool write transaction
 * (`BEGIN IMMEDIATE`), and a failing migration leaves nothing of the run. Kysely's own adapter takes
 * no migration lock, relying on its single connection; a pool has several, and other processes
 * open the file too. So every run takes a lock first, before it reads which migrations are pending:
 * an exclusive SQLite lock on `<database>-kysely-migration.lock`, a file next to the database,
 * which the operating system frees if the process dies (never left taken by a crash). With
 * `disableTransactions`, where each statement commits on its own, it is what keeps two runs (two
 * pools, two processes) from both applying a migration; without it, it is taken as well, so the two
 * kinds of runs exclude each other. A run waits for another's lock up to
 * {@link SQLITE_MIGRATION_LOCK_TIMEOUT_MS}, then fails with BUSY (Kysely's `migrateToLatest()`
 * resolves `{ error }`). An in-memory database takes none (no other process can open it), nor does a
 * pool opened `readonly: true` (it applies nothing; a pending migration fails when it writes, with
 * READ_ONLY, and its directory need not be writable). A lock file that cannot be created (a
 * directory this process cannot write) fails the run with CONFIGURATION naming it
 * (`detail.lockFile`, `detail.reason`): the run never goes on unlocked.
 */
export class DbpoolSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override async acquireMigrationLock(db: Kysely<any>, _options: MigrationLockOptions): Promise<void> {
    await withDbpoolConnection(db, (connection) => connection.lockForMigration(SQLITE_MIGRATION_LOCK, SQLITE_MIGRATION_LOCK_TIMEOUT_MS))
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override async releaseMigrationLock(db: Kysely<any>, _options: MigrationLockOptions): Promise<void> {
    await withDbpoolConnection(db, (connection) => connection.unlockForMigration())
  }
}

/**
 * Runs `fn` on the {@link DbpoolConnection} `db` is bound to (a Migrator run's `db.connection()`),
 * reached through Kysely's executor (`getExecutor().provideConnection`, as `dbpoolTransaction()`
 * does); nothing is done when that is not a DbpoolConnection.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function withDbpoolConnection(db: Kysely<any>, fn: (connection: DbpoolConnection) => unknown): Promise<void> {
  await db.getExecutor().provideConnection(async (connection) => {
    if (connection instanceof DbpoolConnection) await fn(connection)
  })
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
  await withDbpoolConnection(db, (connection) =>
    connection.discardAtRelease(
      new DatabaseError('QUERY_FAILED', "Kysely's Migrator ran on this session: it is closed instead of reused", { retryable: false }),
    ),
  )
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
    if (!isPool(pool)) throw configError('DbpoolDialect.pool', valueKind(pool), 'must be a DatabasePool')
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
