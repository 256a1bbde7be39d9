import { createReadStream, createWriteStream, existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs'
import { chmod, chown, lstat, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, extname, join, resolve } from 'node:path'
import type { Stats } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { configError, DatabaseError, type DatabasePool } from '@dbpool/core'
import Database from 'better-sqlite3'
import {
  checkBoolean,
  checkEnum,
  checkInteger,
  checkString,
  rejectExtraArguments,
  rejectUnknownKeys,
  requireObject,
} from '@dbpool/core/internal'
import { copyDatabaseFile, defaultBackupTimeoutMs, type BackupCopyMode } from './backup-copy'
import { journalKindOf, refuseInUse, refuseRollbackJournal } from './database-in-use'
import { HIDDEN_PROCESSES, type HiddenProcesses } from './open-file-scan'
import { ensureDirectory } from './backup-directory'
import { createEmpty, refuseSameFile, stageBackupFile } from './backup-stage'
import { placeNew } from './backup-place'
import { checkReplaceTarget, checkSameFilesystem, removeNewTarget, type NewTarget } from './backup-target'
import { forgetTemp, hostTag, removeStaleTempFiles, removeTemp, tempName } from './backup-temp'
import { checkDatabaseFileShape, refused, schemaObjectsOf, verifyDatabaseFileOffThread } from './backup-verify'
import { sqliteManagerOf, sqlitePoolFor, sqlitePoolOptionsOf } from './create-sqlite-pool'
import { SqliteConnectionManager, type SqliteDatabase } from './sqlite-connection-manager'
import { messageOf } from './sqlite-errors'
import { checkDatabasePath, toSqliteOptions } from './sqlite-options'

/** How a backup copies the database. */
export type BackupMethod = 'backup' | 'vacuum'

/** Where a backup or restore is, reported to the progress callback. */
export interface BackupProgress {
  /** `copy` (pages moving), `verify` (integrity_check), `compress` (gzip), `done`. */
  readonly phase: 'copy' | 'verify' | 'compress' | 'done'
  /** Pages in the source database (`0` until SQLite reports it; VACUUM INTO reports only at the end). */
  readonly totalPages: number
  /** Pages still to copy. */
  readonly remainingPages: number
}

/**
 * Which backups {@link BackupManager.prune} keeps. The newest backup is always kept. Only backups
 * recorded as this database's count and are ever deleted: each backup has a record beside it
 * (`<backup file>.json`, `{ "source": "<real path of the database>", "host", "sequence": n, "bytes": n }`), so two databases with the same
 * file name (`a/app.db`, `b/app.db`) backed up into one directory never delete each other's backups.
 * A backup of another database, or without a record (taken by an older version, copied without it),
 * is never deleted; nor is a file whose size is not the recorded `bytes` (a file put at a backup's
 * name), a symlink (at a backup's name or its record's), or anything not a regular file. A file is
 * deleted only while its name still leads to the file listed (same inode). After a backup, a
 * deletion that fails is warned about (the pool's `logger`, else `process.emitWarning`) and the
 * backup still resolves: it is written.
 *
 * "Newest" is by the recorded `sequence` (see {@link BackupInfo.sequence}, taken when the backup's
 * snapshot starts, not when it finishes; equal sequences of overlapping backups are ordered by the
 * time in their names, also taken at the start), not by the time in the name alone: a backup taken while the system clock was ahead (then stepped back) would otherwise stay
 * "the newest" until the clock caught up, keep a `keepLast` slot, and make retention delete the
 * backups taken after it. Backups recorded without a sequence (older versions) count as older than
 * every sequenced one, ordered by their names' time. `keepDays` reads the time in the name: a
 * backup dated in the future is young, kept by it.
 */
export interface RetentionPolicy {
  /** Keep the newest N backups. */
  readonly keepLast?: number
  /** Keep backups younger than N days. With `keepLast` too, a backup either rule keeps is kept. */
  readonly keepDays?: number
}

/** Options of a {@link BackupManager}. */
export interface BackupManagerOptions {
  /**
   * Directory the backups are written to (created level by level when missing; BACKUP_FAILED naming it
   * when a level cannot be made, e.g. under `/proc`, where Node's recursive mkdir loops forever).
   */
  readonly directory: string
  /** File name prefix. Default: the database file's name without extension (`memory` for `:memory:`). */
  readonly prefix?: string
  /**
   * `backup`: SQLite's online backup API, in steps, on a private read-only connection (one snapshot on
   * a WAL file), `sqlite3_serialize` for `:memory:`. `vacuum`: `VACUUM INTO` on a reader, one
   * synchronous statement. Default is `'backup'`.
   */
  readonly method?: BackupMethod
  /** Compress finished backups with gzip (`.db.gz`). Default is `false`. */
  readonly gzip?: boolean
  /** Pages copied per event-loop turn by the `backup` method (1 to 1000000). Default is `256`. */
  readonly pagesPerStep?: number
  /**
   * Deadline of the page copy of the `backup` method on a file, in ms (1 to 2147483647), checked
   * after every step: past it the copy stops, its temp file is removed and `backup()` rejects with
   * BACKUP_FAILED (elapsed time, pages copied, steps, restarts and why). The same deadline, from the
   * start of the backup, bounds the `integrity_check` that follows (every method; it runs in a worker
   * thread, terminated at the deadline: BACKUP_FAILED with `detail.phase` `'verify'`); gzip is not
   * counted. `vacuum` and `:memory:` copies are one synchronous call and cannot be cut short. Default: 4 times the copy time of the database file (+ `-wal`) at an assumed 20 MiB/s,
   * at least 10000 and at most 300000 (10 s up to 50 MiB, 200 s for 1 GiB, 300 s from 1.5 GiB); see
   * {@link defaultBackupTimeoutMs}.
   */
  readonly timeoutMs?: number
  /** Applied after every successful backup. Default: keep everything. */
  readonly retention?: RetentionPolicy
  /**
   * Called as a backup (or a restore) advances. A throwing callback aborts the backup in any phase,
   * `done` too: BACKUP_FAILED with the callback's error as `cause`, the file removed. A restore's
   * verification is aborted likewise; at a restore's `done` the database is already replaced, so the
   * error is only warned about.
   */
  readonly onProgress?: (progress: BackupProgress) => void
  /**
   * Receives the failures of scheduled backups (they have no caller). Default: `process.emitWarning`.
   * One that throws (or rejects) is warned about (the pool's `logger`, else `process.emitWarning`); the
   * schedule goes on.
   */
  readonly onError?: (error: DatabaseError) => void
  /**
   * The pool's manager, when the pool was not made by `createSqlitePool`. For a pool that was, only
   * its own (`sqliteManagerOf(pool)`) is accepted: any other is CONFIGURATION at construction.
   */
  readonly manager?: SqliteConnectionManager
}

/** A finished, verified backup. */
export interface BackupResult {
  /**
   * Absolute path of the backup file: `<prefix>-<createdAt>.db[.gz]`, or with `-1`, `-2`, ... before
   * the extension when that name was taken (never replaced).
   */
  readonly file: string
  readonly bytes: number
  readonly pages: number
  readonly method: BackupMethod
  /** How the pages were copied (see {@link BackupCopyMode}). */
  readonly copyMode: BackupCopyMode
  /** Times the online copy started over because another connection committed (rollback-journal files only; else 0). */
  readonly restarts: number
  readonly gzip: boolean
  /** The time in the file name. */
  readonly createdAt: Date
  /** Copy time, verification time and the whole. */
  readonly copyMs: number
  readonly verifyMs: number
  readonly durationMs: number
  /** Backups the retention policy deleted afterwards. */
  readonly deleted: readonly string[]
}

/** A backup found in the directory. */
export interface BackupInfo {
  readonly file: string
  /**
   * The database it was taken from, as recorded beside it (`<file>.json`): the real path of the
   * database file, `:memory:` for an in-memory one; `undefined` when there is no readable record.
   */
  readonly source: string | undefined
  /**
   * The host that took it, as recorded beside it: 8 hex digits of a hash of its host name (as in temp
   * names). Two hosts sharing a backup directory (an NFS mount) may each have a database at the same
   * path: retention ranks and deletes per host and path. `undefined` without a record, or for a
   * record of an older version (counted as this host's when its path matches).
   */
  readonly host: string | undefined
  /**
   * Its place among the backups of its database in this directory, recorded beside it: 1 + the
   * highest sequence recorded for the same source when its snapshot started (retention orders by it, see
   * {@link RetentionPolicy}). `undefined` without a record, or for a record of an older version.
   */
  readonly sequence: number | undefined
  /** The time in its name: the system clock when it was taken (a clock stepped back makes it no order). */
  readonly createdAt: Date
  readonly bytes: number
  readonly gzip: boolean
}

/** Options of {@link BackupManager.restore}. */
export interface RestoreOptions {
  /** How long to wait for the pool's leases to come back. Default is `30000`. */
  readonly closeTimeoutMs?: number
  /**
   * Replace the database even when another connection has it open (see `databaseInUse`): that
   * connection keeps reading the replaced file until it reopens, and its next write puts old pages
   * into the restored one. Default is `false`: BACKUP_FAILED with `detail.reason` `'in-use'`
   * (`detail.pids`: the processes seen with it open, on Linux), the database untouched;
   * `'in-use-unknown'` where an idle connection cannot be seen (see `databaseUse`): a rollback-journal
   * database (not WAL), a system without `/proc` (macOS, Windows), processes whose open files cannot
   * be read (another user's, or non-dumpable ones of this user), or processes hidden from this one
   * (`/proc` mounted `hidepid`, a restore in a PID namespace of its own: `detail.hidden`): stop every
   * process using it, then force (or, for hidden processes, see {@link allowHidden}).
   */
  readonly force?: boolean
  /**
   * The reasons for hidden processes (`detail.hidden` of an `'in-use-unknown'` refusal) the caller
   * vouches for, unlike `force` waiving nothing else: `'pid-namespace'` when the restore runs in a
   * PID namespace of its own (any Docker or Kubernetes container) and no process outside it can have
   * the database open (no other container shares the volume, or they are stopped); `'hidepid'` when
   * `/proc` is mounted `hidepid` and no process hidden by it can. Every other check still runs: this
   * process's other pools and the processes it can see with the file open, the lock probe,
   * processes whose open files cannot be read, a rollback-journal database. Default is `[]`; each
   * entry must be one of those two strings (CONFIGURATION naming `restore.allowHidden` otherwise).
   */
  readonly allowHidden?: readonly HiddenProcesses[]
}

const OPTION_KEYS = [
  'directory',
  'prefix',
  'method',
  'gzip',
  'pagesPerStep',
  'timeoutMs',
  'retention',
  'onProgress',
  'onError',
  'manager',
] as const
const RETENTION_KEYS = ['keepLast', 'keepDays'] as const

/**
 * How a backup's pages were copied; `timeoutMs`: the deadline the page copy applied (the `backup`
 * method of a file); `sourcePages`: the pages of the copied snapshot, which the copy must hold
 * exactly (page copies; a VACUUM INTO compacts); `sourceSchema`: the source had a schema before and
 * after a VACUUM INTO, so the copy must have one.
 */
interface CopyOutcome {
  readonly copyMode: BackupCopyMode
  readonly restarts: number
  readonly timeoutMs?: number
  readonly sourcePages?: number
  readonly sourceSchema?: boolean
}
const DAY_MS = 86_400_000

/**
 * Online backups of a SQLite pool, verified with `integrity_check` before they count, with
 * timestamped names, retention, optional gzip, scheduling and restore.
 *
 * The `backup` method of a file runs SQLite's online backup API on a private read-only connection
 * (not the pool's: pool writes and reads carry on) in steps of `pagesPerStep`, leaving the event loop
 * free between steps, until `timeoutMs` (see {@link copyDatabaseFile}). On a WAL file all steps read
 * one snapshot (one read transaction), so commits of this or another process never restart the
 * copy: the backup is the database as of the moment the copy started. On a rollback-journal file a
 * commit restarts the copy; when restarts keep coming, the rest is copied in one step. A `:memory:`
 * database is copied with `sqlite3_serialize` on its connection (one synchronous copy in memory).
 * The `vacuum` method runs `VACUUM INTO ?` on a reader: a compacted copy of one snapshot while
 * writers carry on, in one synchronous call (it cannot be cut short by `timeoutMs`).
 *
 * ```ts
 * const backups = new BackupManager(pool, { directory: './backups', gzip: true, retention: { keepLast: 7 } })
 * await backups.backup()
 * backups.start(3_600_000)         // hourly, timer unref'd
 * pool = await backups.restore(file) // closes the old pool, swaps the file atomically, returns a new pool
 * ```
 */
export class BackupManager {
  readonly #options: {
    readonly directory: string
    readonly prefix: string
    readonly method: BackupMethod
    readonly gzip: boolean
    readonly pagesPerStep: number
    readonly timeoutMs: number | undefined
    readonly retention: RetentionPolicy | undefined
    readonly onProgress: ((progress: BackupProgress) => void) | undefined
    readonly onError: (error: DatabaseError) => void
  }
  #pool: DatabasePool<SqliteDatabase>
  #manager: SqliteConnectionManager
  #queue: Promise<unknown> = Promise.resolve()
  #timer: NodeJS.Timeout | undefined
  #scheduled = false
  #lastStampMs = -Infinity

  constructor(pool: DatabasePool<SqliteDatabase>, options: BackupManagerOptions) {
    const raw = requireObject('backup', options)
    rejectUnknownKeys('backup', raw, OPTION_KEYS)
    const own = sqliteManagerOf(pool)
    if (raw.manager !== undefined && own !== undefined && raw.manager !== own)
      throw configError(
        'backup.manager',
        raw.manager,
        "must be the pool's own manager (sqliteManagerOf(pool)) or left out: another manager names, records and prunes backups as another database's",
      )
    const manager = (raw.manager as SqliteConnectionManager | undefined) ?? own
    if (!(manager instanceof SqliteConnectionManager)) {
      throw configError(
        'backup.manager',
        raw.manager,
        "pass the pool's SqliteConnectionManager when the pool was not made by createSqlitePool",
      )
    }
    const directory = resolve(checkString('backup.directory', raw.directory))
    const prefix = raw.prefix === undefined ? defaultPrefix(manager.options.path) : checkString('backup.prefix', raw.prefix)
    if (!/^[A-Za-z0-9._-]+$/.test(prefix)) throw configError('backup.prefix', prefix, 'must contain only letters, digits, ".", "_" and "-"')
    const onProgress = raw.onProgress
    if (onProgress !== undefined && typeof onProgress !== 'function')
      throw configError('backup.onProgress', onProgress, 'must be a function')
    const onError = raw.onError
    if (onError !== undefined && typeof onError !== 'function') throw configError('backup.onError', onError, 'must be a function')
    this.#options = {
      directory,
      prefix,
      method: raw.method === undefined ? 'backup' : checkEnum('backup.method', raw.method, ['backup', 'vacuum'] as const),
      gzip: raw.gzip === undefined ? false : checkBoolean('backup.gzip', raw.gzip),
      pagesPerStep: raw.pagesPerStep === undefined ? 256 : checkInteger('backup.pagesPerStep', raw.pagesPerStep, 1, 1_000_000),
      timeoutMs: raw.timeoutMs === undefined ? undefined : checkInteger('backup.timeoutMs', raw.timeoutMs, 1, 2_147_483_647),
      retention: raw.retention === undefined ? undefined : resolveRetention(raw.retention),
      onProgress: onProgress as BackupManagerOptions['onProgress'],
      onError:
        (onError as BackupManagerOptions['onError']) ??
        ((e) => process.emitWarning(`dbpool: scheduled SQLite backup failed: ${e.code}: ${e.message}`, 'DbpoolBackupWarning')),
    }
    this.#pool = pool
    this.#manager = manager
  }

  /** The pool backups are taken from (a new one after {@link restore}). */
  get pool(): DatabasePool<SqliteDatabase> {
    return this.#pool
  }

  /** The directory backups are written to. */
  get directory(): string {
    return this.#options.directory
  }

  /** True while a schedule started with {@link start} is active. */
  get scheduled(): boolean {
    return this.#scheduled
  }

  /**
   * Takes a backup, verifies it with `integrity_check` in a worker thread (see
   * {@link verifyDatabaseFileOffThread}), compresses it when asked, gives it its final timestamped
   * name and applies the retention policy. Backups run one at a time. The name is never taken over a
   * file: when another manager or process (or a user) has put a file or a record at it meanwhile (a
   * backup in the same millisecond), this backup takes the next free one (`-1`, `-2`, ...), see
   * `#place`.
   *
   * Rejects with CONFIGURATION naming `backup argument` when given an argument (it takes none), BACKUP_FAILED (the copy passed `timeoutMs`, the copy or its verification failed;
   * no file is left behind: the temp file is removed) or POOL_CLOSED (the pool was closed before or
   * during the copy).
   */
  backup(...extra: []): Promise<BackupResult> {
    try {
      rejectExtraArguments('backup', extra)
    } catch (err) {
      return Promise.reject<BackupResult>(err)
    }
    return this.#serial(() => this.#backup())
  }

  /**
   * The backups in the directory with this manager's prefix, newest first (only finished, verified
   * ones carry the final name), whichever database they were taken from: `source` says whose. Only
   * regular files: a symlink at a backup's name is not one (this package never writes one). A missing
   * directory has none; one that cannot be read rejects with BACKUP_FAILED naming it (`detail.reason`
   * the system's code, `cause` its error).
   */
  async list(): Promise<BackupInfo[]> {
    return (await this.#scan()).map((entry) => entry.info)
  }

  /** {@link list}, with the size recorded beside each file and the file's identity (for retention). */
  async #scan(): Promise<ScannedBackup[]> {
    let names: string[]
    try {
      names = await readdir(this.#options.directory)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw directoryError(this.#options.directory, 'cannot read the backup directory', err)
    }
    const pattern = new RegExp(`^${escapeRegExp(this.#options.prefix)}-(\\d{8}T\\d{9}Z)(?:-\\d+)?\\.db(\\.gz)?$`)
    const found: ScannedBackup[] = []
    for (const name of names) {
      const match = pattern.exec(name)
      if (!match?.[1]) continue
      const file = join(this.#options.directory, name)
      // lstat: a symlink is never followed, listed nor deleted (what it points to is not ours)
      const info = await lstat(file, { bigint: true }).catch(() => undefined)
      if (!info?.isFile()) continue
      const { source, host, sequence, bytes } = await readRecord(file)
      found.push({
        info: { file, source, host, sequence, createdAt: parseStamp(match[1]), bytes: Number(info.size), gzip: match[2] !== undefined },
        recordedBytes: bytes,
        dev: info.dev,
        ino: info.ino,
      })
    }
    return found.sort((a, b) => b.info.createdAt.getTime() - a.info.createdAt.getTime() || (a.info.file < b.info.file ? 1 : -1))
  }

  /**
   * Deletes the backups of this database the retention policy does not keep; never the newest one.
   * Counts and deletes only backups recorded as this database's (see {@link RetentionPolicy}); others
   * with the same prefix are left alone, and so is a file whose size is not the one its record
   * holds (a file put at a backup's name), a symlink and anything not a regular file. Resolves with
   * the deleted files; rejects with BACKUP_FAILED naming the directory when it cannot be read or a
   * backup cannot be deleted (`detail.reason` the system's code, `cause` its error).
   */
  async prune(now: Date = new Date()): Promise<string[]> {
    if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw configError('prune.now', now, 'must be a valid Date')
    await removeStaleTempFiles(this.#options.directory, `${this.#options.prefix}-`)
    return this.#prune(now, undefined)
  }

  /**
   * {@link prune}, never deleting `taken` (the backup just taken) nor a backup ranked newer than it
   * (one a concurrent run started later and finished first: that run prunes for itself), ordered by
   * the records' sequence ({@link newestFirst}): by the names' timestamps, a backup dated later than
   * now (taken while the clock was ahead) would make each new backup "not among the newest" and
   * delete it. After a backup (`taken` set), a file that cannot be deleted is warned about and left:
   * the backup is written, its retention's failure must not report it failed (and have it taken again).
   */
  async #prune(now: Date, taken: string | undefined): Promise<string[]> {
    const policy = this.#options.retention
    if (!policy) return []
    const ours = newestFirst((await this.#scan()).filter((entry) => this.#isOurs(entry.info) && holdsRecordedSize(entry)))
    // backups ranked before the one just taken were taken by concurrent runs after it started: theirs to prune
    const takenIndex = taken === undefined ? -1 : ours.findIndex((entry) => entry.info.file === taken)
    const deleted: string[] = []
    for (const [index, entry] of ours.entries()) {
      const item = entry.info
      if (index <= takenIndex || item.file === taken || keeps(policy, index, item.createdAt, now)) continue
      try {
        if (!(await deleteBackup(entry))) continue
      } catch (err) {
        if (taken === undefined) throw directoryError(this.#options.directory, `cannot delete the old backup ${item.file}`, err)
        this.#warn(
          `the retention after backup ${taken} could not delete the old backup ${item.file}: ${messageOf(err)} (the backup is written; the old one is left)`,
        )
        continue
      }
      deleted.push(item.file)
    }
    return deleted
  }

  /**
   * Whether a listed backup is this database's: the same recorded source path, taken on this host
   * (a record naming another host is another machine's database at the same path, never ranked nor
   * deleted here; a record without a host, of an older version, counts as this host's).
   */
  #isOurs(item: BackupInfo): boolean {
    return item.source === this.#sourceId() && (item.host === undefined || item.host === hostTag())
  }

  /** The identity recorded beside each backup: the real path of the database file (`:memory:` for an in-memory one). */
  #sourceId(): string {
    const { memory, path } = this.#manager.options
    if (memory) return ':memory:'
    try {
      return realpathSync(path)
    } catch {
      return resolve(path)
    }
  }

  /**
   * Takes a backup every `intervalMs` (the first one after `intervalMs`) until {@link stop} or the
   * pool closes. Failures go to `onError`. The timer is unref'd: it never keeps the process alive.
   */
  start(intervalMs: number): void {
    checkInteger('backup interval', intervalMs, 10, 2_147_483_647)
    if (this.#scheduled) throw new DatabaseError('CONFIGURATION', 'backups are already scheduled: call stop() first')
    this.#scheduled = true
    const tick = (): void => {
      this.#timer = undefined
      if (!this.#scheduled) return
      if (!this.#pool.isOpen) {
        this.#scheduled = false
        return
      }
      void this.backup()
        .catch((err: unknown) => this.#reportScheduledFailure(asBackupError(err)))
        .finally(() => {
          if (this.#scheduled) this.#timer = setTimeout(tick, intervalMs).unref()
        })
    }
    this.#timer = setTimeout(tick, intervalMs).unref()
  }

  /** Stops the schedule and waits for a backup in progress. */
  async stop(): Promise<void> {
    this.#scheduled = false
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#queue.catch(() => undefined)
  }

  /**
   * Checks a backup file (plain or gzip) without touching the database: resolves with its page count
   * (at least 1). Rejects with BACKUP_FAILED (`detail.reason`, see `checkDatabaseFileShape`) when
   * the file is missing, empty (0 bytes, also once gunzipped), not a SQLite database, truncated,
   * fails `integrity_check`, or has no schema object while the pool's database has one.
   */
  async verify(file: string, ...extra: []): Promise<{ pages: number }> {
    rejectExtraArguments('verify', extra)
    const source = resolve(checkDatabasePath('verify.file', file))
    const requireSchema = await this.#sourceHasSchema()
    const staged = await this.#stage(source, this.#options.directory)
    try {
      return { pages: await this.#verifyStaged(staged, source, requireSchema) }
    } finally {
      await removeTemp(staged)
    }
  }

  /**
   * Replaces the database with a backup and returns the pool to use from now on: verifies the file
   * (integrity_check on a staged copy next to the database), closes the current pool (draining its
   * leases), removes stale `-wal`/`-shm` files, renames the staged copy over the database (atomic on
   * one filesystem) and opens a new pool with the same settings. The old pool stays closed;
   * `this.pool` is the new one. Once the pool is closed, a database another connection still has open
   * (another process, another pool) is refused with BACKUP_FAILED (`detail.reason` `'in-use'`; the
   * database untouched, `this.pool` reopened) unless `force`: that connection would go on reading
   * the deleted file and write old pages into the restored one (see `databaseUse` for what is
   * detected, and `'in-use-unknown'` where it cannot be told).
   *
   * A file {@link verify} refuses (empty, truncated, not a database, corrupt, no schema while the
   * database has one) rejects with BACKUP_FAILED before the pool is closed: the database is untouched.
   * A file with a non-empty `-wal` (or `-journal`) beside it is read through SQLite, its WAL commits
   * included (see `stageBackupFile`); the database itself as `file` (same device and inode) rejects
   * with CONFIGURATION naming `restore.file`.
   */
  restore(file: string, options?: RestoreOptions): Promise<DatabasePool<SqliteDatabase>> {
    let parsed: ParsedRestoreOptions
    let source: string
    try {
      // refused at once, not after the backups queued before it
      parsed = restoreOptions(options)
      source = resolve(checkDatabasePath('restore.file', file))
    } catch (err) {
      return Promise.reject<DatabasePool<SqliteDatabase>>(err)
    }
    return this.#serial(() => this.#restore(source, parsed))
  }

  // ---- internals ----

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task)
    this.#queue = run.catch(() => undefined)
    return run
  }

  async #backup(): Promise<BackupResult> {
    const started = performance.now()
    const { directory, gzip, method } = this.#options
    await ensureDirectory(directory, 'backup directory')
    // copies left by a backup of this host that was killed (SIGKILL, a crash) hold the whole database
    await removeStaleTempFiles(directory, `${this.#options.prefix}-`)
    // the place among this database's backups is taken when its snapshot is, not when it finishes: a
    // slower backup started earlier (older data) must not outrank one started later
    const sequence = await this.#nextSequence()
    const createdAt = this.#nextStamp()
    const intended = this.#nameFor(createdAt, 0)
    const tmp = tempName(directory, basename(intended))
    // the name is given at the end (#place): one free then may be taken by the time the backup is done
    let final = ''
    let bytes = 0
    let placed: { file: NewTarget; record: NewTarget } | undefined
    let copyMs = 0
    let verifyMs = 0
    let pages = 0
    let copied: CopyOutcome
    try {
      copied = await this.#copy(tmp)
      copyMs = performance.now() - started
      if (copied.sourcePages === 0) throw refused(this.#sourceLabel(), 'empty', 'is empty (0 pages, never written): nothing to back up')
      this.#progress({ phase: 'verify', totalPages: 0, remainingPages: 0 })
      const verifyStarted = performance.now()
      // one deadline for the copy and its verification, which runs in a worker thread
      const timeoutMs = copied.timeoutMs ?? this.#options.timeoutMs ?? defaultBackupTimeoutMs((await stat(tmp)).size)
      pages = await verifyDatabaseFileOffThread(tmp, intended, {
        timeoutMs: started + timeoutMs - verifyStarted,
        deadline: `the backup's timeoutMs ${timeoutMs}${this.#options.timeoutMs === undefined ? ', the default for its size' : ''}`,
        warn: (message) => this.#warn(message),
        requireSchema: copied.sourceSchema === true,
        group: this.#sourceLabel(),
      })
      // a page copy holds every page of its snapshot: fewer (0 from a failed write) is no backup
      if (copied.sourcePages !== undefined && pages !== copied.sourcePages)
        throw refused(intended, 'pages-mismatch', `holds ${pages} pages, the database copied had ${copied.sourcePages}: not a whole copy`)
      verifyMs = performance.now() - verifyStarted
      let ready = tmp
      if (gzip) {
        this.#progress({ phase: 'compress', totalPages: pages, remainingPages: 0 })
        ready = `${tmp}.gz`
        await pipeline(createReadStream(tmp), createGzip(), createWriteStream(ready, { mode: 0o600, flags: 'wx' }))
        await unlink(tmp)
      }
      await syncFile(ready)
      await chmod(ready, 0o600)
      bytes = (await stat(ready)).size
      placed = await this.#place(ready, createdAt, sequence, bytes)
      final = placed.file.path
      forgetTemp(tmp)
      await syncDirectory(directory)
      // a callback that throws here fails the backup as in every other phase: the file is removed
      this.#progress({ phase: 'done', totalPages: pages, remainingPages: 0 })
    } catch (err) {
      await removeTemp(tmp)
      // only the files this backup placed: never one that has its name meanwhile
      if (placed) for (const made of [placed.file, placed.record]) await removeNewTarget(made, [])
      throw asBackupError(err)
    }
    const deleted = await this.#prune(new Date(), final)
    return {
      file: final,
      bytes,
      pages,
      method,
      copyMode: copied.copyMode,
      restarts: copied.restarts,
      gzip,
      createdAt,
      copyMs: round(copyMs),
      verifyMs: round(verifyMs),
      durationMs: round(performance.now() - started),
      deleted,
    }
  }

  async #copy(tmp: string): Promise<CopyOutcome> {
    if (!this.#pool.isOpen) throw this.#closed()
    const { path, memory } = this.#manager.options
    // 0600 from the start: the copy holds every row of the database (SQLite's -journal beside it
    // takes the file's mode), not the umask's 0644 until the end (copyDatabaseFile creates its own)
    if (this.#options.method === 'vacuum') await createEmpty(tmp)
    if (this.#options.method === 'vacuum') {
      // a reader's snapshot: writers go on meanwhile. The path is bound, never spliced into the text.
      const sourceSchema = await this.#pool.withConnection(
        async (conn) => {
          const count = async (): Promise<number> =>
            Number((await conn.query<{ n: number }>('select count(*) as n from sqlite_schema')).rows[0]?.n ?? 0)
          const before = await count()
          await conn.query('VACUUM INTO ?', [tmp])
          return before > 0 && (await count()) > 0
        },
        { lane: 'read' },
      )
      return { copyMode: 'vacuum', restarts: 0, sourceSchema }
    }
    if (memory) return this.#serialize(tmp)
    // a pool that never connected has no file yet: its writer creates it (in its journal mode)
    if (!existsSync(path)) await this.#pool.withConnection(() => Promise.resolve(), { lane: 'write' })
    const copied = await copyDatabaseFile({
      source: path,
      target: tmp,
      pagesPerStep: this.#options.pagesPerStep,
      timeoutMs: this.#options.timeoutMs,
      onStep: (step) => this.#progress({ phase: 'copy', ...step }),
      abortReason: () => (this.#pool.isOpen ? undefined : this.#closed()),
    })
    // better-sqlite3 reports progress between steps only: the last step is reported here
    this.#progress({ phase: 'copy', totalPages: copied.totalPages, remainingPages: 0 })
    return { copyMode: copied.mode, restarts: copied.restarts, timeoutMs: copied.timeoutMs, sourcePages: copied.totalPages }
  }

  /** `:memory:`: the pool's one connection is the only copy; `serialize()` holds it for one memory copy, not for the file write. */
  async #serialize(tmp: string): Promise<CopyOutcome> {
    const { image, pageSize } = await this.#pool.withConnection(
      async (conn) => ({ image: conn.native.serialize(), pageSize: Number(conn.native.pragma('page_size', { simple: true })) }),
      { lane: 'write' },
    )
    const totalPages = Math.round(image.length / pageSize)
    await writeFile(tmp, image, { mode: 0o600, flag: 'wx' })
    this.#progress({ phase: 'copy', totalPages, remainingPages: 0 })
    return { copyMode: 'serialize', restarts: 0, sourcePages: totalPages }
  }

  #closed(): DatabaseError {
    return new DatabaseError('POOL_CLOSED', `pool "${this.#pool.config.name}" is closed: no backup taken`, { backend: 'sqlite' })
  }

  async #restore(source: string, { closeTimeoutMs, force, allowHidden }: ParsedRestoreOptions): Promise<DatabasePool<SqliteDatabase>> {
    const manager = this.#manager
    if (manager.options.memory)
      throw configError('sqlite.path', manager.options.path, 'an in-memory database cannot be restored from a file')
    // the file the path leads to: a symlink (data/app.db -> ../volume/app.db) stays, its target is restored
    const target = realDatabasePath(manager.options.path)
    refuseSameFile('restore.file', source, target)
    checkReplaceTarget('sqlite.path', target)
    await removeStaleTempFiles(dirname(target), basename(target))
    // before the pool opens it: a WAL pool's first connection would switch a rollback-journal file
    // that another process holds idle to WAL, unseen by that process and by the probe
    if (!force) refuseRollbackJournal(target)
    const requireSchema = await this.#sourceHasSchema()
    const staged = await this.#stage(source, dirname(target))
    try {
      this.#progress({ phase: 'verify', totalPages: 0, remainingPages: 0 })
      await this.#verifyStaged(staged, source, requireSchema)
      await this.#pool.close({ timeoutMs: closeTimeoutMs })
      // our connections are closed: any left are someone else's, who would read the replaced file
      if (!force) refuseInUse(target, allowHidden)
      await replaceDatabaseFile(staged, target)
      forgetTemp(staged)
    } catch (err) {
      await removeTemp(staged)
      // the old pool may be closed already: `this.pool` is reopened on the unchanged database
      if (!this.#pool.isOpen) this.#reopen()
      throw asBackupError(err)
    }
    this.#reopen()
    try {
      this.#progress({ phase: 'done', totalPages: 0, remainingPages: 0 })
    } catch (err) {
      // the database is restored and cannot be put back: a rejection would hide that (and the new pool)
      this.#warn(`the onProgress callback threw at the restore's 'done' phase (the restore is complete): ${messageOf(err)}`)
    }
    return this.#pool
  }

  #reopen(): void {
    const next = new SqliteConnectionManager(toSqliteOptions(this.#manager.options))
    this.#pool = sqlitePoolFor(next, this.#pool.config, sqlitePoolOptionsOf(this.#pool))
    this.#manager = next
  }

  /** A private copy of `source` (gunzipped when it ends in .gz) in `directory`, for verification and rename. */
  async #stage(source: string, directory: string): Promise<string> {
    if (!existsSync(source))
      throw new DatabaseError('BACKUP_FAILED', `backup file ${source} does not exist`, { backend: 'sqlite', detail: { file: source } })
    await ensureDirectory(directory, 'directory of the staged copy')
    const staged = tempName(directory, basename(source).replace(/\.gz$/, ''))
    try {
      await stageBackupFile(source, staged)
    } catch (err) {
      await removeTemp(staged)
      throw err
    }
    return staged
  }

  /** A staged file's verification off the event loop, bounded by `timeoutMs` (default: {@link defaultBackupTimeoutMs} of its size). */
  async #verifyStaged(staged: string, label: string, requireSchema: boolean): Promise<number> {
    const timeoutMs = this.#options.timeoutMs ?? defaultBackupTimeoutMs((await stat(staged)).size)
    return verifyDatabaseFileOffThread(staged, label, {
      timeoutMs,
      deadline: `timeoutMs ${timeoutMs}${this.#options.timeoutMs === undefined ? ', the default for its size' : ''}`,
      warn: (message) => this.#warn(message),
      requireSchema,
      group: this.#sourceLabel(),
    })
  }

  /**
   * Whether the pool's database has a schema object (a backup without any is then no backup of it):
   * asked through the pool while it is open, else read from the file; a database that cannot be read
   * (corrupt: what a restore repairs) counts as none.
   */
  async #sourceHasSchema(): Promise<boolean> {
    if (this.#pool.isOpen) {
      try {
        const { rows } = await this.#pool.query<{ n: number }>('select count(*) as n from sqlite_schema')
        return Number(rows[0]?.n ?? 0) > 0
      } catch {
        // unreadable through the pool: try the file
      }
    }
    const { path, memory } = this.#manager.options
    return !memory && existsSync(path) && (schemaObjectsOf(path) ?? 0) > 0
  }

  /** The database's path for messages (`:memory:` for an in-memory one). */
  #sourceLabel(): string {
    return this.#manager.options.memory ? ':memory:' : resolve(this.#manager.options.path)
  }

  /**
   * A scheduled backup's failure to `onError`. An `onError` that throws (or returns a promise that
   * rejects) is warned about, and the schedule goes on: it used to reject a promise nobody handled,
   * which ended the process.
   */
  #reportScheduledFailure(error: DatabaseError): void {
    const warn = (err: unknown): void =>
      this.#warn(`the onError callback threw for a scheduled backup's failure (${error.code}: ${error.message}): ${messageOf(err)}`)
    try {
      const result: unknown = this.#options.onError(error)
      if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function')
        (result as PromiseLike<unknown>).then(undefined, warn)
    } catch (err) {
      warn(err)
    }
  }

  /** A warning on the pool's logger when it has one, else `process.emitWarning`. */
  #warn(message: string): void {
    const logger = sqlitePoolOptionsOf(this.#pool)?.logger
    if (logger) {
      try {
        logger.warn({ pool: this.#pool.name, event: 'backupWarning' }, message)
        return
      } catch {
        // a logger that throws never breaks the backup (or, from a schedule's timer, the process)
      }
    }
    process.emitWarning(message, 'DbpoolBackupWarning')
  }

  #progress(progress: BackupProgress): void {
    this.#options.onProgress?.(progress)
  }

  /**
   * The time of a new backup: the clock, or 1 ms after this manager's previous backup when the clock
   * has not moved past it by up to {@link STAMP_STEP_BACK_MS} (two backups within one ms). Further
   * back, the clock was stepped back: the clock's time (a name already taken gets a `-n` suffix,
   * retention orders by the records' sequence, not by time). O(1).
   */
  #nextStamp(): Date {
    const now = Date.now()
    const last = this.#lastStampMs
    const ms = now <= last && last - now < STAMP_STEP_BACK_MS ? last + 1 : now
    this.#lastStampMs = ms
    return new Date(ms)
  }

  /** 1 + the highest sequence recorded for this database's backups in the directory (1 when none). */
  async #nextSequence(): Promise<number> {
    let highest = 0
    for (const item of await this.list())
      if (this.#isOurs(item) && item.sequence !== undefined && item.sequence > highest) highest = item.sequence
    return highest + 1
  }

  /** The `n`th name of a backup taken at `createdAt`: `<prefix>-<stamp>[-n].db[.gz]`. */
  #nameFor(createdAt: Date, n: number): string {
    const ext = this.#options.gzip ? '.db.gz' : '.db'
    return join(this.#options.directory, `${this.#options.prefix}-${stamp(createdAt)}${n === 0 ? '' : `-${n}`}${ext}`)
  }

  /**
   * Gives the finished backup `ready` its final name, the first of {@link #nameFor} that nothing has,
   * never replacing a file (a backup another process or manager wrote at the same name in the same
   * millisecond, a user's file): its record first (`<name>.json`, so that a backup under its final
   * name always says whose it is, and a record there is a name taken by a run in progress), then the
   * file, each with {@link placeNew} (a hard link, which fails when the name exists; an exclusive
   * claim then a rename where the filesystem has no hard links). A name whose file or record exists
   * is skipped; the record of a name whose file was taken meanwhile is removed again. Rejects with
   * the system's error (wrapped by the caller) when a file cannot be placed, with
   * BACKUP_FAILED (`detail.reason` `'no-free-name'`) after {@link MAX_NAMES} taken names.
   */
  async #place(ready: string, createdAt: Date, sequence: number, bytes: number): Promise<{ file: NewTarget; record: NewTarget }> {
    for (let n = 0; n < MAX_NAMES; n++) {
      const final = this.#nameFor(createdAt, n)
      if (lstatSync(final, { throwIfNoEntry: false }) !== undefined) continue
      const record = await writeRecord(recordOf(final), { source: this.#sourceId(), host: hostTag(), sequence, bytes })
      if (record === undefined) continue
      let file: NewTarget | undefined
      try {
        file = await placeNew(ready, final)
      } finally {
        if (file === undefined) await removeNewTarget(record, [])
      }
      if (file !== undefined) return { file, record }
    }
    throw new DatabaseError(
      'BACKUP_FAILED',
      `no free name for the backup in ${this.#options.directory}: ${this.#nameFor(createdAt, 0)} and ${MAX_NAMES - 1} more are taken`,
      { backend: 'sqlite', detail: { directory: this.#options.directory, reason: 'no-free-name' } },
    )
  }
}

/**
 * The file a database path leads to, as SQLite opens it (it follows symlinks, and keeps its `-wal`
 * and `-shm` beside the real file): the real path of `path`, of a dangling symlink's target, or
 * `path` under its directory's real path when the file does not exist. A restore replaces this file:
 * renaming over the symlink itself would replace the link with a regular file and leave the real
 * database (on the volume the link points to) as it was.
 */
export function realDatabasePath(path: string): string {
  let absolute = resolve(path)
  for (let hops = 0; hops < 40; hops++) {
    try {
      return realpathSync(absolute)
    } catch {
      // missing, or a link to a missing file: follow the link by hand
    }
    let link: string
    try {
      if (!lstatSync(absolute).isSymbolicLink()) break
      link = readlinkSync(absolute)
    } catch {
      break
    }
    absolute = resolve(dirname(absolute), link)
  }
  try {
    return join(realpathSync(dirname(absolute)), basename(absolute))
  } catch {
    return absolute
  }
}

/**
 * Gives `staged` the mode, and when the process may (root, or the same owner), the owner and group of
 * the database it replaces: the restored file is the application's database, not a copy of the
 * backup file's permissions (0600, the backup's owner). Nothing when `target` does not exist.
 */
async function keepModeAndOwner(staged: string, target: string): Promise<void> {
  let before: Stats
  try {
    before = await stat(target)
  } catch {
    return
  }
  await chmod(staged, Number(before.mode) & 0o7777)
  try {
    await chown(staged, Number(before.uid), Number(before.gid))
  } catch {
    // EPERM: only root may give a file away; the mode is kept
  }
}

/**
 * Puts a verified file in place of a closed database: sets it to WAL when the database is WAL (a
 * backup is self-contained, journal_mode DELETE; a restored rollback-journal file could not be told
 * in use at the next restore), gives it the database's mode and owner (`keepModeAndOwner`), removes the old `-wal` and `-shm` (their frames belong to the old file and
 * would be replayed onto the new one), then renames `staged` over `target` (atomic within one
 * filesystem) and syncs the directory. `target` is the real file ({@link realDatabasePath}), and
 * `staged` in its directory. No connection may be open.
 * Rejects before touching `target`: with CONFIGURATION naming `replaceDatabaseFile.staged` when
 * `staged` is `target` itself (same device and inode: removing its `-wal` would drop the commits in
 * it) and naming `replaceDatabaseFile.databasePath` when `target` is not a regular file (a
 * directory); with BACKUP_FAILED when `staged` is empty (0 bytes), not a SQLite database or
 * truncated (`checkDatabaseFileShape`), when `target`'s directory does not exist, or when `staged` is
 * on another filesystem (the rename would fail after the old `-wal` was removed). A later failure
 * (the rename itself) is BACKUP_FAILED naming `target`.
 */
export async function replaceDatabaseFile(staged: string, databasePath: string): Promise<void> {
  checkDatabasePath('replaceDatabaseFile.staged', staged)
  const target = realDatabasePath(checkDatabasePath('replaceDatabaseFile.databasePath', databasePath))
  refuseSameFile('replaceDatabaseFile.staged', staged, target)
  checkReplaceTarget('replaceDatabaseFile.databasePath', target)
  checkDatabaseFileShape(staged)
  checkSameFilesystem(staged, target)
  try {
    await replaceChecked(staged, target)
  } catch (err) {
    if (DatabaseError.is(err)) throw err
    throw new DatabaseError('BACKUP_FAILED', `cannot replace ${target} with ${staged}: ${messageOf(err)}`, {
      backend: 'sqlite',
      cause: err,
      detail: { target, staged },
    })
  }
}

async function replaceChecked(staged: string, target: string): Promise<void> {
  // a backup is self-contained (journal_mode DELETE): a WAL database stays WAL, so that the next
  // restore can still tell whether another process has it open (see databaseUse)
  if (journalKindOf(target) === 'wal') setWal(staged)
  await keepModeAndOwner(staged, target)
  await syncFile(staged)
  for (const suffix of ['-wal', '-shm', '-journal']) await removeQuietly(`${target}${suffix}`)
  await rename(staged, target)
  await syncDirectory(dirname(target))
}

/**
 * Restores a database that no pool has open (the CLI's `dbpool restore`): verifies `file` (plain or
 * gzip) on a staged copy beside `target`, then {@link replaceDatabaseFile}. Rejects with
 * BACKUP_FAILED, `target` untouched, when `file` is missing, empty (0 bytes, also once gunzipped),
 * not a SQLite database, truncated, fails `integrity_check`, or has no schema object while `target`
 * has one (see {@link BackupManager.verify}), with CONFIGURATION naming `restoreDatabaseFile.file` when
 * `file` is `target` itself (a `-wal` beside `file` is read with it, see `stageBackupFile`), or when
 * another connection has `target` open, unless
 * `options.force` (`detail.reason` `'in-use'`, `detail.pids` on Linux, see `databaseUse`), or when
 * that cannot be told (`'in-use-unknown'`: a rollback-journal database, no `/proc`, another user's
 * processes whose open files cannot be read, hidden processes: `detail.hidden`, waived one by one by
 * `options.allowHidden`, see {@link RestoreOptions.allowHidden}).
 */
export async function restoreDatabaseFile(
  target: string,
  file: string,
  options?: { readonly force?: boolean; readonly allowHidden?: readonly HiddenProcesses[] },
): Promise<void> {
  const raw = requireObject('restoreDatabaseFile options', options)
  rejectUnknownKeys('restoreDatabaseFile', raw, ['force', 'allowHidden'])
  const force = raw.force === undefined ? false : checkBoolean('restoreDatabaseFile.force', raw.force)
  const allowHidden = checkAllowHidden('restoreDatabaseFile.allowHidden', raw.allowHidden)
  const source = resolve(checkDatabasePath('restoreDatabaseFile.file', file))
  const dest = realDatabasePath(checkDatabasePath('restoreDatabaseFile.target', target))
  checkReplaceTarget('restoreDatabaseFile.target', dest)
  if (!existsSync(source))
    throw new DatabaseError('BACKUP_FAILED', `backup file ${source} does not exist`, { backend: 'sqlite', detail: { file: source } })
  refuseSameFile('restoreDatabaseFile.file', source, dest)
  if (!force) refuseRollbackJournal(dest)
  await removeStaleTempFiles(dirname(dest), basename(dest))
  const requireSchema = existsSync(dest) && (schemaObjectsOf(dest) ?? 0) > 0
  const staged = tempName(dirname(dest), basename(dest))
  try {
    await stageBackupFile(source, staged)
    const timeoutMs = defaultBackupTimeoutMs((await stat(staged)).size)
    await verifyDatabaseFileOffThread(staged, source, {
      timeoutMs,
      deadline: `timeoutMs ${timeoutMs}, the default for its size`,
      warn: (message) => process.emitWarning(message, 'DbpoolBackupWarning'),
      requireSchema,
      group: dest,
    })
    if (!force) refuseInUse(dest, allowHidden)
    await replaceDatabaseFile(staged, dest)
    forgetTemp(staged)
  } catch (err) {
    await removeTemp(staged)
    throw asBackupError(err)
  }
}

/** Sets a closed file we own to WAL (a header setting); its -wal and -shm are gone again once it is closed. */
function setWal(file: string): void {
  const db = new Database(file, { fileMustExist: true })
  try {
    db.pragma('journal_mode = WAL')
  } finally {
    db.close()
  }
}

interface ParsedRestoreOptions {
  readonly closeTimeoutMs: number
  readonly force: boolean
  readonly allowHidden: readonly HiddenProcesses[]
}

function restoreOptions(options: unknown): ParsedRestoreOptions {
  const raw = requireObject('restore options', options)
  rejectUnknownKeys('restore', raw, ['closeTimeoutMs', 'force', 'allowHidden'])
  return {
    closeTimeoutMs:
      raw.closeTimeoutMs === undefined ? 30_000 : checkInteger('restore.closeTimeoutMs', raw.closeTimeoutMs, 0, 2_147_483_647),
    force: raw.force === undefined ? false : checkBoolean('restore.force', raw.force),
    allowHidden: checkAllowHidden('restore.allowHidden', raw.allowHidden),
  }
}

/** `allowHidden` of a restore: an array of {@link HIDDEN_PROCESSES} values (CONFIGURATION naming `option` otherwise). */
function checkAllowHidden(option: string, value: unknown): readonly HiddenProcesses[] {
  if (value === undefined) return []
  const known = HIDDEN_PROCESSES as readonly unknown[]
  if (!Array.isArray(value) || !value.every((reason) => known.includes(reason)))
    throw configError(option, value, `must be an array of ${HIDDEN_PROCESSES.map((reason) => `'${reason}'`).join(', ')}`)
  return [...(value as HiddenProcesses[])]
}

function resolveRetention(value: unknown): RetentionPolicy {
  const raw = requireObject('backup.retention', value)
  rejectUnknownKeys('backup.retention', raw, RETENTION_KEYS)
  const keepLast = raw.keepLast === undefined ? undefined : checkInteger('backup.retention.keepLast', raw.keepLast, 1)
  const keepDays = raw.keepDays
  if (keepDays !== undefined && (typeof keepDays !== 'number' || !Number.isFinite(keepDays) || keepDays <= 0)) {
    throw configError('backup.retention.keepDays', keepDays, 'must be a number > 0')
  }
  if (keepLast === undefined && keepDays === undefined) throw configError('backup.retention', value, 'set keepLast, keepDays or both')
  return { ...(keepLast === undefined ? {} : { keepLast }), ...(keepDays === undefined ? {} : { keepDays: keepDays as number }) }
}

function keeps(policy: RetentionPolicy, index: number, createdAt: Date, now: Date): boolean {
  if (index === 0) return true // the newest backup is never deleted
  if (policy.keepLast !== undefined && index < policy.keepLast) return true
  if (policy.keepDays !== undefined && now.getTime() - createdAt.getTime() < policy.keepDays * DAY_MS) return true
  return false
}

// names tried for one backup (`-1` ... `-999` after the first) before it fails: no-free-name
const MAX_NAMES = 1_000

// a clock this far behind the previous backup's time was stepped back (not two backups in one ms)
const STAMP_STEP_BACK_MS = 1_000

/** `2025-01-31T12:00:00.123Z` → `20250131T120000123Z`. */
function stamp(date: Date): string {
  return date.toISOString().replace(/[-:.]/g, '')
}

function parseStamp(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(text)
  if (!m) return new Date(0)
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7])))
}

