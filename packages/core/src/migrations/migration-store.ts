import { createHash } from 'node:crypto'
import { configError } from '../config/validate'
import type { Backend } from '../driver/connection-manager'
import type { PoolConnection } from '../pool/pool-connection'
import { DatabaseError } from '../errors/database-error'
import { sql, type SqlFragment } from '../sql/sql'

/** A row of the migrations table. */
export interface AppliedMigration {
  readonly version: number
  readonly name: string
  readonly checksum: string
  readonly appliedAt: Date
  readonly durationMs: number
}

interface Row {
  version: unknown
  name: unknown
  checksum: unknown
  applied_at: unknown
  duration_ms: unknown
}

type Runner = Pick<PoolConnection, 'query'>

/**
 * @internal The migrations table (`version`, `name`, `checksum`, `applied_at`, `duration_ms`), with
 * the DDL and lock of each backend. All SQL goes through the pool, never a driver.
 *
 * Every statement names the table schema-qualified, with the schema {@link resolve} found once when
 * the Migrator starts (Postgres: the schema given in `table`, else the one the table already exists
 * in through the session's `search_path`, else `current_schema()`; SQLite: `main`), so a migration
 * that changes `search_path` (or creates a temporary table of that name) cannot redirect the
 * Migrator's reads and records to another table. The Postgres advisory-lock key is derived from that
 * resolved name: `'dbpool_migrations'` and `'public.dbpool_migrations'` take the same lock.
 */
export class MigrationStore {
  readonly backend: Backend
  readonly #given: readonly string[]
  #parts: readonly string[] | undefined

  constructor(backend: Backend, table: string) {
    this.backend = backend
    const parts = table.split('.')
    const valid = parts.every((p) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) && parts.length <= (backend === 'postgres' ? 2 : 1)
    if (!valid) {
      const rule =
        backend === 'postgres'
          ? 'must be an identifier ([A-Za-z_][A-Za-z0-9_]*), optionally schema-qualified'
          : 'must be an identifier ([A-Za-z_][A-Za-z0-9_]*)'
      throw configError('migrations.table', table, rule)
    }
    this.#given = parts
    // nothing to look up: a schema-qualified Postgres name, or SQLite's main database
    if (parts.length === 2) this.#parts = parts
    else if (backend === 'sqlite') this.#parts = ['main', ...parts]
  }

