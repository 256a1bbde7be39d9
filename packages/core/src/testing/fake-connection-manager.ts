import { DatabaseError } from '../errors/database-error'
import type {
  ConnectionHooks,
  ConnectionManager,
  ExecuteOptions,
  Lane,
  LaneLayout,
  QueryResult,
  TransactionSettings,
  TransactionState,
} from '../driver/connection-manager'
import type { CompiledQuery } from '../sql/sql'
import { isErrorLike } from '../util/error-like'

/** A connection of the {@link FakeConnectionManager}: plain state tests can inspect. */
export class FakeConnection {
  static #next = 1
  readonly id = FakeConnection.#next++
  ended = false
  /** Set by `kill()` or a fatal query failure. */
  broken = false
  inTransaction = false
  /** Like a Postgres transaction in state `E`: a statement failed, everything but ROLLBACK is refused. */
  failed = false
  readonly statements: string[] = []
  hooks: ConnectionHooks | undefined
  /** Whether it would keep the process alive: the pool's `allowExitOnIdle` calls `unref()` while it is idle. */
  referenced = true

  constructor(readonly lane: Lane) {}

  /** Node's ref(): see `ReferencedHandle`. */
  ref(): void {
    this.referenced = true
  }

  /** Node's unref(): see `ReferencedHandle`. */
  unref(): void {
    this.referenced = false
  }
}

/** A failure mode: throw this error, or hang (never settle) until released. */
export type FakeFault = { readonly kind: 'fail'; readonly error: DatabaseError } | { readonly kind: 'hang' }

/** Options of the fake manager. */
export interface FakeManagerOptions {
  readonly lanes?: LaneLayout
  /** Artificial latency for connect, in ms. Default is `0`. */
  readonly connectDelayMs?: number
  /** Act like a synchronous driver: provide `executeSync`. Default is `false`. */
  readonly synchronous?: boolean
  /** Act like a pipelining driver: statements not starting with BEGIN/COMMIT/ROLLBACK/SET may share. */
  readonly pipelineDepth?: number
  /** Artificial latency of every statement, in ms. Default is `0`. */
  readonly queryDelayMs?: number
}

/**
 * A connection manager with no database behind it, for unit tests of pool logic. Connect, ping,
 * query or a live connection can be made to fail or hang on demand.
 */
export class FakeConnectionManager implements ConnectionManager<FakeConnection> {
  readonly backend = 'postgres' as const
  readonly dialect = 'postgres' as const
  readonly target = 'fake://test'
  readonly lanes: LaneLayout
  readonly connections: FakeConnection[] = []
  connectFault: FakeFault | undefined
  pingFault: FakeFault | undefined
  resetFault: FakeFault | undefined
  /** Statements whose text matches fail or hang. */
  readonly queryFaults: {
    readonly match: RegExp
    readonly fault: FakeFault
    readonly fatal: boolean
    /** Like SQLite's conflict clauses and some errors: the engine ends the open transaction itself. */
    readonly endsTransaction?: boolean
  }[] = []
  /** Rows returned by statements whose text matches. */
  readonly responses: { readonly match: RegExp; readonly rows: Record<string, unknown>[] }[] = []
  connectAttempts = 0
  pings = 0
  destroyed = 0
  #connectDelayMs: number
  readonly #hanging = new Set<() => void>()

  /** Present only with `synchronous: true`, like a better-sqlite3 manager. */
  readonly executeSync?: <R>(conn: FakeConnection, query: CompiledQuery) => QueryResult<R>
  /** Statements run through `executeSync`. */
  syncExecutions = 0

  readonly pipelineDepth: number | undefined
  /** Most statements seen in flight at once on one connection. */
  peakInFlight = 0
  readonly #inFlight = new Map<FakeConnection, number>()
  readonly #queryDelayMs: number

  constructor(options: FakeManagerOptions = {}) {
    this.lanes = options.lanes ?? { readers: 0 }
    this.#connectDelayMs = options.connectDelayMs ?? 0
    this.#queryDelayMs = options.queryDelayMs ?? 0
    this.pipelineDepth = options.pipelineDepth
    if (options.synchronous) this.executeSync = (conn, query) => this.#executeSync(conn, query)
  }

