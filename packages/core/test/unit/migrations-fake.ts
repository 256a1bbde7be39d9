import { DatabaseError, type CompiledQuery, type ExecuteOptions, type QueryResult } from '@dbpool/core'
import { FakeConnectionManager, type FakeConnection } from '@dbpool/core/testing'

interface Row {
  version: number
  name: string
  checksum: string
  applied_at: string
  duration_ms: number
}

/** What several fake managers share: the "database" (migrations table, lock holder, user DDL log). */
export class FakeMigrationDatabase {
  tableExists = false
  rows = new Map<number, Row>()
  /** Statements that were committed, in commit order (user statements only). */
  committed: string[] = []
  lockHolder: FakeConnection | undefined
  /** Who holds the session-scoped advisory lock (a `transaction:false` migration). */
  sessionLockHolder: FakeConnection | undefined
  /** Every advisory-lock try / BEGIN IMMEDIATE attempt that found the lock taken. */
  contended = 0
}

interface Pending {
  create: boolean
  inserts: Row[]
  deletes: number[]
  statements: string[]
}

/**
 * The core fake connection manager with a migrations table behind it: transactions buffer their
 * writes until COMMIT, and a lock (advisory on "postgres", BEGIN IMMEDIATE on "sqlite") is shared
 * between managers on the same {@link FakeMigrationDatabase}.
 */
export class MigrationFakeManager extends FakeConnectionManager {
  readonly db: FakeMigrationDatabase
  readonly #pending = new Map<FakeConnection, Pending>()
  /** When set, each user statement waits this long (to widen race windows). */
  statementDelayMs = 0

  constructor(db = new FakeMigrationDatabase(), backend: 'postgres' | 'sqlite' = 'postgres') {
    super()
    this.db = db
    Object.defineProperty(this, 'backend', { value: backend })
    Object.defineProperty(this, 'dialect', { value: backend })
  }

  override async execute<R>(conn: FakeConnection, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    const text = query.text.trim()
    const upper = text.toUpperCase()
    if (upper.startsWith('BEGIN IMMEDIATE')) {
      if (this.db.lockHolder && this.db.lockHolder !== conn) {
        this.db.contended++
        throw new DatabaseError('BUSY', 'database is locked', { backend: 'sqlite', sqliteCode: 'SQLITE_BUSY' })
      }
      this.db.lockHolder = conn
    }
    const base = await super.execute<R>(conn, query, options)
    if (upper.startsWith('BEGIN')) {
      this.#pending.set(conn, { create: false, inserts: [], deletes: [], statements: [] })
      return base
    }
    if (upper === 'COMMIT' || upper === 'ROLLBACK') {
      const pending = this.#pending.get(conn)
      this.#pending.delete(conn)
      if (this.db.lockHolder === conn) this.db.lockHolder = undefined
      if (upper === 'COMMIT' && pending) {
        if (pending.create) this.db.tableExists = true
        for (const row of pending.inserts) this.db.rows.set(row.version, row)
        for (const v of pending.deletes) this.db.rows.delete(v)
        this.db.committed.push(...pending.statements)
      }
      return base
    }
    const pending = this.#pending.get(conn)
    const rows = (r: unknown[]): QueryResult<R> => ({ rows: r as R[], rowCount: r.length })
    // the Migrator resolving its table's schema (Postgres, an unqualified table)
    if (/current_schema\(\)/.test(text)) return rows([{ schema: 'public' }])
    if (/to_regclass/.test(text) || /sqlite_master/.test(text)) {
      return rows(
        this.db.tableExists ? [{ found: true, name: 'dbpool_migrations' }] : this.backend === 'postgres' ? [{ found: false }] : [],
      )
    }
    if (/pg_try_advisory_xact_lock/.test(text)) {
      const free =
        (!this.db.lockHolder || this.db.lockHolder === conn) && (!this.db.sessionLockHolder || this.db.sessionLockHolder === conn)
      if (free) this.db.lockHolder = conn
      else this.db.contended++
      return rows([keyColumns(text, free)])
    }
    if (/pg_try_advisory_lock/.test(text)) {
      const free = !this.db.lockHolder && (!this.db.sessionLockHolder || this.db.sessionLockHolder === conn)
      if (free) this.db.sessionLockHolder = conn
      else this.db.contended++
      return rows([keyColumns(text, free)])
    }
    if (/pg_advisory_unlock/.test(text)) {
      const held = this.db.sessionLockHolder === conn
      if (held) this.db.sessionLockHolder = undefined
      return rows([keyColumns(text, held)])
    }
    if (/^create table if not exists/i.test(text)) {
      if (pending) pending.create = true
      else this.db.tableExists = true
      return rows([])
    }
    if (/^select version, name/i.test(text)) {
      if (!this.db.tableExists) throw new DatabaseError('QUERY_FAILED', 'no such table: dbpool_migrations')
      const visible = new Map(this.db.rows)
      for (const r of pending?.inserts ?? []) visible.set(r.version, r)
      for (const v of pending?.deletes ?? []) visible.delete(v)
      if (/where version =/.test(text)) {
        const r = visible.get(Number(query.params[0]))
        return rows(r ? [r] : [])
      }
      return rows([...visible.values()].sort((a, b) => a.version - b.version))
    }
    if (/^insert into "dbpool_migrations"/i.test(text) || /^insert into "[a-z_]+"\."?[a-z_]+"? \(version/i.test(text)) {
      const [version, name, checksum, appliedAt, durationMs] = query.params as [number, string, string, string, number]
      const row = { version, name, checksum, applied_at: appliedAt, duration_ms: durationMs }
      if (pending) pending.inserts.push(row)
      else this.db.rows.set(version, row)
      return rows([])
    }
    if (/^delete from "/i.test(text)) {
      if (pending) pending.deletes.push(Number(query.params[0]))
      return rows([])
    }
    if (this.statementDelayMs > 0) await new Promise((r) => setTimeout(r, this.statementDelayMs))
    if (pending) pending.statements.push(text)
    else this.db.committed.push(text)
    return base
  }

  override async reset(conn: FakeConnection): Promise<void> {
    if (this.#pending.has(conn)) {
      this.#pending.delete(conn)
      if (this.db.lockHolder === conn) this.db.lockHolder = undefined
    }
    await super.reset(conn)
  }
}

/** A lock statement's row: one column (`k0`, `k1`...) per key it names, each `value`. */
function keyColumns(text: string, value: boolean): Record<string, boolean> {
  return Object.fromEntries([...text.matchAll(/ as (k\d+)/g)].map((m) => [m[1] as string, value]))
}
