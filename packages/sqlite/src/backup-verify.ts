import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { checkDatabasePath } from './sqlite-options'
import { resolve } from 'node:path'
import { Worker } from 'node:worker_threads'
import { configError, DatabaseError } from '@dbpool/core'
import { requireObject } from '@dbpool/core/internal'
import Database from 'better-sqlite3'
import type { SqliteDatabase } from './sqlite-connection-manager'
import { joinCheck } from './off-thread-check'
import { mapSqliteError, messageOf } from './sqlite-errors'

/** Options of {@link verifyDatabaseFileOffThread}. */
export interface VerifyOptions {
  /**
   * How long the `integrity_check` may take, in ms (at least 1): past it the verification rejects
   * with BACKUP_FAILED naming `deadline` (what the time bounds, e.g. the backup's `timeoutMs 10000`);
   * the worker cannot be interrupted mid-scan and exits when the scan ends (see `group`).
   */
  readonly timeoutMs: number
  /** Names the deadline in the BACKUP_FAILED message. */
  readonly deadline: string
  /** Told when the check has to run on the main thread (no worker could load better-sqlite3). */
  readonly warn: (message: string) => void
  /**
   * The database the file stands for has a schema (tables, indexes...): a file without any schema
   * object is refused (BACKUP_FAILED, `detail.reason` `'no-schema'`), an empty database is no backup
   * of it. Default is `false`.
   */
  readonly requireSchema?: boolean
  /**
   * Verifications of one group never run two threads past their deadline: a verification waits
   * (within its `timeoutMs`) for the previous one's worker, still scanning after its deadline, to end.
   * Default is `'verify'` (one group for the process); the BackupManager uses its database's path.
   */
  readonly group?: string
}

/** Why a file is not accepted as a backup: `detail.reason` of the BACKUP_FAILED. */
export type UnsoundBackupReason = 'empty' | 'not-a-database' | 'truncated' | 'no-schema' | 'pages-mismatch'

/**
 * @internal Where the verification worker loads better-sqlite3 from (resolved here, so the worker
 * finds the same copy as the main thread). Tests point it elsewhere to take the fallback path.
 */
export const verifyWorkerSettings: { betterSqlite3: string | undefined } = { betterSqlite3: resolveBetterSqlite3() }

/**
 * The worker (CommonJS, run with `eval`: nothing to locate next to the built files): opens the file
 * read-only, runs `workerData.pragma` (`integrity_check(10)` for a backup) and reads `page_count`,
 * posts one message and ends.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
function check() {
  let Database
  try {
    Database = require(workerData.module)
  } catch (err) {
    return { kind: 'unavailable', message: String((err && err.message) || err) }
  }
  let db
  try {
    db = new Database(workerData.file, { readonly: true, fileMustExist: true })
    const rows = db.pragma(workerData.pragma, { simple: false })
    const messages = rows.map((row) => String(Object.values(row)[0]))
    const pages = Number(db.pragma('page_count', { simple: true }))
    const schemaObjects = Number(db.prepare('select count(*) from sqlite_schema').pluck().get())
    return { kind: 'checked', messages, pages, schemaObjects }
  } catch (err) {
    return { kind: 'failed', message: String((err && err.message) || err), code: err && typeof err.code === 'string' ? err.code : undefined }
  } finally {
    try {
      if (db) db.close()
    } catch {}
  }
}
parentPort.postMessage(check())
`

/** @internal What the verification worker answers. */
export type WorkerAnswer =
  | { readonly kind: 'unavailable'; readonly message: string }
  | { readonly kind: 'checked'; readonly messages: string[]; readonly pages: number; readonly schemaObjects: number }
  | { readonly kind: 'failed'; readonly message: string; readonly code: string | undefined }

/**
 * Verifies a database file we own (a staged copy): checks its shape (see {@link checkDatabaseFileShape}:
 * a 0-byte, headerless or truncated file is refused before SQLite opens it, which would take a 0-byte
 * file for an empty database), makes it self-contained (`journal_mode=DELETE`, so no `-wal` travels
 * with it) and runs `integrity_check`. Returns the page count (at least 1); throws BACKUP_FAILED
 * naming `label` when the file is not a sound database, or has no schema object while
 * `options.requireSchema`. Synchronous, on the calling thread: it blocks the event loop in
 * proportion to the file's size (see {@link verifyDatabaseFileOffThread}). CONFIGURATION when `file`
 * is not a non-empty string.
 */
