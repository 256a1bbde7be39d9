import { configError, type DatabasePool } from '@dbpool/core'
import type { DatabaseConnection, Dialect, Driver, QueryCompiler, TransactionSettings } from 'kysely'
import { type CompiledQuery, IdentifierNode, RawNode, createQueryId } from 'kysely'
import { DbpoolConnection, type ConnectionContext } from './dbpool-connection'
import { isPool } from './is-pool'
import { nextMark } from './connection-marks'

/**
 * Kysely's driver on a dbpool pool. The pool does the pooling: a {@link DbpoolConnection} borrows
 * from it only when it runs something, and gives everything back at `releaseConnection`.
 */
export class DbpoolDriver implements Driver {
  readonly #context: ConnectionContext
  readonly #closePool: boolean

  /**
   * Made by {@link DbpoolDialect}'s `createDriver()`.
   *
   * @throws DatabaseError CONFIGURATION naming `DbpoolDriver.<parameter>` for a `pool` that is not a
   *   Postgres or SQLite `DatabasePool`, a `dialect` that is not an object, a non-boolean `closePool`.
   */
  constructor(dialect: Dialect, pool: DatabasePool, closePool: boolean) {
    if (!isPool(pool) || (pool.backend !== 'postgres' && pool.backend !== 'sqlite'))
      throw configError('DbpoolDriver.pool', pool, 'must be a postgres or a sqlite DatabasePool')
    if (typeof dialect !== 'object' || dialect === null) throw configError('DbpoolDriver.dialect', dialect, 'must be the DbpoolDialect')
    if (typeof closePool !== 'boolean') throw configError('DbpoolDriver.closePool', closePool, 'must be true or false')
    // SQLite readers see every committed write at once; Postgres replicas lag, and a pool with them
    // routes nothing there by itself (`readRouting: 'manual'`): only a read-only transaction asks for them
    const readLane = pool.backend === 'sqlite' && pool.stats('read').max > 0
    this.#context = { pool, backend: pool.backend, readLane, dialect, driver: this }
    this.#closePool = closePool
  }

  /** Nothing to set up (the pool is open); counted for `dbpoolTransaction()` (see `connection-marks`). */
  async init(): Promise<void> {
    nextMark()
  }

  /** Resolves at once: nothing is borrowed until the connection runs a statement or begins a transaction. */
  async acquireConnection(): Promise<DatabaseConnection> {
    return new DbpoolConnection(this.#context)
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return (connection as DbpoolConnection).begin(settings)
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as DbpoolConnection).commit()
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as DbpoolConnection).rollback()
  }

  async savepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await (connection as DbpoolConnection).savepointCommand('savepoint', savepointCommand('savepoint', name, compileQuery))
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await (connection as DbpoolConnection).savepointCommand('rollback to', savepointCommand('rollback to', name, compileQuery))
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await (connection as DbpoolConnection).savepointCommand('release', savepointCommand('release', name, compileQuery))
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return (connection as DbpoolConnection).release()
  }

  /** `db.destroy()`: closes the pool only when the dialect was given `closePoolOnDestroy: true`. */
  async destroy(): Promise<void> {
    if (this.#closePool) await this.#context.pool.close()
  }
}

/** `savepoint "name"`, with the name quoted by the dialect's compiler (as Kysely's own drivers do). */
function savepointCommand(command: string, name: string, compileQuery: QueryCompiler['compileQuery']): CompiledQuery {
  return compileQuery(RawNode.createWithChildren([RawNode.createWithSql(`${command} `), IdentifierNode.create(name)]), createQueryId())
}
