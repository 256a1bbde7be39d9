import type { DatabaseError, RowCursor } from '@dbpool/core'
import type Database from 'better-sqlite3'
import { rowObjects, type RowShape } from './row-objects'
import { narrowIntegers } from './sqlite-integers'
import { waitForLock } from './sqlite-lock-wait'
import { runStatement } from './statement-call'

type Statement = Database.Statement<unknown[], unknown>

/**
 * Longest slice of work one `read()` does before it hands its rows back, in ms (checked every 64
 * rows). With the `setImmediate` before each later batch, a stream never holds the event loop much
 * longer than this, whatever the row size or `batchSize`.
 */
export const STREAM_SLICE_MS = 4

/** @internal What a cursor needs from its manager. */
export interface SqliteCursorHooks {
  /** Rows come back with every INTEGER as a bigint, narrowed to numbers where exact (`safeIntegers` off). */
  readonly narrowing: boolean
  /**
   * The statement runs in raw mode (rows are arrays, made objects by rowObjects): the columns of the
   * plan that ran, read after the first batch (throws when two share a name).
   */
  readonly shapeAfterFirstBatch?: () => RowShape
  /** The longest wait for a lock another connection holds (the `busyTimeoutMs` option). */
  readonly busyTimeoutMs: number
  /** Whether the statement's first run failed on a lock held elsewhere having changed nothing: it may run again after a pause. */
  mayWaitForLock(err: unknown): boolean
  /** Before the statement first runs (a statement that writes: the file identity check). */
  before(): void
  /**
   * After the first batch of a read whose text can expand a `*`, before any row is handed out:
   * throws when the plan that ran has two columns of one name (SQLite re-prepared it after a schema change).
   */
  readonly checkColumns?: () => void
  /**
   * A statement that writes and returns rows, whose text can expand a `*`: runs it whole (SQLite
   * makes every change at the first step anyway) with its columns checked, and answers its rows,
   * then read from memory a batch at a time.
   */
  readonly materialize?: () => unknown[]
  /** Maps an error, remembering a fatal one. */
  fail(err: unknown): DatabaseError
  /** The cursor ended (read to the end, closed, or failed): the connection is no longer busy with it. */
  ended(): void
}

/**
 * @internal A statement's rows through better-sqlite3's `iterate()`, a batch at a time. The
 * statement is prepared for this cursor alone (a cached one could be wanted meanwhile). While the
 * iterator is open SQLite keeps the statement running and better-sqlite3 refuses every other
 * statement of the connection: the pool holds the connection's lease until `close()`.
 *
 * better-sqlite3 is synchronous: a batch is read on the calling thread. Each `read()` after the first
 * waits for one `setImmediate` (timers and I/O run first), and stops early after
 * {@link STREAM_SLICE_MS}, so a long export never stalls the event loop for long.
 *
 * A first batch that finds a lock another connection holds (SQLITE_BUSY before any row, the statement
 * having changed nothing: rollback-journal mode, a writer's exclusive lock) is read again after a
 * pause, off the event loop, until `busyTimeoutMs` (then BUSY); the stream's own deadline or signal
 * closes the cursor, which ends the wait.
 */
export class SqliteCursor<R> implements RowCursor<R> {
  readonly #stmt: Statement
  /** Result columns of a raw statement, read after its first batch. */
  #shape: RowShape | undefined
  readonly #params: readonly unknown[]
  readonly #batchSize: number
  readonly #hooks: SqliteCursorHooks
  #iterator: IterableIterator<unknown> | undefined
  #started = false
  #done = false
  #checked = false
  /** A statement that writes, started outside a transaction (auto-commit): decided before its first step. */
  #autoCommitWrite = false
  /** Its first batch ran: SQLite made every change of a write at that first step. */
  #ran = false
  /**
   * Its changes are known not committed: a later step failed (the statement's end, a deferred foreign
   * key checked there), or the reset of a statement ended early rolled it back (see `close()`).
   */
  #rolledBack = false
  /** Its iterator reached its end (SQLite reset the statement there, and a failing reset threw). */
  #finished = false

  constructor(stmt: Statement, params: readonly unknown[], batchSize: number, hooks: SqliteCursorHooks) {
    this.#stmt = stmt
    this.#params = params
    this.#batchSize = batchSize
    this.#hooks = hooks
  }

