import { realpathSync, statSync } from 'node:fs'
import { checkDatabasePath } from './sqlite-options'
import { DatabaseError, MAX_TIMER_MS, configError } from '@dbpool/core'
import { checkInteger, rejectUnknownKeys, requireObject } from '@dbpool/core/internal'
import Database from 'better-sqlite3'
import type { SqliteDatabase } from './sqlite-connection-manager'
import { createNewTarget, removeNewTarget } from './backup-target'
import { mapSqliteError } from './sqlite-errors'

/**
 * How the pages of a backup were copied:
 * - `snapshot-steps`: WAL file. Steps of SQLite's online backup API inside one read transaction on a
 *   private read-only connection: one snapshot, which no commit (of this process or another) restarts.
 * - `online-steps`: rollback-journal file. Steps of the online backup API, each its own read
 *   transaction; the copy converged between commits.
 * - `one-step`: rollback-journal file whose steps kept restarting: the rest copied in one step
 *   (one read transaction, one synchronous call).
 * - `serialize`: `:memory:`. `sqlite3_serialize` on the write connection (one synchronous copy in memory).
 * - `vacuum`: `VACUUM INTO` on a reader.
 */
export type BackupCopyMode = 'snapshot-steps' | 'online-steps' | 'one-step' | 'serialize' | 'vacuum'

/** Where a page copy is: what SQLite's backup API reports between steps. */
export interface CopyStep {
  readonly totalPages: number
  readonly remainingPages: number
}

/** Options of {@link copyDatabaseFile}. */
export interface FileCopyOptions {
  /** The database file to copy. */
  readonly source: string
  /**
   * The new file to write: created exclusively (0600), so it must not exist, nor SQLite's `-journal`,
   * `-wal` or `-shm` beside it (CONFIGURATION, nothing touched); removed when the copy fails.
   */
  readonly target: string
  /** Pages per step. */
  readonly pagesPerStep: number
  /** Deadline of the copy in ms; `undefined`: {@link defaultBackupTimeoutMs} of the source's size. */
  readonly timeoutMs: number | undefined
  /** Called after every step but the last; a throw aborts the copy with that error. */
  readonly onStep: (step: CopyStep) => void
  /** Checked after every step: an error returned here (the pool closed) aborts the copy with it. */
  readonly abortReason: () => DatabaseError | undefined
}

/** What {@link copyDatabaseFile} did. */
export interface FileCopyResult {
  readonly mode: 'snapshot-steps' | 'online-steps' | 'one-step'
  readonly totalPages: number
  readonly steps: number
  /** Times the copy started over because another connection committed (rollback-journal files only). */
  readonly restarts: number
  /** The deadline applied, in ms. */
  readonly timeoutMs: number
}

/** Throughput the default deadline assumes: 20 MiB/s (a slow disk on a loaded machine; this machine copies about 200 MB/s). */
export const ASSUMED_COPY_BYTES_PER_MS = (20 * 1024 * 1024) / 1000
/** The default deadline is this many times the copy time at {@link ASSUMED_COPY_BYTES_PER_MS}... */
export const DEFAULT_TIMEOUT_FACTOR = 4
/** ...and at least this (ms)... */
export const DEFAULT_TIMEOUT_FLOOR_MS = 10_000
/** ...and at most this (ms). */
export const DEFAULT_TIMEOUT_CAP_MS = 300_000
/** Restarts after which a rollback-journal copy stops stepping and copies the rest in one step. */
export const RESTARTS_BEFORE_ONE_STEP = 3
/** Time without progress (ms) after which a rollback-journal copy copies the rest in one step. */
export const STALL_BEFORE_ONE_STEP_MS = 1_000
/** The longest a one-step copy may block the event loop (ms, estimated from the steps so far); larger copies keep stepping. */
export const MAX_ONE_STEP_MS = 250

const ALL_PAGES = 0x7fffffff
const BUSY_RETRY_MS = 10

/**
 * The default deadline of a copy, in ms: {@link DEFAULT_TIMEOUT_FACTOR} times the time `bytes` take at
 * {@link ASSUMED_COPY_BYTES_PER_MS}, at least {@link DEFAULT_TIMEOUT_FLOOR_MS}, at most
 * {@link DEFAULT_TIMEOUT_CAP_MS}: 10 s up to 50 MiB, 200 s for 1 GiB, 300 s from 1.5 GiB.
 * CONFIGURATION naming `defaultBackupTimeoutMs.bytes` unless `bytes` is a number >= 0.
 */