export function verifyDatabaseFile(file: string, label: string = file, options: { readonly requireSchema?: boolean } = {}): number {
  checkDatabasePath('verifyDatabaseFile.file', file)
  checkDatabaseFileShape(file, label)
  let db: SqliteDatabase | undefined
  try {
    db = new Database(file, { fileMustExist: true })
    db.pragma('journal_mode = DELETE')
    const rows = db.pragma('integrity_check(10)', { simple: false }) as Record<string, unknown>[]
    return checkedPages(
      label,
      rows.map((row) => String(Object.values(row)[0])),
      Number(db.pragma('page_count', { simple: true })),
      Number(db.prepare('select count(*) from sqlite_schema').pluck().get()),
      options.requireSchema === true,
    )
  } catch (err) {
    throw unsound(label, err)
  } finally {
    db?.close()
  }
}

/**
 * {@link verifyDatabaseFile} without blocking the event loop: the file is made self-contained
 * (`journal_mode=DELETE`, a header write) on the calling thread, then a worker thread opens it
 * read-only with better-sqlite3 and runs `integrity_check` (on a large database, seconds of work that
 * used to stall every timer and socket of the process). Past `timeoutMs` this rejects with
 * BACKUP_FAILED naming the deadline; the worker ends when its scan does (see `options.group`). When no worker can load better-sqlite3 (a
 * bundled or restricted environment), the check runs on the calling thread after `warn` was told.
 * Resolves with the page count (at least 1); rejects with BACKUP_FAILED naming `label` as
 * {@link verifyDatabaseFile} (a 0-byte, headerless or truncated file before anything opens it);
 * throws CONFIGURATION for a `file` that is not a non-empty string, or `options` without a number
 * `timeoutMs` and a function `warn`.
 */
export async function verifyDatabaseFileOffThread(file: string, label: string, options: VerifyOptions): Promise<number> {
  checkDatabasePath('verifyDatabaseFileOffThread.file', file)
  const raw = requireObject('verifyDatabaseFileOffThread options', options ?? null)
  if (typeof raw.timeoutMs !== 'number' || Number.isNaN(raw.timeoutMs))
    throw configError('verifyDatabaseFileOffThread.timeoutMs', raw.timeoutMs, 'must be a number of ms')
  if (typeof raw.warn !== 'function') throw configError('verifyDatabaseFileOffThread.warn', raw.warn, 'must be a function')
  checkDatabaseFileShape(file, label)
  selfContained(file, label)
  const started = performance.now()
  const answer = await inWorker(file, 'integrity_check(10)', options.timeoutMs, label, options.group ?? 'verify', (previous) =>
    timedOut(label, options, performance.now() - started, previous),
  )
  if (answer === undefined || answer.kind === 'unavailable') {
    const why =
      answer === undefined ? 'no worker thread could be started' : `a worker thread could not load better-sqlite3 (${answer.message})`
    options.warn(`dbpool: the SQLite backup's integrity_check runs on the main thread and blocks the event loop meanwhile: ${why}`)
    return verifyDatabaseFile(file, label, { requireSchema: options.requireSchema === true })
  }
  if (answer.kind === 'failed') throw unsound(label, new Database.SqliteError(answer.message, answer.code ?? 'SQLITE_ERROR'))
  return checkedPages(label, answer.messages, answer.pages, answer.schemaObjects, options.requireSchema === true)
}

const HEADER_BYTES = 100
const MAGIC = Buffer.from('SQLite format 3\0', 'latin1')

/**
 * Checks that `file` has the shape of a whole SQLite database, from its size and its 100-byte header
 * (https://sqlite.org/fileformat.html), without opening it with SQLite: SQLite opens a 0-byte file as
 * an empty database (0 pages), so a backup truncated to nothing (disk full, failed copy) would
 * "verify" and restore as an empty database. Throws BACKUP_FAILED naming `label`, `detail.reason`:
 * - `empty`: 0 bytes;
 * - `not-a-database`: shorter than the header, no `SQLite format 3` magic, or an invalid page size;
 * - `truncated`: not a whole number of pages, or fewer pages than the header counts (when the header
 *   count is valid: its change counter matches its version-valid-for number).
 */
