export { CustomerRepository, MAX_PHONE_LENGTH, MAX_SEARCH_TERM_LENGTH, normaliseEmail } from './customer-repository'
export type { Customer, CustomerChanges, NewCustomer, Page, PageOptions } from './customer-repository'
export { ContactRepository } from './contact-repository'
export type { Contact, NewContact } from './contact-repository'
export { DealRepository } from './deal-repository'
export type { Deal, NewDeal, PipelineSummary, StageChange } from './deal-repository'
export { PipelineService } from './pipeline-service'
export type { PipelineServiceOptions } from './pipeline-service'
export { STAGES, OPEN_STAGES, canMove, isClosed, isStage } from './pipeline'
export type { Stage } from './pipeline'
export { checkCrmInvariants } from './crm-invariants'
export type { InvariantCheck, InvariantReport } from './crm-invariants'
export {
  CrmError,
  CustomerNotFoundError,
  DuplicateEmailError,
  DuplicateCustomerError,
  InvalidInputError,
  InvalidCursorError,
  DealNotFoundError,
  InvalidStageTransitionError,
  ConcurrentUpdateError,
} from './errors'
export type { CrmErrorCode } from './errors'
export { encodeCursor, decodeCursor } from './cursor'
export { foldForSearch, backfillCustomerSearch } from './search-text'
export { CRM_MIGRATIONS_DIRECTORY, CRM_MIGRATIONS_TABLE, crmMigrator, migrateCrm, resetCrm } from './migrations'
export { crmConfigFromEnv, DEFAULT_CRM_DATABASE_URL } from './config'
export type { CrmConfig } from './config'
export { runCrmDemo } from './demo'
export type { CrmDemoOptions, CrmDemoReport, PhaseOutcomes } from './demo'
export { formatCrmReport } from './demo-report'
export { planCrmDemo } from './demo-plan'
export type { CrmDemoPlan, PlannedCustomer, PlannedDeal, PlannedMove } from './demo-plan'
export { Progress } from '@dbpool/example-kit'
export type { ProgressOptions, ProgressSink } from '@dbpool/example-kit'
export { SeededRandom } from '@dbpool/example-kit'
export type { Db } from './db'
export { crmKysely } from './kysely-db'
export type { CrmDatabase, CrmKysely } from './kysely-db'
export { toInteger, toBigInteger, toDate, toNullableDate, ValueReadError } from './values'
export { checkDate, MIN_DATE, MAX_DATE } from './dates'