function defaultPrefix(path: string): string {
  if (path === ':memory:') return 'memory'
  const name = basename(path, extname(path)).replace(/[^A-Za-z0-9._-]/g, '_')
  return name.length > 0 ? name : 'backup'
}

/** The record beside a backup file: `<file>.json`. */
function recordOf(file: string): string {
  return `${file}.json`
}

/**
 * What is recorded beside a backup (`<file>.json`): the database's identity ({@link BackupInfo.source}),
 * the host ({@link hostTag}), the sequence, and the backup file's size in bytes, so that a file put
 * at a backup's name later (its record left beside it) is not taken for that backup by retention.
 */
interface BackupRecord {
  readonly source: string
  readonly host: string
  readonly sequence: number
  readonly bytes: number
}

/** A listed backup, with what retention checks before counting or deleting it. */
interface ScannedBackup {
  readonly info: BackupInfo
  /** The size recorded beside it; `undefined` for a record of an older version (or none). */
  readonly recordedBytes: number | undefined
  /** Its identity when listed: it is deleted only while its name still leads to this file. */
  readonly dev: bigint
  readonly ino: bigint
}

/**
 * Writes `record` at `path` when nothing is there, atomically (temp file, fsync, {@link placeNew}:
 * never over another record). Resolves with the identity of the record written, `undefined` when
 * `path` exists (left as it was).
 */
