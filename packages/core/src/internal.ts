/**
 * `@dbpool/core/internal`: helpers that backends (`@dbpool/postgres`, `@dbpool/sqlite`) and the
 * first-party packages (`@dbpool/http`, `@dbpool/cli`) share with core, kept out of the main entry so
 * that an application's view of `@dbpool/core` is the pool, its config, errors, health, metrics and
 * migrations. Someone writing a `ConnectionManager` for another database may use them; they follow
 * the package version like the rest, but are shaped by what the backends need rather than by apps.
 *
 * - Option validators: each throws `DatabaseError` `CONFIGURATION` naming the option and the value.
 * - Parameter helpers: each problem is `DatabaseError` `INVALID_PARAMETER` naming the position.
 * - Result columns: `duplicateColumn` / `duplicateColumnError` / `protoColumnError` / `isDuplicateColumnError` (`SYNTAX_ERROR`: two columns of one name, or a `__proto__` column a driver's rows would drop).
 * - `withDeadline`: races a promise against a timer (cleared when the promise settles).
 * - `parsePostgresUrl`: libpq's URI grammar (several hosts), unknown query parameters refused.
 * - `checkLibpqTlsEnv`: the libpq variables read only with TLS (PGSSLCERT...), checked against a target's final TLS mode.
 * - `checkLibpqRootCertEnv`: PGSSLROOTCERT naming no file, refused for a target's final verify-* mode.
 * - `previewStatement` (`previewStatementIn` by a dialect's lexical rules), `statementLiterals`, `hideErrorLiterals`: a statement (and an error that repeats it) shown with every literal hidden.
 * - `nativeWorkDone`: `readYourWrites` records a write made through `conn.native` (a COPY) when it completes.
 * - `markWaitDeadline`: a call's own deadline, aborting its signal, ends its wait for a connection with ACQUIRE_TIMEOUT (counted once, by the lane).
 * - `isErrorLike`: an Error of this realm or of another one (a `vm` context, a jest sandbox), for error paths.
 * - `abortedTransactionError`, `transactionControlOf`: what a backend needs to refuse statements of an
 *   aborted transaction and to tell a script's own transaction control, as core does.
 * - `transactionLeftOpenError`: a lone statement that left a transaction open (rolled back, TRANSACTION_ROLLED_BACK).
 * - `inBackground`: runs a backend's own long-lived work (a dedicated connection, its timers) in no caller's async context.
 *
 * @packageDocumentation
 */
export {
  rejectExtraArguments,
  rejectUnknownKeys,
  requireObject,
  checkInteger,
  checkEnum,
  checkBoolean,
  checkString,
  checkFraction,
  checkPool,
} from './config/validate'
export { checkExecuteOptions, checkQueryOptions, checkSignal } from './config/call-options'
export {
  isPlainObject,
  describeValue,
  invalidParameter,
  holeParameter,
  jsonParameterText,
  checkStatementText,
  loneSurrogateAt,
  stringProblem,
} from './sql/parameters'
export { duplicateColumn, duplicateColumnError, isDuplicateColumnError, protoColumnError } from './sql/result-columns'
export type { DuplicateColumn, DuplicateColumnContext, ResultColumn } from './sql/result-columns'
export { withDeadline } from './pool/lane-pool'
export { inBackground } from './pool/background'
export { parsePostgresUrl, URL_PARAMETERS } from './config/postgres-url'
export { checkLibpqTlsEnv } from './config/libpq-env'
export { checkLibpqRootCertEnv } from './config/database-config'
export type { ParsedPostgresUrl } from './config/postgres-url'
export type { OperationOptions, OperationSpan } from './telemetry/pool-telemetry'
export { abortedTransactionError, transactionLeftOpenError } from './transaction/transaction-outcome'
export { transactionControlOf } from './transaction/transaction-control'
export { lineCommentEnd } from './sql/line-comment'
export { nativeWorkDone } from './pool/pool-connection'
export { markWaitDeadline } from './pool/wait-deadline'
export type { WaitDeadline } from './pool/wait-deadline'
export { previewStatement, previewStatementIn, statementLiterals, hideErrorLiterals } from './migrations/statement-preview'
export { isErrorLike } from './util/error-like'
