import { checkInteger, configError, DatabaseError, rejectUnknownKeys, requireObject } from '@dbpool/core'
import Database from 'better-sqlite3'
import type { SqliteDatabase } from './sqlite-connection-manager'
import { mapSqliteError, messageOf } from './sqlite-errors'
import { startSqliteWorker, type WorkerCheck, type WorkerFailure } from './sqlite-worker'

/** Options of {@link verifyDatabaseFileInWorker}. */
export interface VerifyOptions {
  /** Deadline of the check in ms: on expiry the worker is terminated and BACKUP_FAILED thrown. Default is `3600000`. */
  readonly timeoutMs?: number
  /** Aborting terminates the worker and rejects with BACKUP_FAILED (the abort reason as its cause). */
  readonly signal?: AbortSignal
}

/** Default deadline of a verification in a worker: one hour (integrity_check reads the whole file). */
export const DEFAULT_VERIFY_TIMEOUT_MS = 3_600_000

/** What checking a file found: integrity_check's lines and the page count, or what opening or checking threw. */
type Finding = Inspection | { readonly error: unknown }
type Inspection = { readonly messages: string[]; readonly pages: number }

// `inspect` below, as a worker check (plain JavaScript: see WorkerCheck). Keep the two in step.
const VERIFY_CHECK: WorkerCheck = `function verify(Database, file) {
  const db = new Database(file, { fileMustExist: true })
  try {
    db.pragma('journal_mode = DELETE')
    const messages = db.pragma('integrity_check(10)', { simple: false }).map((row) => String(Object.values(row)[0]))
    const sound = messages.length === 1 && messages[0] === 'ok'
    return { messages, pages: sound ? Number(db.pragma('page_count', { simple: true })) : 0 }
  } finally {
    db.close()
  }
}`

/**
 * Verifies a database file we own (a staged copy): makes it self-contained (`journal_mode=DELETE`,
 * so no `-wal` travels with it) and runs `integrity_check`. Returns the page count; throws
 * BACKUP_FAILED naming `label` when the file is not a sound database. Synchronous: it blocks the
 * event loop in proportion to the file's size; {@link verifyDatabaseFileInWorker} does not.
 */
export function verifyDatabaseFile(file: string, label: string = file): number {
  return judge(inspect(file), label)
}

/**
 * {@link verifyDatabaseFile} on a worker thread, so the event loop keeps running while SQLite reads
 * the whole file: same page count, same BACKUP_FAILED errors. A worker that crashes, exits early,
 * misses `timeoutMs` or is aborted rejects with BACKUP_FAILED at once and is terminated (SQLite cannot
 * be interrupted mid-check: the thread ends when the current call returns, and the process cannot exit
 * before that).
 */
export async function verifyDatabaseFileInWorker(file: string, label: string = file, options: VerifyOptions = {}): Promise<number> {
  const raw = requireObject('verify', options)
  rejectUnknownKeys('verify', raw, ['timeoutMs', 'signal'])
  const timeoutMs =
    raw.timeoutMs === undefined ? DEFAULT_VERIFY_TIMEOUT_MS : checkInteger('verify.timeoutMs', raw.timeoutMs, 1, 2_147_483_647)
  const signal = raw.signal as AbortSignal | undefined
  if (signal !== undefined && typeof signal?.addEventListener !== 'function')
    throw configError('verify.signal', signal, 'must be an AbortSignal')
  return judge(await runWorker(file, label, timeoutMs, signal), label)
}

/** The synchronous twin of VERIFY_CHECK. */
function inspect(file: string): Finding {
  let db: SqliteDatabase | undefined
  try {
    db = new Database(file, { fileMustExist: true })
    db.pragma('journal_mode = DELETE')
    const rows = db.pragma('integrity_check(10)', { simple: false }) as Record<string, unknown>[]
    const messages = rows.map((row) => String(Object.values(row)[0]))
    const sound = messages.length === 1 && messages[0] === 'ok'
    return { messages, pages: sound ? Number(db.pragma('page_count', { simple: true })) : 0 }
  } catch (err) {
    return { error: err }
  } finally {
    db?.close()
  }
}

function judge(finding: Finding, label: string): number {
  if ('error' in finding) {
    const mapped = mapSqliteError(finding.error)
    throw new DatabaseError('BACKUP_FAILED', `${label} is not a sound SQLite database: ${mapped.code}: ${mapped.message}`, {
      backend: 'sqlite',
      cause: mapped,
      sqliteCode: mapped.sqliteCode,
      detail: { file: label },
    })
  }
  const { messages, pages } = finding
  if (messages.length !== 1 || messages[0] !== 'ok') {
    throw new DatabaseError('BACKUP_FAILED', `${label} failed integrity_check: ${messages.join('; ')}`, {
      backend: 'sqlite',
      detail: { file: label, errors: messages },
    })
  }
  return pages
}

/** Runs VERIFY_CHECK on `file` in a worker; rejects with BACKUP_FAILED when the worker gives no answer. */
async function runWorker(file: string, label: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<Finding> {
  const run = startSqliteWorker<Inspection>(VERIFY_CHECK, file, { timeoutMs, signal, fail: (why) => workerFailure(why, label) })
  const outcome = await run.outcome
  return 'error' in outcome ? outcome : outcome.value
}

/** The BACKUP_FAILED error (and message) for each way a verification worker can fail to answer. */
function workerFailure(why: WorkerFailure, label: string): DatabaseError {
  switch (why.kind) {
    case 'start':
      return failure(`verification worker for ${label} could not start: ${messageOf(why.cause)}`, label, why.cause)
    case 'crash':
      return failure(`verification worker for ${label} crashed: ${messageOf(why.cause)}`, label, why.cause)
    case 'exit':
      return failure(`verification worker for ${label} exited with code ${why.exitCode} before reporting`, label)
    case 'timeout':
      return failure(`verification of ${label} did not finish within ${why.timeoutMs} ms`, label)
    case 'abort':
      return aborted(label, why.cause)
  }
}

function aborted(label: string, reason: unknown): DatabaseError {
  return failure(`verification of ${label} aborted: ${messageOf(reason)}`, label, reason)
}

function failure(message: string, label: string, cause?: unknown): DatabaseError {
  return new DatabaseError('BACKUP_FAILED', message, {
    backend: 'sqlite',
    ...(cause === undefined ? {} : { cause }),
    detail: { file: label },
  })
}