  /**
   * Fixes the table's schema, once (later calls keep it). Postgres, an unqualified `table`: the
   * schema the table exists in as the session's `search_path` finds it, else `current_schema()`
   * (where `create table` would put it). Resolves `false`, fixing nothing, when the `search_path`
   * names no existing schema: then no table of that name can exist (nothing was ever applied through
   * this `search_path`), and the next call looks again; `up()` throws {@link noSchemaError}.
   */
  async resolve(runner: Runner): Promise<boolean> {
    if (this.#parts) return true
    const name = this.#given[0] as string
    const { rows } = await runner.query<{ schema: unknown }>(
      sql`select coalesce((select n.nspname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass(${quoteIdent(name)}) and c.relpersistence <> 't'), current_schema()) as schema`,
    )
    const schema = rows[0]?.schema
    if (typeof schema !== 'string' || schema === '') return false
    this.#parts ??= [schema, name]
    return true
  }

  /**
   * MIGRATION_FAILED (`detail.reason: 'no-schema'`, `detail.option: 'migrations.table'`): the table
   * cannot be created, its schema does not exist. `schema` undefined: an unqualified name and a
   * `search_path` naming no existing schema. The table must exist before the first migration runs
   * (it records that migration in the same transaction), so a migration cannot create its schema.
   */
  noSchemaError(schema?: string, cause?: unknown): DatabaseError {
    const table = this.#given.join('.')
    const message =
      schema === undefined
        ? `the migrations table ${table} has no schema to live in: the session's search_path names no existing schema; give the table option as schema.table, or create the schema first`
        : `the migrations table ${table} cannot be created: schema ${schema} does not exist; create it before migrating (the table must exist before the first migration runs, so a migration cannot create its schema) or use a table option whose schema exists`
    return new DatabaseError('MIGRATION_FAILED', message, {
      cause,
      retryable: false,
      detail: { table, option: 'migrations.table', reason: 'no-schema', ...(schema === undefined ? {} : { schema }) },
    })
  }

  /** The resolved table's name, `schema.table` (Postgres) or `main.table` (SQLite); see {@link resolve}. */
  get qualifiedName(): string {
    return this.#resolved().join('.')
  }

  /** The Postgres advisory-lock key, derived from the resolved, schema-qualified table name. */
  get lockKey(): string {
    return advisoryKey(this.qualifiedName)
  }

  /**
   * The Postgres advisory-lock keys the Migrator takes, together, in ascending order (the same order
   * in every process, so two processes never wait for each other's second key): {@link lockKey} and,
   * when it differs, the key a Migrator of dbpool before the schema-qualified table derived from
   * the `table` option's text as given (`'dbpool_migrations'`, not `'public.dbpool_migrations'`). A
   * process of that earlier version still running (a rolling upgrade) holds only that legacy key:
   * taking it too makes this process wait for it instead of migrating alongside.
   */
  get lockKeys(): readonly string[] {
    const keys = new Set([this.lockKey, advisoryKey(this.#given.join('.'))])
    return [...keys].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0))
  }

  get #table(): SqlFragment {
    return sql.id(...this.#resolved())
  }

  #resolved(): readonly string[] {
    if (!this.#parts) throw new DatabaseError('MIGRATION_FAILED', 'internal: the migrations table was used before its schema was resolved')
    return this.#parts
  }

  /** Whether the table exists (without creating it). */
  async exists(pool: Runner): Promise<boolean> {
    const parts = this.#resolved()
    if (this.backend === 'postgres') {
      const { rows } = await pool.query<{ found: unknown }>(
        sql`select to_regclass(${parts.map(quoteIdent).join('.')}) is not null as found`,
      )
      return rows[0]?.found === true
    }
    const { rows } = await pool.query(sql`select name from main.sqlite_master where type = 'table' and name = ${parts[1]} collate nocase`)
    return rows.length > 0
  }

  /**
   * `create table if not exists`; run it inside a locked transaction. MIGRATION_FAILED
   * ({@link noSchemaError}) when its schema does not exist.
   */
  async create(conn: Runner): Promise<void> {
    const columns =
      this.backend === 'postgres'
        ? sql`version bigint primary key, name text not null, checksum text not null, applied_at timestamptz not null, duration_ms integer not null`
        : sql`version integer primary key, name text not null, checksum text not null, applied_at text not null, duration_ms integer not null`
    try {
      await conn.query(sql`create table if not exists ${this.#table} (${columns})`)
    } catch (err) {
      // 3F000 invalid_schema_name: `schema.table` names a schema that does not exist
      if (DatabaseError.is(err) && err.sqlState === '3F000') throw this.noSchemaError(this.#resolved()[0], err)
      throw err
    }
  }

  /** Every applied migration, by ascending version. */
  async readAll(runner: Runner): Promise<AppliedMigration[]> {
    const { rows } = await runner.query<Row>(
      sql`select version, name, checksum, applied_at, duration_ms from ${this.#table} order by version`,
    )
    return rows.map(toApplied)
  }

  async insert(conn: Runner, row: AppliedMigration): Promise<void> {
    await conn.query(
      sql`insert into ${this.#table} (version, name, checksum, applied_at, duration_ms) values (${row.version}, ${row.name}, ${row.checksum}, ${row.appliedAt.toISOString()}, ${row.durationMs})`,
    )
  }

  async remove(conn: Runner, version: number): Promise<void> {
    await conn.query(sql`delete from ${this.#table} where version = ${version}`)
  }

  /** The statement that begins a migration transaction (SQLite: take the write lock at once). */
  beginStatement(): string {
    return this.backend === 'postgres' ? 'BEGIN ISOLATION LEVEL READ COMMITTED' : 'BEGIN IMMEDIATE'
  }

  /**
   * Postgres: one non-blocking try of the transaction-scoped advisory locks ({@link lockKeys}), in
   * one statement; false when any is taken elsewhere (the caller rolls back, which frees the others).
   */
  async tryLock(conn: Runner): Promise<boolean> {
    const { rows } = await conn.query<Record<string, unknown>>(
      lockStatement('pg_try_advisory_xact_lock', this.lockKeys.length),
      this.lockKeys,
    )
    return allTrue(rows[0])
  }

  /**
   * Postgres: one non-blocking try of the session-scoped advisory locks on the same keys, held across
   * the statements of a migration that runs outside a transaction. They conflict with the
   * transaction-scoped ones, so either kind excludes the other. When only some are taken, those are
   * released before it returns false.
   */
  async trySessionLock(conn: Runner): Promise<boolean> {
    const { rows } = await conn.query<Record<string, unknown>>(lockStatement('pg_try_advisory_lock', this.lockKeys.length), this.lockKeys)
    if (allTrue(rows[0])) return true
    const held = this.lockKeys.filter((_, i) => rows[0]?.[`k${i}`] === true)
    if (held.length > 0) await this.#unlock(conn, held)
    return false
  }

  /** Postgres: releases the session-scoped advisory locks; false when this session did not hold them all. */
  async unlockSession(conn: Runner): Promise<boolean> {
    return this.#unlock(conn, this.lockKeys)
  }

  async #unlock(conn: Runner, keys: readonly string[]): Promise<boolean> {
    const { rows } = await conn.query<Record<string, unknown>>(lockStatement('pg_advisory_unlock', keys.length), keys)
    return allTrue(rows[0])
  }
}

/** `select fn($1::bigint) as k0, fn($2::bigint) as k1`: one round trip for every key. */
function lockStatement(fn: string, count: number): string {
  return `select ${Array.from({ length: count }, (_, i) => `${fn}($${i + 1}::bigint) as k${i}`).join(', ')}`
}

/** The advisory-lock key of a migrations table name: the first 8 bytes of a sha256, signed. */
function advisoryKey(name: string): string {
  return createHash('sha256').update(`dbpool:migrations:${name}`).digest().readBigInt64BE(0).toString()
}

function allTrue(row: Record<string, unknown> | undefined): boolean {
  return row !== undefined && Object.keys(row).length > 0 && Object.values(row).every((v) => v === true)
}

/** A name quoted as Postgres reads a quoted identifier (`"` doubled). */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

function toApplied(row: Row): AppliedMigration {
  const appliedAt = row.applied_at instanceof Date ? row.applied_at : new Date(String(row.applied_at))
  return {
    version: Number(row.version),
    name: String(row.name),
    checksum: String(row.checksum),
    appliedAt,
    durationMs: Number(row.duration_ms),
  }
}
