import { DatabaseError } from '../errors/database-error'
import type { Backend, ExecuteOptions, Lane, QueryResult } from '../driver/connection-manager'
import type { SqlFragment } from '../sql/sql'

/** Anything `query()` accepts: an `sql` fragment, or backend-native text with its parameters. */
export type Queryable = SqlFragment | string

/** A leased connection, valid only inside the callback that received it. */
export interface PoolConnection<C = unknown> {
  /** The pool's id for this physical connection. */
  readonly id: number
  readonly lane: Lane
  readonly backend: Backend
  /** The native connection (pg.Client, better-sqlite3 Database, ...), for backend-specific work. */
  readonly native: C
  /** Runs one statement on this connection. */
  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>>
}

/** A connection inside a transaction; `transaction()` nests with a savepoint. */
export interface Transaction<C = unknown> extends PoolConnection<C> {
  /** Runs `fn` inside a savepoint: released on success, rolled back to on error (which is rethrown). */
  transaction<T>(fn: (tx: Transaction<C>) => Promise<T>): Promise<T>
}

/** @internal What a handle needs to run statements: the pool's executor bound to one lease. */
export interface HandleRunner<C> {
  readonly id: number
  readonly lane: Lane
  readonly backend: Backend
  readonly native: C
  run<R>(query: Queryable, params: readonly unknown[] | undefined, options: ExecuteOptions | undefined): Promise<QueryResult<R>>
}

/** @internal The object user code holds; it refuses work once its lease has ended. */
export class ConnectionHandle<C> implements Transaction<C> {
  #runner: HandleRunner<C> | undefined
  #savepoints = 0

  constructor(runner: HandleRunner<C>) {
    this.#runner = runner
  }

  get id(): number {
    return this.#live().id
  }

  get lane(): Lane {
    return this.#live().lane
  }

  get backend(): Backend {
    return this.#live().backend
  }

  get native(): C {
    return this.#live().native
  }

  query<R = Record<string, unknown>>(query: Queryable, params?: readonly unknown[], options?: ExecuteOptions): Promise<QueryResult<R>> {
    try {
      return this.#live().run<R>(query, params, options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async transaction<T>(fn: (tx: Transaction<C>) => Promise<T>): Promise<T> {
    const name = `dbpool_sp_${++this.#savepoints}`
    await this.query(`SAVEPOINT ${name}`)
    let result: T
    try {
      result = await fn(this)
    } catch (err) {
      await this.query(`ROLLBACK TO SAVEPOINT ${name}`)
      await this.query(`RELEASE SAVEPOINT ${name}`)
      throw err
    }
    await this.query(`RELEASE SAVEPOINT ${name}`)
    return result
  }

  /** Ends the handle: every later call throws. */
  detach(): void {
    this.#runner = undefined
  }

  #live(): HandleRunner<C> {
    if (!this.#runner) throw new DatabaseError('QUERY_FAILED', 'this connection was released: use it only inside the callback that received it')
    return this.#runner
  }
}
