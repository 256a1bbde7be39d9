export { AccountRepository } from './account-repository'
export type { Account, BalanceSummary, NewAccount } from './account-repository'
export { TransactionRepository } from './transaction-repository'
export type {
  AccountStatement,
  DateRange,
  JournalEntry,
  JournalLine,
  NewJournalEntry,
  PostResult,
  StatementLine,
} from './transaction-repository'
export { TransferService, hashRequest } from './transfer-service'
export type { TransferRequest, TransferResult, TransferServiceOptions, TransferStats } from './transfer-service'
export { checkLedgerInvariants } from './ledger-invariants'
export type { InvariantCheck, InvariantReport } from './ledger-invariants'
export {
  FinanceError,
  AccountNotFoundError,
  DuplicateAccountError,
  InsufficientFundsError,
  BalanceOutOfRangeError,
  BalanceReadOutOfRangeError,
  CurrencyMismatchError,
  IdempotencyConflictError,
  InvalidEntryError,
} from './errors'
export type { FinanceErrorCode } from './errors'
export { FINANCE_MIGRATIONS_DIRECTORY, FINANCE_MIGRATIONS_TABLE, financeMigrator, migrateFinance, resetFinance } from './migrations'
export { financeConfigFromEnv, DEFAULT_FINANCE_DATABASE_URL, DEFAULT_FINANCE_EXPORT_PATH } from './config'
export type { FinanceConfig } from './config'
export { runFinanceDemo, formatMoney } from './demo'
export type { FinanceDemoOptions, FinanceDemoReport, TransferOutcomes } from './demo'
export { formatFinanceReport } from './demo-report'
export { planDemo, EQUITY_ACCOUNT } from './demo-plan'
export type { DemoPlan, PlannedAccount, PlannedKind, PlannedTransfer } from './demo-plan'
export { Progress } from '@dbpool/example-kit'
export type { ProgressOptions, ProgressSink } from '@dbpool/example-kit'
export { SeededRandom } from '@dbpool/example-kit'
export type { Db } from './db'
export { toInteger, toBigInteger, toNullableInteger, toDate, sumExact, addExact, ExactTotal, ValueReadError } from './values'
export { exportJournalCsv, JOURNAL_CSV_HEADER } from './journal-export'
export type { JournalExport } from './journal-export'
export { checkDate, MIN_DATE, MAX_DATE } from './dates'