export function defaultBackupTimeoutMs(bytes: number): number {
  if (typeof bytes !== 'number' || !(bytes >= 0)) throw configError('defaultBackupTimeoutMs.bytes', bytes, 'must be a number >= 0')
  const expected = bytes / ASSUMED_COPY_BYTES_PER_MS
  return Math.round(Math.min(DEFAULT_TIMEOUT_CAP_MS, Math.max(DEFAULT_TIMEOUT_FLOOR_MS, DEFAULT_TIMEOUT_FACTOR * expected)))
}

/**
 * Copies a database file with SQLite's online backup API on a private read-only connection (busy
 * timeout 0, so a lock held by another process costs a retry on a later step, never a wait on the
 * event loop). It holds no connection of the pool: the pool's writer and readers carry on.
 *
 * - WAL file: the copy runs inside one read transaction (`BEGIN` + a read), so every step reads the
 *   same snapshot. SQLite restarts an online backup when the source changes under it; a held read
 *   transaction never sees a change, so commits of this process or another never restart it. The
 *   WAL cannot be checkpointed past that snapshot until the copy ends.
 * - Rollback-journal file: a held read transaction would lock out every writer, so each step is its
 *   own read transaction and any commit restarts the copy. After {@link RESTARTS_BEFORE_ONE_STEP}
 *   restarts or {@link STALL_BEFORE_ONE_STEP_MS} without progress, the rest is copied in one step
 *   (one read transaction) when that is estimated to block for at most {@link MAX_ONE_STEP_MS}.
 *
 * Steps of `pagesPerStep` pages run one per event-loop turn. The deadline is checked after every step:
 * once past, the copy stops, `target` is removed and BACKUP_FAILED says so, with pages copied, steps
 * and restarts. Throws BACKUP_FAILED when the source cannot be opened, CONFIGURATION naming
 * `copyDatabaseFile.<option>` for a bad option (before anything is opened).
 *
 * The target is created exclusively, mode 0600 (`O_CREAT | O_EXCL`, see `createNewTarget`): an
 * existing target (a database, any file, a directory, a symlink) or a `-journal`, `-wal` or `-shm`
 * beside it is refused with CONFIGURATION naming `copyDatabaseFile.target`, and left as it was. A
 * target that cannot be created (missing directory, no permission) or written (SQLite's error:
 * disk full, I/O error) gives BACKUP_FAILED naming it (`detail.target`). On every failure the file
 * this call created is removed (only while it is still that file), with the `-journal` SQLite
 * wrote beside it.
 */
export async function copyDatabaseFile(options: FileCopyOptions): Promise<FileCopyResult> {
  checkCopyOptions(options)
  const started = performance.now()
  const timeoutMs = options.timeoutMs ?? defaultBackupTimeoutMs(fileBytes(options.source) + walBytes(options.source))
  const deadline = started + timeoutMs
  let db: SqliteDatabase
  try {
    db = new Database(options.source, { readonly: true, fileMustExist: true, timeout: 0 })
  } catch (err) {
    const mapped = mapSqliteError(err)
    throw new DatabaseError('BACKUP_FAILED', `cannot open ${options.source} to back it up: ${mapped.code}: ${mapped.message}`, {
      backend: 'sqlite',
      cause: mapped,
      sqliteCode: mapped.sqliteCode,
    })
  }
  let made
  try {
    made = await createNewTarget('copyDatabaseFile.target', options.target)
  } catch (err) {
    closeQuietly(db)
    throw err
  }
  let run: StepRun | undefined
  try {
    const source = await beginSnapshot(db, deadline, timeoutMs)
    run = new StepRun(options, source, started, deadline, timeoutMs)
    const current = run
    for (;;) {
      const done = await db.backup(options.target, { progress: (step) => current.next(step) })
      // better-sqlite3 ends a backup whose first step was refused with SQLITE_BUSY (another process held
      // the lock, rollback-journal mode) as if it were done: 0 of 0 pages, an empty copy. Only a source
      // that really has no pages may end so; otherwise copy again once the lock is gone
      if (done.totalPages > 0 || sourcePages(db) === 0) return current.result(done.totalPages)
      if (performance.now() >= deadline) {
        throw new DatabaseError('BACKUP_FAILED', `SQLite backup timed out after ${timeoutMs} ms: the database stayed locked`, {
          backend: 'sqlite',
          detail: { timeoutMs, copiedPages: 0 },
        })
      }
      await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS))
    }
  } catch (err) {
    closeQuietly(db)
    await removeNewTarget(made)
    // the callbacks' errors (and ours) as they are; SQLite's and better-sqlite3's name the target
    if (DatabaseError.is(err) || (run !== undefined && run.callbackError === err)) throw err
    const mapped = mapSqliteError(err)
    throw new DatabaseError('BACKUP_FAILED', `cannot copy ${options.source} into ${options.target}: ${mapped.code}: ${mapped.message}`, {
      backend: 'sqlite',
      cause: mapped,
      sqliteCode: mapped.sqliteCode,
      detail: { target: options.target },
    })
  } finally {
    if (db.open) closeQuietly(db)
  }
}

