import { checkInteger, configError, rejectUnknownKeys, requireObject } from '../config/validate'
import { DatabaseError } from '../errors/database-error'
import { isOutcomeUnknown, OUTCOME_UNKNOWN } from '../errors/error-outcome'
import type { Backend } from '../driver/connection-manager'
import type { DatabasePool } from '../pool/database-pool'
import type { ConnectionHandle, PoolConnection } from '../pool/pool-connection'
import { SqlFragment, type SqlDialect } from '../sql/sql'
import type {
  Migration,
  MigrationDefinition,
  MigrationEvent,
  MigrationRunResult,
  MigrationRunStep,
  MigrationStatus,
  MigrationStep,
} from './migration'
import { loadMigrationsFromDirectory, migrationsFromDefinitions } from './migration-loader'
import { MigrationStore, type AppliedMigration } from './migration-store'
import { splitSqlStatements, unterminatedSpan, type SqlStatement } from './sql-splitter'
import { parameterTexts } from '../util/parameter-texts'
import { ERROR_CAUSE_DEPTH, hideErrorLiterals, previewStatement, previewStatementIn, statementLiterals } from './statement-preview'
import { transactionControlOf } from '../transaction/transaction-control'
import { isErrorLike } from '../util/error-like'

/**
 * The part of a {@link DatabasePool} the Migrator uses; every `DatabasePool<C>` fits. Every
 * statement of the Migrator (its reads of the migrations table included) runs through
 * `withConnection`, which must lend a connection of the write lane (the primary): `pool.query` is
 * not used, since `readRouting: 'auto'` would send a read to a replica that may lag behind.
 */
export interface MigrationPool {
  readonly backend: Backend
  /** Not used by the Migrator (kept so existing implementations still fit). */
  query?: DatabasePool<unknown>['query']
  withConnection<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T>
}

/** Options of a {@link Migrator}: give exactly one of `directory` and `migrations`. */
export interface MigratorOptions {
  /** A folder of `0001_name.sql` files (`-- migrate:up` / `-- migrate:down` sections) or `.up.sql`/`.down.sql` pairs. */
  readonly directory?: string
  /** Migrations written in code. */
  readonly migrations?: readonly MigrationDefinition[]
  /**
   * The table recording applied migrations, `name` or (Postgres) `schema.name`. Default is
   * `'dbpool_migrations'`. An unqualified name's schema is fixed when the Migrator first runs (the
   * schema the table exists in through the pool's `search_path`, else `current_schema()`; SQLite:
   * `main`) and every statement names it schema-qualified from then on, so a migration's
   * `SET search_path` cannot redirect the record; the Postgres lock key comes from that resolved name
   * (and, taken with it, the key earlier dbpool versions derived from this option's text: see
   * `MigrationStore.lockKeys`).
   */
  readonly table?: string
  /**
   * How long to wait for the lock while another process runs a migration before MIGRATION_FAILED
   * (per migration: the wait restarts as the other process makes progress). Default is `60000`.
   */
  readonly lockTimeoutMs?: number
  /** Called as each migration starts, finishes or is skipped; a throwing listener is ignored. */
  readonly onEvent?: (event: MigrationEvent) => void
}

const OPTION_KEYS = ['directory', 'migrations', 'table', 'lockTimeoutMs', 'onEvent'] as const

/** The longest one try at the migration lock may wait for it (SQLite's BEGIN IMMEDIATE), in ms. */
const ATTEMPT_WAIT_MS = 1_000

type Direction = 'up' | 'down'

/** Postgres: what `DISCARD ALL` resets, except prepared statements (the driver's cache keeps its own). */
const SESSION_RESET = [
  'CLOSE ALL',
  'SET SESSION AUTHORIZATION DEFAULT',
  'RESET ALL',
  'UNLISTEN *',
  'SELECT pg_advisory_unlock_all()',
  'DISCARD TEMP',
  'DISCARD SEQUENCES',
] as const
type Prepared = Migration & {
  readonly upStatements: readonly SqlStatement[] | undefined
  readonly downStatements: readonly SqlStatement[] | undefined
}

/**
 * Applies and reverts schema migrations through a {@link DatabasePool}, on Postgres and SQLite alike.
 *
 * - Each migration runs in its own transaction; a failing statement rolls it back and throws
 *   MIGRATION_FAILED naming the file, the statement's number and line, and the database's error
 *   (`detail.outcome: 'unknown'` when that error's outcome is unknown: a COMMIT or a
 *   `transaction:false` statement lost in flight may have taken effect).
 *   On Postgres a section marked `transaction:false` runs statement by statement instead (for
 *   `CREATE INDEX CONCURRENTLY`), holding a session-level advisory lock.
 * - On SQLite a section marked `foreign_keys:off` (code: `foreignKeys: false`) runs with foreign-key
 *   enforcement off, set before BEGIN, checked with `PRAGMA foreign_key_check` before COMMIT (a
 *   violation rolls back: MIGRATION_FAILED) and restored after; `PRAGMA foreign_keys` in a migration
 *   file is refused (CONFIGURATION), since SQLite ignores it inside a transaction.
 * - The connection a migration ran on is closed at its release, never reused (a SQLite in-memory
 *   database excepted), so its session-level changes (`SET search_path`, `SET ROLE`,
 *   `session_replication_role`, temp tables, SQLite pragmas) cannot reach the application's statements.
 * - Applied migrations are recorded in `dbpool_migrations` (version, name, sha256 checksum,
 *   applied_at, duration_ms), named schema-qualified (its schema resolved once at start: see
 *   {@link MigratorOptions.table}); an error writing the record is MIGRATION_FAILED naming the
 *   migration. A file edited after it was applied is refused (checksum drift).
 * - Safe when several processes migrate at once: each migration's transaction first takes a lock
 *   (Postgres: `pg_try_advisory_xact_lock`, SQLite: `BEGIN IMMEDIATE`) and re-reads the table, so
 *   every migration is applied exactly once; under the lock the plan is checked again (MIGRATION_FAILED,
 *   `detail.reason: 'plan-changed'`, when another process applied a newer migration meanwhile: `up()`
 *   would apply an older one after it, `down()` would revert one that is no longer the newest).
 *
 * ```ts
 * const migrator = new Migrator(pool, { directory: './migrations' })
 * await migrator.up()                  // apply everything pending
 * await migrator.down(1)               // revert the last one
 * console.table(await migrator.status())
 * ```
 */