export function checkDatabaseFileShape(file: string, label: string = file): void {
  const header = Buffer.alloc(HEADER_BYTES)
  let size: number
  let read: number
  let fd: number | undefined
  try {
    fd = openSync(file, 'r')
    size = fstatSync(fd).size
    read = readSync(fd, header, 0, HEADER_BYTES, 0)
  } catch (err) {
    throw new DatabaseError('BACKUP_FAILED', `cannot read backup file ${label}: ${messageOf(err)}`, {
      backend: 'sqlite',
      cause: err,
      detail: { file: label },
    })
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
  if (size === 0) throw refused(label, 'empty', 'is empty (0 bytes): not a backup (a SQLite database has at least one page)')
  if (read < HEADER_BYTES || !header.subarray(0, MAGIC.length).equals(MAGIC))
    throw refused(label, 'not-a-database', `is not a SQLite database (${size} bytes without the "SQLite format 3" header)`)
  const rawPageSize = header.readUInt16BE(16)
  const pageSize = rawPageSize === 1 ? 65_536 : rawPageSize
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0)
    throw refused(label, 'not-a-database', `is not a SQLite database (page size ${rawPageSize} in its header)`)
  if (size % pageSize !== 0)
    throw refused(label, 'truncated', `is truncated: ${size} bytes is not a whole number of ${pageSize}-byte pages`)
  const filePages = size / pageSize
  const headerPages = header.readUInt32BE(28)
  const headerCountValid = headerPages > 0 && header.readUInt32BE(24) === header.readUInt32BE(92)
  if (headerCountValid && headerPages > filePages)
    throw refused(
      label,
      'truncated',
      `is truncated: its header counts ${headerPages} pages of ${pageSize} bytes, the file holds ${filePages}`,
    )
}

/**
 * How many schema objects (tables, indexes, views, triggers) the database at `file` has; `undefined`
 * when it cannot be read (missing, corrupt, locked): a restore replacing a broken database must not
 * depend on it. Opens the file read-only.
 */
export function schemaObjectsOf(file: string): number | undefined {
  let db: SqliteDatabase | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 0 })
    return Number(db.prepare('select count(*) from sqlite_schema').pluck().get())
  } catch {
    return undefined
  } finally {
    try {
      db?.close()
    } catch {
      // nothing to do
    }
  }
}

/** BACKUP_FAILED: `file` is not accepted as a backup, for `reason`. */
export function refused(label: string, reason: UnsoundBackupReason, why: string): DatabaseError {
  return new DatabaseError('BACKUP_FAILED', `${label} ${why}`, { backend: 'sqlite', detail: { file: label, reason } })
}

/** `journal_mode=DELETE` on the calling thread: the read-only worker cannot change the header. */
function selfContained(file: string, label: string): void {
  let db: SqliteDatabase | undefined
  try {
    db = new Database(file, { fileMustExist: true })
    db.pragma('journal_mode = DELETE')
  } catch (err) {
    throw unsound(label, err)
  } finally {
    db?.close()
  }
}

/**
 * @internal `PRAGMA integrity_check(n)` or `quick_check(n)` of `file` in the verification worker
 * (read-only connection of its own), off the event loop: the health check's deep integrity check
 * reuses it. Checks are shared (see {@link joinCheck}): a call while one of the same file and pragma
 * runs joins it instead of starting another thread, and one that finished after every caller's
 * deadline answers the next call (within a minute). Resolves with the worker's answer
 * (`unavailable`: no worker could load better-sqlite3), undefined when no worker could be started,
 * `running` when the check did not finish within `timeoutMs`: it goes on in its thread (SQLite cannot
 * interrupt it), which no longer keeps the process alive.
 */
export async function pragmaCheckOffThread(
  file: string,
  pragma: `${'integrity_check' | 'quick_check'}(${number})`,
  timeoutMs: number,
): Promise<(WorkerAnswer & { readonly ageMs?: number }) | { readonly kind: 'running'; readonly runningMs: number } | undefined> {
  if (verifyWorkerSettings.betterSqlite3 === undefined) return { kind: 'unavailable', message: 'better-sqlite3 could not be resolved' }
  const joined = await joinCheck(`${resolve(file)}\0${pragma}`, timeoutMs, () => startWorker(file, pragma, file), true)
  if (joined === undefined) return undefined
  if (joined.kind === 'running') return joined
  return joined.ageMs === undefined ? joined.value : { ...joined.value, ageMs: joined.ageMs }
}

/**
 * Verification workers past their deadline, by group: `worker.terminate()` takes effect only once
 * the native `integrity_check` returns, so the thread goes on reading until then.
 */
const lingering = new Map<string, Promise<void>>()

/**
 * Runs the check in a worker; undefined when no worker could be started. One lingering worker per
 * `group` at most: while the previous one (past its deadline) still runs, this waits for its end
 * within `timeoutMs`, else rejects with `timeoutError(true)`. Past `timeoutMs` the worker is asked to
 * stop (it does when the scan returns), no longer keeps the process alive, and this rejects with
 * `timeoutError(false)`.
 */
