export { run, buildProgram } from './cli'
export type { RunOptions } from './cli'
export { parseConfigFile, loadConfigFile, CONFIG_FILE_NAMES, MAX_CONFIG_BYTES } from './config-file'
export type { ConfigFile, PoolDefinition } from './config-file'
export { resolveConfig, selectPool, selectPools, urlSecrets } from './resolve-config'
export type { ConfigFlags, ResolvedConfig } from './resolve-config'
export { Output, ProgressDisplay, describeError, errorDetails, EXIT_CODES } from './output'
export type { CliIo, DescribeOptions, OutputStream } from './output'
export {
  argvSecrets,
  argvShownNames,
  credentialSecrets,
  envSecrets,
  envShownNames,
  hasAmbiguousCredentials,
  scrubSecrets,
  urlShownNames,
} from './secrets'
export { formatNumber, formatMs } from './format'
export { GuardedStream } from './guarded-stream'
export type { GuardableStream } from './guarded-stream'
export { openPool, openPools, withPools, withoutCreatingDatabases } from './pools'
export type { OpenPoolsOptions } from './pools'
export type { CommandContext } from './commands/context'
export { healthCommand, exitCodeFor, printHealth } from './commands/health'
export type { HealthCommandOptions } from './commands/health'
export { statsCommand } from './commands/stats'
export type { PoolStatsReport, StatsCommandOptions } from './commands/stats'
export { checkCommand } from './commands/check'
export type { CheckCommandOptions, CheckResult } from './commands/check'
export { migrateCommand } from './commands/migrate'
export type { MigrateCommandOptions } from './commands/migrate'
export { backupCommand } from './commands/backup'
export type { BackupCommandOptions } from './commands/backup'
export { restoreCommand } from './commands/restore'
export type { RestoreCommandOptions } from './commands/restore'
export { serveCommand } from './commands/serve'
export type { ServeCommandOptions } from './commands/serve'
export { benchCommand } from './commands/bench'
export type { BenchCommandOptions, BenchReport } from './commands/bench'