export class Migrator {
  readonly #pool: MigrationPool
  readonly #store: MigrationStore
  readonly #directory: string | undefined
  readonly #definitions: readonly MigrationDefinition[] | undefined
  readonly #lockTimeoutMs: number
  readonly #onEvent: ((event: MigrationEvent) => void) | undefined

  constructor(pool: MigrationPool, options: MigratorOptions) {
    if (!pool || typeof (pool as { withConnection?: unknown }).withConnection !== 'function')
      throw configError('migrator pool', pool, 'must be a DatabasePool')
    if (options === undefined)
      throw configError('migrations', options, 'give the options { directory } (a folder of .sql files) or { migrations } (an array)')
    const raw = requireObject('migrations', options)
    rejectUnknownKeys('migrations', raw, OPTION_KEYS)
    if ((raw.directory === undefined) === (raw.migrations === undefined)) {
      throw configError('migrations', Object.keys(raw), 'give exactly one of directory (a folder of .sql files) or migrations (an array)')
    }
    if (raw.directory !== undefined && (typeof raw.directory !== 'string' || raw.directory === ''))
      throw configError('migrations.directory', raw.directory, 'must be a non-empty path')
    if (raw.onEvent !== undefined && typeof raw.onEvent !== 'function')
      throw configError('migrations.onEvent', raw.onEvent, 'must be a function')
    const table = raw.table === undefined ? 'dbpool_migrations' : raw.table
    if (typeof table !== 'string') throw configError('migrations.table', table, 'must be a string')
    this.#pool = pool
    this.#store = new MigrationStore(pool.backend, table)
    this.#directory = raw.directory as string | undefined
    this.#definitions = raw.migrations as readonly MigrationDefinition[] | undefined
    if (this.#definitions) migrationsFromDefinitions(this.#definitions)
    this.#lockTimeoutMs =
      raw.lockTimeoutMs === undefined ? 60_000 : checkInteger('migrations.lockTimeoutMs', raw.lockTimeoutMs, 0, 2_147_483_647)
    this.#onEvent = raw.onEvent as ((event: MigrationEvent) => void) | undefined
  }

  /** Loads and checks the migrations (names, sections, statements) without touching the database. */
  async load(): Promise<Migration[]> {
    return (await this.#prepare()).map(({ upStatements: _u, downStatements: _d, ...migration }) => migration)
  }

  /**
   * Applies every pending migration, or those up to and including `target`, in version order.
   * Refuses (MIGRATION_FAILED) when an applied migration's checksum changed or a pending migration
   * is older than the newest applied one, checked again under the lock before each migration
   * (`detail.reason: 'plan-changed'` when another process applied a newer one meanwhile).
   */
  async up(target?: number): Promise<MigrationRunResult> {
    if (target !== undefined) checkInteger('migrate up target', target, 0)
    const migrations = await this.#prepare()
    if (!(await this.#resolveTable())) throw this.#store.noSchemaError()
    await this.#ensureTable()
    const applied = await this.#primary((conn) => this.#store.readAll(conn))
    const byVersion = new Map(applied.map((a) => [a.version, a]))
    this.#refuseDrift(
      migrations.filter((m) => byVersion.has(m.version)),
      byVersion,
    )
    const newest = applied.reduce((max, a) => Math.max(max, a.version), 0)
    const pending = migrations.filter((m) => !byVersion.has(m.version) && (target === undefined || m.version <= target))
    const late = pending.find((m) => m.version < newest)
    if (late) {
      throw migrationError(
        `migration ${late.source} (version ${late.version}) is pending but version ${newest} is already applied: give it a version above ${newest}`,
        late,
      )
    }
    return this.#run('up', pending)
  }

  /**
   * Reverts the last `steps` applied migrations (default `1`; `Infinity` for all), newest first.
   * Refuses (MIGRATION_FAILED, `detail.reason: 'plan-changed'`) to revert one that, once the lock is
   * held, is no longer the newest applied (another process applied a newer one meanwhile).
   */
  async down(steps = 1): Promise<MigrationRunResult> {
    if (steps !== Infinity) checkInteger('migrate down steps', steps, 1)
    const migrations = await this.#prepare()
    // no schema for the table: it cannot exist, nothing was applied
    const applied =
      (await this.#resolveTable()) &&
      (await this.#primary(async (conn) => ((await this.#store.exists(conn)) ? this.#store.readAll(conn) : undefined)))
    if (!applied) return { direction: 'down', migrations: [], skipped: [], current: null }
    const known = new Map(migrations.map((m) => [m.version, m]))
    const targets = applied.slice(steps === Infinity ? 0 : Math.max(0, applied.length - steps)).reverse()
    const plan = targets.map((a) => {
      const m = known.get(a.version)
      if (!m)
        throw migrationError(
          `cannot revert version ${a.version} (${a.name}): it is applied but not among the loaded migrations`,
          undefined,
          { version: a.version },
        )
      if (!m.down) throw migrationError(`cannot revert ${m.source}: it has no down section`, m)
      return m
    })
    this.#refuseDrift(plan, new Map(targets.map((a) => [a.version, a])))
    return this.#run('down', plan)
  }

  /** Every migration known here or recorded in the database, by version, with its state. */
  async status(): Promise<MigrationStatus[]> {
    const migrations = await this.#prepare()
    // no schema for the table: it cannot exist, every migration is pending
    const applied = (await this.#resolveTable())
      ? await this.#primary(async (conn) => ((await this.#store.exists(conn)) ? this.#store.readAll(conn) : []))
      : []
    const byVersion = new Map(applied.map((a) => [a.version, a]))
    const out: MigrationStatus[] = migrations.map((m) => {
      const a = byVersion.get(m.version)
      const base = { version: m.version, name: m.name, source: m.source, checksum: m.checksum, reversible: m.down !== undefined }
      if (!a) return { ...base, state: 'pending' as const }
      return {
        ...base,
        state: drifted(m, a) ? ('changed' as const) : ('applied' as const),
        appliedChecksum: a.checksum,
        appliedAt: a.appliedAt,
        durationMs: a.durationMs,
      }
    })
    const known = new Set(migrations.map((m) => m.version))
    for (const a of applied) {
      if (!known.has(a.version))
        out.push({
          version: a.version,
          name: a.name,
          state: 'missing',
          appliedChecksum: a.checksum,
          appliedAt: a.appliedAt,
          durationMs: a.durationMs,
        })
    }
    return out.sort((x, y) => x.version - y.version)
  }

  // ---- internals ----

  async #prepare(): Promise<Prepared[]> {
    const migrations =
      this.#directory !== undefined
        ? await loadMigrationsFromDirectory(this.#directory, this.#pool.backend)
        : migrationsFromDefinitions(this.#definitions ?? [])
    const dialect: SqlDialect = this.#pool.backend
    for (const m of migrations) {
      if (dialect === 'sqlite') refuseOutsideTransaction(m)
      else refuseForeignKeysOff(m)
    }
    return migrations.map((m) => ({
      ...m,
      upStatements: statementsOf(m.up, dialect),
      downStatements: m.down && statementsOf(m.down, dialect),
    }))
  }

  /**
   * Runs the Migrator's own statements on a connection of the write lane (the primary): never
   * through `pool.query`, which `readRouting: 'auto'` sends to a replica that may lag behind.
   */
  #primary<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.#pool.withConnection(fn)
  }

  /**
   * Fixes the migrations table's schema once, before anything reads or writes it (see
   * {@link MigrationStore.resolve}): every later statement names it schema-qualified, so a migration's
   * `SET search_path` cannot send the record to another table, and the lock key follows the table,
   * not the spelling of the `table` option. False when the pool's `search_path` names no existing
   * schema (no table can exist: `status()` reports all pending, `down()` has nothing to revert).
   */
  async #resolveTable(): Promise<boolean> {
    return this.#primary((conn) => this.#store.resolve(conn))
  }

  async #ensureTable(): Promise<void> {
    await this.#primary(async (conn) => {
      if (!(await this.#store.exists(conn))) await this.#locked(conn, () => this.#store.create(conn))
    })
  }

  #refuseDrift(migrations: readonly Migration[], applied: Map<number, AppliedMigration>): void {
    for (const m of migrations) {
      const a = applied.get(m.version) as AppliedMigration
      if (drifted(m, a)) {
        throw migrationError(
          `migration ${m.source} was changed after it was applied (checksum ${a.checksum.slice(0, 12)}… recorded, ${m.checksum.slice(0, 12)}… now): restore the file and put the change in a new migration`,
          m,
          { appliedChecksum: a.checksum, checksum: m.checksum },
        )
      }
    }
  }

  /**
   * Runs the plan in order. An error after some migrations were applied (or reverted) and recorded
   * says which (`detail.applied` / `detail.reverted`, versions): a later migration's failure, or the
   * final read of the table (the pool closed meanwhile) would otherwise hide that work was committed.
   */
  async #run(direction: Direction, plan: readonly Prepared[]): Promise<MigrationRunResult> {
    const done: MigrationRunStep[] = []
    const skipped: number[] = []
    try {
      for (const m of plan) {
        this.#emit({ type: 'start', direction, version: m.version, name: m.name })
        const step = direction === 'up' ? m.up : (m.down as MigrationStep)
        // set once the migration committed (or was skipped): a failure after it (the session reset of a
        // custom MigrationPool, the release) must not hide that it is applied (detail.applied)
        let outcome: { durationMs: number | undefined } | undefined
        try {
          await this.#pool.withConnection(async (conn) => {
            try {
              outcome = { durationMs: await this.#apply(conn, direction, m, step) }
            } finally {
              await this.#endSession(conn)
            }
          })
        } finally {
          if (outcome) this.#record(direction, m, outcome.durationMs, done, skipped)
        }
      }
      const rows = await this.#primary((conn) => this.#store.readAll(conn))
      return {
        direction,
        migrations: done,
        skipped,
        current: rows.length === 0 ? null : (rows[rows.length - 1] as AppliedMigration).version,
      }
    } catch (err) {
      throw withDone(err, direction, done)
    }
  }

  /** Counts a migration that committed (`durationMs`) or that another process had already run (undefined). */
  #record(direction: Direction, m: Prepared, durationMs: number | undefined, done: MigrationRunStep[], skipped: number[]): void {
    if (durationMs === undefined) {
      skipped.push(m.version)
      this.#emit({ type: 'skip', direction, version: m.version, name: m.name })
    } else {
      done.push({ version: m.version, name: m.name, durationMs })
      this.#emit({ type: 'done', direction, version: m.version, name: m.name, durationMs })
    }
  }