async function inWorker(
  file: string,
  pragma: string,
  timeoutMs: number,
  label: string,
  group: string,
  timeoutError: (previousStillRunning: boolean) => Error,
): Promise<WorkerAnswer | undefined> {
  if (verifyWorkerSettings.betterSqlite3 === undefined) return { kind: 'unavailable', message: 'better-sqlite3 could not be resolved' }
  const deadline = performance.now() + Math.max(1, timeoutMs)
  const previous = lingering.get(group)
  if (previous !== undefined) {
    let timer: NodeJS.Timeout | undefined
    const waited = await Promise.race([
      previous.then(() => 'ended' as const),
      new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), Math.max(1, Math.ceil(deadline - performance.now())))
      }),
    ])
    clearTimeout(timer)
    if (waited === 'deadline') throw timeoutError(true)
  }
  const started = startWorker(file, pragma, label)
  if (started === undefined) return undefined
  const { worker, done } = started
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    done,
    new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), Math.max(1, Math.ceil(deadline - performance.now())))
    }),
  ]).finally(() => clearTimeout(timer))
  if (outcome !== 'deadline') return outcome
  const ended = new Promise<void>((resolve) => {
    worker.once('exit', () => resolve())
  })
  lingering.set(group, ended)
  void ended.then(() => {
    if (lingering.get(group) === ended) lingering.delete(group)
  })
  done.catch(() => undefined)
  void worker.terminate().catch(() => undefined)
  worker.unref()
  throw timeoutError(false)
}

/** Starts the worker; undefined when none could be started. `done` rejects with BACKUP_FAILED when it failed or exited without an answer. */
function startWorker(
  file: string,
  pragma: string,
  label: string,
): { readonly worker: Worker; readonly done: Promise<WorkerAnswer> } | undefined {
  const module = verifyWorkerSettings.betterSqlite3
  if (module === undefined) return undefined
  let worker: Worker
  try {
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, file, pragma } })
  } catch {
    return undefined
  }
  const done = new Promise<WorkerAnswer>((resolve, reject) => {
    let settled = false
    worker.once('message', (answer: WorkerAnswer) => {
      settled = true
      resolve(answer)
    })
    worker.on('error', (err: Error) => {
      if (settled) return
      settled = true
      reject(
        new DatabaseError('BACKUP_FAILED', `${label}: the integrity_check worker failed: ${messageOf(err)}`, {
          backend: 'sqlite',
          cause: err,
          detail: { file: label },
        }),
      )
    })
    worker.once('exit', (code) => {
      if (settled) return
      settled = true
      reject(
        new DatabaseError('BACKUP_FAILED', `${label}: the integrity_check worker exited with code ${code} before answering`, {
          backend: 'sqlite',
          detail: { file: label },
        }),
      )
    })
  })
  return { worker, done }
}

function checkedPages(label: string, messages: readonly string[], pages: number, schemaObjects: number, requireSchema: boolean): number {
  if (messages.length !== 1 || messages[0] !== 'ok') {
    throw new DatabaseError('BACKUP_FAILED', `${label} failed integrity_check: ${messages.join('; ')}`, {
      backend: 'sqlite',
      detail: { file: label, errors: messages },
    })
  }
  if (pages < 1) throw refused(label, 'empty', 'has no pages: not a backup')
  if (requireSchema && schemaObjects === 0)
    throw refused(
      label,
      'no-schema',
      'has no schema at all (no table, index, view or trigger) while the database it stands for has one: not a backup of it',
    )
  return pages
}

function unsound(label: string, err: unknown): DatabaseError {
  if (DatabaseError.is(err) && err.code === 'BACKUP_FAILED') return err
  const mapped = mapSqliteError(err)
  return new DatabaseError('BACKUP_FAILED', `${label} is not a sound SQLite database: ${mapped.code}: ${mapped.message}`, {
    backend: 'sqlite',
    cause: mapped,
    sqliteCode: mapped.sqliteCode,
    detail: { file: label },
  })
}

function timedOut(label: string, options: VerifyOptions, elapsedMs: number, previousStillRunning: boolean): DatabaseError {
  const elapsed = Math.round(elapsedMs)
  const why = previousStillRunning
    ? `the previous verification's integrity_check, past its own deadline, was still running in its worker thread (SQLite cannot interrupt it; one at a time); ${elapsed} ms spent waiting`
    : `${elapsed} ms spent checking; SQLite cannot interrupt the integrity_check: its worker thread goes on reading the file until the scan ends, then exits, and no later verification starts meanwhile`
  return new DatabaseError(
    'BACKUP_FAILED',
    `SQLite backup timed out: the integrity_check of ${label} did not finish within the deadline (${options.deadline}; ${why}): raise timeoutMs`,
    {
      backend: 'sqlite',
      detail: { file: label, phase: 'verify', budgetMs: options.timeoutMs, elapsedMs: elapsed, previousStillRunning },
    },
  )
}

function resolveBetterSqlite3(): string | undefined {
  try {
    return require.resolve('better-sqlite3')
  } catch {
    return undefined
  }
}