/** The source's page count, or undefined while it is locked (SQLITE_BUSY). */
function sourcePages(db: SqliteDatabase): number | undefined {
  try {
    return Number(db.pragma('page_count', { simple: true }))
  } catch {
    return undefined
  }
}

interface SourceInfo {
  /** A read transaction is held: one snapshot for the whole copy. */
  readonly pinned: boolean
  readonly journalMode: string
  readonly pageSize: number
}

/** Reads the journal mode and page size; on a WAL file, keeps the read transaction open. Retries SQLITE_BUSY until the deadline. */
async function beginSnapshot(db: SqliteDatabase, deadline: number, timeoutMs: number): Promise<SourceInfo> {
  for (;;) {
    try {
      db.exec('BEGIN')
      db.prepare('select count(*) from sqlite_schema').get() // the read transaction starts at the first read
      const journalMode = String(db.pragma('journal_mode', { simple: true })).toLowerCase()
      const pageSize = Number(db.pragma('page_size', { simple: true }))
      const pinned = journalMode === 'wal'
      if (!pinned) db.exec('COMMIT')
      return { pinned, journalMode, pageSize }
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK')
      const mapped = mapSqliteError(err)
      if (mapped.code !== 'BUSY') throw mapped
      if (performance.now() >= deadline) {
        throw new DatabaseError(
          'BACKUP_FAILED',
          `SQLite backup timed out after ${timeoutMs} ms: the database stayed locked (${mapped.message})`,
          {
            backend: 'sqlite',
            cause: mapped,
            detail: { timeoutMs, copiedPages: 0 },
          },
        )
      }
      await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS))
    }
  }
}

/** The progress handler of one copy: counts steps and restarts, enforces the deadline, picks the step size. */
class StepRun {
  readonly #options: FileCopyOptions
  readonly #source: SourceInfo
  readonly #started: number
  readonly #deadline: number
  readonly #timeoutMs: number
  #steps = 0
  #restarts = 0
  #oneStep = false
  /** Remaining pages after the previous step, the pages it was asked for, and when the handler returned. */
  #previous: { remaining: number; requested: number; returnedAt: number } | undefined
  #best = Number.POSITIVE_INFINITY
  #progressAt: number
  #copiedPages = 0
  #copyingMs = 0
  #oneStepEstimateMs: number | undefined
  /** What `onStep` threw or `abortReason` returned: the copy fails with it as it is. */
  callbackError: unknown

  constructor(options: FileCopyOptions, source: SourceInfo, started: number, deadline: number, timeoutMs: number) {
    this.#options = options
    this.#source = source
    this.#started = started
    this.#deadline = deadline
    this.#timeoutMs = timeoutMs
    this.#progressAt = started
  }

  /** Called by better-sqlite3 after every step but the last; returns the next step's page count. */
  next({ totalPages, remainingPages }: CopyStep): number {
    const now = performance.now()
    this.#steps++
    this.#observe(now, totalPages, remainingPages)
    let aborted: DatabaseError | undefined
    try {
      this.#options.onStep({ totalPages, remainingPages })
      aborted = this.#options.abortReason()
    } catch (err) {
      this.callbackError = err
      throw err
    }
    if (aborted) {
      this.callbackError = aborted
      throw aborted
    }
    if (now >= this.#deadline) throw this.#timedOut(now, totalPages, remainingPages)
    const pages = this.#nextPages(now, totalPages)
    this.#previous = { remaining: remainingPages, requested: pages, returnedAt: performance.now() }
    return pages
  }

  result(totalPages: number): FileCopyResult {
    return {
      mode: this.#source.pinned ? 'snapshot-steps' : this.#oneStep ? 'one-step' : 'online-steps',
      totalPages,
      steps: this.#steps + 1,
      restarts: this.#restarts,
      timeoutMs: this.#timeoutMs,
    }
  }

  /** Counts restarts and progress, and times the steps that copied pages (the event-loop turn before a step included). */
  #observe(now: number, totalPages: number, remainingPages: number): void {
    const previous = this.#previous
    if (previous && previous.requested > 0) {
      const copied = previous.remaining - remainingPages
      // a restart sends the copy back to page 1: more pages remain than before, or as many as when the
      // previous step (itself a restart) had copied one step from the start
      if (copied < 0 || (copied === 0 && totalPages - remainingPages > 0 && totalPages - remainingPages <= previous.requested))
        this.#restarts++
      else if (copied > 0) {
        this.#copiedPages += copied
        this.#copyingMs += now - previous.returnedAt
      }
    }
    if (remainingPages < this.#best) {
      this.#best = remainingPages
      this.#progressAt = now
    }
  }