  /**
   * The migration's session-level changes must not reach the application's later statements on the
   * pooled connection, so the connection is closed at its release. Postgres: `SET search_path`,
   * `SET ROLE`, `session_replication_role`, `set_config(..., false)`, temporary tables, LISTEN; a
   * custom {@link MigrationPool} that cannot close it gets the session reset instead (as `DISCARD
   * ALL` does, keeping prepared statements). SQLite (a database file): a temporary table that
   * would shadow a real one, `PRAGMA ignore_check_constraints` and the like; an in-memory database
   * lives on that one connection, so it is kept.
   */
  async #endSession(conn: PoolConnection): Promise<void> {
    const reason = new DatabaseError('QUERY_FAILED', 'a migration ran on this session: it is closed instead of reused')
    if (this.#store.backend === 'sqlite') {
      if (!inMemory(conn)) discardAtRelease(conn, reason)
      return
    }
    if (discardAtRelease(conn, reason)) return
    for (const statement of SESSION_RESET) await conn.query(statement)
  }

  /** Runs one side of a migration on `conn` the way it asks: in a transaction or not, foreign keys on or off. */
  async #apply(conn: PoolConnection, direction: Direction, m: Prepared, step: MigrationStep): Promise<number | undefined> {
    if (!step.transaction) return this.#sessionLocked(conn, () => this.#step(conn, direction, m))
    if (step.foreignKeys === false)
      return this.#withoutForeignKeys(conn, m, (check) =>
        this.#locked(conn, () => this.#step(conn, direction, m), m, check ? () => checkForeignKeys(conn, m) : undefined),
      )
    return this.#locked(conn, () => this.#step(conn, direction, m), m)
  }

  /**
   * SQLite, a section marked `foreign_keys:off`: turns enforcement off before `BEGIN` (inside a
   * transaction SQLite ignores the pragma), runs `run` (`check`: enforcement was on, so `run` must
   * check the keys before COMMIT), and turns it back on whatever happened. A connection whose
   * enforcement cannot be restored is closed at its release instead of reused.
   */
  async #withoutForeignKeys<T>(conn: PoolConnection, m: Migration, run: (check: boolean) => Promise<T>): Promise<T> {
    if (!(await foreignKeysOn(conn))) return run(false)
    await conn.query('PRAGMA foreign_keys = OFF')
    let result: T
    try {
      if (await foreignKeysOn(conn))
        throw migrationError(`migration ${m.source}: SQLite did not turn foreign keys off (foreign_keys:off); nothing was run`, m)
      result = await run(true)
    } catch (err) {
      await restoreForeignKeys(conn, m).catch(() => undefined)
      throw err
    }
    await restoreForeignKeys(conn, m)
    return result
  }

  /**
   * Applies or reverts one migration while holding the migration lock (inside the caller's
   * transaction, or outside any for `transaction:false`); undefined when someone else already did.
   */
  async #step(conn: PoolConnection, direction: Direction, m: Prepared): Promise<number | undefined> {
    const applied = await this.#store.readAll(conn)
    const row = applied.find((a) => a.version === m.version)
    // the version was recorded (or reverted) by another process since the plan was made: that is "done"
    // only if it is this very migration; a row with other SQL or another name is drift, as up()/down()
    // refuse it before the lock (two releases that picked the same version, or an edited migration)
    if (row !== undefined) this.#refuseRecordedElsewhere(m, row)
    if (direction === 'up' ? row !== undefined : row === undefined) return undefined
    this.#recheckPlan(direction, m, applied)
    const started = performance.now()
    if (direction === 'up') await runStep(conn, m, m.up, m.upStatements)
    else await runStep(conn, m, m.down as MigrationStep, m.downStatements)
    const durationMs = Math.round(performance.now() - started)
    try {
      if (direction === 'up')
        await this.#store.insert(conn, { version: m.version, name: m.name, checksum: m.checksum, appliedAt: new Date(), durationMs })
      else await this.#store.remove(conn, m.version)
    } catch (err) {
      const step = direction === 'up' ? m.up : (m.down as MigrationStep)
      // a function migration that caught a statement's error and returned: its transaction is aborted
      // (Postgres) or was ended by SQLite, and the record is refused; the migration is what failed
      if (step.kind === 'function' && DatabaseError.is(err, 'TRANSACTION_ROLLED_BACK'))
        throw migrationError(
          `migration ${m.version} (${m.name}) failed: a statement inside its function failed and the error was caught there, which aborted the migration's transaction (nothing of it is kept, it is not recorded); let the error propagate, or use conn.transaction() (a savepoint) around a statement that may fail: ${describe(err, [])}`,
          m,
          {},
          err,
        )
      throw migrationError(
        `migration ${m.source} ran but its record could not be ${direction === 'up' ? 'written to' : 'removed from'} ${this.#store.qualifiedName}: ${describe(err, [])}; ${step.transaction ? 'the migration was rolled back' : 'it ran outside a transaction (transaction:false): its statements took effect and it is not recorded'}`,
        m,
        { table: this.#store.qualifiedName, ...(step.transaction ? {} : { transaction: false }) },
        err,
      )
    }
    return durationMs
  }

  /**
   * Under the lock: the row recorded for `m.version` must be `m` itself (same checksum, same name),
   * else MIGRATION_FAILED (drift, `detail.reason: 'plan-changed'`): another process applied a
   * different migration 2 after this one planned, and skipping it would report success for a
   * migration that never ran. Nothing of `m` has run.
   */
  #refuseRecordedElsewhere(m: Prepared, row: AppliedMigration): void {
    if (!drifted(m, row) && row.name === m.name) return
    const what = drifted(m, row)
      ? `checksum ${row.checksum.slice(0, 12)}… recorded, ${m.checksum.slice(0, 12)}… here`
      : `recorded as "${row.name}", "${m.name}" here`
    throw migrationError(
      `migration ${m.source} (version ${m.version}) was not run: another process recorded a different migration ${m.version} meanwhile (${what}); nothing of it was run: two releases define version ${m.version} differently (give one change a new version) or the migration was edited after it was applied (put the change in a new migration)`,
      m,
      { reason: 'plan-changed', appliedChecksum: row.checksum, appliedName: row.name, checksum: m.checksum },
    )
  }

  /**
   * The plan was made before the lock was taken; another process may have migrated since. Under the
   * lock, with the table as it is now (`applied`): `up` refuses a migration older than the newest
   * applied one (two releases knowing different migrations ran at once: a version applied after a
   * newer one is what a sequential `up()` refuses), `down` refuses to revert a migration that is no
   * longer the newest applied (a newer one was applied meanwhile: reverting this one would undo part
   * of that one too, which would stay recorded as applied). MIGRATION_FAILED saying what changed
   * (`detail.reason: 'plan-changed'`, `detail.newest`); nothing of the migration ran.
   */
  #recheckPlan(direction: Direction, m: Prepared, applied: readonly AppliedMigration[]): void {
    const newest = applied.reduce((max, a) => Math.max(max, a.version), 0)
    if (newest <= m.version) return
    const newer = applied.find((a) => a.version === newest) as AppliedMigration
    const detail = { reason: 'plan-changed', newest }
    if (direction === 'up')
      throw migrationError(
        `migration ${m.source} (version ${m.version}) was not applied: version ${newest} (${newer.name}) was applied meanwhile by another process, so version ${m.version} would now run after a newer migration; nothing of it was run: give it a version above ${newest}`,
        m,
        detail,
      )
    throw migrationError(
      `migration ${m.source} (version ${m.version}) was not reverted: version ${newest} (${newer.name}) was applied meanwhile by another process, so version ${m.version} is no longer the newest applied migration (reverting it could undo part of ${newest} too); nothing was reverted: run down() again to revert from the newest`,
      m,
      detail,
    )
  }

  /**
   * Begins a transaction holding the migration lock, runs `fn` then `beforeCommit`, commits; rolls
   * back on any error.
   */
  async #locked<T>(conn: PoolConnection, fn: () => Promise<T>, m?: Migration, beforeCommit?: () => Promise<void>): Promise<T> {
    await this.#acquire(conn, (waitMs) => this.#tryBegin(conn, waitMs))
    let result: T
    try {
      result = await fn()
      if (beforeCommit) await beforeCommit()
    } catch (err) {
      // the pool's reset rolls back (or destroys the connection) if this fails too
      await conn.query('ROLLBACK').catch(() => undefined)
      throw err
    }
    try {
      await conn.query('COMMIT')
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => undefined)
      throw migrationError(`${m ? `migration ${m.source}` : 'the migrations table'} failed to commit: ${describe(err, [])}`, m, {}, err)
    }
    return result
  }

  /**
   * Postgres, `transaction:false`: holds the session-scoped advisory lock (no transaction open)
   * while `fn` runs its statements one by one, each committing on its own; always unlocks.
   */
  async #sessionLocked<T>(conn: PoolConnection, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(conn, () => this.#store.trySessionLock(conn))
    try {
      return await fn()
    } finally {
      // a broken connection is evicted, which ends the session and frees its lock with it
      await this.#store.unlockSession(conn).catch(() => undefined)
    }
  }

  /**
   * One try at the lock of a transactional migration. Postgres: BEGIN and try the transaction-scoped
   * advisory lock, rolling back when it is taken, so a waiting process never sits in a transaction
   * (or in the server's lock queue, holding a snapshot that another process's
   * `CREATE INDEX CONCURRENTLY` would wait for: a deadlock). SQLite: `BEGIN IMMEDIATE`, which
   * waits (off the event loop) while another connection holds the write lock, for at most `waitMs`
   * (else up to `busyTimeoutMs`, which may be longer than `lockTimeoutMs`): BUSY or QUERY_TIMEOUT
   * (nothing began) means not taken.
   */
  async #tryBegin(conn: PoolConnection, waitMs: number): Promise<boolean> {
    if (this.#store.backend === 'sqlite') {
      try {
        await conn.query(this.#store.beginStatement(), [], { timeoutMs: Math.max(1, Math.ceil(waitMs)) })
        return true
      } catch (err) {
        if (DatabaseError.is(err, 'BUSY') || DatabaseError.is(err, 'QUERY_TIMEOUT')) return false
        throw err
      }
    }
    await conn.query(this.#store.beginStatement())
    let locked = false
    try {
      locked = await this.#store.tryLock(conn)
    } finally {
      if (!locked) await conn.query('ROLLBACK').catch(() => undefined)
    }
    return locked
  }

  /**
   * Tries `attempt` until it takes the lock, backing off from 5 to 100 ms between tries, for at most
   * `lockTimeoutMs`; the deadline restarts whenever another process is seen to record a migration,
   * so a long series of short migrations elsewhere never times this one out. An attempt that can wait
   * for the lock itself (SQLite's BEGIN IMMEDIATE) is given what is left of the deadline, at most
   * {@link ATTEMPT_WAIT_MS} (so progress elsewhere is still seen).
   */
  async #acquire(conn: PoolConnection, attempt: (waitMs: number) => Promise<boolean>): Promise<void> {
    let deadline = Date.now() + this.#lockTimeoutMs
    if (await attempt(Math.min(this.#lockTimeoutMs, ATTEMPT_WAIT_MS))) return
    let seen = await this.#appliedCount(conn)
    let delay = 5
    for (;;) {
      if (Date.now() >= deadline) throw this.#lockTimeout()
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())))
      delay = Math.min(delay * 2, 100)
      if (await attempt(Math.min(deadline - Date.now(), ATTEMPT_WAIT_MS))) return
      const now = await this.#appliedCount(conn)
      if (now !== seen) {
        seen = now
        deadline = Date.now() + this.#lockTimeoutMs
      }
    }
  }

  /** How many migrations are recorded (-1 before the table exists); a change means another process made progress. */
  async #appliedCount(conn: PoolConnection): Promise<number> {
    return this.#store.readAll(conn).then(
      (rows) => rows.length,
      () => -1,
    )
  }

  #lockTimeout(): DatabaseError {
    return migrationError(
      `timed out after ${this.#lockTimeoutMs} ms waiting for the migration lock: another process is migrating this database; retry when it is done`,
    )
  }

  #emit(event: MigrationEvent): void {
    try {
      this.#onEvent?.(event)
    } catch {
      // a progress listener must never break a migration
    }
  }
}

