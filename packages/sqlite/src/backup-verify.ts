import { Worker } from 'node:worker_threads'
import { DatabaseError } from '@dbpool/core'
import Database from 'better-sqlite3'
import type { SqliteDatabase } from './sqlite-connection-manager'
import { mapSqliteError, messageOf } from './sqlite-errors'

/** Options of {@link verifyDatabaseFileOffThread}. */
export interface VerifyOptions {
  /**
   * How long the `integrity_check` may take, in ms (at least 1): past it the worker is terminated and
   * the verification rejects with BACKUP_FAILED naming `deadline` (what the time bounds, e.g. the
   * backup's `timeoutMs 10000`).
   */
  readonly timeoutMs: number
  /** Names the deadline in the BACKUP_FAILED message. */
  readonly deadline: string
  /** Told when the check has to run on the main thread (no worker could load better-sqlite3). */
  readonly warn: (message: string) => void
}

/**
 * @internal Where the verification worker loads better-sqlite3 from (resolved here, so the worker
 * finds the same copy as the main thread). Tests point it elsewhere to take the fallback path.
 */
export const verifyWorkerSettings: { betterSqlite3: string | undefined } = { betterSqlite3: resolveBetterSqlite3() }

/**
 * The worker (CommonJS, run with `eval`: nothing to locate next to the built files): opens the file
 * read-only, runs `integrity_check(10)` and reads `page_count`, posts one message and ends.
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
    const rows = db.pragma('integrity_check(10)', { simple: false })
    const messages = rows.map((row) => String(Object.values(row)[0]))
    const pages = Number(db.pragma('page_count', { simple: true }))
    return { kind: 'checked', messages, pages }
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

type WorkerAnswer =
  | { readonly kind: 'unavailable'; readonly message: string }
  | { readonly kind: 'checked'; readonly messages: string[]; readonly pages: number }
  | { readonly kind: 'failed'; readonly message: string; readonly code: string | undefined }

/**
 * Verifies a database file we own (a staged copy): makes it self-contained (`journal_mode=DELETE`,
 * so no `-wal` travels with it) and runs `integrity_check`. Returns the page count; throws
 * BACKUP_FAILED naming `label` when the file is not a sound database. Synchronous, on the calling
 * thread: it blocks the event loop in proportion to the file's size (see
 * {@link verifyDatabaseFileOffThread}).
 */
export function verifyDatabaseFile(file: string, label: string = file): number {
  let db: SqliteDatabase | undefined
  try {
    db = new Database(file, { fileMustExist: true })
    db.pragma('journal_mode = DELETE')
    const rows = db.pragma('integrity_check(10)', { simple: false }) as Record<string, unknown>[]
    return checkedPages(
      label,
      rows.map((row) => String(Object.values(row)[0])),
      Number(db.pragma('page_count', { simple: true })),
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
 * used to stall every timer and socket of the process). Past `timeoutMs` the worker is terminated and
 * this rejects with BACKUP_FAILED naming the deadline. When no worker can load better-sqlite3 (a
 * bundled or restricted environment), the check runs on the calling thread after `warn` was told.
 * Resolves with the page count; rejects with BACKUP_FAILED naming `label` as {@link verifyDatabaseFile}.
 */
export async function verifyDatabaseFileOffThread(file: string, label: string, options: VerifyOptions): Promise<number> {
  selfContained(file, label)
  const started = performance.now()
  const answer = await inWorker(file, label, options, started)
  if (answer === undefined || answer.kind === 'unavailable') {
    const why =
      answer === undefined ? 'no worker thread could be started' : `a worker thread could not load better-sqlite3 (${answer.message})`
    options.warn(`dbpool: the SQLite backup's integrity_check runs on the main thread and blocks the event loop meanwhile: ${why}`)
    return verifyDatabaseFile(file, label)
  }
  if (answer.kind === 'failed') throw unsound(label, new Database.SqliteError(answer.message, answer.code ?? 'SQLITE_ERROR'))
  return checkedPages(label, answer.messages, answer.pages)
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

/** Runs the check in a worker; undefined when no worker could be started. */
function inWorker(file: string, label: string, options: VerifyOptions, started: number): Promise<WorkerAnswer | undefined> {
  const module = verifyWorkerSettings.betterSqlite3
  if (module === undefined) return Promise.resolve({ kind: 'unavailable', message: 'better-sqlite3 could not be resolved' })
  let worker: Worker
  try {
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, file } })
  } catch {
    return Promise.resolve(undefined)
  }
  return new Promise<WorkerAnswer | undefined>((resolve, reject) => {
    let settled = false
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      clearTimeout(timer)
      return true
    }
    const timer = setTimeout(
      () => {
        if (!settle()) return
        void worker.terminate()
        reject(timedOut(label, options, performance.now() - started))
      },
      Math.max(1, Math.ceil(options.timeoutMs)),
    )
    worker.once('message', (answer: WorkerAnswer) => {
      if (settle()) resolve(answer)
    })
    worker.on('error', (err: Error) => {
      if (!settle()) return
      reject(
        new DatabaseError('BACKUP_FAILED', `${label}: the integrity_check worker failed: ${messageOf(err)}`, {
          backend: 'sqlite',
          cause: err,
          detail: { file: label },
        }),
      )
    })
    worker.once('exit', (code) => {
      if (!settle()) return
      reject(
        new DatabaseError('BACKUP_FAILED', `${label}: the integrity_check worker exited with code ${code} before answering`, {
          backend: 'sqlite',
          detail: { file: label },
        }),
      )
    })
  })
}

function checkedPages(label: string, messages: readonly string[], pages: number): number {
  if (messages.length !== 1 || messages[0] !== 'ok') {
    throw new DatabaseError('BACKUP_FAILED', `${label} failed integrity_check: ${messages.join('; ')}`, {
      backend: 'sqlite',
      detail: { file: label, errors: messages },
    })
  }
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

function timedOut(label: string, options: VerifyOptions, elapsedMs: number): DatabaseError {
  const elapsed = Math.round(elapsedMs)
  return new DatabaseError(
    'BACKUP_FAILED',
    `SQLite backup timed out: the integrity_check of ${label} did not finish within the deadline (${options.deadline}; ${elapsed} ms spent checking); the check was stopped: raise timeoutMs`,
    { backend: 'sqlite', detail: { file: label, phase: 'verify', budgetMs: options.timeoutMs, elapsedMs: elapsed } },
  )
}

function resolveBetterSqlite3(): string | undefined {
  try {
    return require.resolve('better-sqlite3')
  } catch {
    return undefined
  }
}