  /** The next step's size: `pagesPerStep` while the copy converges, else every page in one step when that is short enough. */
  #nextPages(now: number, totalPages: number): number {
    if (this.#oneStep) return ALL_PAGES
    if (this.#converging(now)) return this.#options.pagesPerStep
    const msPerPage = this.#copiedPages > 0 ? this.#copyingMs / this.#copiedPages : this.#source.pageSize / ASSUMED_COPY_BYTES_PER_MS
    this.#oneStepEstimateMs = Math.round(totalPages * msPerPage)
    if (this.#oneStepEstimateMs > MAX_ONE_STEP_MS) return this.#options.pagesPerStep
    this.#oneStep = true
    return ALL_PAGES
  }

  #converging(now: number): boolean {
    return this.#restarts < RESTARTS_BEFORE_ONE_STEP && now - this.#progressAt < STALL_BEFORE_ONE_STEP_MS
  }

  #timedOut(now: number, totalPages: number, remainingPages: number): DatabaseError {
    const elapsedMs = Math.round(now - this.#started)
    const copiedPages = totalPages - remainingPages
    const { journalMode, pinned } = this.#source
    let why = ''
    if (pinned) why = ': the copy reads one snapshot and was only slow; raise timeoutMs'
    else if (this.#oneStepEstimateMs !== undefined)
      why =
        `: other connections commit faster than the copy converges (journal_mode ${journalMode}: every commit restarts an online backup)` +
        ` and one step over all ${totalPages} pages would block the event loop about ${this.#oneStepEstimateMs} ms (limit ${MAX_ONE_STEP_MS}):` +
        ' use journalMode WAL, whose backups read one snapshot'
    return new DatabaseError(
      'BACKUP_FAILED',
      `SQLite backup timed out after ${elapsedMs} ms (timeoutMs ${this.#timeoutMs}): copied ${copiedPages} of ${totalPages} pages in ${this.#steps} steps, ${this.#restarts} restarts${why}`,
      {
        backend: 'sqlite',
        detail: {
          timeoutMs: this.#timeoutMs,
          elapsedMs,
          totalPages,
          copiedPages,
          steps: this.#steps,
          restarts: this.#restarts,
          journalMode,
          ...(this.#oneStepEstimateMs === undefined ? {} : { oneStepEstimateMs: this.#oneStepEstimateMs }),
        },
      },
    )
  }
}

const COPY_OPTION_KEYS = ['source', 'target', 'pagesPerStep', 'timeoutMs', 'onStep', 'abortReason'] as const

function checkCopyOptions(options: unknown): void {
  const raw = requireObject('copyDatabaseFile options', options === undefined ? null : options)
  rejectUnknownKeys('copyDatabaseFile', raw, COPY_OPTION_KEYS)
  checkDatabasePath('copyDatabaseFile.source', raw.source)
  checkDatabasePath('copyDatabaseFile.target', raw.target)
  checkInteger('copyDatabaseFile.pagesPerStep', raw.pagesPerStep, 1, 1_000_000)
  if (raw.timeoutMs !== undefined) checkInteger('copyDatabaseFile.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS)
  for (const key of ['onStep', 'abortReason'] as const)
    if (typeof raw[key] !== 'function') throw configError(`copyDatabaseFile.${key}`, raw[key], 'must be a function')
}

/** Size of the `-wal` SQLite uses for `file`: the one beside the real file, symlinks followed. */
function walBytes(file: string): number {
  let real = file
  try {
    real = realpathSync(file)
  } catch {
    // missing: the open fails and says so
  }
  return fileBytes(`${real}-wal`)
}

function fileBytes(file: string): number {
  try {
    return statSync(file).size
  } catch {
    return 0
  }
}

function closeQuietly(db: SqliteDatabase): void {
  try {
    if (db.inTransaction) db.exec('ROLLBACK')
  } catch {
    // closing ends the read transaction anyway
  }
  db.close()
}