/**
 * `err` (which ended a run) restated to say which migrations the run had already applied or reverted
 * and recorded (committed: they stay), in the message and in `detail.applied` / `detail.reverted`;
 * `err` itself when there are none. A MIGRATION_FAILED keeps its message, detail and cause; another
 * error (POOL_CLOSED from the final read of the table) becomes MIGRATION_FAILED with it as `cause`.
 */
function withDone(err: unknown, direction: Direction, done: readonly MigrationRunStep[]): unknown {
  if (done.length === 0) return err
  const versions = done.map((d) => d.version)
  const key = direction === 'up' ? 'applied' : 'reverted'
  const list = versions.join(', ')
  if (DatabaseError.is(err, 'MIGRATION_FAILED'))
    return migrationError(
      `${err.message}; ${key} before it in this run (committed and recorded, they stay): ${list}`,
      undefined,
      { ...err.detail, [key]: versions },
      err.cause,
    )
  return migrationError(
    `the migration run stopped at an error after it ${key} ${list} (committed and recorded, they stay): ${describe(err, [])}`,
    undefined,
    { [key]: versions },
    err,
  )
}

/**
 * SQLite has no lock that outlives a transaction, so two processes could both run a migration
 * outside one; and nothing needs it there (DDL is transactional, and a table rebuild runs with
 * `foreign_keys:off`).
 */
