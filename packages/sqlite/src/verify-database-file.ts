import { Worker } from 'node:worker_threads'
import { checkInteger, configError, DatabaseError, rejectUnknownKeys, requireObject } from '@dbpool/core'
import Database from 'better-sqlite3'
import type { SqliteDatabase } from './sqlite-connection-manager'
import { mapSqliteError, messageOf } from './sqlite-errors'

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
type Finding = { readonly messages: string[]; readonly pages: number } | { readonly error: unknown }

/** What the worker posts back: a finding whose error is flattened to plain data (a posted Error loses `code`). */
type PostedFinding =
  | { readonly messages: string[]; readonly pages: number }
  | { readonly error: { readonly name: string; readonly message: string; readonly code?: string; readonly stack?: string } }

// Plain CommonJS run with `eval: true`: a worker cannot load this package's TypeScript sources (under
// jest), and an inline source needs no extra file beside the compiled output. It requires the very
// better-sqlite3 the caller resolved (workerData.driver). Keep it in step with `inspect` below.
const WORKER_SOURCE = `'use strict'
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
let finding
let db
try {
  db = new Database(workerData.file, { fileMustExist: true })
  db.pragma('journal_mode = DELETE')
  const messages = db.pragma('integrity_check(10)', { simple: false }).map((row) => String(Object.values(row)[0]))
  const sound = messages.length === 1 && messages[0] === 'ok'
  finding = { messages, pages: sound ? Number(db.pragma('page_count', { simple: true })) : 0 }
} catch (err) {
  const e = err !== null && typeof err === 'object' ? err : {}
  finding = {
    error: {
      name: typeof e.name === 'string' ? e.name : 'Error',
      message: typeof e.message === 'string' ? e.message : String(err),
      code: typeof e.code === 'string' ? e.code : undefined,
      stack: typeof e.stack === 'string' ? e.stack : undefined,
    },
  }
} finally {
  if (db) db.close()
}
parentPort.postMessage(finding)
`

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
 * misses `timeoutMs` or is aborted rejects with BACKUP_FAILED and is terminated (SQLite cannot be
 * interrupted mid-check: the thread ends when the current call returns, and never holds the process
 * open meanwhile).
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

/** The synchronous twin of WORKER_SOURCE. */
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

/** Runs WORKER_SOURCE on `file`; settles once, when the worker has exited (or at once on a deadline, abort or crash). */
function runWorker(file: string, label: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<Finding> {
  return new Promise<Finding>((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(label, signal.reason))
    let worker: Worker
    try {
      // execArgv []: no loaders or -r hooks of the parent (ts-node, APM agents) in a thread that needs none
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver: require.resolve('better-sqlite3'), file }, execArgv: [] })
    } catch (err) {
      return reject(failure(`verification worker for ${label} could not start: ${messageOf(err)}`, label, err))
    }
    let finding: Finding | undefined
    let settled = false
    const settle = (outcome: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      outcome()
    }
    const stop = (error: DatabaseError): void =>
      settle(() => {
        worker.unref()
        worker.terminate().catch(() => undefined)
        reject(error)
      })
    const onAbort = (): void => stop(aborted(label, signal?.reason))
    const timer = setTimeout(() => stop(failure(`verification of ${label} did not finish within ${timeoutMs} ms`, label)), timeoutMs)
    timer.unref()
    signal?.addEventListener('abort', onAbort, { once: true })
    worker.on('message', (posted: PostedFinding) => (finding = revive(posted)))
    // stays attached after settling: a late error of a terminated worker is ignored, never uncaught
    worker.on('error', (err) => stop(failure(`verification worker for ${label} crashed: ${messageOf(err)}`, label, err)))
    worker.on('exit', (code) =>
      settle(() =>
        finding ? resolve(finding) : reject(failure(`verification worker for ${label} exited with code ${code} before reporting`, label)),
      ),
    )
  })
}

/** The worker's flattened error as the error `inspect` would have caught (a real SqliteError when it was one). */
function revive(posted: PostedFinding): Finding {
  if (!('error' in posted)) return posted
  const { name, message, code, stack } = posted.error
  const err = code?.startsWith('SQLITE_') ? new Database.SqliteError(message, code) : Object.assign(new Error(message), { name })
  if (stack !== undefined) err.stack = stack
  return { error: err }
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
