export { SqliteConnectionManager } from './sqlite-connection-manager'
export { sqliteParameters, maxParametersOf, DEFAULT_MAX_PARAMETERS } from './sqlite-params'
export type { CheckpointMode, CheckpointResult, SqliteDatabase } from './sqlite-connection-manager'
export { createSqlitePool } from './create-sqlite-pool'
export {
  resolveSqliteOptions,
  JOURNAL_MODES,
  SYNCHRONOUS_LEVELS,
  TEMP_STORES,
  MEMORY_PATH,
  MAX_MMAP_SIZE_BYTES,
  SQLITE_OPTION_KEYS,
} from './sqlite-options'
export { toSqliteOptions } from './sqlite-options'
export type { JournalMode, ResolvedSqliteOptions, SqliteOptions, SynchronousLevel, TempStore } from './sqlite-options'
export { SQLITE_ERROR_CODES, lookupSqliteCode, isFatalSqliteCode, isFatalSqliteError, mapSqliteError } from './sqlite-errors'
export type { SqliteErrorContext, SqliteErrorMapping } from './sqlite-errors'
export { StatementCache } from './statement-cache'
export { sqliteHealthChecks, deepIntegrityCheck, integrityCheck, walCheck, pageCheck, walSizeBytes } from './sqlite-health'
export { fileIdentityOf, fileIdentityProblem, fileIdentityCheck } from './file-identity'
export type { FileIdentity, FileIdentityProblem } from './file-identity'
export type { SqliteHealthContext } from './sqlite-health'
export { sqlitePoolFor, sqliteManagerOf } from './create-sqlite-pool'
export { BackupManager, replaceDatabaseFile, restoreDatabaseFile } from './backup-manager'
export { databaseInUse, databaseUse } from './database-in-use'
export type { DatabaseUse } from './database-in-use'
export { processesWithFileOpen } from './open-file-scan'
export type { HiddenProcesses, OpenFileScan } from './open-file-scan'
export { checkDatabaseFileShape, verifyDatabaseFile, verifyDatabaseFileOffThread } from './backup-verify'
export type { UnsoundBackupReason, VerifyOptions } from './backup-verify'
export type {
  BackupInfo,
  BackupManagerOptions,
  BackupMethod,
  BackupProgress,
  BackupResult,
  RestoreOptions,
  RetentionPolicy,
} from './backup-manager'
export { copyDatabaseFile, defaultBackupTimeoutMs } from './backup-copy'
export { removeBackupTempFilesSync, removeStaleTempFiles } from './backup-temp'
export type { BackupCopyMode, CopyStep, FileCopyOptions, FileCopyResult } from './backup-copy'