function refuseOutsideTransaction(m: Migration): void {
  const side = !m.up.transaction ? m.up : m.down && !m.down.transaction ? m.down : undefined
  if (!side) return
  throw new DatabaseError(
    'CONFIGURATION',
    `migration ${side.source} asks to run outside a transaction (transaction:false), which only Postgres supports; on SQLite every migration runs in one (for a table rebuild, mark the section foreign_keys:off instead)`,
    { detail: { version: m.version, name: m.name, source: side.source } },
  )
}

/** `foreign_keys:off` is SQLite's: Postgres has no switch that stops foreign-key actions for one transaction. */
function refuseForeignKeysOff(m: Migration): void {
  const side = m.up.foreignKeys === false ? m.up : m.down?.foreignKeys === false ? m.down : undefined
  if (!side) return
  throw new DatabaseError(
    'CONFIGURATION',
    `migration ${side.source} asks to run with foreign keys off (foreign_keys:off / foreignKeys: false), which only SQLite supports; on Postgres rebuild a table with ALTER TABLE, or drop and re-create its constraints`,
    { detail: { version: m.version, name: m.name, source: side.source } },
  )
}

/**
 * Turns SQLite's foreign-key enforcement back on; where that fails the connection is closed at its
 * release instead of reused (rejects only when it cannot be: a custom {@link MigrationPool}).
 */
async function restoreForeignKeys(conn: PoolConnection, m: Migration): Promise<void> {
  const restored = await conn.query('PRAGMA foreign_keys = ON').then(
    () => foreignKeysOn(conn),
    () => false,
  )
  if (restored) return
  const reason = migrationError(`could not turn foreign keys back on after migration ${m.source}`, m)
  if (!discardAtRelease(conn, reason)) throw reason
}

