import { createHash } from 'node:crypto'
import { statementTraits, type StatementTraits } from './postgres-statement-traits'

/** When a repeated parameterised statement becomes a named prepared statement: see {@link PostgresManagerOptions.prepare}. */
export type PrepareMode = 'always' | 'second-use'

/**
 * The row description the server sent for a named statement (pg's RowDescription fields), kept so
 * later runs skip Describe; with what pg's Result built from it (a parser per column, the empty row),
 * so they skip that too.
 */
export interface StatementDescription {
  readonly fields: readonly unknown[]
  readonly parsers?: readonly unknown[]
  readonly emptyRow?: object
}

/** One named prepared statement of a connection. */
export interface CachedStatement {
  readonly text: string
  /** The statement name (see {@link statementName}): the same text has the same name on every connection. */
  readonly name: string
  /** What its text says, read once (see {@link statementTraits}). */
  readonly traits: StatementTraits
  /** Runs of it sent and not yet answered: an entry in use is never closed or re-prepared. */
  inFlight: number
  /** When it was last acquired (the cache's counter): the least recent is evicted first. */
  lastUsed: number
  /** The invalidation generation it was parsed in (see {@link StatementCache.invalidateAll}). */
  generation: number
  /** Set once the server described its result; `undefined` until then (the next run sends Describe). */
  description: StatementDescription | undefined
  /**
   * The cache's transaction count ({@link StatementCache.readyForQuery}) when it was last parsed inside
   * a transaction block; `undefined` when it was last parsed outside one.
   */
  parsedInTransaction?: number
}

/**
 * What one connection's statement cache shares with the others of its manager: a generation that
 * {@link StatementCache.invalidateEverywhere} bumps when the server reports a changed result type,
 * so every connection re-prepares its statements once instead of each failing on its own.
 */
export interface SharedGeneration {
  value: number
}

/**
 * The named prepared statements of one Postgres connection: a least-recently-used map from statement
 * text to name, bounded by `size` (postgres.js prepares every statement without a bound; pgx keeps an
 * LRU of 512 per connection and deallocates what it evicts, as this does). Evicted names are closed
 * with the protocol's Close message, sent in front of the next statement (no extra round trip; Close
 * of a missing name is no error, and it works inside an aborted transaction); an invalidated one is
 * parsed again under its name, behind a Close of it.
 *
 * It also keeps pg's own record of parsed names (`client.connection.parsedStatements`) true: pg skips
 * Parse for a name it remembers, so a name dropped on the server must be forgotten there too.
 */
export class StatementCache {
  readonly size: number
  readonly mode: PrepareMode
  /** Text → statement. */
  readonly #entries = new Map<string, CachedStatement>()
  /** Counts acquisitions: `lastUsed` of each entry (a hit writes one number instead of reordering the map). */
  #clock = 0
  /** 'second-use': texts run once, unnamed, oldest first; bounded by `size` too. */
  readonly #seen = new Set<string>()
  /** Names to Close before the next statement is parsed. */
  readonly #closing: string[] = []
  readonly #shared: SharedGeneration
  /** This connection's own generation: entries parsed before it are re-prepared (after a 26000). */
  #localGeneration = 0
  readonly #parsed: Record<string, string | undefined>
  readonly #submitted: Record<string, string | undefined>
  /** Transactions ended on the connection (ReadyForQuery `I` after a statement): tells one transaction from the next. */
  #ended = 0
  /** The schema changed in the open transaction (or statement): every connection re-prepares once it ends. */
  #schemaChangePending = false
  /** The last value the server reported for each of {@link PARSE_SETTINGS} (ParameterStatus). */
  readonly #settings = new Map<string, string>()

  constructor(
    size: number,
    mode: PrepareMode,
    shared: SharedGeneration,
    pg: {
      readonly parsedStatements: Record<string, string | undefined>
      readonly submittedNamedStatements: Record<string, string | undefined>
    },
  ) {
    this.size = size
    this.mode = mode
    this.#shared = shared
    this.#parsed = pg.parsedStatements
    this.#submitted = pg.submittedNamedStatements
  }

  /** Named statements held (for tests and metrics). */
  get count(): number {
    return this.#entries.size
  }