async function writeRecord(path: string, record: BackupRecord): Promise<NewTarget | undefined> {
  const tmp = tempName(dirname(path), basename(path))
  try {
    await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600, flag: 'wx' })
    await syncFile(tmp)
    return await placeNew(tmp, path)
  } finally {
    await removeTemp(tmp)
  }
}

/**
 * The source, host, sequence and size recorded beside `file`; each `undefined` when there is no
 * readable record or no such field. A record is a regular file: a symlink at its name is none.
 */
async function readRecord(file: string): Promise<{ [K in keyof BackupRecord]: BackupRecord[K] | undefined }> {
  try {
    if (!(await lstat(recordOf(file))).isFile()) throw new Error('not a regular file')
    const parsed = JSON.parse(await readFile(recordOf(file), 'utf8')) as { [K in keyof BackupRecord]?: unknown }
    return {
      source: typeof parsed.source === 'string' ? parsed.source : undefined,
      host: typeof parsed.host === 'string' ? parsed.host : undefined,
      sequence: Number.isSafeInteger(parsed.sequence) && (parsed.sequence as number) > 0 ? (parsed.sequence as number) : undefined,
      bytes: Number.isSafeInteger(parsed.bytes) && (parsed.bytes as number) >= 0 ? (parsed.bytes as number) : undefined,
    }
  } catch {
    return { source: undefined, host: undefined, sequence: undefined, bytes: undefined }
  }
}