/** SQLite: whether the connection holds a private in-memory database (`:memory:`, `mode=memory`, a temporary one). */
function inMemory(conn: PoolConnection): boolean {
  const db = (conn as { ownNative?: () => unknown }).ownNative?.() as { memory?: unknown; name?: unknown } | undefined
  if (!db) return true
  const name = typeof db.name === 'string' ? db.name : ''
  return db.memory === true || name === '' || name.includes(':memory:') || /[?&]mode=memory\b/.test(name)
}

/** Whether SQLite enforces foreign keys on this connection (`PRAGMA foreign_keys`). */
async function foreignKeysOn(conn: PoolConnection): Promise<boolean> {
  const { rows } = await conn.query<{ foreign_keys: unknown }>('PRAGMA foreign_keys')
  return Number(rows[0]?.foreign_keys) === 1
}

/** SQLite, before the COMMIT of a `foreign_keys:off` migration: any `PRAGMA foreign_key_check` row fails it. */
async function checkForeignKeys(conn: PoolConnection, m: Migration): Promise<void> {
  const { rows } = await conn.query<{ table: unknown; rowid: unknown; parent: unknown }>('PRAGMA foreign_key_check')
  if (rows.length === 0) return
  const shown = rows
    .slice(0, 5)
    .map((r) => `${String(r.table)} rowid ${String(r.rowid)} -> ${String(r.parent)}`)
    .join(', ')
  throw migrationError(
    `migration ${m.source} ran with foreign keys off (foreign_keys:off) and leaves ${rows.length} foreign-key violation(s): ${shown}${rows.length > 5 ? ', ...' : ''}; it was rolled back`,
    m,
    { violations: rows.slice(0, 20).map((r) => ({ table: r.table, rowid: r.rowid, parent: r.parent })) },
  )
}

/**
 * Closes `conn` at its release instead of reusing it; false when `conn` is not a `withConnection`
 * handle of a {@link DatabasePool} (a custom {@link MigrationPool}).
 */
function discardAtRelease(conn: PoolConnection, reason: DatabaseError): boolean {
  const handle = conn as Partial<Pick<ConnectionHandle<unknown>, 'discardAtRelease'>>
  return typeof handle.discardAtRelease === 'function' ? handle.discardAtRelease(reason) : false
}

function statementsOf(step: MigrationStep, dialect: SqlDialect): SqlStatement[] | undefined {
  if (step.kind !== 'sql') return undefined
  // text ending inside a comment or literal is cut short: the splitter (and SQLite) would drop an
  // unterminated /* comment and what it swallowed silently
  const open = unterminatedSpan(step.sql, dialect, step.firstLine)
  if (open)
    throw new DatabaseError(
      'CONFIGURATION',
      `migration ${step.source} line ${open.line}: unterminated ${open.kind} (the section ends inside it): close it`,
      { detail: { source: step.source, line: open.line, reason: 'unterminated' } },
    )
  const statements = splitSqlStatements(step.sql, dialect, step.firstLine)
  if (statements.length === 0)
    throw new DatabaseError('CONFIGURATION', `migration ${step.source} has an empty section (no SQL statement)`, {
      detail: { source: step.source },
    })
  for (const s of statements) {
    if (dialect === 'sqlite' && isForeignKeysPragma(s)) throw foreignKeysPragmaError(step.source, s.line)
    if (isTransactionControl(s.head)) {
      throw new DatabaseError(
        'CONFIGURATION',
        `migration ${step.source} line ${s.line}: remove "${s.head.slice(0, 2).join(' ')}": each migration already runs in its own transaction`,
        {
          detail: { source: step.source, line: s.line },
        },
      )
    }
  }
  return statements
}

async function runStep(
  conn: PoolConnection,
  m: Migration,
  step: MigrationStep,
  statements: readonly SqlStatement[] | undefined,
): Promise<void> {
  // outside a transaction nothing is rolled back: the error says so
  const note = step.transaction
    ? ''
    : ' (it runs outside a transaction, transaction:false: statements before the failing one took effect and were not undone; make them safe to rerun, e.g. IF NOT EXISTS, then run it again)'
  const mode = step.transaction ? {} : { transaction: false }
  if (step.kind === 'function') {
    try {
      await step.fn(migrationConnection(conn, step.source, step.transaction))
    } catch (err) {
      throw migrationError(`migration ${m.version} (${m.name}) failed in its function: ${describe(err, [])}${note}`, m, mode, err)
    }
    scopesEnded(conn, m, step.transaction, note, mode)
    return
  }
  const list = statements ?? []
  for (let i = 0; i < list.length; i++) {
    const statement = list[i] as SqlStatement
    try {
      await conn.query(statement.text)
    } catch (err) {
      const preview = previewStatementIn(statement.text, conn.backend)
      // outside a transaction a statement whose connection was lost in flight may itself have taken effect
      const itself =
        !step.transaction && isOutcomeUnknown(err)
          ? '; the failing statement itself may have taken effect too (its outcome is unknown)'
          : ''
      throw migrationError(
        `migration ${step.source} failed at statement ${i + 1} (line ${statement.line}): ${preview}: ${describe(err, statementLiterals(statement.text, conn.backend))}${note}${itself}`,
        m,
        { statementIndex: i + 1, line: statement.line, statement: preview, file: step.source, ...mode },
        err,
      )
    }
  }
}

/**
 * A function migration resolved while a `conn.transaction()` it opened (not awaited) still runs: its
 * work would land after the migration is recorded, or (`transaction: false`) outside the session's
 * lock. MIGRATION_FAILED naming the migration (`detail.reason: 'scope-open'`, `detail.scope`), the
 * pool's scope-open error as `cause`; the connection is closed at its release instead of reused (the
 * session ends: its transaction rolls back, a `transaction: false` run's advisory lock is freed), and
 * the scope left running is refused from then on ("this connection was released").
 */
function scopesEnded(conn: PoolConnection, m: Migration, inTransaction: boolean, note: string, mode: Record<string, unknown>): void {
  const handle = conn as PoolConnection & { checkScopesEnded?: () => void; discardAtRelease?: (reason: DatabaseError) => boolean }
  try {
    handle.checkScopesEnded?.()
  } catch (err) {
    const scope = DatabaseError.is(err) ? (err.detail?.scope as string | undefined) : undefined
    const failed = migrationError(
      `migration ${m.version} (${m.name}) failed: its function returned while a ${scope ?? 'transaction'} it opened (conn.transaction() not awaited) was still running; ${inTransaction ? 'the migration is rolled back and not recorded' : 'it is not recorded'}: await every conn.transaction() inside the function${note}`,
      m,
      { ...mode, reason: 'scope-open', ...(scope ? { scope } : {}) },
      err,
    )
    handle.discardAtRelease?.(failed)
    throw failed
  }
}