  async read(): Promise<R[]> {
    if (this.#done) return []
    if (this.#started) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      if (this.#done) return []
    }
    const first = !this.#started
    this.#started = true
    if (first) this.#autoCommitWrite = !this.#stmt.readonly && !this.#stmt.database.inTransaction
    let rows: unknown[]
    try {
      rows = this.#batch()
    } catch (err) {
      if (!first || this.#done || !this.#hooks.mayWaitForLock(err)) {
        // a step after the first failed (a deferred foreign key at the statement's end): an auto-commit
        // statement is rolled back whole, nothing of it committed
        this.#rolledBack = true
        this.#finished = true
        this.close()
        throw this.#hooks.fail(err)
      }
      try {
        rows = await this.#waitForLock(err)
      } catch (waitError) {
        this.close()
        throw this.#hooks.fail(waitError)
      }
    }
    if (rows.length === 0) return rows as R[]
    if (this.#hooks.narrowing) narrowIntegers(rows)
    const shape = this.#shape
    return (shape === undefined ? sameRealm(rows) : rowObjects(rows, shape, false)!) as R[]
  }

  /** The first batch, tried again after pauses while the lock is held elsewhere (see the class). */
  #waitForLock(busy: unknown): Promise<unknown[]> {
    let last = busy
    const attempt = (): unknown[] | undefined => {
      if (this.#done) return []
      this.#iterator = undefined
      try {
        return this.#batch()
      } catch (err) {
        if (this.#done || !this.#hooks.mayWaitForLock(err)) throw err
        last = err
        return undefined
      }
    }
    const final = (): unknown[] => {
      if (this.#done) return []
      this.#iterator = undefined
      return this.#batch()
    }
    return waitForLock(attempt, final, { busyTimeoutMs: this.#hooks.busyTimeoutMs }, () => last)
  }

  /**
   * `'committed'` once the first batch of a statement that writes, started outside a transaction,
   * ran: SQLite makes every change of an `INSERT ... RETURNING` at its first step, and the auto-commit
   * statement commits them when it is reset (the cursor's `close()`), however early the stream ends.
   * Undefined for a read, inside a transaction (the owner commits or rolls back), before it ran, or
   * when it was rolled back: a later step failed (a deferred foreign key is checked at the
   * statement's end), or the reset of a stream ended early did not commit (see `close()`).
   */
  outcome(): 'committed' | undefined {
    return this.#ran && this.#autoCommitWrite && !this.#rolledBack ? 'committed' : undefined
  }

  close(): void {
    if (this.#done) return
    this.#done = true
    const iterator = this.#iterator
    this.#iterator = undefined
    try {
      iterator?.return?.()
    } catch {
      // resetting a statement does not fail; the pool's release checks the connection anyway
    }
    // (rare path) an auto-commit write ended early: its reset commits it, or rolls it back when its
    // commit fails (a deferred foreign key), and better-sqlite3's return() hides that error. Every
    // row handed out was a change, so changes() (set by the reset: 0 for a statement rolled back,
    // sqlite3VdbeHalt) tells which
    if (iterator !== undefined && !this.#finished && this.#ran && this.#autoCommitWrite && this.#hooks.materialize === undefined) {
      let changes = 0
      try {
        changes = Number(this.#stmt.database.prepare('select changes()').pluck().safeIntegers(false).get())
      } catch {
        // unknown: no outcome is claimed
      }
      if (!(changes > 0)) this.#rolledBack = true
    }
    this.#hooks.ended()
  }

  #batch(): unknown[] {
    let iterator = this.#iterator
    if (iterator === undefined) {
      this.#hooks.before()
      if (!this.#stmt.reader) {
        // a statement that returns no rows (an INSERT without RETURNING): it runs, the stream is empty
        runStatement(this.#stmt, this.#params)
        this.#ran = true
        this.close()
        return []
      }
      const materialize = this.#hooks.materialize
      iterator = this.#iterator = materialize ? materialize()[Symbol.iterator]() : this.#stmt.iterate(...this.#params)
    }
    const check = this.#checked ? undefined : this.#hooks.checkColumns
    const rows: unknown[] = []
    const size = this.#batchSize
    const until = performance.now() + STREAM_SLICE_MS
    while (rows.length < size) {
      const next = iterator.next()
      if (next.done === true) {
        this.#finished = true
        this.close()
        break
      }
      rows.push(next.value)
      if ((rows.length & 63) === 0 && performance.now() > until) break
    }
    // its first step did not throw: a write made its changes
    this.#ran = true
    if (check !== undefined) {
      // the plan that ran (a reset, at the end of the rows, keeps it)
      this.#checked = true
      check()
    }
    // raw rows: the names of the plan that ran, once (SQLite may have re-prepared it at the first step)
    if (this.#shape === undefined && this.#hooks.shapeAfterFirstBatch !== undefined) this.#shape = this.#hooks.shapeAfterFirstBatch()
    return rows
  }
}

/**
 * The native addon builds rows with the intrinsics of the realm it was loaded in (jest's vm context
 * differs from it): such rows are copied into this realm, as the manager does for `all()`.
 */
function sameRealm(rows: unknown[]): unknown[] {
  const first = rows[0]
  if (first === null || typeof first !== 'object' || first instanceof Object) return rows
  for (let i = 0; i < rows.length; i++) rows[i] = { ...(rows[i] as object) }
  return rows
}