/**
 * Whether a listed file has the size its record holds (records of older versions hold none: `true`):
 * a file put at a backup's name (moved or copied there, the record left beside it) is not that backup.
 */
function holdsRecordedSize(entry: ScannedBackup): boolean {
  return entry.recordedBytes === undefined || entry.recordedBytes === entry.info.bytes
}

/**
 * Deletes a backup retention gave up, and its record, when its name still leads to the file listed
 * (same device and inode, not a symlink): a file put there since is left. Resolves `false` when the
 * name leads to another file, `true` when deleted or already gone (another run pruned it); rejects
 * with the system's error when it cannot be deleted.
 */
async function deleteBackup(entry: ScannedBackup): Promise<boolean> {
  const now = await lstat(entry.info.file, { bigint: true }).catch(() => undefined)
  if (now !== undefined) {
    if (now.dev !== entry.dev || now.ino !== entry.ino) return false
    await unlink(entry.info.file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
  }
  await removeQuietly(recordOf(entry.info.file))
  return true
}

/**
 * One database's backups, newest first by their records' sequence (never by the clock, see
 * {@link RetentionPolicy}); those without one after, by their names' time (then name).
 */
function newestFirst(backups: ScannedBackup[]): ScannedBackup[] {
  return backups.sort(
    ({ info: a }, { info: b }) =>
      (b.sequence ?? 0) - (a.sequence ?? 0) ||
      b.createdAt.getTime() - a.createdAt.getTime() ||
      (a.file < b.file ? 1 : a.file > b.file ? -1 : 0),
  )
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

async function removeQuietly(file: string): Promise<void> {
  await unlink(file).catch(() => undefined)
}

async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function syncDirectory(directory: string): Promise<void> {
  // not every platform can fsync a directory; the rename is still atomic without it
  const handle = await open(directory, 'r').catch(() => undefined)
  if (!handle) return
  try {
    await handle.sync()
  } catch {
    // ignored: see above
  } finally {
    await handle.close()
  }
}

/** BACKUP_FAILED for a system error on the backup directory or a file in it. */
function directoryError(directory: string, what: string, err: unknown): DatabaseError {
  const reason = (err as NodeJS.ErrnoException | undefined)?.code
  return new DatabaseError('BACKUP_FAILED', `${what} (directory ${directory}): ${messageOf(err)}`, {
    backend: 'sqlite',
    retryable: false,
    cause: err,
    detail: { directory, ...(typeof reason === 'string' ? { reason } : {}) },
  })
}

function asBackupError(err: unknown): DatabaseError {
  if (DatabaseError.is(err) && (err.code === 'BACKUP_FAILED' || err.code === 'POOL_CLOSED' || err.code === 'CONFIGURATION')) return err
  const message = messageOf(err)
  const code = DatabaseError.is(err) ? `${err.code}: ` : ''
  return new DatabaseError('BACKUP_FAILED', `SQLite backup failed: ${code}${message}`, { backend: 'sqlite', cause: err })
}

function round(n: number): number {
  return Math.round(n * 100) / 100
}