/** The CONFIGURATION error for a `PRAGMA foreign_keys` in a SQLite migration (ignored inside its transaction). */
function foreignKeysPragmaError(source: string, line: number | undefined): DatabaseError {
  return new DatabaseError(
    'CONFIGURATION',
    `migration ${source}${line === undefined ? '' : ` line ${line}`}: remove "PRAGMA foreign_keys": inside the migration's transaction SQLite ignores it (and PRAGMA defer_foreign_keys does not stop ON DELETE actions); mark the section "-- migrate:up foreign_keys:off" (in code: foreignKeys: false) and the Migrator turns foreign keys off before BEGIN, checks them before COMMIT and turns them back on`,
    { detail: { source, ...(line === undefined ? {} : { line }), option: 'foreign_keys:off' } },
  )
}

/**
 * The connection a function migration receives: `query()` and `stream()` refuse, without running it,
 * a statement that would end or begin the migration's transaction (COMMIT, ROLLBACK, END, BEGIN...:
 * QUERY_FAILED, as `tx.query()` and migration files refuse it; a COMMIT kept half a migration
 * unrecorded, a ROLLBACK dropped its first part and the rest was recorded as applied), and on SQLite
 * `PRAGMA foreign_keys` (CONFIGURATION naming `foreign_keys:off`) instead of letting SQLite ignore
 * it. `conn.transaction()` is a savepoint of the migration's transaction and stays as it is (the
 * SQLite manager refuses `PRAGMA foreign_keys` inside any transaction, whatever path it takes).
 * Outside a transaction (`inTransaction` false: `transaction: false`) BEGIN/COMMIT are refused too
 * (a BEGIN left open would hold the rest of the migration in an uncommitted transaction), the message
 * pointing to `conn.transaction()`, there a real transaction that commits.
 */