  #executeSync<R>(conn: FakeConnection, query: CompiledQuery): QueryResult<R> {
    this.syncExecutions++
    if (conn.ended || conn.broken) throw new DatabaseError('CONNECTION_LOST', 'fake connection is closed', { backend: 'postgres' })
    conn.statements.push(query.text)
    const fault = this.queryFaults.find((f) => f.match.test(query.text))
    if (fault) {
      if (fault.fatal) conn.broken = true
      if (fault.fault.kind === 'fail') throw fault.fault.error
    }
    const rows = (this.responses.find((r) => r.match.test(query.text))?.rows ?? []) as R[]
    return { rows, rowCount: rows.length }
  }

  /** Connections not yet destroyed. */
  get open(): FakeConnection[] {
    return this.connections.filter((c) => !c.ended)
  }

  /** Kills a live connection the way a server restart would (fires the pool's onLost hook). */
  kill(conn: FakeConnection): void {
    conn.broken = true
    conn.hooks?.onLost(new DatabaseError('CONNECTION_LOST', `fake connection ${conn.id} was terminated`, { backend: 'postgres' }))
  }

  /** Makes every hanging operation reject, so tests can finish cleanly. */
  releaseHangs(): void {
    for (const release of this.#hanging) release()
    this.#hanging.clear()
  }

  async connect(lane: Lane, hooks: ConnectionHooks): Promise<FakeConnection> {
    this.connectAttempts++
    if (this.#connectDelayMs > 0) await new Promise((r) => setTimeout(r, this.#connectDelayMs))
    await this.#apply(this.connectFault)
    const conn = new FakeConnection(lane)
    conn.hooks = hooks
    this.connections.push(conn)
    return conn
  }

  isUsable(conn: FakeConnection): boolean {
    return !conn.ended && !conn.broken
  }

  async ping(conn: FakeConnection, timeoutMs: number): Promise<void> {
    this.pings++
    void timeoutMs
    if (conn.broken) throw new DatabaseError('CONNECTION_LOST', 'fake connection is broken', { backend: 'postgres' })
    await this.#apply(this.pingFault)
  }

  async reset(conn: FakeConnection): Promise<void> {
    await this.#apply(this.resetFault)
    if (conn.inTransaction) {
      conn.statements.push('ROLLBACK')
      conn.inTransaction = false
      conn.failed = false
    }
  }

  async destroy(conn: FakeConnection): Promise<void> {
    if (conn.ended) return
    conn.ended = true
    this.destroyed++
  }

  /** Shareable unless transaction control or SET; `'read'` for a `select` without a locking clause. */
  canPipeline(query: CompiledQuery): boolean | 'read' {
    if (this.pipelineDepth === undefined || /^\s*(begin|commit|rollback|set|savepoint|release)\b/i.test(query.text)) return false
    return /^\s*select\b/i.test(query.text) && !/\bfor\s+(update|share)\b/i.test(query.text) ? 'read' : true
  }

  async execute<R>(conn: FakeConnection, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    void options
    if (conn.ended || conn.broken) throw new DatabaseError('CONNECTION_LOST', 'fake connection is closed', { backend: 'postgres' })
    conn.statements.push(query.text)
    const inFlight = (this.#inFlight.get(conn) ?? 0) + 1
    this.#inFlight.set(conn, inFlight)
    this.peakInFlight = Math.max(this.peakInFlight, inFlight)
    try {
      if (this.#queryDelayMs > 0) await new Promise((r) => setTimeout(r, this.#queryDelayMs))
      return await this.#respond<R>(conn, query)
    } finally {
      this.#inFlight.set(conn, (this.#inFlight.get(conn) ?? 1) - 1)
    }
  }

  async #respond<R>(conn: FakeConnection, query: CompiledQuery): Promise<QueryResult<R>> {
    if (conn.ended || conn.broken) throw new DatabaseError('CONNECTION_LOST', 'fake connection is closed', { backend: 'postgres' })
    const text = query.text.trim().toUpperCase()
    const command = text.split(/\s+/, 1)[0] ?? ''
    if (conn.failed && command !== 'ROLLBACK' && command !== 'COMMIT') {
      throw new DatabaseError('QUERY_FAILED', 'current transaction is aborted, commands ignored until end of transaction block', {
        backend: 'postgres',
        sqlState: '25P02',
      })
    }
    const fault = this.queryFaults.find((f) => f.match.test(query.text))
    if (fault) {
      if (fault.fatal) conn.broken = true
      if (conn.inTransaction && fault.fault.kind === 'fail') {
        if (fault.endsTransaction) conn.inTransaction = false
        else conn.failed = true
      }
      await this.#apply(fault.fault)
    }
    if (text.startsWith('BEGIN')) conn.inTransaction = true
    else if (text.startsWith('ROLLBACK TO')) conn.failed = false
    else if (text === 'COMMIT' || text === 'ROLLBACK') {
      const aborted = conn.failed
      conn.inTransaction = false
      conn.failed = false
      // Postgres answers the COMMIT of an aborted transaction with the command tag ROLLBACK
      if (aborted) return { rows: [], rowCount: 0, command: 'ROLLBACK' }
    }
    const response = this.responses.find((r) => r.match.test(query.text))
    const rows = (response ? response.rows : []) as R[]
    return { rows, rowCount: rows.length, command }
  }

  /** Postgres-like: `failed` after a statement error inside a transaction. */
  transactionState(conn: FakeConnection): TransactionState {
    if (!conn.inTransaction) return 'idle'
    return conn.failed ? 'failed' : 'open'
  }

  beginStatement(settings: TransactionSettings): string {
    const parts = ['BEGIN']
    if (settings.isolation) parts.push(`ISOLATION LEVEL ${settings.isolation.toUpperCase()}`)
    if (settings.readOnly) parts.push('READ ONLY')
    return parts.join(' ')
  }

  route(query: CompiledQuery): Lane {
    return /^\s*select/i.test(query.text) ? 'read' : 'write'
  }

  mapError(err: unknown): DatabaseError {
    if (DatabaseError.is(err)) return err
    return new DatabaseError('QUERY_FAILED', isErrorLike(err) ? err.message : String(err), { cause: err, backend: 'postgres' })
  }

  #apply(fault: FakeFault | undefined): Promise<void> {
    if (!fault) return Promise.resolve()
    if (fault.kind === 'fail') return Promise.reject(fault.error)
    return new Promise<void>((_, reject) => {
      this.#hanging.add(() => reject(new DatabaseError('CONNECTION_LOST', 'fake hang released', { backend: 'postgres' })))
    })
  }
}
