import type { PoolConnection } from '../pool/pool-connection'

/** Code run as one side of a migration, inside the migration's transaction. */
export type MigrationFunction = (conn: PoolConnection) => Promise<void>

/**
 * A migration written in code, for `new Migrator(pool, { migrations: [...] })`.
 *
 * ```ts
 * { version: 1, name: 'create_accounts', up: 'create table accounts (id integer primary key)', down: 'drop table accounts' }
 * ```
 */
export interface MigrationDefinition {
  /** A positive integer; migrations run in ascending version order. */
  readonly version: number
  /** A short name, e.g. `create_accounts`. */
  readonly name: string
  /** SQL (several statements allowed, split like a file) or a function given the migration's connection. */
  readonly up: string | MigrationFunction
  /** How to revert `up`; without it the migration cannot be rolled back. */
  readonly down?: string | MigrationFunction
  /**
   * `false` runs both sides outside a transaction, statement by statement (Postgres only: for
   * `CREATE INDEX CONCURRENTLY` and the like). Default is `true`.
   */
  readonly transaction?: boolean
  /**
   * `false` runs both sides with SQLite's foreign-key enforcement off, for a table rebuild (create
   * the new table, copy, drop the old one, rename: SQLite's 12 steps, https://www.sqlite.org/lang_altertable.html):
   * with enforcement on, dropping the old table fires the `ON DELETE CASCADE` / `SET NULL` actions of
   * its child tables, and `PRAGMA defer_foreign_keys` does not stop them. The Migrator sets
   * `PRAGMA foreign_keys = OFF` before `BEGIN` (inside a transaction SQLite ignores it), runs
   * `PRAGMA foreign_key_check` before `COMMIT` (a violation rolls back: MIGRATION_FAILED naming the
   * rows) and turns enforcement back on afterwards, whatever happened. The file spelling is
   * `-- migrate:up foreign_keys:off`. SQLite only: on Postgres it is CONFIGURATION. Default is `true`.
   */
  readonly foreignKeys?: boolean
  /**
   * Overrides the recorded checksum. SQL migrations default to the sha256 of the `up` text; function
   * migrations have no checksum (drift is not detected) unless you set one here.
   */
  readonly checksum?: string
}

/**
 * One side (`up` or `down`) of a loaded migration. `transaction` is `false` when it runs outside a
 * transaction (`-- migrate:up transaction:false`, or `transaction: false` in code); `foreignKeys` is
 * `false` (absent otherwise) when it runs with SQLite's foreign-key enforcement off
 * (`-- migrate:up foreign_keys:off`, or `foreignKeys: false` in code).
 */
export type MigrationStep =
  | {
      readonly kind: 'sql'
      readonly sql: string
      readonly firstLine: number
      readonly source: string
      readonly transaction: boolean
      readonly foreignKeys?: false
    }
  | {
      readonly kind: 'function'
      readonly fn: MigrationFunction
      readonly source: string
      readonly transaction: boolean
      readonly foreignKeys?: false
    }

/** A migration as the {@link Migrator} runs it, from a file or from code. */
export interface Migration {
  readonly version: number
  readonly name: string
  /** Where it came from: the file name (`0001_create_accounts.sql`) or `code`. */
  readonly source: string
  /** sha256 (hex) of the normalised `up` SQL, or `''` when there is none to compare. */
  readonly checksum: string
  readonly up: MigrationStep
  readonly down: MigrationStep | undefined
}

/** Where a migration stands: applied, not yet applied, applied but edited since, or applied but unknown here. */
export type MigrationState = 'applied' | 'pending' | 'changed' | 'missing'

/** One line of {@link Migrator.status}. */
export interface MigrationStatus {
  readonly version: number
  readonly name: string
  readonly state: MigrationState
  /** File name or `code`; absent for `missing` migrations. */
  readonly source?: string
  /** The checksum of the migration as loaded now. */
  readonly checksum?: string
  /** The checksum recorded when it was applied. */
  readonly appliedChecksum?: string
  readonly appliedAt?: Date
  readonly durationMs?: number
  /** Whether the migration has a `down` side. */
  readonly reversible?: boolean
}

/** A migration one call applied or reverted. */
export interface MigrationRunStep {
  readonly version: number
  readonly name: string
  readonly durationMs: number
}

/** What `up()` and `down()` resolve with. */
export interface MigrationRunResult {
  readonly direction: 'up' | 'down'
  /** Migrations this call applied (`up`) or reverted (`down`), in the order it ran them. */
  readonly migrations: readonly MigrationRunStep[]
  /** Versions another process applied (or reverted) while this one waited for the lock. */
  readonly skipped: readonly number[]
  /** The highest applied version afterwards, or `null` when none is applied. */
  readonly current: number | null
}

/** Progress reported through `onEvent` as a migration starts, finishes, or is skipped. */
export interface MigrationEvent {
  readonly type: 'start' | 'done' | 'skip'
  readonly direction: 'up' | 'down'
  readonly version: number
  readonly name: string
  /** On `done`: how long the migration took. */
  readonly durationMs?: number
}