function migrationConnection(conn: PoolConnection, source: string, inTransaction: boolean): PoolConnection {
  const backend = conn.backend
  const compiled = (q: unknown): { text: string; params?: readonly unknown[] } | undefined => {
    try {
      return q instanceof SqlFragment ? q.compile(backend) : typeof q === 'string' ? { text: q } : undefined
    } catch {
      // not text the pool accepts: conn.query reports that
      return undefined
    }
  }
  const refusal = (q: unknown): DatabaseError | undefined => {
    const text = compiled(q)?.text
    if (text === undefined) return undefined
    const statements = splitSqlStatements(text, backend)
    if (backend === 'sqlite' && statements.some((s) => isForeignKeysPragma(s))) return foreignKeysPragmaError(source, undefined)
    const control = statements.map((s) => transactionControlOf(s.head)).find((c) => c !== undefined)
    if (control === undefined) return undefined
    return new DatabaseError(
      'QUERY_FAILED',
      inTransaction
        ? `${control} in migration ${source} is refused and was not run: the Migrator owns the migration's transaction (return to commit it with its record, throw to roll it back; conn.transaction() for a savepoint)`
        : `${control} in migration ${source} is refused and was not run: it runs outside a transaction (transaction: false), each statement commits on its own; to commit a batch of statements together use conn.transaction(), a real transaction that commits when its callback returns (and rolls back when it throws)`,
      { backend, retryable: false, detail: { statement: control, source } },
    )
  }
  const query: PoolConnection['query'] = <R>(
    q: Parameters<PoolConnection['query']>[0],
    params?: readonly unknown[],
    options?: Parameters<PoolConnection['query']>[2],
  ) => {
    const refused = refusal(q)
    if (refused) return Promise.reject(refused)
    return conn.query<R>(q, params, options).catch((err: unknown) => remembered(err, q, params))
  }
  const remembered = (err: unknown, q: unknown, params: unknown): never => {
    const c = compiled(q)
    rememberFailure(err, c?.text, c?.params ?? params, backend)
    throw err
  }
  // a stream's errors reject its iterator's next(): remembered there
  const rememberingStream = <S extends object>(rows: S, q: unknown, params: unknown): S =>
    new Proxy(rows, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target)
        if (typeof value !== 'function') return value
        const fn = (value as (...args: unknown[]) => unknown).bind(target)
        if (prop !== Symbol.asyncIterator) return fn
        return () => {
          const iterator = fn() as AsyncIterableIterator<unknown>
          const wrapped: AsyncIterableIterator<unknown> = new Proxy(iterator, {
            get(it, key) {
              const member: unknown = Reflect.get(it, key, it)
              if (key === Symbol.asyncIterator) return () => wrapped
              if (typeof member !== 'function') return member
              const call = (member as (...args: unknown[]) => unknown).bind(it)
              if (key !== 'next') return call
              return (...args: unknown[]) => (call(...args) as Promise<unknown>).catch((err: unknown) => remembered(err, q, params))
            },
          })
          return wrapped
        }
      },
    })
  // a statement run through conn.transaction()'s tx: its literals and values are remembered as well
  const rememberingTx = <T extends object>(tx: T): T =>
    new Proxy(tx, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target)
        if (typeof value !== 'function') return value
        const fn = (value as (...args: unknown[]) => unknown).bind(target)
        if (prop === 'query')
          return (q: unknown, params?: unknown, ...rest: unknown[]) =>
            (fn(q, params, ...rest) as Promise<unknown>).catch((err: unknown) => remembered(err, q, params))
        if (prop === 'stream')
          return (q: unknown, params?: unknown, ...rest: unknown[]) => rememberingStream(fn(q, params, ...rest) as object, q, params)
        if (prop === 'transaction')
          return (callback: (inner: object) => Promise<unknown>, ...rest: unknown[]) =>
            fn((inner: object) => callback(rememberingTx(inner)), ...rest)
        return fn
      },
    })
  const transaction = ((callback: (tx: object) => Promise<unknown>, ...settings: unknown[]) =>
    (conn.transaction as (fn: (tx: object) => Promise<unknown>, ...settings: unknown[]) => Promise<unknown>)(
      (tx) => callback(rememberingTx(tx)),
      ...settings,
    )) as PoolConnection['transaction']
  const stream: PoolConnection['stream'] = (q, params, options) => {
    const refused = refusal(q)
    if (refused) throw refused
    return rememberingStream(conn.stream(q, params, options), q, params)
  }
  return new Proxy(conn, {
    get(target, prop) {
      if (prop === 'query') return query
      if (prop === 'stream') return stream
      if (prop === 'transaction') return transaction
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

// `PRAGMA [schema.]foreign_keys`, the names bare or quoted as SQLite reads them ("x", `x`, [x], 'x'),
// comments before it skipped
const QUOTED_OR_BARE = String.raw`(?:"(?:[^"]|"")*"|\`(?:[^\`]|\`\`)*\`|\[[^\]]*\]|'(?:[^']|'')*'|[A-Za-z_][A-Za-z0-9_$]*)`
const FOREIGN_KEYS_NAME = String.raw`(?:"foreign_keys"|\`foreign_keys\`|\[foreign_keys\]|'foreign_keys'|foreign_keys(?![A-Za-z0-9_$]))`
// blanks and comments, between any two words (`PRAGMA/**/foreign_keys`)
const GAP = String.raw`(?:\s|--[^
]*(?:
|$)|/\*[^*]*\*+(?:[^/*][^*]*\*+)*/)*`
const FOREIGN_KEYS_PRAGMA = new RegExp(String.raw`^${GAP}pragma${GAP}(?:${QUOTED_OR_BARE}${GAP}\.${GAP})?${FOREIGN_KEYS_NAME}`, 'i')

// the same anywhere in a statement's text (`EXPLAIN PRAGMA ...`, or a text the splitter misread)
const FOREIGN_KEYS_PRAGMA_ANYWHERE = new RegExp(
  String.raw`(?<![A-Za-z0-9_$])pragma\s*(?:${QUOTED_OR_BARE}\s*\.\s*)?${FOREIGN_KEYS_NAME}`,
  'i',
)

/**
 * `PRAGMA foreign_keys` or `PRAGMA schema.foreign_keys`, read or set, in any quoting SQLite accepts,
 * at the head of the statement or anywhere in its text outside comments (conservative: a string
 * holding those words is refused too), so that a statement the splitter cut wrongly cannot hide one.
 */
function isForeignKeysPragma(statement: SqlStatement): boolean {
  if (statement.head[0] === 'PRAGMA' && FOREIGN_KEYS_PRAGMA.test(statement.text)) return true
  return /pragma/i.test(statement.text) && FOREIGN_KEYS_PRAGMA_ANYWHERE.test(withoutSqliteComments(statement.text))
}

/** `text` with its `--` and `/* *\/` comments blanked, strings and quoted names (`'x'`, `"x"`, `` `x` ``, `[x]`) kept. */
function withoutSqliteComments(text: string): string {
  let out = ''
  let i = 0
  while (i < text.length) {
    const ch = text[i]!
    if (ch === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i)
      i = end < 0 ? text.length : end
      out += ' '
    } else if (ch === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2)
      i = end < 0 ? text.length : end + 2
      out += ' '
    } else if (ch === "'" || ch === '"' || ch === '`' || ch === '[') {
      const close = text.indexOf(ch === '[' ? ']' : ch, i + 1)
      const end = close < 0 ? text.length : close + 1
      out += text.slice(i, end)
      i = end
    } else {
      out += ch
      i++
    }
  }
  return out
}

/** BEGIN / COMMIT / END / ABORT / ROLLBACK (not ROLLBACK TO) / START or PREPARE TRANSACTION at the top level. */
function isTransactionControl(head: readonly string[]): boolean {
  return transactionControlOf(head) !== undefined
}

function drifted(m: Migration, a: AppliedMigration): boolean {
  return m.checksum !== '' && a.checksum !== '' && m.checksum !== a.checksum
}

function migrationError(message: string, m?: Migration, detail: Record<string, unknown> = {}, cause?: unknown): DatabaseError {
  const native = DatabaseError.is(cause) ? cause : undefined
  return new DatabaseError('MIGRATION_FAILED', message, {
    cause,
    retryable: false,
    backend: native?.backend ?? 'pool',
    ...(native?.sqlState ? { sqlState: native.sqlState } : {}),
    ...(native?.sqliteCode ? { sqliteCode: native.sqliteCode } : {}),
    detail: {
      ...(m ? { version: m.version, name: m.name, source: m.source } : {}),
      ...(native ? { causeCode: native.code } : {}),
      // a COMMIT (or a transaction:false statement) lost in flight: the migration may be applied
      ...(isOutcomeUnknown(cause) ? { outcome: OUTCOME_UNKNOWN } : {}),
      ...detail,
    },
  })
}

export { previewStatement }

/**
 * An error as MIGRATION_FAILED's message repeats it. With `literals` (a failing statement's: see
 * {@link statementLiterals}; `[]` for a function migration's error), every database message in it is
 * shown without the values it repeats (see {@link hideLiterals}: the statement's literals, the
 * literals and bound values of the function migration's statement that failed, a data exception's
 * quoted input), as the statement preview hides them. Each message is judged by its own SQLSTATE:
 * an error whose message repeats its cause's (TRANSACTION_ROLLED_BACK's `first error: ...`, SQLSTATE
 * 25P02) has that part hidden as the cause's own message is. The code, SQLSTATE and the error itself
 * (`cause`, whose message is the database's own) are kept.
 */
function describe(err: unknown, literals?: readonly string[]): string {
  const message = isErrorLike(err) ? err.message : String(err)
  if (literals === undefined) return DatabaseError.is(err) ? `${err.code}: ${message}` : message
  const all = [...literals]
  for (let e: unknown = err, depth = 0; isErrorLike(e) && depth < ERROR_CAUSE_DEPTH; e = e.cause, depth++)
    all.push(...(FAILED_WITH.get(e) ?? []))
  const shown = hideErrorLiterals(err, all)
  return DatabaseError.is(err) ? `${err.code}: ${shown}` : shown
}

/**
 * The literals of the statement a function migration's `query()` / `stream()` ran and its bound
 * values (every text it may be repeated in: see `parameterTexts`), by the error it failed with: {@link describe} hides
 * them wherever that error's message (or a later error's repeating it) quotes them.
 */
const FAILED_WITH = new WeakMap<object, string[]>()

function rememberFailure(err: unknown, text: string | undefined, params: unknown, dialect: SqlDialect): void {
  if (!isErrorLike(err) || FAILED_WITH.has(err)) return
  const values: string[] = text === undefined ? [] : statementLiterals(text, dialect)
  if (Array.isArray(params)) values.push(...parameterTexts(params as unknown[]))
  FAILED_WITH.set(err, values)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