  /**
   * The statement to run `text` as, counted in flight until {@link done}; `undefined` to run it unnamed
   * (first use in 'second-use' mode, the cache full of statements in flight, or a text with a literal
   * read from the clock at Parse: see {@link StatementTraits.clockLiteral}). A stale entry (see
   * {@link invalidateAll}) not in flight is closed and parsed again under its name.
   */
  acquire(text: string): CachedStatement | undefined {
    const entries = this.#entries
    let entry = entries.get(text)
    if (entry !== undefined) {
      if (entry.generation !== this.#generation() && !this.#refresh(entry)) return undefined
      entry.lastUsed = ++this.#clock
      entry.inFlight++
      return entry
    }
    // a date/time literal read from the clock at Parse ('now', 'today'...): never named, parsed every run
    const traits = statementTraits(text)
    if (traits.clockLiteral) return undefined
    if (this.mode === 'second-use' && !this.#secondUse(text)) return undefined
    if (entries.size >= this.size && !this.#evictOne()) return undefined
    entry = {
      text,
      name: statementName(text),
      traits,
      inFlight: 1,
      lastUsed: ++this.#clock,
      generation: this.#generation(),
      description: undefined,
    }
    entries.set(text, entry)
    return entry
  }

  /** A run of `entry` was answered (successfully or not). */
  done(entry: CachedStatement): void {
    entry.inFlight--
  }

  /**
   * The names to Close in front of the statement being sent now; the list is emptied. Called while
   * the statement's messages are written, so the Close travels in the same packet.
   */
  takeClosing(): readonly string[] | undefined {
    if (this.#closing.length === 0) return undefined
    return this.#closing.splice(0, this.#closing.length)
  }

  /**
   * Every statement of this connection is re-prepared on its next use: the server dropped them, or
   * may have (`DEALLOCATE ALL`, `DISCARD ALL`, a 26000 "prepared statement does not exist").
   */
  invalidateAll(): void {
    this.#localGeneration++
  }

  /**
   * Every statement of every connection of the manager is re-prepared on its next use: the server
   * reported a result or parameter type that changed under a cached plan (a 0A000 "cached plan must
   * not change result type" after `ALTER TABLE`), which every connection's copy would hit too.
   */
  invalidateEverywhere(): void {
    this.#shared.value++
  }

  /**
   * Called as a run of `entry` is written (pg's submit): when the entry was invalidated after it was
   * acquired (a `DEALLOCATE ALL` or `DISCARD ALL` command tag, or a changed result type, reported
   * while this run waited in pg's queue), the run parses it again under its name (behind a Close)
   * instead of failing on the server. Safe with other runs of it in flight: pg writes a classic-mode
   * statement once everything before it was answered, and a pipelined one behind the runs already
   * written, which the server finishes first.
   */
  refreshStale(entry: CachedStatement): void {
    const generation = this.#generation()
    if (entry.generation === generation) return
    this.#forget(entry.name)
    entry.generation = generation
    entry.description = undefined
  }

  /**
   * A command tag of DDL run on this connection (`ALTER TABLE`, `DROP ...`, `CREATE ...`, `DO`, `CALL`: see
   * `schemaChangeOf` in postgres-statement.ts): the statements of this connection are re-prepared on
   * their next run (inside the same transaction too, where a cached one would fail with 0A000 or keep
   * stale parameter types); with `everywhere` (ALTER, DROP, CREATE but a lone CREATE TEMP, DO, CALL: a change
   * of objects other connections' statements use or resolve), every connection of the manager re-prepares its statements once the transaction
   * (or auto-commit statement) that ran it has ended, when the change is visible to them.
   */
  schemaChanged(everywhere: boolean): void {
    this.#localGeneration++
    if (everywhere) this.#schemaChangePending = true
  }

  /**
   * The server's ReadyForQuery on this connection, with its transaction status: `I` ends the
   * transaction (or auto-commit statement) under way, which publishes a pending schema change.
   */
  readyForQuery(status: string | undefined): void {
    if (status !== 'I') return
    this.#ended++
    if (this.#schemaChangePending) {
      this.#schemaChangePending = false
      this.#shared.value++
    }
  }

  /**
   * The server's ParameterStatus for `name` (sent at startup, and at the end of any statement that
   * changed a reported setting: `SET`, `RESET`, `set_config()`, a `SET LOCAL` undone by COMMIT or
   * ROLLBACK). A change of a setting Parse reads literals with ({@link PARSE_SETTINGS}: `TimeZone`,
   * `DateStyle`, `IntervalStyle`, `standard_conforming_strings`) re-prepares this connection's
   * statements: Parse converted a literal such as `'2024-01-01 12:00'` of a `timestamptz` once, in
   * the zone of that moment, and Postgres' plan cache does not invalidate on these settings.
   */
  settingReported(name: string, value: string): void {
    if (!PARSE_SETTINGS.has(name)) return
    const before = this.#settings.get(name)
    this.#settings.set(name, value)
    if (before !== undefined && before !== value) this.invalidateAll()
  }

  /** A run of `entry` sent Parse, in a transaction block (`T`, `E`) or not. */
  parsed(entry: CachedStatement, inTransaction: boolean): void {
    entry.parsedInTransaction = inTransaction ? this.#ended : undefined
  }

  /**
   * Whether `entry` was parsed inside the transaction still open on the connection: when the server
   * then drops or invalidates it there, the transaction did it itself (DDL or `DEALLOCATE` run by a
   * function, which no command tag shows), and a replay of the transaction would do it again.
   */
  parsedInOpenTransaction(entry: CachedStatement): boolean {
    return entry.parsedInTransaction === this.#ended
  }

  /** `entry` alone is parsed again on its next run (its cached parameter types may be stale). */
  invalidate(entry: CachedStatement): void {
    entry.generation = -1
  }

  /** The current invalidation generation: what was learnt about a statement text before it changed may be stale (a schema change). */
  get generation(): number {
    return this.#generation()
  }

  #generation(): number {
    return this.#shared.value + this.#localGeneration
  }

  /** A stale entry is parsed again under its name (a Parse goes with a Close of its name); impossible while in flight. */
  #refresh(entry: CachedStatement): boolean {
    if (entry.inFlight > 0) return false
    this.#forget(entry.name)
    entry.generation = this.#generation()
    entry.description = undefined
    return true
  }

  /** 'second-use': true on the second run of a text (it will be named), false on the first. */
  #secondUse(text: string): boolean {
    const seen = this.#seen
    if (seen.delete(text)) return true
    if (seen.size >= this.size) seen.delete(seen.values().next().value as string)
    seen.add(text)
    return false
  }

  /** Evicts the least recently used statement not in flight (one pass over at most `size`); false when every one is in flight. */
  #evictOne(): boolean {
    let oldest: CachedStatement | undefined
    for (const entry of this.#entries.values()) {
      if (entry.inFlight === 0 && (oldest === undefined || entry.lastUsed < oldest.lastUsed)) oldest = entry
    }
    if (oldest === undefined) return false
    this.#entries.delete(oldest.text)
    this.#forget(oldest.name)
    this.#closing.push(oldest.name)
    return true
  }

  /** pg must parse the name again before its next use. */
  #forget(name: string): void {
    delete this.#parsed[name]
    delete this.#submitted[name]
  }
}

/**
 * The reported settings (ParameterStatus) Parse converts literals with: a date/time literal's zone
 * (`TimeZone`), field order (`DateStyle`), an interval's sign rules (`IntervalStyle`), backslashes in
 * `'...'` (`standard_conforming_strings`). See {@link StatementCache.settingReported}.
 */
const PARSE_SETTINGS: ReadonlySet<string> = new Set(['TimeZone', 'DateStyle', 'IntervalStyle', 'standard_conforming_strings'])

/**
 * The name of the named statement for `text`: `dbpool_` and 96 bits of its SHA-256, so one name
 * always means one text, on every connection. Where a statement could reach another session than
 * the one that parsed it (a transaction-mode pooler without `pgbouncer=true`), it then either runs
 * the very same text or fails with 26000, never runs another statement with these parameters.
 */
export function statementName(text: string): string {
  return `dbpool_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`
}
